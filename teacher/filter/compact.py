"""What the whole-set filters and the report keep of each row: a few short columns, never its text.

A streamed filter (teacher.filter.stream) keeps, per verified row, its prompt id and sample index, its
verdict, the first row-level filter that removed it, a 16-byte key of its normalised trace (exact dedup), its
near-dedup group key, lengths, and the few report fields. The set-level filters then run over these columns
in the stage's order; near dedup alone reads texts again (``signatures``: MinHash signatures of the rows
still kept, computed where the texts are).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from distill.recipe import FilterConfig
from teacher.filter.dedup import NearDuplicates, exact_key
from teacher.filter.steps import problem_text

Row = dict[str, Any]
State = dict[str, list]
STATE_COLUMNS = (
    "prompt_id",
    "sample_idx",
    "correct",
    "verify_reason",
    "removed_by",
    "removed_detail",
    "exact_key",
    "near_group",
    "chars",
    "words",
    "tokens",
    "no_finish",
    "code_reason",
    "tests_passed",
    "source_correct",
    "problem_head",
)
_HEAD = 160  # characters of a contaminated problem the report shows
# near dedup's signatures of the rows asked for, in row order (computed where the texts are)
Signatures = Callable[[set[int]], Iterator[tuple[int, Any]]]


def trace_text(row: Row) -> str:
    """What dedup compares: the problem and the completion (teacher.filter.dedup says why both)."""
    return f"{problem_text(row)}\n{row['completion']}"


def near_group(row: Row) -> str:
    return " ".join(str(row.get("answer") or "").split())  # code rows: none


def state_of(rows: list[Row]) -> State:
    """The compact columns of verified rows (``removed_by``: the row-level filter that removed it, if any)."""
    state: State = {column: [] for column in STATE_COLUMNS}
    for row in rows:
        tokens = row.get("completion_tokens")
        removed = row.get("removed_by")
        values = (
            str(row["prompt_id"]),
            row["sample_idx"],
            row["correct"],
            row["verify_reason"],
            removed,
            row.get("removed_detail"),
            exact_key(trace_text(row)),
            near_group(row),
            len(row["completion"]),
            len(row["completion"].split()),
            tokens if isinstance(tokens, int) else None,
            row.get("finish_reason") is None,
            row.get("code_reason"),
            row.get("tests_passed"),
            row.get("source_correct") if isinstance(row.get("source_correct"), bool) else None,
            problem_text(row)[:_HEAD] if removed == "contaminated" else None,
        )
        for column, value in zip(STATE_COLUMNS, values, strict=True):
            state[column].append(value)
    return state


class Funnel:
    """Applies filters to the rows still kept (indexes into the state), counting each one's removals."""

    def __init__(self, size: int, removed_by: list, removed_detail: list) -> None:
        self.kept = list(range(size))
        self.removed_by, self.removed_detail = removed_by, removed_detail
        self.steps: list[dict] = []

    def apply(self, name: str, reasons: list[str | None], seconds: float) -> None:
        survivors = []
        for index, reason in zip(self.kept, reasons, strict=True):
            if reason is None:
                survivors.append(index)
            else:
                self.removed_by[index], self.removed_detail[index] = name, reason
        self.steps.append(
            {
                "filter": name,
                "rows_in": len(self.kept),
                "removed": len(self.kept) - len(survivors),
                "rows_out": len(survivors),
                "seconds": round(seconds, 3),
            }
        )
        self.kept = survivors


