"""Stage `filter`: traces -> verified traces -> SFT rows, each filter counting what it removed.

Input: the generate stage's shards, or external traces (``filter.traces`` / ``distill filter --traces``):
a file, a `datasets` folder or Hub id, read in its published shape (``filter.format``, teacher.filter.trace_formats).
Rows without a reference answer are verdict-less (``correct`` None): correctness removes them as
``no_reference_answer``, and when no row has one correctness is off, with a warning.

Every row is verified first (distill.verify.verify_many: parallel, hard per-answer deadlines). Then the
enabled filters run in this order: contamination first (a property of the prompt, so every contaminated
prompt is counted whatever else is wrong with its samples), then cheap per-row checks, correctness, the
set-level ones, and the per-prompt cap last so that it chooses among rows that survived everything else:

    contaminated -> truncated -> length -> format -> language -> repetition -> no_reference_answer
    -> incorrect -> pass_rate_band -> exact_duplicate -> near_duplicate -> over_per_prompt_cap

The SFT rows use TRL's conversational prompt/completion format so `SFTTrainer` trains on the completion
only. verified.parquet keeps every row with its verdict and, for removed rows, the filter and the reason.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from distill.chunks import Chunk
from distill.errors import DistillError
from distill.judge import Judge
from distill.recipe import FilterConfig
from distill.records import VERIFIED_COLUMNS, trace_schema, write_parquet
from distill.verify import extract_answer, verify_many
from teacher.filter import steps
from teacher.filter.batches import generated_batches, is_generate_folder
from teacher.filter.code_step import CODE_COLUMNS, code_summary, has_tests, verify_code_rows
from teacher.filter.compact import source_verdicts, state_of
from teacher.filter.decontaminate import Decontaminator, build_decontaminator
from teacher.filter.judge_step import JUDGE_COLUMNS, judge_notes, judge_rows
from teacher.filter.report import build_report, write_report
from teacher.filter.stream import run_stream
from teacher.filter.trace_source import read_source

REMOVAL_COLUMNS = ("kept", "removed_by", "removed_detail")
SOURCE_COLUMNS = ("source_row", "source_correct")  # external traces: where each came from, its own verdict
Row = dict[str, Any]


def load_traces(source: str | Path, columns: dict[str, str] | None = None) -> list[Row]:
    """Trace rows from a generate folder (shard-*.parquet) or from external traces (``filter.columns``)."""
    return read_traces(source, FilterConfig(columns=columns or {}))[0]


def read_traces(
    source: str | Path, cfg: FilterConfig, limit: int | None = None
) -> tuple[list[Row], dict | None]:
    """(trace rows, what was read): a generate folder as it is, anything else through its published shape
    (teacher.filter.trace_source; the description is None for a generate folder)."""
    path = Path(source)
    if is_generate_folder(path):
        return [row for batch in generated_batches(path) for row in batch], None
    return read_source(str(source), cfg, limit)


def verify_rows(
    rows: list[Row],
    fallback: str,
    workers: int = 2,
    timeout: float = 10.0,
    trust_source: bool = False,
    cfg: FilterConfig | None = None,
) -> list[Row]:
    """Rows + extracted/correct/verify_reason, verified in parallel with hard per-answer deadlines.

    A row without a reference answer gets ``correct`` None. With ``trust_source`` a row carrying the
    source's own verdict (``source_correct``) keeps it unverified; the others are verified as usual. A row
    with ``tests`` (code) is judged by running its program (teacher.filter.code_step, ``filter.code``).
    """
    trusted = [trust_source and isinstance(row.get("source_correct"), bool) for row in rows]
    coded = [i for i, row in enumerate(rows) if has_tests(row) and not trusted[i]]
    code_verdicts = verify_code_rows(rows, cfg or FilterConfig(workers=workers), coded) if coded else {}
    todo = [
        i
        for i, row in enumerate(rows)
        if row.get("answer") is not None and not trusted[i] and i not in code_verdicts
    ]
    verdicts = verify_many(
        [(rows[i]["answer"], rows[i]["completion"]) for i in todo], fallback, workers, timeout
    )
    found = dict(zip(todo, verdicts, strict=True))
    out = []
    for index, row in enumerate(rows):
        if index in code_verdicts:
            out.append({**row, **code_verdicts[index]})
            continue
        verdict = found.get(index)
        if verdict is not None:
            out.append(
                {
                    **row,
                    "extracted": verdict.extracted,
                    "correct": verdict.correct,
                    "verify_reason": verdict.reason,
                }
            )
            continue
        extracted = extract_answer(row["completion"], fallback)
        if trusted[index]:
            correct, reason = row["source_correct"], "source verdict"
        else:
            correct, reason = None, row.get("answer_missing") or "no reference answer"
        out.append({**row, "extracted": extracted, "correct": correct, "verify_reason": reason})
    return out


def row_filters(
    cfg: FilterConfig, decontaminator: Decontaminator | None = None
) -> list[tuple[str, steps.Step]]:
    """The enabled filters that judge each row on its own (the first part of the stage's order)."""
    chosen: list[tuple[str, steps.Step | None]] = [
        ("contaminated", steps.decontaminate(decontaminator) if decontaminator else None),
        ("truncated", steps.truncated if cfg.drop_truncated else None),
        (
            "length",
            steps.token_length(cfg.min_completion_tokens, cfg.max_completion_tokens)
            if cfg.min_completion_tokens or cfg.max_completion_tokens
            else None,
        ),
        ("format", steps.think_format(cfg.answer_fallback) if cfg.require_think_format else None),
        ("language", steps.language(cfg.min_language_share) if cfg.language_consistency else None),
        (
            "repetition",
            steps.repetition(cfg.max_repetition, cfg.repetition_ngram) if cfg.max_repetition else None,
        ),
    ]
    return [(name, step) for name, step in chosen if step is not None]


def build_filters(
    cfg: FilterConfig, verified: list[Row], decontaminator: Decontaminator | None = None
) -> list[tuple[str, steps.Step]]:
    """The enabled filters, in the stage's order (module docstring)."""
    chosen: list[tuple[str, steps.Step | None]] = [
        (
            "no_reference_answer",
            steps.no_reference if cfg.correctness and any(r["correct"] is None for r in verified) else None,
        ),
        ("incorrect", steps.incorrect if cfg.correctness else None),
        (
            "pass_rate_band",
            steps.pass_rate_band(steps.pass_rates(verified), *cfg.pass_rate_band)
            if cfg.pass_rate_band
            else None,
        ),
        ("exact_duplicate", steps.exact_dup if cfg.dedup.exact else None),
        ("near_duplicate", steps.near_dup(cfg.dedup) if cfg.dedup.near else None),
        (
            "over_per_prompt_cap",
            steps.keep_per_prompt(cfg.keep_per_prompt, cfg.keep_policy) if cfg.keep_per_prompt else None,
        ),
    ]
    return row_filters(cfg, decontaminator) + [(name, step) for name, step in chosen if step is not None]


def apply_filters(rows: list[Row], filters: list[tuple[str, steps.Step]]) -> tuple[list[Row], list[dict]]:
    """Run the filters in order; marks each row kept/removed_by/removed_detail; returns (kept, funnel)."""
    for row in rows:
        row.update(kept=True, removed_by=None, removed_detail=None)
    kept, funnel = rows, []
    for name, step in filters:
        started = time.perf_counter()
        reasons = step(kept)
        survivors = []
        for row, reason in zip(kept, reasons, strict=True):
            if reason is None:
                survivors.append(row)
            else:
                row.update(kept=False, removed_by=name, removed_detail=reason)
        funnel.append(
            {
                "filter": name,
                "rows_in": len(kept),
                "removed": len(kept) - len(survivors),
                "rows_out": len(survivors),
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
        kept = survivors
    return kept, funnel


def apply_row_filters(rows: list[Row], filters: list[tuple[str, steps.Step]]) -> dict[str, float]:
    """apply_filters for row-level filters over one batch; returns the seconds each took."""
    return {step["filter"]: step["seconds"] for step in apply_filters(rows, filters)[1]}


def to_sft_row(row: Row) -> Row:
    # Everything before the answer is the prompt: a source's system prompt and earlier turns stay exactly.
    messages = row["messages"]
    prompt = messages[:-1] if messages and messages[-1]["role"] == "assistant" else messages
    return {
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": row["completion"]}],
        "prompt_id": row["prompt_id"],
        "sample_idx": row["sample_idx"],
    }


def filter_traces(
    rows: list[Row],
    cfg: FilterConfig,
    decontaminator: Decontaminator | None = None,
    judge: Judge | None = None,
) -> tuple[list[Row], list[Row], dict]:
    """Verify (the judge deciding what the verifier cannot, with filter.judge) and filter trace rows;
    returns (verified rows, kept rows, report)."""
    started = time.perf_counter()
    verified = verify_rows(rows, cfg.answer_fallback, cfg.workers, cfg.verify_timeout, not cfg.reverify, cfg)
    judged = (
        judge_rows(verified, cfg.judge, judge, cfg.drop_truncated)
        if cfg.judge is not None and judge is not None
        else None
    )
    verify_seconds = time.perf_counter() - started
    kept, funnel = apply_filters(verified, build_filters(cfg, verified, decontaminator))
    report = build_report(state_of(verified), funnel, cfg, verify_seconds, decontaminator)
    code = code_summary(state_of(verified), cfg)
    if code is not None:
        report["code"] = code
    if judged is not None:
        report["judge"] = judged
        report["notes"] += judge_notes(judged)
    return verified, kept, report


def check_fits(rows: list[Row], cfg: FilterConfig, source: str | Path) -> int:
    """Fail before the slow part when a configured filter needs what the traces lack; returns how many rows
    nothing can judge (no reference answer and no trusted verdict of the source)."""
    if (
        (cfg.min_completion_tokens or cfg.max_completion_tokens)
        and not cfg.tokenizer
        and any(not isinstance(row.get("completion_tokens"), int) for row in rows)
    ):
        raise DistillError(
            f"{source}: filter.min/max_completion_tokens need a completion_tokens column on every row; map "
            "it with filter.columns.completion_tokens, set filter.tokenizer=<model> to count them, or unset "
            "the limits"
        )
    trust = not cfg.reverify
    unjudged = sum(
        row.get("answer") is None
        and not has_tests(row)
        and not (trust and isinstance(row.get("source_correct"), bool))
        for row in rows
    )
    if unjudged and cfg.pass_rate_band:
        raise DistillError(
            f"{source}: filter.pass_rate_band needs a verdict for every sample, and {unjudged} of {len(rows)} "
            "have no reference answer; name one with filter.columns.answer or filter.answer_from=solution"
        )
    return unjudged


def fit_config(rows: list[Row], cfg: FilterConfig, source: str | Path) -> tuple[FilterConfig, list[str]]:
    """The config these traces allow and notes for the report: token counts filled in with
    ``filter.tokenizer`` where asked for; correctness off, with a warning, when no row has a reference."""
    unjudged = check_fits(rows, cfg, source)
    notes = []
    limits = cfg.min_completion_tokens or cfg.max_completion_tokens
    if limits and cfg.tokenizer and any(not isinstance(row.get("completion_tokens"), int) for row in rows):
        count_tokens(rows, cfg.tokenizer)
        notes.append(f"completion_tokens counted with the tokenizer of {cfg.tokenizer}")
    cfg, more = fit_correctness(cfg, unjudged, len(rows), source)
    return cfg, notes + more


def fit_correctness(
    cfg: FilterConfig, unjudged: int, rows: int, source: str | Path
) -> tuple[FilterConfig, list[str]]:
    """Correctness off, with a warning and a note, when none of the ``rows`` traces can be judged."""
    if unjudged != rows or (cfg.judge is not None and cfg.judge.quality):  # the judge scores them
        return cfg, []
    note = f"{source}: no reference answers, so correctness is not checked"
    if cfg.correctness:
        print(
            f"[distill] warning: {note}; filter.correctness is off for this run (set filter.columns.answer="
            "<column> or filter.answer_from=solution to check answers)",
            flush=True,
        )
        cfg = cfg.model_copy(update={"correctness": False})
    return cfg, [note]


def count_tokens(rows: list[Row], model_ref: str, batch: int = 512) -> None:
    """Fill completion_tokens where missing, with the tokenizer of ``model_ref`` (a published set has none)."""
    from transformers import AutoTokenizer

    from distill.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(model_ref))
    todo = [row for row in rows if not isinstance(row.get("completion_tokens"), int)]
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        ids = tokenizer([row["completion"] for row in chunk], add_special_tokens=False)["input_ids"]
        for row, tokens in zip(chunk, ids, strict=True):
            row["completion_tokens"] = len(tokens)


def output_columns(source: bool, judge: bool, code: bool) -> tuple[str, ...]:
    """verified.parquet's columns: external traces add where each came from, filter.judge its verdicts,
    code rows their test results."""
    return (
        *trace_schema().names,
        "problem",
        *VERIFIED_COLUMNS,
        *REMOVAL_COLUMNS,
        *(SOURCE_COLUMNS if source else ()),
        *(JUDGE_COLUMNS if judge else ()),
        *(CODE_COLUMNS if code else ()),
    )


def refuse_empty(report: dict[str, Any], out_dir: Path) -> None:
    if not report["rows_out"]:
        raise DistillError(
            f"filter kept 0 of {report['rows_in']} traces (removed: {report['removed']}; see "
            f"{out_dir}/report.md); sample more (teacher.samples_per_prompt), relax filter settings, or use a "
            "stronger teacher"
        )


def run_filter(
    source: str | Path,
    out_dir: Path,
    cfg: FilterConfig,
    data_dir: str | Path | None = None,
    judge: Judge | None = None,
    chunk: Chunk | None = None,
    batch_rows: int | None = None,
) -> dict[str, Any] | None:
    """Stage entry point: verified.parquet, train.parquet, report.json/.md and report.png in ``out_dir``.
    ``data_dir`` (eval.data_dir) is where benchmark names in ``cfg.decontaminate`` find their local copies;
    ``judge`` (distill.judge, with the run's cache) decides what the verifier cannot when filter.judge is set.

    Streamed in batches (teacher.filter.stream: bounded memory, resumable, ``chunk`` I of N; None back
    when other chunks are still to finish), except with filter.judge, whose run reads the set whole."""
    bench = cfg.decontaminate
    decontaminator = (
        build_decontaminator(bench.benchmarks, bench.ngram, bench.fuzzy, bench.fuzzy_threshold, data_dir)
        if bench.benchmarks
        else None
    )
    if cfg.judge is None or judge is None:
        return run_stream(source, out_dir, cfg, decontaminator, batch_rows or cfg.batch_rows, chunk)
    if chunk is not None:
        raise DistillError("distill filter --chunk: not with filter.judge (the judge reads the set whole)")
    return _run_whole(source, out_dir, cfg, decontaminator, judge)


def _run_whole(
    source: str | Path, out_dir: Path, cfg: FilterConfig, decontaminator: Decontaminator | None, judge: Judge
) -> dict[str, Any]:
    rows, info = read_traces(source, cfg)
    if info:
        print(f"[distill] filter: {info['summary']}", flush=True)
    cfg, notes = fit_config(rows, cfg, source)
    verified, kept, report = filter_traces(rows, cfg, decontaminator, judge)
    report["notes"] += notes
    state = state_of(verified)
    if info:
        info["source_verdicts"] = source_verdicts(state, info["columns"].get("verdicts"))
        report["source"] = info
    write_report(report, state, out_dir)  # written first: it explains an empty result too
    refuse_empty(report, out_dir)
    columns = output_columns(info is not None, cfg.judge is not None, "code" in report)
    write_parquet([{k: r.get(k) for k in columns} for r in verified], out_dir / "verified.parquet")
    write_parquet([to_sft_row(r) for r in kept], out_dir / "train.parquet")
    return report
