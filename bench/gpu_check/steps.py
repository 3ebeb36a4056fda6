"""What the check's steps share: a result file written after every figure, the product's CLI as a
subprocess, a GPU memory sampler and the BYO-traces recipe every step starts from.

The product is driven only through `python -m distill.cli ...` with recipe overrides, so modules moving
inside the product cannot break the check; the figures are read back from the run dir's manifest and
the training metrics files the stages write.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench"))  # bench_sft_packing's trace generator


class StepResult:
    """One step's JSON, rewritten after every change, so a step killed by its time budget leaves its
    figures so far (status stays 'running'; the shell marks it 'timeout')."""

    def __init__(self, path: Path, name: str):
        self.path = path
        self.data: dict[str, Any] = {"step": name, "status": "running", "started": time.time()}
        self.save()

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.save()

    def finish(self, status: str, reason: str | None = None) -> None:
        self.update(status=status, reason=reason, seconds=round(time.time() - self.data["started"], 1))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        os.replace(tmp, self.path)


def distill_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "distill.cli", *args]


_running: list[subprocess.Popen] = []


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (accelerate starts its workers in a session of their own, which a
    process-group kill would miss), read from /proc before anything is killed."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    for pid in [proc.pid, *descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


def _on_term(signum, frame) -> None:
    """`timeout` in gpu_check.sh sends SIGTERM at the step's budget: stop the training under us, then exit."""
    for proc in _running:
        kill_tree(proc)
    raise SystemExit(124)


def run_distill(args: list[str], log: Path, timeout: float) -> tuple[int, str]:
    """Run a `distill` subcommand; returns (exit status, its last error line). 124: out of time."""
    signal.signal(signal.SIGTERM, _on_term)
    command = distill_command(*args)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log.open("a") as out:
        out.write(f"\n$ {shlex.join(command)}\n")
        out.flush()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        _running.append(proc)
        try:
            code = proc.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            return 124, f"out of time after {timeout:.0f} s"
        finally:
            _running.remove(proc)
    return code, (last_error(log) if code else "")


def last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("distill: error:") or "Error" in line:
            return line[:300]
    return lines[-1][:300] if lines else "no output"


class GpuMemory:
    """Peak memory.used (GiB) of GPU 0 while a block runs, sampled by nvidia-smi every 200 ms."""

    def __init__(self):
        self.peak_gib: float | None = None
        self._stop = threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _sample(self) -> None:
        query = ["nvidia-smi", "--id=0", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
        while not self._stop.wait(0.2):
            try:
                used = float(subprocess.run(query, capture_output=True, text=True, timeout=5).stdout.strip())
            except (OSError, ValueError, subprocess.TimeoutExpired):
                return
            self.peak_gib = max(self.peak_gib or 0.0, round(used / 1024, 1))


def write_messages_traces(path: Path, rows: list[dict]) -> Path:
    """prompt/completion rows (bench_sft_packing.traces) as BYO `messages` traces with an answer column."""
    with path.open("w") as out:
        for row in rows:
            answer = row["completion"][0]["content"].rsplit("\\boxed{", 1)[-1].rstrip("}")
            out.write(json.dumps({"messages": row["prompt"] + row["completion"], "answer": answer}) + "\n")
    return path


def byo_recipe(run_dir: Path, traces: Path, student: dict[str, Any]) -> dict[str, Any]:
    """A recipe that starts at `filter` (no teacher): keep every row, then train one student."""
    keep_all = {"correctness": False, "drop_truncated": False, "max_repetition": None, "workers": 0}
    return {
        "name": "gpu-check",
        "run_dir": str(run_dir),
        "filter": {"traces": str(traces), **keep_all, "dedup": {"exact": False, "near": False}},
        "students": [{"report_to": "none", "save_steps": 100_000, "logging_steps": 1, **student}],
        "eval": {"tasks": ["addition_heldout"], "limit": 2, "samples_per_problem": 1, "max_tokens": 8},
        "release": {"dry_run": True},
    }


def write_recipe(path: Path, recipe: dict[str, Any]) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def stage_metrics(run_dir: Path, stage: str) -> dict[str, Any]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return manifest["stages"][stage].get("metrics", {})


def log_history(run_dir: Path, file_name: str) -> list[dict]:
    """The Trainer's log history from the newest ``file_name`` (train_metrics.json...) under the run dir."""
    found = sorted(run_dir.rglob(file_name), key=lambda p: p.stat().st_mtime)
    return json.loads(found[-1].read_text()).get("log_history", []) if found else []


def tiny_tokenizer() -> str:
    """The built-in tiny model's folder (its byte-level BPE tokenizer serves every random model here)."""
    from distill.models import TINY_MODEL, resolve_model

    return resolve_model(TINY_MODEL)


def deadline_left(deadline: float) -> float:
    return deadline - time.time()
