"""Stage `filter`: traces -> verified traces -> SFT rows, each filter counting what it removed.

Input: the generate stage's shards, or any traces file (``filter.traces`` / ``distill filter --traces``)
with problem (or messages), answer and completion columns, renamed with ``filter.columns``.

Every row is verified first (distill.verify.verify_many: parallel, hard per-answer deadlines). Then the
enabled filters run in this order: contamination first (a property of the prompt, so every contaminated
prompt is counted whatever else is wrong with its samples), then cheap per-row checks, correctness, the
set-level ones, and the per-prompt cap last so that it chooses among rows that survived everything else:

    contaminated -> truncated -> length -> format -> language -> repetition -> incorrect
    -> pass_rate_band -> exact_duplicate -> near_duplicate -> over_per_prompt_cap

The SFT rows use TRL's conversational prompt/completion format so `SFTTrainer` trains on the completion
only. verified.parquet keeps every row with its verdict and, for removed rows, the filter and the reason.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.recipe import FilterConfig
from distill.records import TRACE_COLUMNS, VERIFIED_COLUMNS, read_rows, require_columns, write_parquet
from distill.verify import verify_many
from teacher import filter_steps as steps
from teacher.decontaminate import Decontaminator, build_decontaminator
from teacher.filter_report import build_report, write_report
from teacher.shards import SHARD_GLOB, shard_paths

REQUIRED = ("prompt_id", "sample_idx", "messages", "completion", "answer")
REMOVAL_COLUMNS = ("kept", "removed_by", "removed_detail")
Row = dict[str, Any]


def load_traces(source: Path, columns: dict[str, str] | None = None) -> list[Row]:
    """Trace rows from a generate folder (shard-*.parquet) or from any traces file."""
    source = Path(source)
    if source.is_dir():
        return _load_generated(source)
    return _load_file(source, columns or {})


def _load_generated(trace_dir: Path) -> list[Row]:
    shards = shard_paths(trace_dir)
    if not shards:
        raise DistillError(f"{trace_dir}: no trace shards ({SHARD_GLOB}); run `distill generate` first")
    rows = [row for shard in shards for row in read_rows(shard)]
    require_columns(rows, REQUIRED, str(trace_dir))
    prompts = trace_dir / "prompts.parquet"
    if prompts.is_file():  # the bare problem text: decontamination and language checks want it untemplated
        problems = {str(p["id"]): p.get("problem") for p in read_rows(prompts)}
        for row in rows:
            row.setdefault("problem", problems.get(str(row["prompt_id"])))
    _check_values(rows, str(trace_dir))
    return rows


def _load_file(path: Path, columns: dict[str, str]) -> list[Row]:
    raw = read_rows(path)
    if not raw:
        raise DistillError(f"{path}: no rows; expected one trace per row with problem, answer and completion")
    absent = [theirs for theirs in columns.values() if theirs not in raw[0]]
    if absent:
        raise DistillError(
            f"{path}: filter.columns names column {absent[0]!r}, which the file lacks "
            f"(found: {', '.join(sorted(raw[0]))})"
        )
    renamed = {theirs: ours for ours, theirs in columns.items()}
    # A mapped column replaces any column that already has our name ({answer: gold} drops the file's `answer`).
    rows = [
        {renamed.get(key, key): value for key, value in row.items() if key in renamed or key not in columns}
        for row in raw
    ]
    missing = [c for c in ("answer", "completion") if c not in rows[0]]
    if "problem" not in rows[0] and "messages" not in rows[0]:
        missing.append("problem")
    if missing:
        raise DistillError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(sorted(raw[0]))}); map them "
            f"with filter.columns, e.g. filter.columns.{missing[0]}=<your column>"
        )
    _check_values(rows, str(path))
    seen: Counter[str] = Counter()
    for number, row in enumerate(rows, 1):
        if not isinstance(row.get("problem", ""), str):
            raise DistillError(
                f"{path}: row {number}: problem must be a string, got {type(row['problem']).__name__}; "
                "fix the data or map another column with filter.columns.problem"
            )
        problem = steps.problem_text(row)
        row.setdefault("problem", problem)
        if row.get("prompt_id") is None:  # samples of one problem share an id derived from its text
            row["prompt_id"] = hashlib.sha1(problem.encode()).hexdigest()[:12]
        row["prompt_id"] = str(row["prompt_id"])
        if row.get("sample_idx") is None:
            row["sample_idx"] = seen[row["prompt_id"]]
        seen[row["prompt_id"]] += 1
        if not row.get("messages"):
            row["messages"] = [
                {"role": "user", "content": problem},
                {"role": "assistant", "content": row["completion"]},
            ]
    return rows


def _check_values(rows: list[Row], where: str) -> None:
    for number, row in enumerate(rows, 1):
        answer = row.get("answer")
        if isinstance(answer, int | float) and not isinstance(answer, bool):
            row["answer"] = str(answer)  # AMC-style numeric answers: the verifier compares them as numbers
        elif not isinstance(answer, str) or not answer.strip():
            raise DistillError(
                f"{where}: row {number}: answer must be a non-empty string or number, got "
                f"{answer!r:.40}; fix the data or map another column with filter.columns.answer"
            )
        if not isinstance(row.get("completion"), str):
            raise DistillError(
                f"{where}: row {number}: completion must be a string, got "
                f"{type(row.get('completion')).__name__}; fix the data or filter.columns.completion"
            )


def verify_rows(rows: list[Row], fallback: str, workers: int = 2, timeout: float = 10.0) -> list[Row]:
    """Rows + extracted/correct/verify_reason, verified in parallel with hard per-answer deadlines."""
    verdicts = verify_many([(row["answer"], row["completion"]) for row in rows], fallback, workers, timeout)
    return [
        {**row, "extracted": v.extracted, "correct": v.correct, "verify_reason": v.reason}
        for row, v in zip(rows, verdicts, strict=True)
    ]


def build_filters(
    cfg: FilterConfig, verified: list[Row], decontaminator: Decontaminator | None = None
) -> list[tuple[str, steps.Step]]:
    """The enabled filters, in the stage's order (module docstring)."""
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
    return [(name, step) for name, step in chosen if step is not None]


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


