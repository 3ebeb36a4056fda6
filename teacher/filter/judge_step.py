"""filter.judge: the recipe's judge (distill.judge) decides the traces the verifier cannot.

- *equivalence*: a trace with a reference answer but no verifier verdict (the reference does not parse, no
  answer could be extracted, the verifier timed out or raised) — does its final answer match the reference?
- *quality*: a trace whose prompt has no reference answer — a 1-10 rubric score, kept at ``min_score`` or more.
- *readability* (R1's cold-start filter): every trace still kept after the verdicts above — a 1-10 score of
  its reasoning's readability (language consistency, structure, a plainly stated answer), kept at
  ``min_readability`` or more; below it, or unparsed, the row is no longer kept (``judge: readability 3 < 6``).
- *agreement sample*: ``agreement_sample`` traces the verifier did decide are judged too (their verdicts kept)
  to measure how often the judge agrees with it, and Cohen's kappa.

A judged row's ``correct`` and ``verify_reason`` say what the judge decided (``judge: equivalent``,
``judge: score 8 >= 7``); an unparsed reply is ``judge_unparsed`` and the row is not kept. Every judged row
carries judge_use / judge_verdict / judge_status / judge_reasoning / judge_key (the cache key) for audit.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from distill.errors import DistillError
from distill.judge import Judge, JudgeResult, agreement
from distill.verify import final_text
from teacher.filter.steps import problem_text

Row = dict[str, Any]
JUDGE_COLUMNS = ("judge_use", "judge_verdict", "judge_status", "judge_reasoning", "judge_key")
# The verifier's reasons that are not a verdict on the answer.
NO_VERDICT = ("gold-unparseable", "no-answer", "timeout")
_ANSWER_CHARS = 4000  # the tail of a final text without an extractable answer


def lacks_verdict(row: Row) -> bool:
    reason = str(row.get("verify_reason") or "")
    return row.get("answer") is not None and (reason in NO_VERDICT or reason.startswith("error"))


def lacks_reference(row: Row) -> bool:
    return row.get("answer") is None and row.get("correct") is None


def judge_rows(rows: list[Row], cfg: Any, judge: Judge, drop_truncated: bool = False) -> dict[str, Any]:
    """Judge what ``cfg`` (FilterJudgeConfig) asks for, in place; returns the report's ``judge`` section.
    With ``drop_truncated`` a truncated trace (removed by the filter that runs first) costs no judge call."""
    rows = [r for r in rows if not (drop_truncated and r.get("finish_reason") == "length")]
    equivalence = [r for r in rows if lacks_verdict(r)] if cfg.equivalence else []
    quality = [r for r in rows if lacks_reference(r)] if cfg.quality else []
    decided = [
        r for r in rows if isinstance(r.get("correct"), bool) and r.get("verify_reason") != "source verdict"
    ]
    decided = [r for r in decided if not lacks_verdict(r)]
    audit = _spread(decided, cfg.agreement_sample)
    report: dict[str, Any] = {}
    if equivalence or audit:
        results = judge.ask("equivalence", [_equivalence_values(r) for r in equivalence + audit])
        _raise_on_failures(results)
        report["equivalence"] = _apply_equivalence(equivalence, results[: len(equivalence)])
        if audit:
            report["agreement"] = _agreement(audit, results[len(equivalence) :])
    if quality:
        results = judge.ask(
            "rubric", [{"problem": problem_text(r), "response": r["completion"]} for r in quality]
        )
        _raise_on_failures(results)
        report["quality"] = _apply_quality(quality, results, cfg.min_score)
    if cfg.readability:  # after the verdicts: only what would be kept costs a call
        readable = [r for r in rows if r.get("correct") is True]
        results = judge.ask(
            "readability", [{"problem": problem_text(r), "response": r["completion"]} for r in readable]
        )
        _raise_on_failures(results)
        report["readability"] = _apply_readability(readable, results, cfg.min_readability)
    report["cost"] = judge.report()
    return report


def judge_notes(report: dict[str, Any]) -> list[str]:
    """One line per use for report.md's notes."""
    notes = []
    if "equivalence" in report:
        e = report["equivalence"]
        notes.append(
            f"judge equivalence: {e['asked']} traces without a verifier verdict: {e['equivalent']} equivalent, "
            f"{e['different']} different, {e['judge_unparsed']} judge_unparsed (not kept)"
        )
    if "quality" in report:
        q = report["quality"]
        notes.append(
            f"judge quality: {q['asked']} traces without a reference: {q['kept']} scored >= {q['min_score']}, "
            f"{q['below_threshold']} below, {q['judge_unparsed']} judge_unparsed (not kept)"
        )
    if "readability" in report:
        r = report["readability"]
        notes.append(
            f"judge readability: {r['asked']} kept traces scored: {r['kept']} >= {r['min_score']}, "
            f"{r['below_threshold']} below, {r['judge_unparsed']} judge_unparsed (no longer kept)"
        )
    if report.get("agreement"):
        a = report["agreement"]
        notes.append(
            f"judge vs verifier on {a['n']} verified traces: agreement {a['agreement']}, "
            f"Cohen's kappa {a['cohen_kappa']} ({a['unparsed']} unparsed left out)"
        )
    total = report["cost"]["total"]
    price = f", ~${total['estimated_usd']}" if "estimated_usd" in total else ""
    notes.append(
        f"judge cost: {total['calls']} calls ({total['cached']} from the cache), {total['prompt_tokens']} prompt + "
        f"{total['completion_tokens']} completion tokens{price}"
    )
    return notes


