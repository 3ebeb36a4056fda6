"""The individual filters of the `filter` stage.

Each filter takes the rows still kept and returns, row by row, why it removes the row (a short detail
such as ``finish_reason=length``) or None to keep it. The stage applies them in a fixed order
(teacher/filters.py) and counts and records every removal.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from distill.language import MIN_LETTERS as _MIN_LETTERS

# The language detector lives in the core (distill/language.py), shared with GRPO's `language` reward;
# re-exported here so the filter's callers keep their imports.
from distill.language import detect_language, prose, script_weights  # noqa: F401
from distill.language import prompt_language as _prompt_language
from distill.recipe import DedupConfig
from distill.verify import extract_answer
from teacher.filter.decontaminate import Decontaminator
from teacher.filter.dedup import exact_duplicates, near_duplicates

Row = dict[str, Any]
Step = Callable[[list[Row]], list[str | None]]


def problem_text(row: Row) -> str:
    """The problem as the user posed it: the `problem` column, else the last user message."""
    if isinstance(row.get("problem"), str):
        return row["problem"]
    users = [m.get("content") or "" for m in row.get("messages") or [] if m.get("role") == "user"]
    return users[-1] if users else ""


def truncated(rows: list[Row]) -> list[str | None]:
    return ["finish_reason=length" if row.get("finish_reason") == "length" else None for row in rows]


def token_length(low: int | None, high: int | None) -> Step:
    def step(rows: list[Row]) -> list[str | None]:
        reasons: list[str | None] = []
        for row in rows:
            tokens = row.get("completion_tokens") or 0
            if low is not None and tokens < low:
                reasons.append(f"completion_tokens={tokens} < {low}")
            elif high is not None and tokens > high:
                reasons.append(f"completion_tokens={tokens} > {high}")
            else:
                reasons.append(None)
        return reasons

    return step


def think_format_problem(completion: str, fallback: str, code_language: str | None = None) -> str | None:
    """What is wrong with a reasoning trace's shape, or None. ``code_language``: a code row's final answer is
    a fenced block of that language (distill.verify.extract_code), not a boxed answer.

    A bare ``</think>`` is accepted: templates such as DeepSeek-R1's put the opening tag in the prompt.
    """
    opens, closes = completion.count("<think>"), completion.count("</think>")
    if closes == 0:
        return "unclosed <think>" if opens else "no <think> block"
    if opens > 1 or closes > 1:
        return "several think blocks"
    if opens and completion.find("<think>") > completion.find("</think>"):
        return "</think> before <think>"
    inside = completion[
        completion.find("<think>") + len("<think>") if opens else 0 : completion.find("</think>")
    ]
    if not inside.strip():
        return "empty reasoning"
    if code_language is not None:
        from distill.verify.code import extract_code

        return None if extract_code(completion, code_language) is not None else "no code block after </think>"
    if extract_answer(completion, fallback) is None:
        return "no final answer after </think>"
    return None


def _code_language(row: dict) -> str | None:
    """A row with tests is a code row: its language (python unless it says)."""
    return (row.get("language") or "python") if row.get("tests") not in (None, "", [], {}) else None


def think_format(fallback: str) -> Step:
    return lambda rows: [
        think_format_problem(row["completion"], fallback, _code_language(row)) for row in rows
    ]


def repetition_ratio(text: str, ngram: int) -> float:
    """Share of word n-grams that repeat an earlier one: ~0 for prose, near 1 for a generation loop."""
    tokens = text.lower().split()
    if len(tokens) < ngram + 1:
        return 0.0
    grams = list(zip(*(tokens[i:] for i in range(ngram)), strict=False))
    return 1.0 - len(set(grams)) / len(grams)


def repetition(max_ratio: float, ngram: int) -> Step:
    def step(rows: list[Row]) -> list[str | None]:
        ratios = [repetition_ratio(row["completion"], ngram) for row in rows]
        return [f"repeated {ngram}-grams {r:.2f} > {max_ratio}" if r > max_ratio else None for r in ratios]

    return step


def pass_rates(rows: list[Row]) -> dict[str, float]:
    """Share of correct samples per prompt, over every sample the teacher drew that has a verdict."""
    total: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    for row in rows:
        if row["correct"] is None:  # no reference answer: neither right nor wrong
            continue
        total[row["prompt_id"]] += 1
        correct[row["prompt_id"]] += bool(row["correct"])
    return {prompt: correct[prompt] / total[prompt] for prompt in total}


def pass_rate_band(rates: dict[str, float], low: float, high: float) -> Step:
    def step(rows: list[Row]) -> list[str | None]:
        out: list[str | None] = []
        for row in rows:
            rate = rates[row["prompt_id"]]
            out.append(None if low <= rate <= high else f"pass rate {rate:.2f} outside [{low}, {high}]")
        return out

    return step


def no_reference(rows: list[Row]) -> list[str | None]:
    """Rows nothing can judge (no reference answer, no trusted verdict): correctness cannot keep them."""
    return [
        row.get("verify_reason") or "no reference answer" if row["correct"] is None else None for row in rows
    ]


def incorrect(rows: list[Row]) -> list[str | None]:
    return [None if row["correct"] else row.get("verify_reason") or "incorrect" for row in rows]


def decontaminate(index: Decontaminator) -> Step:
    def step(rows: list[Row]) -> list[str | None]:
        matches = index.match_many([problem_text(row) for row in rows])
        return [None if match is None else str(match) for match in matches]

    return step


def _trace_text(row: Row) -> str:
    return f"{problem_text(row)}\n{row['completion']}"


def _name(row: Row) -> str:
    return f"{row['prompt_id']}/{row['sample_idx']}"


def exact_dup(rows: list[Row]) -> list[str | None]:
    firsts = exact_duplicates([_trace_text(row) for row in rows])
    return [None if first is None else f"same as {_name(rows[first])}" for first in firsts]


def near_dup(cfg: DedupConfig) -> Step:
    def step(rows: list[Row]) -> list[str | None]:
        groups = [" ".join(str(row.get("answer") or "").split()) for row in rows]  # code rows: none
        found = near_duplicates(
            [_trace_text(row) for row in rows], groups, cfg.threshold, cfg.ngram, cfg.num_perm
        )
        return [None if other is None else f"near {_name(rows[other])}" for other in found]

    return step


def keep_per_prompt(k: int, policy: str) -> Step:
    """At most k rows per prompt: the first k samples, or the k shortest completions (ties: sample order)."""

    def step(rows: list[Row]) -> list[str | None]:
        groups: dict[str, list[int]] = defaultdict(list)
        for index, row in enumerate(rows):
            groups[row["prompt_id"]].append(index)
        keep: set[int] = set()
        for members in groups.values():
            if policy == "shortest":
                ordered = sorted(members, key=lambda i: (len(rows[i]["completion"]), rows[i]["sample_idx"]))
            else:
                ordered = sorted(members, key=lambda i: rows[i]["sample_idx"])
            keep.update(ordered[:k])
        return [None if index in keep else f"over cap of {k} ({policy})" for index in range(len(rows))]

    return step


def language_problem(problem: str, completion: str, min_share: float) -> str | None:
    """Why the reasoning is not in the prompt's language, or None (also when that cannot be told)."""
    script, wanted = _prompt_language(problem)
    scripts = script_weights(completion)
    if script and sum(scripts.values()) >= _MIN_LETTERS:
        share = scripts[script] / sum(scripts.values())
        if share < min_share:
            return f"{share:.0%} of the reasoning in the prompt's script ({script.lower()})"
    found = detect_language(completion) if wanted else None
    return f"reasoning in {found}, prompt in {wanted}" if found and found != wanted else None


def language(min_share: float) -> Step:
    return lambda rows: [language_problem(problem_text(r), r["completion"], min_share) for r in rows]
