"""Shared fixtures: offline mode, tiny recipes, the shared benchmarks folder."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# Built-in models are built into an empty cache of this session's own, so every run of the suite takes the
# first-use paths a new machine takes (a warm ~/.cache/distill once hid a failing test). Set
# DISTILL_TEST_CACHE to an existing cache folder to reuse its models (saves the embedded model's conversion).
_SESSION_CACHE = (
    None if os.environ.get("DISTILL_TEST_CACHE") else tempfile.mkdtemp(prefix="distill-test-cache-")
)
os.environ["DISTILL_CACHE"] = os.environ.get("DISTILL_TEST_CACHE") or _SESSION_CACHE
if _SESSION_CACHE:
    atexit.register(shutil.rmtree, _SESSION_CACHE, ignore_errors=True)

from suite import REPO  # noqa: E402  (after the environment above, which the helpers' imports read)


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
    """The 2-layer random model (built offline once per test session, into its own cache)."""
    from distill.models import TINY_MODEL, resolve_model

    return Path(resolve_model(TINY_MODEL))