def decide(
    state: State,
    cfg: FilterConfig,
    row_filters: list[str],
    seconds: dict[str, float],
    signatures: Signatures,
) -> tuple[list, list, list[dict]]:
    """Final (removed_by, removed_detail, funnel) of every row: the row-level filters' verdicts as recorded,
    then correctness, pass-rate band, exact and near dedup and the per-prompt cap over the compact columns."""
    size = len(state["prompt_id"])
    funnel = Funnel(size, [None] * size, [None] * size)
    by, detail = state["removed_by"], state["removed_detail"]
    for name in row_filters:
        funnel.apply(
            name, [detail[i] if by[i] == name else None for i in funnel.kept], seconds.get(name, 0.0)
        )
    correct, reason = state["correct"], state["verify_reason"]
    if cfg.correctness and any(value is None for value in correct):
        _timed(funnel, "no_reference_answer", lambda kept: [
            reason[i] or "no reference answer" if correct[i] is None else None for i in kept
        ])  # fmt: skip
    if cfg.correctness:
        _timed(
            funnel, "incorrect", lambda kept: [None if correct[i] else reason[i] or "incorrect" for i in kept]
        )
    if cfg.pass_rate_band:
        _timed(funnel, "pass_rate_band", lambda kept: _band(state, kept, *cfg.pass_rate_band))
    if cfg.dedup.exact:
        _timed(funnel, "exact_duplicate", lambda kept: _exact(state, kept))
    if cfg.dedup.near:
        _timed(funnel, "near_duplicate", lambda kept: _near(state, kept, cfg, signatures))
    if cfg.keep_per_prompt:
        _timed(
            funnel,
            "over_per_prompt_cap",
            lambda kept: _cap(state, kept, cfg.keep_per_prompt, cfg.keep_policy),
        )
    return funnel.removed_by, funnel.removed_detail, funnel.steps


def _timed(funnel: Funnel, name: str, step: Callable[[list[int]], list[str | None]]) -> None:
    started = time.perf_counter()
    reasons = step(funnel.kept)
    funnel.apply(name, reasons, time.perf_counter() - started)


def pass_rates(state: State) -> dict[str, float]:
    """Share of correct samples per prompt, over every verified sample with a verdict (steps.pass_rates)."""
    total: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for prompt, correct in zip(state["prompt_id"], state["correct"], strict=True):
        if correct is None:
            continue
        total[prompt] += 1
        right[prompt] += bool(correct)
    return {prompt: right[prompt] / total[prompt] for prompt in total}


def _band(state: State, kept: list[int], low: float, high: float) -> list[str | None]:
    rates = pass_rates(state)
    out: list[str | None] = []
    for i in kept:
        rate = rates[state["prompt_id"][i]]
        out.append(None if low <= rate <= high else f"pass rate {rate:.2f} outside [{low}, {high}]")
    return out


def _name(state: State, index: int) -> str:
    return f"{state['prompt_id'][index]}/{state['sample_idx'][index]}"


def _exact(state: State, kept: list[int]) -> list[str | None]:
    first: dict[bytes, int] = {}
    out: list[str | None] = []
    for i in kept:
        key = state["exact_key"][i]
        earlier = first.get(key)
        out.append(None if earlier is None else f"same as {_name(state, earlier)}")
        first.setdefault(key, i)
    return out


def _near(state: State, kept: list[int], cfg: FilterConfig, signatures: Signatures) -> list[str | None]:
    index = NearDuplicates(cfg.dedup.threshold, cfg.dedup.ngram, cfg.dedup.num_perm)
    found: dict[int, int | None] = {}
    for i, values in signatures(set(kept)):  # in row order
        found[i] = index.check_signature(i, values, state["near_group"][i])
    return [None if found[i] is None else f"near {_name(state, found[i])}" for i in kept]


def _cap(state: State, kept: list[int], k: int, policy: str) -> list[str | None]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i in kept:
        groups[state["prompt_id"][i]].append(i)
    keep: set[int] = set()
    sample, chars = state["sample_idx"], state["chars"]
    for members in groups.values():
        if policy == "shortest":
            ordered = sorted(members, key=lambda i: (chars[i], sample[i]))
        else:
            ordered = sorted(members, key=lambda i: sample[i])
        keep.update(ordered[:k])
    return [None if i in keep else f"over cap of {k} ({policy})" for i in kept]


def source_verdicts(state: State, column: str | None) -> dict[str, Any] | None:
    """How the source's own verdicts compare with ours (re-verified) or how many were taken on trust."""
    judged = [i for i, value in enumerate(state["source_correct"]) if value is not None]
    if not judged or not column:
        return None
    reason, correct, theirs = state["verify_reason"], state["correct"], state["source_correct"]
    trusted = sum(reason[i] == "source verdict" for i in judged)
    checked = [i for i in judged if reason[i] != "source verdict" and correct[i] is not None]
    agree = sum(correct[i] == theirs[i] for i in checked)
    return {"column": column, "agree": agree, "disagree": len(checked) - agree, "trusted": trusted}
