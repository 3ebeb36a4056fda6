"""The recipe's phases as one graph: which model sampled which traces, which students they trained, which
student started from which, each model's held-out pass@1 and its paired difference against the model it came
from. Read from the manifest alone (the recipe snapshot, the filter and eval metrics), for the run report and
`distill status` (there only where a recipe has more than one phase: a grpo stage, rounds, or a student
started from another)."""

from __future__ import annotations

from html import escape
from typing import Any

from distill.report.cells import pct, table

GRPO = "grpo"
STUDENT = "student:"


def multi_phase(recipe: dict[str, Any]) -> bool:
    students = recipe.get("students") or []
    return bool(recipe.get("grpo") or recipe.get("rounds") or any(s.get("init") for s in students))


def lineage_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model or trace node, in run order: node, what it is, what it came from, pass@1 (first
    eval task), the paired difference against its origin and that difference's 95% interval."""
    recipe = manifest.get("recipe") or {}
    stages = manifest.get("stages") or {}
    evaluated = (stages.get("eval") or {}).get("metrics") or {}
    task = ((recipe.get("eval") or {}).get("tasks") or [None])[0]
    scores = {r["model"]: r for r in evaluated.get("rows") or [] if r.get("task") == task}
    diffs = {(d["student"], d["versus"]): d for d in evaluated.get("differences") or [] if d["task"] == task}
    rows: list[dict[str, Any]] = []
    if recipe.get("grpo"):
        teacher = next((r for label, r in scores.items() if label.startswith("teacher (")), None)
        rows.append(_row("grpo", f"GRPO of {recipe['grpo']['model']}", teacher, None))
    sampler = (recipe.get("teacher") or {}).get(
        "model"
    ) or f"traces file {(recipe.get('filter') or {}).get('traces')}"
    rows.append(_traces("filter", sampler, stages.get("filter")))
    for rnd in recipe.get("rounds") or []:
        rows.append(
            _traces(f"filter:{rnd['name']}", rnd["teacher"]["model"], stages.get(f"filter:{rnd['name']}"))
        )
    for student in recipe.get("students") or []:
        name, method = student["name"], student.get("method", "sft")
        start = f"{STUDENT}{student['init']}" if student.get("init") else student["model"]
        on = f"traces of {'filter:' + student['traces'] if student.get('traces') else 'filter'}"
        what = f"{method} from {start}" + ("" if method == "grpo" else f" on {on}")
        versus = diffs.get((name, "init" if student.get("init") else "base"))
        rows.append(_row(f"sft:{name}", what, scores.get(name), versus))
    return [{**row, "task": task} for row in rows]


def _row(node: str, what: str, score: dict | None, diff: dict | None) -> dict[str, Any]:
    return {
        "node": node,
        "what": what,
        "pass_at_1": score["pass_at_1"] if score else None,
        "difference": diff["difference"] if diff else None,
        "ci95": diff["ci95"] if diff else None,
        "versus": f"{diff['versus']}: {diff['reference']}" if diff else None,
    }


def _traces(node: str, sampler: str, record: dict | None) -> dict[str, Any]:
    metrics = (record or {}).get("metrics") or {}
    kept = f": {metrics['rows_out']:,} of {metrics['rows_in']:,} kept" if "rows_out" in metrics else ""
    sampled = f"sampled by {sampler}" if not sampler.startswith("traces file") else sampler
    return _row(node, f"traces {sampled}{kept}", None, None)


def _points(row: dict[str, Any]) -> str:
    if row["difference"] is None:
        return ""
    low, high = row["ci95"] or (None, None)
    interval = f" [{100 * low:+.1f}, {100 * high:+.1f}]" if low is not None else ""
    return f"{100 * row['difference']:+.1f}{interval} vs {row['versus']}"


def lineage_text(rows: list[dict[str, Any]]) -> str:
    """The graph as `distill status` prints it, below the stage table."""
    task = rows[0]["task"] if rows else None
    lines = [
        f"phases (held-out pass@1 on {task}; paired difference in points against the model it came from):"
    ]
    width = max((len(r["node"]) for r in rows), default=0)
    for row in rows:
        score = "" if row["pass_at_1"] is None else f"  {100 * row['pass_at_1']:.1f}%"
        lines.append(f"  {row['node'].ljust(width)}  {row['what']}{score}  {_points(row)}".rstrip())
    return "\n".join(lines)


def lineage_section(rows: list[dict[str, Any]]) -> str:
    """The graph as a report section."""
    if not rows:
        return (
            '<section id="phases"><h2>Phases</h2><p class=muted>No students and no grpo stage.</p></section>'
        )
    body = [[escape(r["node"]), escape(r["what"]), pct(r["pass_at_1"]), escape(_points(r))] for r in rows]
    head = ["node", "what it is", f"pass@1 % ({rows[0]['task']})", "vs the model it came from"]
    return (
        '<section id="phases"><h2>Phases</h2><p class=muted>Which model sampled which traces, which students '
        "they trained and which student started from which; held-out pass@1 and the paired difference (points, "
        f"95% CI) against the model each came from.</p>{table(head, body)}</section>"
    )