def to_sft_row(row: Row) -> Row:
    prompt = [m for m in row["messages"] if m["role"] != "assistant"]
    return {
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": row["completion"]}],
        "prompt_id": row["prompt_id"],
        "sample_idx": row["sample_idx"],
    }


def filter_traces(
    rows: list[Row], cfg: FilterConfig, decontaminator: Decontaminator | None = None
) -> tuple[list[Row], list[Row], dict]:
    """Verify and filter trace rows; returns (verified rows, kept rows, report)."""
    started = time.perf_counter()
    verified = verify_rows(rows, cfg.answer_fallback, cfg.workers, cfg.verify_timeout)
    verify_seconds = time.perf_counter() - started
    kept, funnel = apply_filters(verified, build_filters(cfg, verified, decontaminator))
    report = build_report(verified, kept, funnel, cfg, verify_seconds, decontaminator)
    return verified, kept, report


def _check_fits(rows: list[Row], cfg: FilterConfig, source: Path) -> None:
    """Fail before the slow part when a configured filter needs a column the traces lack."""
    if (cfg.min_completion_tokens or cfg.max_completion_tokens) and any(
        not isinstance(row.get("completion_tokens"), int) for row in rows
    ):
        raise DistillError(
            f"{source}: filter.min/max_completion_tokens need a completion_tokens column on every "
            "row; map it with filter.columns.completion_tokens or unset the limits"
        )


def run_filter(source: Path, out_dir: Path, cfg: FilterConfig) -> dict[str, Any]:
    """Stage entry point: verified.parquet, train.parquet, report.json/.md and report.png in ``out_dir``."""
    rows = load_traces(source, cfg.columns)
    _check_fits(rows, cfg, source)
    bench = cfg.decontaminate
    decontaminator = (
        build_decontaminator(bench.benchmarks, bench.ngram, bench.fuzzy, bench.fuzzy_threshold)
        if bench.benchmarks
        else None
    )
    verified, kept, report = filter_traces(rows, cfg, decontaminator)
    write_report(report, verified, kept, out_dir)  # written first: it explains an empty result too
    if not kept:
        raise DistillError(
            f"filter kept 0 of {len(verified)} traces (removed: {report['removed']}; see {out_dir}/report.md); "
            "sample more (teacher.samples_per_prompt), relax filter settings, or use a stronger teacher"
        )
    columns = (*TRACE_COLUMNS, "problem", *VERIFIED_COLUMNS, *REMOVAL_COLUMNS)
    write_parquet([{k: r.get(k) for k in columns} for r in verified], out_dir / "verified.parquet")
    write_parquet([to_sft_row(r) for r in kept], out_dir / "train.parquet")
    return report
