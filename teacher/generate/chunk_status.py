"""`distill generate RECIPE --status`: per chunk, how far it got and whether it looks stalled.

Counts come from the shards themselves (whichever process wrote a row, it counts for the chunk its prompt
belongs to), the state from the chunk's status file, progress times from the shards' modification times.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teacher.generate.chunks import Chunk, all_statuses, chunk_from_tag, chunk_of, process_alive
from teacher.shards import _read_columns, shard_paths, shard_tag

# A chunk that is "running" but wrote no shard for this long looks stalled: at least 10 minutes, or three
# times its own mean time between shards (long reasoning traces fill shards slowly); 30 minutes before the
# first shard (a large model can take that long to load).
MIN_STALL_S, FIRST_SHARD_STALL_S, STALL_FACTOR = 600.0, 1800.0, 3.0


@dataclass
class ChunkRow:
    chunk: Chunk
    prompts_total: int
    prompts_done: int = 0
    samples: int = 0
    tokens: int = 0
    last_shard: float | None = None
    state: str = "not started"
    host: str = ""

    def cells(self, now: float) -> list[str]:
        last = "-" if self.last_shard is None else f"{_ago(now - self.last_shard)} ago"
        return [
            str(self.chunk),
            f"{self.prompts_done}/{self.prompts_total}",
            f"{self.samples:,}",
            f"{self.tokens:,}",
            last,
            self.state,
            self.host or "-",
        ]


def chunk_rows(
    work_dir: Path, prompt_ids: list[str], samples_per_prompt: int, now: float, stalled_after: float | None
) -> list[ChunkRow]:
    """One row per chunk of the split(s) found in ``work_dir`` (status files or tagged shards)."""
    statuses = all_statuses(work_dir)
    tags = set(statuses) | {shard_tag(p) for p in shard_paths(work_dir)}
    counts = sorted({c.count for c in map(chunk_from_tag, tags) if c is not None})
    per_prompt, tokens, last, written = _shard_totals(work_dir)
    rows = []
    for count in counts:
        owner = chunk_of(prompt_ids, count)
        totals, samples, done, output = Counter(), Counter(), Counter(), Counter()
        for prompt_id, index in owner.items():  # one pass: a million prompts, hundreds of chunks
            totals[index] += 1
            samples[index] += per_prompt[prompt_id]
            done[index] += per_prompt[prompt_id] >= samples_per_prompt
            output[index] += tokens[prompt_id]
        for index in range(count):
            chunk = Chunk(index, count)
            status = statuses.get(chunk.tag, {})
            row = ChunkRow(chunk, status.get("requested_prompts") or totals[index])
            row.samples, row.prompts_done, row.tokens = samples[index], done[index], output[index]
            row.last_shard = last.get(chunk.tag)
            limit = stalled_after or _stall_limit(status, row.last_shard, written[chunk.tag])
            row.state, row.host = _state(status, row.last_shard, now, limit), status.get("host", "")
            rows.append(row)
    return rows


def _shard_totals(work_dir: Path) -> tuple[Counter, Counter, dict[str, float], Counter]:
    """Samples and output tokens per prompt over all shards; the newest shard's time and the number of
    shards per writer tag."""
    per_prompt, tokens, last, written = Counter(), Counter(), {}, Counter()
    for shard in shard_paths(work_dir):
        table = _read_columns(shard, ["prompt_id", "completion_tokens"])
        for prompt_id, count in zip(
            table.column("prompt_id").to_pylist(), table.column("completion_tokens").to_pylist(), strict=True
        ):
            per_prompt[prompt_id] += 1
            tokens[prompt_id] += count or 0
        tag = shard_tag(shard) or "untagged"
        last[tag] = max(last.get(tag, 0.0), shard.stat().st_mtime)
        written[tag] += 1
    return per_prompt, tokens, last, written


def _state(status: dict[str, Any], last_shard: float | None, now: float, limit: float) -> str:
    state = status.get("state")
    if state != "running":
        return "failed: " + str(status.get("error"))[:80] if state == "failed" else (state or "not started")
    pid, host = status.get("pid"), status.get("host")
    if host == socket.gethostname() and isinstance(pid, int) and not process_alive(pid):
        return "dead (process gone)"
    started = float(status.get("started") or status.get("updated") or now)
    quiet = now - max(started, last_shard or 0.0)
    return f"stalled ({_ago(quiet)} without a shard)" if quiet > limit else "running"


def _stall_limit(status: dict[str, Any], last_shard: float | None, shards: int) -> float:
    """The mean gap between shards since this attempt started (shards of earlier attempts count too, which
    errs towards a shorter limit; the 10-minute floor bounds that)."""
    started = float(status.get("started") or 0.0)
    if last_shard is None or last_shard <= started or not shards:
        return FIRST_SHARD_STALL_S
    return max(MIN_STALL_S, STALL_FACTOR * (last_shard - started) / shards)


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def render_status(rows: list[ChunkRow], now: float | None = None) -> str:
    now = time.time() if now is None else now
    header = ["chunk", "prompts done", "samples", "output tokens", "last shard", "state", "host"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row.cells(now)) + " |" for row in rows]
    return "\n".join(lines)


def rerun_hint(rows: list[ChunkRow], script: Path | None) -> str | None:
    """What to do about chunks that are not done and not running."""
    todo = [r.chunk.index for r in rows if r.state != "done" and r.state != "running"]
    if not todo:
        return None
    indexes = ",".join(map(str, todo))
    count = rows[0].chunk.count
    if script is not None and script.is_file():
        return f"to (re)start chunks {indexes}: sbatch --array={indexes} {script}"
    return f"to (re)start chunks {indexes}: distill generate RECIPE --chunk I/{count} for each I in {indexes}"


def untagged_samples(work_dir: Path) -> int:
    """Rows written by a plain (unchunked) `distill generate` into the same folder."""
    return sum(_read_columns(p, ["prompt_id"]).num_rows for p in shard_paths(work_dir) if not shard_tag(p))


def live_chunks(work_dir: Path, now: float | None = None) -> list[str]:
    """Chunks that look alive: running, with a live process here or a shard (or start) within the stall
    floor elsewhere. A plain `distill generate` refuses to start beside them: it would write their rows too."""
    now = time.time() if now is None else now
    _, _, last, written = _shard_totals(work_dir) if work_dir.is_dir() else ({}, {}, {}, {})
    live = []
    for tag, status in all_statuses(work_dir).items():
        limit = _stall_limit(status, last.get(tag), written.get(tag, 0))
        if _state(status, last.get(tag), now, limit) == "running":
            live.append(status.get("chunk", tag))
    return live
