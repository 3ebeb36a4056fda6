"""Four `distill generate --chunk I/4` processes at once on one run folder (tiny model, transformers); one is
killed with SIGKILL mid-run and started again. The merge (by whichever chunk finishes last) has every
(prompt_id, sample_idx) exactly once, and the same keys as a single-process run of the same recipe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from teacher_helpers import key_counts, save_recipe, write_prompts

from distill.cli import main

pytestmark = pytest.mark.integration


def _chunk(recipe: Path, index: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "distill.cli", "generate", str(recipe), "--chunk", f"{index}/4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _kill_after_shards(process: subprocess.Popen, folder_glob: str, run_dir: Path, at_least: int) -> None:
    deadline = time.time() + 180
    while time.time() < deadline:
        if len(list(run_dir.glob(folder_glob))) >= at_least:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            return
        assert process.poll() is None, (
            f"chunk ended before it could be killed: {process.stdout.read()[-2000:]}"
        )
        time.sleep(0.02)
    raise AssertionError("the chunk wrote no shard in time")


def test_four_concurrent_chunks_one_killed_merge_to_the_single_process_key_set(tmp_path, tiny_recipe_dict):
    recipe = tiny_recipe_dict
    recipe["data"].update(source=str(write_prompts(tmp_path / "prompts.jsonl", 32)), limit=None)
    recipe["teacher"].update(
        samples_per_prompt=2,
        shard_size=2,
        batch_size=4,
        sampling={"temperature": 0.8, "top_p": 0.95, "max_tokens": 8, "seed": 0},
    )
    path, run_dir = save_recipe(tmp_path, recipe), Path(recipe["run_dir"])

    processes = {index: _chunk(path, index) for index in range(4)}
    _kill_after_shards(processes[2], "generate.partial-*/shard-chunk0002of0004-*.parquet", run_dir, 2)
    killed_output = processes.pop(2).stdout.read()
    assert "chunk 2/4 done" not in killed_output
    processes[2] = _chunk(path, 2)  # rerun: resumes from its own shards
    outputs = {index: p.communicate(timeout=300)[0] for index, p in processes.items()}
    assert all(p.returncode == 0 for p in processes.values()), outputs
    assert sum("merged 64 samples of 32 prompts, each exactly once" in o for o in outputs.values()) == 1

    manifest = json.loads((run_dir / "manifest.json").read_text())["stages"]["generate"]
    assert manifest["status"] == "done" and manifest["metrics"]["duplicates_dropped"] == 0
    assert manifest["metrics"]["chunks"]["2/4"]["attempts"] == 1  # the killed attempt never finished
    counts = key_counts(run_dir / "generate")
    assert len(counts) == 64 and set(counts.values()) == {1}
    tags = {p.name.split("-")[1] for p in (run_dir / "generate").glob("shard-*.parquet")}
    assert tags == {f"chunk000{i}of0004" for i in range(4)}

    single = {**recipe, "run_dir": str(tmp_path / "single")}
    assert main(["generate", str(save_recipe(tmp_path, single, "single.yaml"))]) == 0
    assert set(key_counts(tmp_path / "single" / "generate")) == set(counts)


def test_sigterm_before_the_time_limit_stops_like_ctrl_c_and_says_so(tmp_path, tiny_recipe_dict):
    """Slurm sends SIGTERM before the time limit (`--signal=B:TERM@120`): the chunk stops like Ctrl-C
    (buffered rows are flushed, exit 130) and its status file says it was interrupted, not running."""
    recipe = tiny_recipe_dict
    recipe["data"].update(source=str(write_prompts(tmp_path / "prompts.jsonl", 32)), limit=None)
    recipe["teacher"].update(samples_per_prompt=2, shard_size=3, batch_size=2)
    recipe["teacher"]["sampling"]["max_tokens"] = 24
    path, run_dir = save_recipe(tmp_path, recipe), Path(recipe["run_dir"])
    process = subprocess.Popen(
        [sys.executable, "-m", "distill.cli", "generate", str(path), "--chunk", "0/1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not list(run_dir.glob("generate.partial-*/shard-*.parquet")) and time.time() < deadline:
        assert process.poll() is None, process.stderr.read()[-2000:]
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=60) == 130
    assert "interrupted; rerun the same command to resume" in process.stderr.read()
    status = json.loads(next(run_dir.glob("generate.partial-*/chunks/chunk0000of0001.json")).read_text())
    assert status["state"] == "failed" and "interrupted" in status["error"]
    assert sum(key_counts(next(run_dir.glob("generate.partial-*"))).values()) < 64
