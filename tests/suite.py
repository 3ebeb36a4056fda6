"""Helpers tests import by name (``from suite import ...``). They live here, not in conftest.py: with one
conftest.py per folder, ``from suite import`` gets whichever conftest was imported first, so a test
passed or failed depending on which other tests ran in the same session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

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
