"""Published figures beside our own: an eval row of a model in eval/reference.yaml (matched by Hub id) gets a
``reference`` entry with the published pass@1, where it came from, and whether it lies inside our 95% CI."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("reference.yaml")


@cache
def table() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(TABLE.read_text())


def published(model_id: str | None, task: str) -> dict[str, float] | None:
    """The published scores (fractions) of ``model_id`` on ``task``, or None. Hub ids match case-blind."""
    if not model_id:
        return None
    models = {name.lower(): tasks for name, tasks in table()["models"].items()}
    scores = models.get(model_id.strip().lower(), {}).get(task)
    return None if scores is None else {metric: value / 100 for metric, value in scores.items()}


def annotate(row: dict[str, Any], model_id: str | None) -> dict[str, Any]:
    """``row`` with ``reference`` set when its model and task have a published pass@1 (else unchanged)."""
    scores = published(model_id, row["task"])
    if not scores or "pass_at_1" not in scores or row.get("metric"):
        return row
    score, ci = scores["pass_at_1"], row.get("ci95")
    reference = {
        "model": model_id,
        "score": round(score, 4),
        "source": table()["source"],
        "settings": table()["settings"],
        "inside_ci95": None if ci is None else bool(ci[0] <= score <= ci[1]),
        "difference": round(row["pass_at_1"] - score, 4),
    }
    extra = {metric: round(value, 4) for metric, value in scores.items() if metric != "pass_at_1"}
    if extra:
        reference["other"] = extra
    return {**row, "reference": reference}
