"""kill -9 a real `distill generate` process mid-run, twice, then resume: no duplicates, nothing missing.

Tiny random model with the transformers backend (~15 s): 64 prompts x 2 samples in shards of 4 rows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from teacher_helpers import key_counts, save_recipe, write_prompts


def _start(recipe: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "distill.cli", "generate", str(recipe)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_when_shards(process: subprocess.Popen, run_dir: Path, at_least: int, timeout: float = 120) -> int:
    """SIGKILL the process once the partial folder holds ``at_least`` shards; returns the count seen."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        shards = list(run_dir.glob("generate.partial-*/shard-*.parquet"))
        if len(shards) >= at_least:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            return len(shards)
        assert process.poll() is None, (
            f"generate ended before it could be killed: {process.stderr.read()[-2000:]}"
        )
        time.sleep(0.02)
    process.kill()
    raise AssertionError("no shard appeared in time")


def test_sigkill_mid_run_then_resume_gives_every_sample_exactly_once(tmp_path, tiny_recipe_dict):
    recipe = tiny_recipe_dict
    recipe["data"].update(source=str(write_prompts(tmp_path / "prompts.jsonl", 64)), limit=None)
    recipe["teacher"].update(
        samples_per_prompt=2,
        shard_size=4,
        batch_size=4,
        sampling={"temperature": 0.8, "top_p": 0.95, "max_tokens": 24, "seed": 0},
    )
    path, run_dir = save_recipe(tmp_path, recipe), Path(recipe["run_dir"])

    first = _kill_when_shards(_start(path), run_dir, at_least=2)
    second = _kill_when_shards(_start(path), run_dir, at_least=first + 3)
    assert first < second < 32  # both kills happened mid-run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["generate"]["status"] == "running"  # killed: never marked done

    final = subprocess.run(
        [sys.executable, "-m", "distill.cli", "generate", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr[-2000:]
    counts = key_counts(run_dir / "generate")
    assert len(counts) == 128 and set(counts.values()) == {1}
    metrics = json.loads((run_dir / "manifest.json").read_text())["stages"]["generate"]["metrics"]
    assert metrics["samples"] == 128 and 0 < metrics["new_samples"] <= 128 - 4 * second
    assert not list(run_dir.glob("generate.partial-*"))  # the finished folder was swapped into place
