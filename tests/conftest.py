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

from suite import tiny_recipe_data  # noqa: E402  (after the environment above, which the helpers' imports read)


@pytest.fixture
def tiny_recipe_dict(tmp_path: Path) -> dict:
    """The quickstart recipe shrunk to the tiny random model and a handful of rows (runs in seconds)."""
    return tiny_recipe_data(tmp_path / "run")


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
