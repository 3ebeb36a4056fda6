"""The eval stage end to end: which rows it evaluates, the served backend against a stand-in server (the
scoring path, the seeds, the key), resume, differences, and one-line errors before any model loads."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import httpx
import pytest
import yaml
from servers import StandInChatServer
from suite import write_benchmark_rows

from distill.cli import main
from distill.errors import DistillError
from distill.recipe import Recipe
from eval.stage import eval_targets

KEY = "sk-test-0123456789abcdef"


def problems_dir(tmp_path: Path, answers: list[str]) -> Path:
    """A data folder with a math500 file whose problems have the given gold answers."""
    folder = tmp_path / "benchmarks" / "math500"
    folder.mkdir(parents=True)
    rows = [{"unique_id": f"p{i}", "problem": f"Problem {i}?", "answer": a} for i, a in enumerate(answers)]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder.parent


def served_recipe(tmp_path: Path, url: str, data_dir: Path, **eval_fields) -> Path:
    recipe = {
        "name": "served-eval",
        "run_dir": str(tmp_path / "run"),
        "eval": {
            "tasks": ["math500"],
            "backend": "served",
            "data_dir": str(data_dir),
            "samples_per_problem": 3,
            "max_tokens": 32,
            "models": [
                {"label": "stand-in", "model": "stand-in", "base_url": url, "api_key_env": "EVAL_KEY"}
            ],
            **eval_fields,
        },
    }
    path = tmp_path / "served.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_served_rows_are_scored_by_the_verifier_with_distinct_seeds_and_no_key_leak(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("EVAL_KEY", KEY)
    data_dir = problems_dir(tmp_path, ["42", "7", "42", "6 \\cdot 7"])  # the stand-in always answers 42
    with StandInChatServer() as server:
        assert main(["run", str(served_recipe(tmp_path, server.url, data_dir))]) == 0
        requests, auth = list(server.requests), list(server.auth)
    row = json.loads((tmp_path / "run" / "eval" / "comparison.json").read_text())["rows"][0]
    assert (row["pass_at_1"], row["problems"], row["samples_per_problem"], row["backend"]) == (
        0.75,
        4,
        3,
        "served",
    )
    assert row["pass_at_k"] == {"1": 0.75, "2": 0.75, "3": 0.75} and row["truncated_share"] is None
    assert row["maj_at_k"] == {"1": 0.75, "2": 0.75, "3": 0.75} and row["maj_at_n"] == 0.75
    assert row["ci95"] == pytest.approx([0.3006, 0.9544], abs=1e-4)  # Wilson, 3 of 4 problems
    assert "Wilson score interval" in (tmp_path / "run" / "eval" / "comparison.md").read_text()
    chat = [r for r in requests if "messages" in r]
    assert len(chat) == 12  # 4 problems x 3 samples
    seeds: dict[str, set] = {}
    for body in chat:
        seeds.setdefault(body["messages"][-1]["content"], set()).add(body["seed"])
    assert all(len(s) == 3 for s in seeds.values())  # the repeats of a problem are independent draws
    assert all(a == f"Bearer {KEY}" for a in auth)
    leaked = [p for p in (tmp_path / "run").rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaked == [] and KEY not in capsys.readouterr().out


def test_a_finished_row_is_reused_after_a_crash(tmp_path, monkeypatch):
    from eval.harness import evaluate_target

    monkeypatch.setenv("EVAL_KEY", KEY)
    data_dir = problems_dir(tmp_path, ["42", "1"])
    with StandInChatServer() as server:
        recipe = Recipe.model_validate(
            yaml.safe_load(served_recipe(tmp_path, server.url, data_dir).read_text())
        )
        (target,), _ = eval_targets(recipe, tmp_path)
        first = evaluate_target(target, recipe.eval, tmp_path / "out", on_gpu=False)
        calls = len(server.requests)
        again = evaluate_target(target, recipe.eval, tmp_path / "out", on_gpu=False)
    assert again == first and len(server.requests) == calls


def test_rows_teacher_served_bases_deduplicated_and_extra_models(tiny_recipe_dict, tmp_path):
    tiny_recipe_dict["teacher"].update(backend="openai", model="r1", openai={"base_url": "http://h:1/v1"})
    tiny_recipe_dict["students"].append({**tiny_recipe_dict["students"][0], "name": "second"})
    tiny_recipe_dict["eval"].update(include_base=True, models=[{"label": "extra", "model": "some/weights"}])
    recipe = Recipe.model_validate(tiny_recipe_dict)
    for student in recipe.students:
        (tmp_path / "students" / student.name / "final").mkdir(parents=True)
    targets, bases = eval_targets(recipe, tmp_path, resolve=lambda ref: f"/models/{ref}")
    summary = [(t.label, t.role, t.backend) for t in targets]
    assert summary == [
        ("teacher (r1)", "teacher", "served"),
        ("base (tiny-random-llama)", "base", "hf"),
        (recipe.students[0].name, "student", "hf"),
        ("second", "student", "hf"),
        ("extra", "model", "hf"),
    ]
    assert set(bases.values()) == {"base (tiny-random-llama)"}


def test_differences_pair_each_student_with_its_base_and_the_teacher():
    from eval.backends import EvalTarget
    from eval.stage import differences

    targets = [
        EvalTarget("T", "t", "hf", "teacher"),
        EvalTarget("B", "b", "hf", "base"),
        EvalTarget("S", "s", "hf", "student"),
    ]
    per_problem = {
        "T": {"x": {"a": [2, 0, 0], "b": [2, 1, 0]}},
        "B": {"x": {"a": [2, 0, 0], "b": [2, 0, 0]}},
        "S": {"x": {"a": [2, 2, 1], "b": [2, 2, 1]}},
    }
    results = {label: {"per_problem": p} for label, p in per_problem.items()}
    diffs = {d["versus"]: d for d in differences(results, targets, {"S": "B"}, ["x"])}
    assert diffs["base"]["difference"] == 1.0 and diffs["base"]["significant"]
    assert diffs["teacher"]["difference"] == 0.75 and diffs["teacher"]["problems"] == 2


def test_a_student_started_from_another_is_paired_with_it():
    """init: what one phase (say GRPO after SFT) added over the student it started from."""
    from eval.backends import EvalTarget
    from eval.stage import differences

    targets = [EvalTarget("A", "a", "hf", "student"), EvalTarget("B", "b", "hf", "student")]
    per_problem = {"A": {"x": {"p": [2, 1, 0], "q": [2, 0, 0]}}, "B": {"x": {"p": [2, 2, 1], "q": [2, 1, 0]}}}
    results = {label: {"per_problem": p} for label, p in per_problem.items()}
    diffs = differences(results, targets, {}, ["x"], {"B": "A"})
    assert [(d["student"], d["versus"], d["reference"], d["difference"]) for d in diffs] == [
        ("B", "init", "A", 0.5)
    ]


def write(tmp_path, recipe: dict) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize(
    ("eval_fields", "message"),
    [
        ({"tasks": ["math5000"]}, "unknown task 'math5000' (did you mean 'math500'?)"),
        ({"data_dir": "/no/such/folder"}, "eval.data_dir /no/such/folder: no such folder"),
        ({"tasks": ["aime24"], "data_dir": "EMPTY"}, "aime24/test.jsonl not found and the Hub is offline"),
        (
            {"models": [{"label": "m", "model": "x", "base_url": "http://127.0.0.1:9/v1"}]},
            "m: cannot reach http://127.0.0.1:9/v1/models",
        ),
        ({"models": [{"label": "m", "model": "/no/weights"}]}, "cannot load m for evaluation"),
        (
            {"backend": "served", "models": [{"label": "m", "model": "tiny-random-llama"}]},
            "m is local weights",
        ),
        ({"samples": {"aime24": 32}}, "samples names aime24, which is not in eval.tasks"),
        ({"backend": "vllm", "vllm": {"data_parallel_size": 2}}, "lm-eval runs vLLM replicas with Ray"),
    ],
)
def test_bad_eval_input_is_one_line_before_any_model_loads(tmp_path, capsys, eval_fields, message):
    if "Ray" in message and importlib.util.find_spec("ray") is not None:
        pytest.skip("ray is installed here")
    (tmp_path / "EMPTY").mkdir()
    data_dir = str(write_benchmark_rows(tmp_path / "data", "math500"))  # the one problem is the named field
    fields = {k: (str(tmp_path / v) if v == "EMPTY" else v) for k, v in eval_fields.items()}
    recipe = {
        "name": "bad",
        "run_dir": str(tmp_path / "run"),
        "eval": {
            "tasks": ["math500"],
            "data_dir": data_dir,
            "models": [{"label": "m", "model": "tiny-random-llama"}],
            **fields,
        },
    }
    assert main(["eval", str(write(tmp_path, recipe))]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_gated_set_without_access_is_one_line(monkeypatch):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError

    from eval import preflight

    def refuse(self, repo_id, **_):
        response = httpx.Response(403, request=httpx.Request("GET", f"https://huggingface.co/{repo_id}"))
        raise GatedRepoError("403 gated", response=response)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(HfApi, "auth_check", refuse)
    with pytest.raises(DistillError, match="no access to the gated set Idavidrein/gpqa; accept its terms"):
        preflight.check_benchmark_data(["gpqa_diamond"], None)


def test_humaneval_passes_the_data_preflight_offline_from_the_package(tmp_path, monkeypatch):
    """humaneval has no file under an empty data_dir, yet the package ships it: offline is fine; math500 in
    the same folder is not."""
    from eval import preflight

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    preflight.check_benchmark_data(["humaneval"], str(tmp_path))
    with pytest.raises(DistillError, match="math500/test.jsonl not found and the Hub is offline"):
        preflight.check_benchmark_data(["math500", "humaneval"], str(tmp_path))