def _equivalence_values(row: Row) -> dict[str, str]:
    answer = row.get("extracted") or final_text(row["completion"])[-_ANSWER_CHARS:]
    return {"problem": problem_text(row), "reference": str(row["answer"]), "answer": answer}


def _spread(rows: list[Row], n: int) -> list[Row]:
    """``n`` rows evenly spread over ``rows`` (deterministic, so a rerun asks the same, cached, questions)."""
    if n <= 0 or not rows:
        return []
    if n >= len(rows):
        return list(rows)
    return [rows[i * len(rows) // n] for i in range(n)]


def _mark(row: Row, use: str, result: JudgeResult) -> None:
    row.update(
        judge_use=use,
        judge_verdict=None if result.value is None else str(result.value),
        judge_status=result.status,
        judge_reasoning=result.reasoning or result.reply,
        judge_key=result.key,
    )


def _apply_equivalence(rows: list[Row], results: list[JudgeResult]) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    for row, result in zip(rows, results, strict=True):
        _mark(row, "equivalence", result)
        verdict = result.value if result.status == "ok" else "judge_unparsed"
        counts[str(verdict)] += 1
        row["correct"] = verdict == "equivalent"
        row["verify_reason"] = f"judge: {verdict}" if result.status == "ok" else "judge_unparsed"
    return {
        "asked": len(rows),
        "equivalent": counts["equivalent"],
        "different": counts["different"],
        "judge_unparsed": counts["judge_unparsed"],
    }


def _apply_quality(rows: list[Row], results: list[JudgeResult], min_score: int) -> dict[str, Any]:
    scores: Counter[int] = Counter()
    unparsed = 0
    for row, result in zip(rows, results, strict=True):
        _mark(row, "rubric", result)
        if result.status != "ok":
            unparsed += 1
            row["correct"], row["verify_reason"] = False, "judge_unparsed"
            continue
        score = int(result.value)
        scores[score] += 1
        row["correct"] = score >= min_score
        row["verify_reason"] = f"judge: score {score} {'>=' if row['correct'] else '<'} {min_score}"
    kept = sum(n for score, n in scores.items() if score >= min_score)
    return {
        "asked": len(rows),
        "kept": kept,
        "below_threshold": sum(scores.values()) - kept,
        "judge_unparsed": unparsed,
        "min_score": min_score,
        "scores": {str(s): n for s, n in sorted(scores.items())},
    }


def _apply_readability(rows: list[Row], results: list[JudgeResult], min_score: int) -> dict[str, Any]:
    """Kept traces below ``min_score`` (or unparsed) are kept no more; the verdicts above are kept on record."""
    scores: Counter[int] = Counter()
    unparsed = 0
    for row, result in zip(rows, results, strict=True):
        _mark(row, "readability", result)
        score = int(result.value) if result.status == "ok" else None
        if score is not None:
            scores[score] += 1
        if score is None or score < min_score:
            unparsed += score is None
            why = "judge_unparsed" if score is None else f"{score} < {min_score}"
            row["correct"], row["verify_reason"] = False, f"judge: readability {why}"
    kept = sum(n for score, n in scores.items() if score >= min_score)
    return {
        "asked": len(rows),
        "kept": kept,
        "below_threshold": sum(scores.values()) - kept,
        "judge_unparsed": unparsed,
        "min_score": min_score,
        "scores": {str(s): n for s, n in sorted(scores.items())},
    }


def _agreement(rows: list[Row], results: list[JudgeResult]) -> dict[str, Any]:
    pairs = []
    for row, result in zip(rows, results, strict=True):
        _mark(row, "equivalence", result)  # audit only: the verifier's verdict stands
        if result.status == "ok":
            pairs.append((result.value == "equivalent", bool(row["correct"])))
    out = agreement([j for j, _ in pairs], [v for _, v in pairs])
    return {**out, "unparsed": len(rows) - len(pairs)}


def _raise_on_failures(results: list[JudgeResult]) -> None:
    failed = [r for r in results if r.status in ("failed", "timeout")]
    if failed:
        raise DistillError(
            f"filter.judge: {len(failed)} of {len(results)} judge calls failed ({failed[0].problem}); the answered "
            "ones are cached in the run dir, so a rerun asks only these (or raise judge.max_retries)"
        )
