"""Traces read a batch at a time: a generate folder shard by shard, a parquet file in Arrow record batches, a
jsonl file line by line, a `datasets` folder or Hub id from its memory-mapped Arrow table. A batch ends at
``batch_rows`` traces or once its completions reach BATCH_CHARS characters (long traces make smaller
batches, so memory stays flat whatever their length); the cut depends only on the source, so the same
source always cuts into the same batches: a resumed or chunked filter finds its finished batches by number.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.recipe import FilterConfig
from distill.records import iter_row_batches, require_columns
from teacher.filter.code_step import CODE_FIELDS
from teacher.filter.trace_formats import check_values, read_as_traces
from teacher.filter.trace_layout import resolve_layout
from teacher.filter.trace_source import describe, resolve_revision, source_kind
from teacher.shards import SHARD_GLOB, shard_paths

Row = dict[str, Any]
REQUIRED = ("prompt_id", "sample_idx", "messages", "completion", "answer")
_SOURCE_BATCH = 256  # source rows read at once (a published row may hold several traces)
BATCH_CHARS = 24_000_000  # completion characters per batch at most (~6M tokens; ~1,500 traces of 8k tokens)


def is_generate_folder(source: str | Path) -> bool:
    path = Path(source)
    return path.is_dir() and bool(shard_paths(path) or (path / "prompts.parquet").exists())


class TraceBatches:
    """Iterate to get trace batches; afterwards ``info`` describes an external source (None for a generate
    folder) and ``rows`` counts the traces."""

    def __init__(self, source: str | Path, cfg: FilterConfig, batch_rows: int = 4096) -> None:
        self.source, self.cfg, self.batch_rows = source, cfg, batch_rows
        self.info: dict[str, Any] | None = None
        self.rows = 0

    def __iter__(self) -> Iterator[list[Row]]:
        traces = (
            generated_batches(Path(self.source))
            if is_generate_folder(self.source)
            else self._external(str(self.source))
        )
        batch: list[Row] = []
        chars = 0
        for rows in traces:
            for row in rows:
                batch.append(row)
                chars += len(row["completion"]) if isinstance(row.get("completion"), str) else 0
                if len(batch) >= self.batch_rows or chars >= BATCH_CHARS:
                    self.rows += len(batch)
                    yield batch
                    batch, chars = [], 0
        if batch:
            self.rows += len(batch)
            yield batch

    def _external(self, traces: str) -> Iterator[list[Row]]:
        cfg = self.cfg
        kind = source_kind(traces)
        commit = resolve_revision(traces, cfg.revision) if kind == "hub" else None
        where = traces if kind == "file" else f"{traces} [{cfg.split}]"
        layout, read, unused, samples, made = None, 0, Counter(), Counter(), 0
        for raw in source_rows(traces, cfg, commit or cfg.revision):
            if layout is None:
                layout = resolve_layout(list(raw[0]), cfg, where)
            rows, skipped = read_as_traces(raw, layout, where, read, samples)
            read, made = read + len(raw), made + len(rows)
            unused.update(skipped)
            yield rows
        if layout is None:
            raise DistillError(f"{where}: no rows; expected one problem (or trace) per row")
        if not made:
            reasons = ", ".join(f"{n} {why}" for why, n in unused.items()) or "no rows"
            raise DistillError(
                f"{where}: no traces in {read} rows ({reasons}); check filter.format / filter.columns"
            )
        self.info = describe(traces, kind, commit, cfg, layout, read, made, unused)


def source_rows(traces: str, cfg: FilterConfig, revision: str | None) -> Iterator[list[Row]]:
    """The source's raw rows in batches (filter.limit: only the first N)."""
    from teacher.prompts import load_prompt_rows

    path = Path(traces).expanduser()
    limit = cfg.limit
    if source_kind(traces) == "file" and path.is_file():
        batches = iter_row_batches(path, _SOURCE_BATCH)
    elif limit is None and (dataset := _dataset(traces, cfg, revision)) is not None:
        batches = (_columns_to_rows(columns) for columns in dataset.iter(batch_size=_SOURCE_BATCH))
    else:  # a limited read streams only the first rows; anything else fails with load_prompt_rows' errors
        rows = load_prompt_rows(
            traces, cfg.split, name=cfg.config, revision=revision, limit=limit, label="filter.traces"
        )
        batches = iter([rows[i : i + _SOURCE_BATCH] for i in range(0, len(rows), _SOURCE_BATCH)])
    left = limit
    for rows in batches:
        if left is not None:
            rows, left = rows[:left], left - len(rows[:left])
        if rows:
            yield rows
        if left == 0:
            return


def _dataset(traces: str, cfg: FilterConfig, revision: str | None):
    """The `datasets` table (memory-mapped Arrow) of a folder or Hub id, or None where it cannot be opened
    here (load_prompt_rows then reports why)."""
    try:
        import datasets

        path = Path(traces).expanduser()
        if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                return loaded.get(cfg.split)
            return loaded
        source = str(path) if path.is_dir() else traces
        options = {} if path.is_dir() else {"name": cfg.config, "revision": revision}
        return datasets.load_dataset(source, split=cfg.split, **options)
    except Exception:
        return None


def _columns_to_rows(columns: dict[str, list]) -> list[Row]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def generated_batches(trace_dir: Path) -> Iterator[list[Row]]:
    """A generate folder's traces, shard by shard, with each prompt's problem text and code fields."""
    from distill.records import read_rows

    shards = shard_paths(trace_dir)
    if not shards:
        raise DistillError(f"{trace_dir}: no trace shards ({SHARD_GLOB}); run `distill generate` first")
    prompts_file = trace_dir / "prompts.parquet"
    by_id = {str(p["id"]): p for p in read_rows(prompts_file)} if prompts_file.is_file() else {}
    start = 0
    for shard in shards:
        for rows in iter_row_batches(shard, _SOURCE_BATCH):
            require_columns(rows, REQUIRED, str(trace_dir))
            for row in rows:  # the bare problem text: decontamination and language checks want it untemplated
                prompt = by_id.get(str(row["prompt_id"]), {})
                row.setdefault("problem", prompt.get("problem"))
                for key in CODE_FIELDS:  # code prompts: their tests decide correctness
                    if prompt.get(key) is not None:
                        row.setdefault(key, prompt[key])
            check_values(rows, str(trace_dir), start=start)
            start += len(rows)
            yield rows
