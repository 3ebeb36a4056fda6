"""verified.parquet and train.parquet written batch by batch from a streamed filter's batch files.

Each batch file was written with the types its own rows imply (a column of only nulls is untyped there);
the outputs get the types one read of the whole set implies (pyarrow's schema unification: null widens to
the type of the batches that have values), so they equal what the in-memory filter writes.
"""

from __future__ import annotations

from pathlib import Path

from distill.runs import atomic_path

REMOVAL = ("kept", "removed_by", "removed_detail")
_SFT_FROM = ["messages", "completion", "prompt_id", "sample_idx"]


def write_outputs(
    work: Path,
    files: list[Path],
    removed_by: list[str | None],
    detail: list[str | None],
    columns: tuple[str, ...],
    out_dir: Path,
) -> None:
    """verified.parquet (every row, ``columns``, with the final removals) and train.parquet (kept rows in
    TRL's prompt/completion format)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from teacher.filter.stage import to_sft_row

    unified = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="default")
    removal_types = {
        "kept": pa.bool_(),
        "removed_by": pa.array(removed_by).type,  # null when nothing was removed, as a whole-set write
        "removed_detail": pa.array(detail).type,
    }
    schema = pa.schema([pa.field(c, removal_types[c]) if c in REMOVAL else unified.field(c) for c in columns])
    pieces: list[Path] = []
    offset = 0
    with atomic_path(out_dir / "verified.parquet") as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for number, path in enumerate(files):
            table = pq.read_table(path)
            size = table.num_rows
            removal = {
                "kept": [by is None for by in removed_by[offset : offset + size]],
                "removed_by": removed_by[offset : offset + size],
                "removed_detail": detail[offset : offset + size],
            }
            arrays = [
                pa.array(removal[f.name], f.type) if f.name in REMOVAL else table.column(f.name).cast(f.type)
                for f in schema
            ]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            kept = table.select(_SFT_FROM).filter(pa.array(removal["kept"], pa.bool_()))
            if kept.num_rows:
                piece = work / f"train-{number:05d}.parquet"
                pq.write_table(pa.Table.from_pylist([to_sft_row(r) for r in kept.to_pylist()]), piece)
                pieces.append(piece)
            offset += size
    _concat(pieces, out_dir / "train.parquet")


def _concat(pieces: list[Path], path: Path) -> None:
    import pyarrow.parquet as pq

    schema = _unified(pieces)
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for piece in pieces:
            writer.write_table(pq.read_table(piece).cast(schema))


def _unified(pieces: list[Path]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa.unify_schemas([pq.read_schema(p) for p in pieces], promote_options="default")
