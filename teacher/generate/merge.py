"""The merge of a trace set written by several processes (chunks) or brought from elsewhere.

It proves what the generate stage promises before the stage may be marked done: every (prompt_id,
sample_idx) the recipe asks for is present exactly once. A duplicate (two chunkings run at once, a
shard copied twice) or a row no prompt asks for is moved out of the shards into ``dropped/`` and counted,
never deleted; missing keys are listed in ``missing.jsonl`` and named per chunk in the error.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distill.errors import DistillError
from distill.recipe import Recipe
from distill.records import read_rows, write_parquet
from distill.runs import atomic_path, atomic_write_text
from teacher.backends import GenerationRequest, GenerationResult
from teacher.generate.chunks import Chunk, all_statuses, chunk_from_tag, chunk_of
from teacher.generate.stage import load_prompts, plan_requests, trace_row
from teacher.shards import ShardWriter, finished_keys, shard_keys, shard_paths, shard_summary

DROPPED_DIR = "dropped"
MISSING_FILE = "missing.jsonl"
IMPORT_TAG = "import"


def merge_traces(recipe: Recipe, out_dir: Path, sources: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check (and with ``sources``, first import) the traces in ``out_dir`` against the recipe's prompts.

    Returns the stage's metrics; raises a DistillError naming the missing samples (nothing is changed
    but the set-aside duplicates and the missing list) when any is missing."""
    prompts, too_long = load_prompts(recipe)
    write_parquet(prompts, out_dir / "prompts.parquet")
    requests, _, provenance = plan_requests(recipe, prompts)
    imported = (
        import_traces(sources, out_dir, requests, provenance, recipe.teacher.shard_size) if sources else {}
    )
    expected = {r.key for r in requests}
    duplicates, unexpected = set_aside(out_dir, expected)
    present = finished_keys(out_dir)
    missing = [r.key for r in requests if r.key not in present]
    if missing:
        raise DistillError(_missing_message(out_dir, missing, len(requests)))
    (out_dir / MISSING_FILE).unlink(missing_ok=True)
    statuses = all_statuses(out_dir)
    endpoints = _sum_endpoints(statuses.values())
    return {
        **shard_summary(out_dir),
        "prompts_too_long": too_long,
        "duplicates_dropped": duplicates,
        "unexpected_dropped": unexpected,
        **({"imported": imported} if imported else {}),
        "chunks": {s["chunk"]: _chunk_metrics(s) for s in statuses.values()},
        **({"endpoints": endpoints} if endpoints else {}),
    }


def set_aside(out_dir: Path, expected: set[tuple[str, int]]) -> tuple[int, int]:
    """Keep the first row of each expected key (in shard order); move the rest to dropped/.
    Returns (duplicates, unexpected) counts."""
    seen: set[tuple[str, int]] = set()
    drops: dict[Path, list[int]] = {}
    duplicates = unexpected = 0
    for shard in shard_paths(out_dir):
        for index, key in enumerate(shard_keys(shard)):
            if key not in expected:
                unexpected += 1
            elif key in seen:
                duplicates += 1
            else:
                seen.add(key)
                continue
            drops.setdefault(shard, []).append(index)
    for shard, rows in drops.items():
        _move_rows(shard, set(rows), out_dir / DROPPED_DIR)
    return duplicates, unexpected


def _move_rows(shard: Path, rows: set[int], dropped_dir: Path) -> None:
    """Copy the rows to dropped/ first, then rewrite the shard without them: a kill between the two leaves a
    second copy in dropped/, never a lost row."""
    table = pq.read_table(shard)
    keep = pa.array([i not in rows for i in range(table.num_rows)])
    with atomic_path(dropped_dir / f"{shard.stem}-{time.time_ns()}.parquet") as tmp:
        pq.write_table(table.filter(pc.invert(keep)), tmp)
    if len(rows) == table.num_rows:
        shard.unlink()
        return
    with atomic_path(shard) as tmp:
        pq.write_table(table.filter(keep), tmp)


