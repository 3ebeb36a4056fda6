"""Stage `filter`: traces -> verified traces -> SFT rows, each filter counting what it removed.

Filters run in this order: truncation -> length -> correctness -> keep-per-prompt. The SFT rows use TRL's
conversational prompt/completion format so `SFTTrainer` trains on the completion only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from distill.errors import DistillError
from distill.recipe import FilterConfig
from distill.records import TRACE_COLUMNS, read_rows, require_columns, write_parquet
from distill.runs import atomic_write_json
from distill.verify import verify_completion

REQUIRED = ("prompt_id", "sample_idx", "messages", "completion", "answer")


def load_traces(trace_dir: Path) -> list[dict[str, Any]]:
    shards = sorted(trace_dir.glob("shard-*.parquet"))
    if not shards:
        raise DistillError(f"{trace_dir}: no trace shards (shard-*.parquet); run `distill generate` first")
    rows = [row for shard in shards for row in read_rows(shard)]
    require_columns(rows, REQUIRED, str(trace_dir))
    return rows


def verify_rows(rows: list[dict[str, Any]], fallback: str) -> list[dict[str, Any]]:
    verified = []
    for row in tqdm(rows, desc="verify", unit="trace"):
        verdict = verify_completion(str(row["answer"]), row["completion"], fallback)
        verified.append({**row, "extracted": verdict.extracted, "correct": verdict.correct,
                         "verify_reason": verdict.reason})
    return verified


def build_filters(cfg: FilterConfig) -> list[tuple[str, Callable[[list[dict]], list[dict]]]]:
    steps: list[tuple[str, Callable[[list[dict]], list[dict]]]] = []
    if cfg.drop_truncated:
        steps.append(("truncated", lambda rows: [r for r in rows if r.get("finish_reason") != "length"]))
    if cfg.max_completion_tokens:
        limit = cfg.max_completion_tokens
        steps.append(("too_long", lambda rows: [r for r in rows if (r.get("completion_tokens") or 0) <= limit]))
    if cfg.correctness:
        steps.append(("incorrect", lambda rows: [r for r in rows if r["correct"]]))
    if cfg.keep_per_prompt:
        steps.append(("over_per_prompt_cap", lambda rows: keep_per_prompt(rows, cfg.keep_per_prompt, cfg.keep_policy)))
    return steps


def keep_per_prompt(rows: list[dict], k: int, policy: str) -> list[dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["prompt_id"]].append(row)
    kept = []
    for group in groups.values():
        ordered = sorted(group, key=lambda r: r["sample_idx"])
        if policy == "shortest":
            ordered = sorted(ordered, key=lambda r: (len(r["completion"]), r["sample_idx"]))
        kept.extend(ordered[:k])
    return kept


def to_sft_row(row: dict[str, Any]) -> dict[str, Any]:
    prompt = [m for m in row["messages"] if m["role"] != "assistant"]
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": row["completion"]}],
            "prompt_id": row["prompt_id"], "sample_idx": row["sample_idx"]}


def filter_traces(rows: list[dict[str, Any]], cfg: FilterConfig) -> tuple[list[dict], list[dict], dict]:
    """Verify and filter trace rows; returns (verified rows, kept rows, report)."""
    verified = verify_rows(rows, cfg.answer_fallback)
    kept, removed = verified, {}
    for name, step in build_filters(cfg):
        before = len(kept)
        kept = step(kept)
        removed[name] = before - len(kept)
    prompts = {r["prompt_id"] for r in verified}
    correct = sum(r["correct"] for r in verified)
    report = {
        "rows_in": len(verified),
        "rows_out": len(kept),
        "removed": removed,
        "prompts_in": len(prompts),
        "prompts_out": len({r["prompt_id"] for r in kept}),
        "pass_rate": round(correct / len(verified), 4) if verified else 0.0,
        "answer_extraction": f"last \\boxed{{}} in the final answer, fallback={cfg.answer_fallback}",
    }
    return verified, kept, report


def run_filter(trace_dir: Path, out_dir: Path, cfg: FilterConfig) -> dict[str, Any]:
    """Stage entry point: writes verified.parquet, train.parquet and report.json into ``out_dir``."""
    verified, kept, report = filter_traces(load_traces(trace_dir), cfg)
    if not kept:
        raise DistillError(
            f"filter kept 0 of {len(verified)} traces (removed: {report['removed']}); sample more "
            "(teacher.samples_per_prompt), relax filter settings, or use a stronger teacher"
        )
    write_parquet([{k: r.get(k) for k in (*TRACE_COLUMNS, "extracted", "correct", "verify_reason")} for r in verified],
                  out_dir / "verified.parquet")
    write_parquet([to_sft_row(r) for r in kept], out_dir / "train.parquet")
    atomic_write_json(out_dir / "report.json", report)
    return report
