"""Shared fixtures: offline mode, tiny recipes, the shared benchmarks folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def benchmarks_dir() -> Path:
    return Path(os.environ.get("DISTILL_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))


# Tests that read the real benchmark sets skip in a clone without ../shared/benchmarks beside it.
needs_benchmarks = pytest.mark.skipif(
    not (benchmarks_dir() / "math500" / "test.jsonl").exists(), reason="../shared/benchmarks not present"
)


def write_benchmark_rows(folder: Path, *names: str) -> Path:
    """A data_dir holding two made-up problems per named set: for tests about anything but the sets."""
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
        rows = [{"problem": "What is 1 + 1?", "answer": "2"}, {"problem": "What is 2 + 3?", "answer": "5"}]
        (folder / name / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture
def tiny_recipe_dict(tmp_path: Path) -> dict:
    """The quickstart recipe shrunk to the tiny random model and a handful of rows (runs in seconds)."""
    recipe = yaml.safe_load((REPO / "recipes" / "quickstart.yaml").read_text())
    recipe["run_dir"] = str(tmp_path / "run")
    recipe["data"].update(source=str(REPO / "recipes" / "data" / "addition_train.jsonl"), limit=4)
    recipe["teacher"].update(
        model="tiny-random-llama",
        samples_per_prompt=2,
        batch_size=8,
        sampling={"temperature": 0.8, "top_p": 0.95, "max_tokens": 6, "seed": 0},
    )
    # A random model is never right: keep every trace so the later stages have data.
    recipe["filter"].update(correctness=False, drop_truncated=False, keep_per_prompt=None)
    recipe["students"][0].update(model="tiny-random-llama", epochs=1, batch_size=4)
    recipe["eval"].update(limit=2, samples_per_problem=2, max_tokens=6, batch_size=8)
    recipe["release"]["gate"]["require_beats_teacher"] = False
    return recipe


@pytest.fixture
def tiny_recipe(tmp_path: Path, tiny_recipe_dict: dict) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The 2-layer random model (built offline once per machine, then cached)."""
    from distill.models import TINY_MODEL, resolve_model

    return Path(resolve_model(TINY_MODEL))
