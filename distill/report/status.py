"""`distill status RECIPE`: the report's stage table in the terminal, from the manifest and the partial
folders only (fast; no model loads). Exit status 0 when every stage is done (or up to date), 1 when a stage
failed, 3 when one is partial (running or killed), 4 when stages are not started or out of date."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from distill.report.collect import Planned, overall_state, stage_rows

EXIT = {"done": 0, "failed": 1, "running or interrupted": 3, "incomplete": 4, "empty": 4}


def status_rows(root: Path, planned: list[Planned]) -> tuple[list[dict[str, Any]], str, int]:
    """(a row per stage node, the run's overall state, the exit status) for the run in ``root``."""
    from distill.report.collect import read_json
    from distill.runs import MANIFEST

    manifest = read_json(root / MANIFEST) or {"stages": {}}
    rows = stage_rows(root, manifest, planned, None, time.time())
    state = overall_state(rows)
    return rows, state, EXIT[state]


def status_text(root: Path, rows: list[dict[str, Any]], state: str) -> str:
    """The rows as the terminal table `distill status` prints."""
    header = ("stage", "state", "wall s", "produced", "detail")
    lines = [header]
    for row in rows:
        produced = ", ".join(f"{_num(v)} {label}" for label, v in row["produced"])
        detail = row.get("error") or row.get("progress") or ""
        seconds = "-" if row.get("seconds") is None else f"{row['seconds']:,.1f}"
        lines.append((row["name"], row["state"], seconds, produced or "-", detail[:100]))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in lines
    )
    return f"{root}: {state}\n{text}{_phases(root)}"


def _phases(root: Path) -> str:
    """A recipe of several phases (grpo, rounds, a student started from another): its graph, below."""
    from distill.report.collect import read_json
    from distill.report.lineage import lineage_rows, lineage_text, multi_phase
    from distill.runs import MANIFEST

    manifest = read_json(root / MANIFEST) or {}
    if not multi_phase(manifest.get("recipe") or {}):
        return ""
    return "\n\n" + lineage_text(lineage_rows(manifest))


def status_table(root: Path, planned: list[Planned]) -> tuple[str, int]:
    """(the table as text, the exit status) for the run in ``root``."""
    rows, state, code = status_rows(root, planned)
    return status_text(root, rows, state), code


def _num(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)
