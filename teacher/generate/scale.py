"""Generation beyond one process: run one chunk, merge the chunks, report how far each chunk got.

All three work on the generate stage's one partial folder ``generate.partial-<fingerprint>/`` (distill.runs):
chunks write tagged shards and their own status files there and never touch the manifest; the merge alone
records the stage, under a lock file, so that two chunks finishing at once cannot both swap the folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from distill.errors import DistillError
from distill.recipe import Recipe
from distill.runs import Run
from teacher.generate.chunks import (
    Chunk,
    chunks_done,
    claim,
    process_alive,
    read_status,
    status_path,
    write_status,
)
from teacher.generate.stage import generate

STAGE = "generate"
LOCK_NAME = ".generate-merge.lock"


def run_chunk(recipe: Recipe, run: Run, fp: str, folder: Path, chunk: Chunk) -> bool:
    """Generate ``chunk`` into the stage's partial folder (resuming its earlier attempts); True when every
    chunk of this split is now done, i.e. this process should try the merge."""
    work = Run.work_dir(folder, fp)
    work.mkdir(parents=True, exist_ok=True)
    claim(work, chunk)
    previous = read_status(status_path(work, chunk)) or {}
    write_status(work, chunk, state="running", started=time.time(), fingerprint=fp, error=None)
    with _sigterm_as_interrupt():  # Slurm's preemption/time limit: flush the buffered rows, then stop
        try:
            metrics = generate(recipe, run, work, chunk=chunk)
        except BaseException as exc:
            why = "interrupted (SIGTERM or Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else str(exc)
            write_status(work, chunk, state="failed", error=f"{type(exc).__name__}: {why}"[:300])
            raise
    attempt = {
        k: metrics.get(k) for k in ("seconds_this_run", "new_samples", "new_output_tokens", "endpoints")
    }
    attempt["seconds"] = attempt.pop("seconds_this_run") or 0
    write_status(
        work,
        chunk,
        state="done",
        finished=time.time(),
        requested_prompts=metrics["requested_prompts"],
        requested_samples=metrics["requested_samples"],
        prompts_too_long=metrics["prompts_too_long"],
        attempts=[*previous.get("attempts", []), attempt],
    )
    done = chunks_done(work, chunk.count)
    print(
        f"[distill] generate: chunk {chunk} done ({metrics['requested_samples']} samples); "
        f"{len(done)} of {chunk.count} chunks done",
        flush=True,
    )
    return len(done) == chunk.count


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def merge(
    recipe: Recipe,
    fp: str,
    folder: Path,
    sources: tuple[str, ...] = (),
    *,
    auto: bool = False,
    snapshot: Recipe | None = None,
) -> Run | None:
    """Check the partial folder holds every sample exactly once (importing ``sources`` first), then record
    the stage as done and swap the folder into place. ``auto`` (a chunk that finished last) gives way
    quietly to a merge already under way; ``snapshot`` is the recipe as written, for the manifest."""
    from teacher.generate.merge import merge_traces
    from teacher.shards import shard_paths

    work = Run.work_dir(folder, fp)
    if Run(folder.parent, write=False).is_done(STAGE, fp):
        ignored = f"; --from {' '.join(sources)} not imported" if sources else ""
        print(f"[distill] generate: up to date (already merged){ignored}", flush=True)
        return None
    if not work.is_dir() and not sources:
        raise DistillError(
            f"{work}: nothing to merge; run `distill generate RECIPE --chunk I/N` (or --slurm) first"
        )
    work.mkdir(parents=True, exist_ok=True)
    with merge_lock(folder.parent / LOCK_NAME) as held:
        if not held:
            if auto:
                print("[distill] generate: another process is merging the chunks", flush=True)
                return None
            raise DistillError(
                f"{folder.parent / LOCK_NAME}: another merge is running; wait for it (if its process died, "
                "delete the file)"
            )
        written = snapshot or recipe
        run = Run(folder.parent, written.model_dump(mode="json"), written.digest())
        if run.is_done(STAGE, fp):  # another process merged between the check above and the lock
            print("[distill] generate: up to date (already merged)", flush=True)
            return run
        print(f"[distill] generate: merging {work}", flush=True)
        metrics = merge_traces(recipe, work, sources)
        run.begin(STAGE, fp, folder)
        run.finish(STAGE, [*shard_paths(work), work / "prompts.parquet"], metrics)
        print(
            f"[distill] generate: merged {metrics['samples']} samples of {metrics['prompts']} prompts, each "
            f"exactly once ({metrics['duplicates_dropped']} duplicates set aside)",
            flush=True,
        )
        return run


@contextlib.contextmanager
def merge_lock(path: Path) -> Iterator[bool]:
    """An O_EXCL lock file (atomic on local and NFS file systems); a lock left by a dead process on this
    host is taken over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    held = _try_lock(path)
    if not held and _stale(path):
        path.unlink(missing_ok=True)
        held = _try_lock(path)
    try:
        yield held
    finally:
        if held:
            path.unlink(missing_ok=True)


def _try_lock(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{socket.gethostname()} {os.getpid()}\n")
    return True


def _stale(path: Path) -> bool:
    try:
        host, pid = path.read_text().split()
    except (OSError, ValueError):
        return False
    return host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid))