def _missing_message(out_dir: Path, missing: list[tuple[str, int]], total: int) -> str:
    lines = "".join(json.dumps({"prompt_id": p, "sample_idx": i}) + "\n" for p, i in missing)
    atomic_write_text(out_dir / MISSING_FILE, lines)
    splits = Counter(c.count for s in all_statuses(out_dir).values() if (c := chunk_from_tag(s.get("tag"))))
    chunking = Chunk(0, splits.most_common(1)[0][0]) if splits else None  # the split most chunks ran
    where = ""
    if chunking is not None:
        owner = chunk_of(sorted({p for p, _ in missing} | _all_ids(out_dir)), chunking.count)
        per_chunk = Counter(owner[p] for p, _ in missing)
        where = (
            " (" + ", ".join(f"chunk {c}/{chunking.count}: {n}" for c, n in sorted(per_chunk.items())) + ")"
        )
    return (
        f"{out_dir}: {len(missing)} of {total} samples missing{where}, e.g. {missing[0]}; all listed in "
        f"{out_dir / MISSING_FILE}. Rerun those chunks (or `distill generate RECIPE` to generate them "
        "here), then merge again"
    )


def _all_ids(out_dir: Path) -> set[str]:
    prompts = out_dir / "prompts.parquet"
    return {str(r["id"]) for r in read_rows(prompts)} if prompts.is_file() else set()


def _chunk_metrics(status: dict[str, Any]) -> dict[str, Any]:
    keys = ("state", "host", "requested_prompts", "requested_samples", "prompts_too_long")
    attempts = status.get("attempts", [])
    return {
        **{k: status.get(k) for k in keys},
        "attempts": len(attempts),
        "seconds": round(sum(a.get("seconds", 0) for a in attempts), 2),
        "new_samples": sum(a.get("new_samples", 0) for a in attempts),
    }


def _sum_endpoints(statuses) -> dict[str, dict[str, int]]:
    """Per-endpoint counts summed over every attempt of every chunk."""
    total: dict[str, Counter] = {}
    for status in statuses:
        for attempt in status.get("attempts", []):
            for url, counts in (attempt.get("endpoints") or {}).items():
                total.setdefault(url, Counter()).update(counts)
    return {url: dict(counts) for url, counts in total.items()}


def import_traces(
    sources: tuple[str, ...],
    out_dir: Path,
    requests: list[GenerationRequest],
    provenance: dict[str, Any],
    shard_size: int,
) -> dict[str, int]:
    """Traces from other folders or files (another cluster's chunks, another tool's output) into ``out_dir``
    as ``shard-import-*`` shards: keys already present are counted as duplicates and skipped, keys the
    recipe does not ask for are counted and skipped."""
    by_key = {r.key: r for r in requests}
    present = finished_keys(out_dir)
    writer, counts = ShardWriter(out_dir, shard_size, IMPORT_TAG), Counter()
    for source in sources:
        for row in _source_rows(Path(source)):
            key = (str(row["prompt_id"]), int(row["sample_idx"]))
            outcome = "unexpected" if key not in by_key else "duplicates" if key in present else "imported"
            counts[outcome] += 1
            if outcome == "imported":
                present.add(key)
                writer.add(_imported_row(row, by_key[key], provenance, source))
    writer.flush()
    return {k: counts[k] for k in ("imported", "duplicates", "unexpected")}


_REQUIRED = ("prompt_id", "sample_idx", "completion")


def _source_rows(path: Path):
    if path.is_dir():
        files = shard_paths(path) or sorted([*path.glob("*.parquet"), *path.glob("*.jsonl")])
        if not files:
            raise DistillError(f"--from {path}: no trace files (shard-*.parquet, *.parquet or *.jsonl) in it")
    elif path.is_file():
        files = [path]
    else:
        raise DistillError(f"--from {path}: no such file or folder")
    for file in files:
        rows = read_rows(file)
        missing = [c for c in _REQUIRED if rows and c not in rows[0]]
        if missing:
            raise DistillError(
                f"--from {file}: missing column(s) {', '.join(missing)}; traces need "
                f"{', '.join(_REQUIRED)} (one row per sample)"
            )
        yield from rows


def _imported_row(row: dict[str, Any], request: GenerationRequest, provenance: dict, source: str) -> dict:
    result = GenerationResult(
        prompt_id=request.prompt_id,
        sample_idx=request.sample_idx,
        completion=str(row["completion"] or ""),
        finish_reason=str(row.get("finish_reason") or "unknown"),
        prompt_tokens=row.get("prompt_tokens"),
        completion_tokens=row.get("completion_tokens"),
        reasoning=row.get("reasoning") if "<think>" not in str(row["completion"]) else None,
    )
    # The rows record where they came from; what sampled them is whatever the source says, else unknown.
    engine = SimpleNamespace(model_id=f"imported from {source}", seed_scope="none")
    traced = trace_row(result, request, provenance, engine)
    if isinstance(row.get("teacher"), dict):
        traced["teacher"] = {**row["teacher"], "resolved": engine.model_id}
    return traced
