"""Chunk I of N of a stage's work, run by its own process (``--chunk I/N``): `distill generate` splits the
prompts, `distill filter` the trace batches. Chunks may run at once on machines sharing the file system."""

from __future__ import annotations

from dataclasses import dataclass

from distill.errors import DistillError


@dataclass(frozen=True)
class Chunk:
    index: int  # 0-based, like Slurm's $SLURM_ARRAY_TASK_ID with --array=0-(N-1)
    count: int

    @property
    def tag(self) -> str:
        return f"chunk{self.index:04d}of{self.count:04d}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_chunk(text: str) -> Chunk:
    """``I/N`` -> Chunk, with a one-line error for anything else."""
    index, sep, count = text.partition("/")
    if sep and index.strip().isdigit() and count.strip().isdigit():
        chunk = Chunk(int(index), int(count))
        if 1 <= chunk.count <= 9999 and chunk.index < chunk.count:
            return chunk
    raise DistillError(
        f"--chunk {text!r}: expected I/N with 0 <= I < N <= 9999, chunks counted from 0 "
        "(e.g. --chunk 0/4 ... --chunk 3/4; in a Slurm array: --chunk $SLURM_ARRAY_TASK_ID/4)"
    )


def chunk_from_tag(tag: str | None) -> Chunk | None:
    if not tag or not tag.startswith("chunk") or "of" not in tag:
        return None
    index, _, count = tag[len("chunk") :].partition("of")
    return Chunk(int(index), int(count)) if index.isdigit() and count.isdigit() else None
