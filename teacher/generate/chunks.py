"""Chunked generation: chunk I of N of a run's prompts, written by its own process into the shared folder.

The split deals prompts round-robin in the order of a hash of their ids: chunks are disjoint, together
cover every prompt, differ in size by at most one prompt, mix easy and hard problems (a source sorted by
difficulty does not end up with all hard ones in the last chunk), and depend only on the prompt ids, so
every machine computes the same split from the same prompt file.

Each chunk writes tagged shards (teacher.shards) and a small status file ``chunks/<tag>.json`` (host, pid,
state, totals) into the stage's partial folder; ``distill generate --status`` reads both. Nothing here
writes the manifest: concurrent chunks on several machines would race on it, so only the merge does.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from distill.chunks import Chunk, chunk_from_tag, parse_chunk
from distill.errors import DistillError
from distill.runs import atomic_write_json

__all__ = ["Chunk", "chunk_from_tag", "parse_chunk"]  # defined in the core: the filter chunks too

STATUS_DIR = "chunks"


def _order_key(prompt_id: str) -> tuple[str, str]:
    return (hashlib.sha256(prompt_id.encode()).hexdigest(), prompt_id)


def chunk_of(prompt_ids: list[str], count: int) -> dict[str, int]:
    """prompt id -> its chunk (0..count-1)."""
    ordered = sorted(set(prompt_ids), key=_order_key)
    return {prompt_id: position % count for position, prompt_id in enumerate(ordered)}


def select_chunk(prompts: list[dict[str, Any]], chunk: Chunk) -> list[dict[str, Any]]:
    """The prompts of ``chunk``, in their original order."""
    owner = chunk_of([p["id"] for p in prompts], chunk.count)
    return [p for p in prompts if owner[p["id"]] == chunk.index]


# --- status files ------------------------------------------------------------------------------------


def status_path(work_dir: Path, chunk: Chunk) -> Path:
    return work_dir / STATUS_DIR / f"{chunk.tag}.json"


def write_status(work_dir: Path, chunk: Chunk, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the chunk's status file (one writer per chunk, so no race)."""
    path = status_path(work_dir, chunk)
    status = read_status(path) or {"chunk": str(chunk), "tag": chunk.tag}
    status.update(fields, host=socket.gethostname(), pid=os.getpid(), updated=time.time())
    atomic_write_json(path, status)
    return status


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent, or being replaced right now: the caller treats it as "no news"


def all_statuses(work_dir: Path) -> dict[str, dict[str, Any]]:
    folder = work_dir / STATUS_DIR
    found = {}
    for path in sorted(folder.glob("chunk*.json")) if folder.is_dir() else []:
        status = read_status(path)
        if status:
            found[path.stem] = status
    return found


def chunks_done(work_dir: Path, count: int) -> list[int]:
    """Indexes of the chunks of ``count`` whose process finished with every sample written."""
    statuses = all_statuses(work_dir)
    return [i for i in range(count) if statuses.get(Chunk(i, count).tag, {}).get("state") == "done"]


def claim(work_dir: Path, chunk: Chunk) -> None:
    """Refuse to start a chunk that a live process on this host is still running (a double submission)."""
    status = read_status(status_path(work_dir, chunk))
    if not status or status.get("state") != "running" or status.get("host") != socket.gethostname():
        return  # another host: we cannot tell; its tagged shards would only be skipped, never clobbered
    pid = status.get("pid")
    if isinstance(pid, int) and pid != os.getpid() and process_alive(pid):
        raise DistillError(
            f"chunk {chunk} is already running here (pid {pid}); wait for it or stop it first "
            f"({status_path(work_dir, chunk)})"
        )


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
