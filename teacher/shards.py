"""Trace shards: the one resume mechanism of the generate stage.

Rows are buffered and written ``shard_size`` at a time as ``shard-NNNNN.parquet`` through a temp file and an
atomic rename, so a shard on disk is always complete. A restarted stage reads the (prompt_id, sample_idx)
keys already in shards and generates only the rest: after a kill -9 at any moment the output has no
duplicates and no gaps, and at most one shard of work is redone.

Chunked generation (``--chunk I/N``, several processes or machines on one shared folder) tags its shards
``shard-<tag>-NNNNN.parquet``: each writer numbers and sweeps only its own tag, so concurrent writers never
overwrite each other, while every reader (resume, the filter stage, the merge) sees all shards alike.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from distill.errors import DistillError
from distill.records import trace_schema, write_parquet

SHARD_GLOB = "shard-*.parquet"


def shard_paths(out_dir: Path, tag: str | None = None) -> list[Path]:
    """Every shard, or only those of one writer's ``tag``."""
    return sorted(out_dir.glob(f"shard-{tag}-*.parquet" if tag else SHARD_GLOB))


def shard_tag(path: Path) -> str | None:
    """``shard-00003`` -> None (an untagged writer); ``shard-chunk0001of0004-00003`` -> its tag."""
    parts = path.stem.split("-")
    return "-".join(parts[1:-1]) or None


def _read_columns(shard: Path, columns: list[str]) -> pa.Table:
    try:
        return pq.read_table(shard, columns=columns)
    except Exception as exc:
        # Only a disk-level fault can leave a bad shard (writes are atomic); name it so the user can drop it.
        raise DistillError(
            f"{shard}: unreadable trace shard ({type(exc).__name__}); delete it and rerun to "
            "regenerate its rows"
        ) from None


def shard_keys(shard: Path) -> list[tuple[str, int]]:
    table = _read_columns(shard, ["prompt_id", "sample_idx"])
    return list(
        zip(table.column("prompt_id").to_pylist(), table.column("sample_idx").to_pylist(), strict=True)
    )


def finished_keys(out_dir: Path) -> set[tuple[str, int]]:
    """(prompt_id, sample_idx) of every row already in a shard (any writer's)."""
    return set(key_counts(out_dir))


def key_counts(out_dir: Path) -> Counter[tuple[str, int]]:
    """How often each (prompt_id, sample_idx) occurs over all shards: the merge's proof of exactly once."""
    counts: Counter[tuple[str, int]] = Counter()
    for shard in shard_paths(out_dir):
        counts.update(shard_keys(shard))
    return counts


def remove_stale_temp_files(out_dir: Path, tag: str | None = None) -> None:
    """Temp files of shards a killed process never renamed: never read, removed to save disk. Only the
    caller's own tag: another chunk's writer may be filling its temp file right now."""
    for tmp in out_dir.glob(f".shard-{tag}-*.tmp" if tag else ".shard-[0-9]*.tmp"):
        tmp.unlink(missing_ok=True)


class ShardWriter:
    """Buffers trace rows and writes every ``shard_size`` of them as the next shard, atomically."""

    def __init__(self, out_dir: Path, shard_size: int, tag: str | None = None):
        self.out_dir = out_dir
        self.shard_size = shard_size
        self.prefix = f"shard-{tag}-" if tag else "shard-"
        self.buffer: list[dict[str, Any]] = []
        # Numbered after the highest existing shard of this tag, never by count: a deleted shard must not be
        # overwritten, and another tag's shards are another writer's business.
        numbers = [
            int(p.stem.rsplit("-", 1)[1])
            for p in shard_paths(out_dir)
            if shard_tag(p) == tag and p.stem.rsplit("-", 1)[1].isdigit()
        ]
        self.next_index = max(numbers, default=-1) + 1

    def add(self, row: dict[str, Any]) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= self.shard_size:
            self.flush()

    def flush(self) -> Path | None:
        if not self.buffer:
            return None
        path = write_parquet(
            self.buffer, self.out_dir / f"{self.prefix}{self.next_index:05d}.parquet", trace_schema()
        )
        self.next_index += 1
        self.buffer = []
        return path


def shard_summary(out_dir: Path, tag: str | None = None) -> dict[str, Any]:
    """Totals over every shard (all runs of the stage; or one tag's): the figures the manifest records."""
    prompts, samples, prompt_tokens, completion_tokens = set(), 0, 0, 0
    finish: Counter[str] = Counter()
    shards = shard_paths(out_dir, tag)
    for shard in shards:
        table = _read_columns(shard, ["prompt_id", "finish_reason", "prompt_tokens", "completion_tokens"])
        samples += table.num_rows
        prompts.update(table.column("prompt_id").to_pylist())
        finish.update(table.column("finish_reason").to_pylist())
        prompt_tokens += sum(v or 0 for v in table.column("prompt_tokens").to_pylist())
        completion_tokens += sum(v or 0 for v in table.column("completion_tokens").to_pylist())
    return {
        "samples": samples,
        "prompts": len(prompts),
        "shards": len(shards),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "mean_completion_tokens": round(completion_tokens / samples, 1) if samples else None,
        "finish_reasons": dict(finish),
    }
