"""Helpers tests import by name (``from suite import ...``). They live here, not in conftest.py: with one
conftest.py per folder, ``from suite import`` gets whichever conftest was imported first, so a test
passed or failed depending on which other tests ran in the same session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def kill_at_first_checkpoint(distill_args: list[str], partials: Path, timeout_s: float = 180) -> None:
    """Run `distill ARGS` in a process of its own and kill -9 it once a complete checkpoint exists under
    ``partials`` (a glob of the stage's partial folders, e.g. run/teacher.partial-*): the kill-resume tests
    of every trainer (the one training-job mechanism)."""
    import signal
    import subprocess
    import sys
    import time

    from distill.checkpoints import COMPLETE

    proc = subprocess.Popen(
        [sys.executable, "-m", "distill.cli", *distill_args],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + timeout_s
    while not list(partials.parent.glob(f"{partials.name}/checkpoints/checkpoint-*/{COMPLETE}")):
        assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def hangs_past_alarms(gold, predicted):
    """A stand-in for the answer comparison that hangs on gold "hang" the way C-level sympy loops can:
    SIGALRM is ignored, so only killing the worker helps (tests of the verifier's hard deadline)."""
    if gold == "hang":
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        time.sleep(600)
    return gold == predicted, "fast-path"


def tiny_recipe_data(run_dir: Path) -> dict:
    """The quickstart recipe shrunk to the tiny random model and a handful of rows (runs in seconds)."""
    import yaml

    recipe = yaml.safe_load((REPO / "recipes" / "quickstart.yaml").read_text())
    recipe["run_dir"] = str(run_dir)
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


def run_distill(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    """`python -m distill.cli ARGS` in a subprocess, output captured (10 min at most)."""
    return subprocess.run(
        [sys.executable, "-m", "distill.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env=env,
    )
