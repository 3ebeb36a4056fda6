"""Code traces in the filter: a row whose prompt carries ``tests`` is judged by running its program.

The program (last fenced block of the final answer) runs against the tests in the sandbox
(distill.verify.code, the same pool as GRPO's ``code`` reward and the humaneval task). A row is correct when
it passes at least ``filter.code.min_pass`` of its tests (default 1: all). ``verify_reason`` is the
verdict's category (``code passed``, ``code failed``, ``code timeout``, ``code no_code``, ...) so the report
counts each; the full reason (``failed: test 3``, ``runtime_error: ...``) and the share passed are kept in
``code_reason`` / ``tests_passed``. Pass-rate bands and ``keep_per_prompt`` then work as for math.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from distill.config.filter import CodeFilterConfig
from distill.recipe import FilterConfig
from distill.verify import Limits, code_problem, default_runner, isolation, verify_code_many

CODE_FIELDS = ("tests", "entry_point", "starter_code", "language")
CODE_COLUMNS = ("code_reason", "tests_passed")
Row = dict[str, Any]


def has_tests(row: Row) -> bool:
    return row.get("tests") not in (None, "", [], {})


def verify_code_rows(rows: list[Row], cfg: FilterConfig, indices: list[int]) -> dict[int, Row]:
    """Verdict fields (extracted, correct, verify_reason, code_reason, tests_passed) for rows[indices]."""
    options = cfg.code or CodeFilterConfig()  # unset: all tests must pass, default limits
    limits = Limits(wall_seconds=options.timeout, memory_mb=options.memory_mb)
    problems = [code_problem({k: rows[i].get(k) for k in CODE_FIELDS}, limits) for i in indices]
    items = [(problem, rows[i]["completion"]) for problem, i in zip(problems, indices, strict=True)]
    runner = default_runner(sandbox=options.sandbox if options.sandbox != "auto" else None)
    verdicts = verify_code_many(items, runner, workers=max(1, cfg.workers))
    out = {}
    for index, verdict in zip(indices, verdicts, strict=True):
        correct = verdict.total > 0 and verdict.share >= options.min_pass
        out[index] = {
            "extracted": verdict.extracted,
            "correct": correct,
            "verify_reason": f"code {verdict.kind}",
            "code_reason": verdict.reason,
            "tests_passed": round(verdict.share, 4),
        }
    return out


def code_summary(state: dict[str, list], cfg: FilterConfig) -> dict[str, Any] | None:
    """The report's code block from the compact columns (teacher.filter.compact): rows run, verdicts by
    category, mean share passed, the sandbox used."""
    reasons = [reason for reason in state["code_reason"] if reason is not None]
    if not reasons:
        return None
    shares = [s for s, r in zip(state["tests_passed"], state["code_reason"], strict=True) if r is not None]
    kinds = Counter(reason.split(":", 1)[0] for reason in reasons)
    options = cfg.code
    return {
        "rows": len(reasons),
        "min_pass": options.min_pass if options else 1.0,
        "reasons": dict(kinds.most_common()),
        "mean_tests_passed": round(sum(shares) / len(reasons), 4),
        "sandbox": isolation().note,
    }
