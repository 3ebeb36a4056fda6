"""The filter stage over a stream of trace batches, in bounded memory, resumable by batch, in chunks.

Pass 1, batch by batch (teacher.filter.batches): verify (the worker pool), run the row-level filters
(contaminated ... repetition), and write into ``<out>/batches/`` the batch's verified rows
(``rows-NNNNN.parquet``), its compact columns (``state-NNNNN.parquet``, teacher.filter.compact) and last
``meta-NNNNN.json``: a batch with its meta file is finished and a rerun skips it (a killed filter resumes
from its last finished batch). ``--chunk I/N`` does the batches numbered I, I+N, I+2N, ...; every chunk reads
the whole source (cheap next to verifying it) so that all cut it into the same batches.

Finish, once every batch is: the whole-set filters (correctness, pass-rate band, exact and near dedup, the
per-prompt cap) run over the compact columns of all rows, near dedup reading the kept texts once more to
compute their MinHash signatures over the worker processes; then verified.parquet and train.parquet are
written batch by batch (pyarrow ParquetWriter) with the types one read of the whole set gives, and the
report. The outputs equal the in-memory filter's (the same kept rows,
order and report).
"""

from __future__ import annotations

import json
import shutil
import time
from collections import deque
from pathlib import Path
from typing import Any

from distill.chunks import Chunk
from distill.recipe import FilterConfig
from distill.runs import atomic_path, atomic_write_json
from teacher.filter import compact
from teacher.filter.batches import BATCH_CHARS, TraceBatches
from teacher.filter.decontaminate import Decontaminator
from teacher.filter.dedup import signature
from teacher.filter.outputs import write_outputs
from teacher.filter.report import build_report, write_report

Row = dict[str, Any]
BATCHES = "batches"


def run_stream(
    source: str | Path,
    out_dir: Path,
    cfg: FilterConfig,
    decontaminator: Decontaminator | None = None,
    batch_rows: int = 4096,
    chunk: Chunk | None = None,
) -> dict[str, Any] | None:
    """Filter ``source`` into ``out_dir``; returns the report. With ``chunk`` only that chunk's batches are
    filtered and None comes back: a plain run then writes the outputs (``all_finished`` tells when)."""
    from teacher.filter import stage

    work = out_dir / BATCHES
    reader = TraceBatches(source, cfg, batch_rows)
    total = 0
    for number, rows in enumerate(reader):
        total = number + 1
        if chunk is not None and number % chunk.count != chunk.index:
            continue
        if _finished(work, number, len(rows), batch_rows) is None:
            _filter_batch(rows, cfg, decontaminator, source, work, number, batch_rows)
            print(f"[distill] filter: batch {number + 1} done ({reader.rows:,} traces read)", flush=True)
    if reader.info:
        print(f"[distill] filter: {reader.info['summary']}", flush=True)
    atomic_write_json(work / "batches.json", {"batches": total, "batch_rows": batch_rows})
    if chunk is not None:
        left = len(_missing(work))
        print(f"[distill] filter: chunk {chunk} done; {left} of {total} batches left", flush=True)
        return None
    report = finish(work, total, out_dir, cfg, decontaminator, reader.info, source, stage)
    shutil.rmtree(work)
    return report


def _missing(work: Path) -> list[int]:
    plan = json.loads((work / "batches.json").read_text())
    return [n for n in range(plan["batches"]) if _finished(work, n, None, plan["batch_rows"]) is None]


def all_finished(out_dir: Path) -> bool:
    """Whether every batch of a chunked filter is finished (the source read to its end by some chunk)."""
    work = out_dir / BATCHES
    return (work / "batches.json").is_file() and not _missing(work)


def _paths(work: Path, number: int) -> tuple[Path, Path, Path]:
    name = f"{number:05d}"
    return work / f"rows-{name}.parquet", work / f"state-{name}.parquet", work / f"meta-{name}.json"


def _finished(work: Path, number: int, rows: int | None, batch_rows: int) -> dict | None:
    """The meta of a finished batch (cut the same way, same row count), else None."""
    meta_path = _paths(work, number)[2]
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    same_cut = meta.get("batch_rows") == batch_rows and meta.get("batch_chars") == BATCH_CHARS
    if not same_cut or (rows is not None and meta.get("rows") != rows):
        return None
    return meta


