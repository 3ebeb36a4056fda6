"""The filter stage's report: report.json (read by other code), report.md (read by people), report.png.

report.json keeps the keys other code reads (rows_in, rows_out, removed, prompts_in, prompts_out,
pass_rate, answer_extraction) and adds the funnel in filter order, verification reasons, the per-prompt
pass-rate histogram, completion lengths before/after and, when on, what decontamination matched.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from distill.recipe import FilterConfig
from distill.runs import atomic_path, atomic_write_json, atomic_write_text
from teacher.filter.compact import State, pass_rates
from teacher.filter.decontaminate import Decontaminator

_BINS = 10
_EXAMPLES = 20


def _lengths(state: State, unit: str, kept_only: bool = False) -> list[int]:
    values = state["tokens"] if unit == "completion_tokens" else state["words"]
    if kept_only:
        return [value for value, by in zip(values, state["removed_by"], strict=True) if by is None]
    return list(values)


def length_stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"rows": 0}
    ordered = sorted(values)
    return {
        "rows": len(values),
        "mean": round(statistics.fmean(values), 1),
        "min": ordered[0],
        "p50": ordered[len(ordered) // 2],
        "p90": ordered[int(len(ordered) * 0.9)],
        "max": ordered[-1],
    }


def histogram(rates: list[float]) -> list[dict[str, Any]]:
    counts = Counter(min(int(rate * _BINS), _BINS - 1) for rate in rates)
    return [
        {"range": f"{b / _BINS:.1f}-{(b + 1) / _BINS:.1f}", "prompts": counts.get(b, 0)} for b in range(_BINS)
    ]


def _contamination(state: State, decontaminator: Decontaminator) -> dict[str, Any]:
    removed = [i for i, by in enumerate(state["removed_by"]) if by == "contaminated"]
    prompt, detail = state["prompt_id"], state["removed_detail"]
    by_benchmark = Counter(detail[i].split("#", 1)[0] for i in removed)
    examples, seen = [], set()
    for i in removed:
        if prompt[i] not in seen and len(examples) < _EXAMPLES:
            seen.add(prompt[i])
            examples.append(
                {"prompt_id": prompt[i], "matched": detail[i], "problem": state["problem_head"][i]}
            )
    return {
        "benchmarks": decontaminator.sizes,
        "ngram": decontaminator.ngram,
        "fuzzy": decontaminator.fuzzy,
        "rows_removed_by_benchmark": dict(by_benchmark.most_common()),
        "prompts_removed": len({prompt[i] for i in removed}),
        "examples": examples,
    }


def build_report(
    state: State,
    funnel: list[dict],
    cfg: FilterConfig,
    verify_seconds: float,
    decontaminator: Decontaminator | None = None,
) -> dict[str, Any]:
    """The report of a filter run from its compact columns (teacher.filter.compact), ``removed_by`` final."""
    rates = pass_rates(state)
    size = len(state["prompt_id"])
    judged = [correct for correct in state["correct"] if correct is not None]
    reasons = Counter(state["verify_reason"])
    fast = reasons["fast-path"] + reasons["wrong (fast-path)"]
    unit = "completion_tokens" if all(t is not None for t in state["tokens"]) else "words"
    notes = []
    if cfg.drop_truncated and any(state["no_finish"]):
        notes.append("some rows have no finish_reason: truncation could not be checked for them")
    if cfg.language_consistency:
        notes.append("language: texts with fewer than 20 letters outside math are not judged (kept)")
    kept_prompts = {p for p, by in zip(state["prompt_id"], state["removed_by"], strict=True) if by is None}
    report = {
        "rows_in": size,
        "rows_out": sum(by is None for by in state["removed_by"]),
        "removed": {step["filter"]: step["removed"] for step in funnel},
        "prompts_in": len(set(state["prompt_id"])),
        "prompts_out": len(kept_prompts),
        # None when nothing could be judged (a source without reference answers)
        "pass_rate": round(sum(judged) / len(judged), 4) if judged else None,
        "judged": len(judged),
        "answer_extraction": f"last \\boxed{{}} in the final answer, fallback={cfg.answer_fallback}",
        "order": [step["filter"] for step in funnel],
        "funnel": funnel,
        "verification": {
            "seconds": round(verify_seconds, 2),
            "workers": cfg.workers,
            "hard_timeout_s": cfg.verify_timeout,
            "reasons": dict(reasons.most_common()),
            "fast_path_share": round(fast / size, 4) if size else 0.0,
        },
        "pass_rate_per_prompt": {
            "histogram": histogram(list(rates.values())),
            "never_solved": sum(rate == 0 for rate in rates.values()),
            "always_solved": sum(rate == 1 for rate in rates.values()),
        },
        "lengths": {
            "unit": unit,
            "before": length_stats(_lengths(state, unit)),
            "after": length_stats(_lengths(state, unit, kept_only=True)),
        },
        "notes": notes,
    }
    if decontaminator is not None:
        report["contamination"] = _contamination(state, decontaminator)
    return report


def _table(header: list[str], rows: list[list[Any]], numeric: bool = True) -> list[str]:
    """A markdown table; the first column left-aligned, the others right-aligned when ``numeric``."""
    return [
        "| " + " | ".join(header) + " |",
        "| --- |" + (" ---: |" if numeric else " --- |") * (len(header) - 1),
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]


def render_markdown(report: dict[str, Any]) -> str:
    ver, rates, lengths = report["verification"], report["pass_rate_per_prompt"], report["lengths"]
    stats = ("rows", "mean", "p50", "p90", "max")
    rate = report["pass_rate"]
    rate_text = f"{rate:.1%}" if rate is not None else "n/a (no reference answers)"
    lines = [
        "# Filter report",
        "",
        f"{report['rows_in']} traces of {report['prompts_in']} prompts in, {report['rows_out']} rows of "
        f"{report['prompts_out']} prompts kept. Teacher pass rate {rate_text}; answer: "
        f"{report['answer_extraction']}.",
        *_source_lines(report.get("source")),
        "",
        "## Filters, in the order applied",
        "",
        *_table(
            ["filter", "rows in", "removed", "rows out", "seconds"],
            [
                [s["filter"], s["rows_in"], s["removed"], s["rows_out"], s["seconds"]]
                for s in report["funnel"]
            ],
        ),
        "",
        "## Verification",
        "",
        f"{ver['seconds']} s with {ver['workers']} worker(s), hard timeout {ver['hard_timeout_s']} s per "
        f"answer; fast path decided {ver['fast_path_share']:.1%}.",
        "",
        *_table(["verdict", "rows"], [list(item) for item in ver["reasons"].items()]),
        "",
        "## Pass rate per prompt",
        "",
        f"Never solved: {rates['never_solved']}; always solved: {rates['always_solved']}.",
        "",
        *_table(["pass rate", "prompts"], [[b["range"], b["prompts"]] for b in rates["histogram"]]),
        "",
        f"## Completion length ({lengths['unit']})",
        "",
        *_table(
            ["", *stats],
            [[when, *(lengths[when].get(k, "-") for k in stats)] for when in ("before", "after")],
        ),
        *_contamination_lines(report.get("contamination")),
    ]
    if report["notes"]:
        lines += ["", "## Notes", "", *(f"- {note}" for note in report["notes"])]
    return "\n".join(lines) + "\n"


def _source_lines(source: dict[str, Any] | None) -> list[str]:
    """External traces: what was read, how, and every source item not turned into a trace, by reason."""
    if source is None:
        return []
    lines = ["", "## Source", "", f"{source['summary']}.", ""]
    if source["columns_not_read"]:
        lines += [f"Columns not read: {', '.join(source['columns_not_read'])}.", ""]
    verdicts = source.get("source_verdicts")
    if verdicts:
        lines += [
            f"Source verdicts ({verdicts['column']}): {verdicts['agree']} agree with ours, "
            f"{verdicts['disagree']} disagree, {verdicts['trusted']} trusted unverified.",
            "",
        ]
    not_used = source["not_used"]
    cells = [[why, count] for why, count in not_used.items()] or [["(none)", 0]]
    return [*lines, *_table(["source item not used", "count"], cells)]


def _contamination_lines(found: dict[str, Any] | None) -> list[str]:
    if found is None:
        return []
    method = f"{found['ngram']}-gram overlap" + (" + fuzzy pass" if found["fuzzy"] else "")
    removed = found["rows_removed_by_benchmark"]
    lines = [
        "",
        "## Decontamination",
        "",
        f"Method: {method}; {found['prompts_removed']} prompts removed.",
        "",
        *_table(
            ["benchmark", "problems", "rows removed"],
            [[name, size, removed.get(name, 0)] for name, size in found["benchmarks"].items()],
        ),
    ]
    if found["examples"]:
        cells = [
            [e["prompt_id"], e["matched"], " ".join(e["problem"].replace("|", "/").split())]
            for e in found["examples"]
        ]
        lines += ["", *_table(["prompt", "matched", "problem"], cells, numeric=False)]
    return lines


def plot_report(report: dict[str, Any], state: State, path: Path) -> None:
    """Funnel, pass-rate histogram and length distributions in one PNG (Agg canvas, no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.2), layout="constrained")
    funnel_ax, rate_ax, length_ax = fig.subplots(1, 3)
    names = ["input", *report["order"]]
    counts = [report["rows_in"], *(step["rows_out"] for step in report["funnel"])]
    funnel_ax.barh(names[::-1], counts[::-1], color="tab:blue")
    funnel_ax.set(title="rows left after each filter", xlabel="rows")
    bins = report["pass_rate_per_prompt"]["histogram"]
    rate_ax.bar([b["range"] for b in bins], [b["prompts"] for b in bins], color="tab:green")
    rate_ax.tick_params(axis="x", labelrotation=45)
    rate_ax.set(title="teacher pass rate per prompt", xlabel="share of samples correct", ylabel="prompts")
    unit = report["lengths"]["unit"]
    before, after = _lengths(state, unit), _lengths(state, unit, kept_only=True)
    length_ax.hist(before, bins=40, alpha=0.5, label=f"before ({len(before)})", color="tab:gray")
    length_ax.hist(after, bins=40, alpha=0.7, label=f"after ({len(after)})", color="tab:orange")
    length_ax.set(title="completion length", xlabel=unit.replace("_", " "), ylabel="rows")
    length_ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def write_report(report: dict[str, Any], state: State, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "report.json", report)
    atomic_write_text(out_dir / "report.md", render_markdown(report))
    plot_report(report, state, out_dir / "report.png")
