"""Comparison table (md/csv/json) across models and the release gate."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from distill.runs import atomic_write_json, atomic_write_text


def comparison_markdown(rows: list[dict[str, Any]], extraction: str) -> str:
    if not rows:
        return "_no results_\n"
    samples = rows[0]["samples_per_problem"]
    lines = [
        f"| model | task | pass@1 | 95% CI | pass@{samples} | problems | samples/problem |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        interval = (
            "n/a" if row["ci95"] is None else f"[{100 * row['ci95'][0]:.1f}, {100 * row['ci95'][1]:.1f}]"
        )
        lines.append(
            f"| {row['model']} | {row['task']} | {100 * row['pass_at_1']:.1f}% | "
            f"{interval} | {100 * row[f'pass_at_{samples}']:.1f}% | "
            f"{row['problems']} | {samples} |"
        )
    first = rows[0]
    lines += [
        "",
        f"pass@1 = mean over problems of the share of {samples} samples answered correctly "
        f"(temperature {first['temperature']}, top_p {first['top_p']}, max {first['max_tokens']} new tokens). "
        "95% CI = pass@1 +/- 1.96 x standard error over problems.",
        f"Answer extraction: {extraction}.",
    ]
    return "\n".join(lines) + "\n"


def write_comparison(rows: list[dict[str, Any]], out_dir: Path, extraction: str) -> list[Path]:
    md, js, cs = out_dir / "comparison.md", out_dir / "comparison.json", out_dir / "comparison.csv"
    atomic_write_text(md, comparison_markdown(rows, extraction))
    atomic_write_json(js, rows)
    buffer = io.StringIO()
    flat = [{**r, "ci95": "" if r["ci95"] is None else f"{r['ci95'][0]}-{r['ci95'][1]}"} for r in rows]
    writer = csv.DictWriter(buffer, fieldnames=list(flat[0]))
    writer.writeheader()
    writer.writerows(flat)
    atomic_write_text(cs, buffer.getvalue())
    return [md, js, cs]


def release_gate(
    rows: list[dict[str, Any]],
    students: list[str],
    teacher_label: str | None,
    task: str,
    min_score: float,
    require_beats_teacher: bool,
) -> dict[str, Any]:
    """Decide per student whether it may ship: score >= min_score and (optionally) CI above the teacher's."""
    by_model = {r["model"]: r for r in rows if r["task"] == task}
    teacher = by_model.get(teacher_label) if teacher_label else None
    decisions = {}
    for name in students:
        row = by_model.get(name)
        reasons = []
        if row is None:
            reasons.append(f"no result on {task}")
        else:
            if row["pass_at_1"] < min_score:
                reasons.append(f"pass@1 {row['pass_at_1']:.3f} < min_score {min_score}")
            if require_beats_teacher and not _ci_above(row, teacher):
                reasons.append("95% CI is missing, or overlaps or is below the teacher's")
        decisions[name] = {"ship": not reasons, "reasons": reasons}
    return {
        "task": task,
        "min_score": min_score,
        "require_beats_teacher": require_beats_teacher,
        "decisions": decisions,
    }


def _ci_above(row: dict[str, Any], teacher: dict[str, Any] | None) -> bool:
    if teacher is None:
        return False
    if row["ci95"] is None or teacher["ci95"] is None:
        return False
    return row["ci95"][0] > teacher["ci95"][1]


def write_gate(gate: dict[str, Any], path: Path) -> Path:
    atomic_write_json(path, gate)
    return path