def _filter_batch(
    rows: list[Row],
    cfg: FilterConfig,
    decontaminator: Decontaminator | None,
    source: str | Path,
    work: Path,
    number: int,
    batch_rows: int,
) -> None:
    """Verify one batch, run the row-level filters, and write its rows, compact columns and meta."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from teacher.filter import stage

    unjudged = stage.check_fits(rows, cfg, source)
    limits = cfg.min_completion_tokens or cfg.max_completion_tokens
    counted = bool(
        limits and cfg.tokenizer and any(not isinstance(r.get("completion_tokens"), int) for r in rows)
    )
    if counted:
        stage.count_tokens(rows, cfg.tokenizer)
    started = time.perf_counter()
    verified = stage.verify_rows(
        rows, cfg.answer_fallback, cfg.workers, cfg.verify_timeout, not cfg.reverify, cfg
    )
    verify_seconds = time.perf_counter() - started
    seconds = stage.apply_row_filters(verified, stage.row_filters(cfg, decontaminator))
    rows_path, state_path, meta_path = _paths(work, number)
    columns = stage.output_columns(source=True, judge=False, code=True)
    with atomic_path(rows_path) as tmp:
        pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in columns} for r in verified]), tmp)
    with atomic_path(state_path) as tmp:
        pq.write_table(pa.table(compact.state_of(verified)), tmp)
    meta = {
        "rows": len(rows),
        "batch_rows": batch_rows,
        "batch_chars": BATCH_CHARS,
        "unjudged": unjudged,
        "counted_tokens": counted,
        "verify_seconds": verify_seconds,
        "seconds": seconds,
    }
    atomic_write_json(meta_path, meta)  # last: its presence marks the batch finished


def _load_state(work: Path, total: int) -> compact.State:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(_paths(work, n)[1]) for n in range(total)]
    return pa.concat_tables(tables, promote_options="default").to_pydict()


def _signatures(work: Path, sizes: list[int], cfg: FilterConfig) -> compact.Signatures:
    """Near dedup's MinHash signatures of the rows asked for, batch file by batch file over ``cfg.workers``
    processes (the costly part of near dedup; the LSH itself stays in this process, in row order)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    dedup = cfg.dedup

    def signatures(wanted: set[int]):
        jobs, offset = [], 0
        for number, size in enumerate(sizes):
            rows = sorted(i for i in wanted if offset <= i < offset + size)
            if rows:
                jobs.append((_paths(work, number)[0], offset, rows, dedup.ngram, dedup.num_perm))
            offset += size
        if cfg.workers <= 0:
            for job in jobs:
                yield from batch_signatures(*job)
            return
        with ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn")) as pool:
            pending = deque(pool.submit(batch_signatures, *job) for job in jobs[: 2 * cfg.workers])
            for job in jobs[2 * cfg.workers :] + [None] * len(pending):
                yield from pending.popleft().result()  # in order; a few batches ahead at most
                if job is not None:
                    pending.append(pool.submit(batch_signatures, *job))

    return signatures


def batch_signatures(path: Path, offset: int, rows: list[int], ngram: int, num_perm: int) -> list:
    """(row, signature) of ``rows`` (positions in the whole set) of one batch file starting at ``offset``."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["problem", "messages", "completion"])
    picked = table.take([i - offset for i in rows]).to_pylist()
    return [
        (i, signature(compact.trace_text(row), ngram, num_perm)) for i, row in zip(rows, picked, strict=True)
    ]


def finish(
    work: Path,
    total: int,
    out_dir: Path,
    cfg: FilterConfig,
    decontaminator: Decontaminator | None,
    info: dict[str, Any] | None,
    source: str | Path,
    stage,
) -> dict[str, Any]:
    """The whole-set filters over every batch's compact columns, the report, then the outputs."""
    metas = [json.loads(_paths(work, n)[2].read_text()) for n in range(total)]
    state = _load_state(work, total)
    size = len(state["prompt_id"])
    counted = any(meta["counted_tokens"] for meta in metas)
    notes = [f"completion_tokens counted with the tokenizer of {cfg.tokenizer}"] if counted else []
    cfg, more = stage.fit_correctness(cfg, sum(m["unjudged"] for m in metas), size, source)
    notes += more
    seconds: dict[str, float] = {}
    for meta in metas:
        for name, value in meta["seconds"].items():
            seconds[name] = seconds.get(name, 0.0) + value
    row_names = [name for name, _ in stage.row_filters(cfg, decontaminator)]
    removed_by, detail, funnel = compact.decide(
        state, cfg, row_names, seconds, _signatures(work, [m["rows"] for m in metas], cfg)
    )
    state["removed_by"], state["removed_detail"] = removed_by, detail
    verify_seconds = sum(m["verify_seconds"] for m in metas)
    report = build_report(state, funnel, cfg, verify_seconds, decontaminator)
    report["notes"] += notes
    code = stage.code_summary(state, cfg)
    if code is not None:
        report["code"] = code
    if info:
        info["source_verdicts"] = compact.source_verdicts(state, info["columns"].get("verdicts"))
        report["source"] = info
    write_report(report, state, out_dir)  # written first: it explains an empty result too
    stage.refuse_empty(report, out_dir)
    columns = stage.output_columns(source=info is not None, judge=False, code="code" in report)
    write_outputs(work, [_paths(work, n)[0] for n in range(total)], removed_by, detail, columns, out_dir)
    return report
