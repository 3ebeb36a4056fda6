"""GRPO's per-step curves: R1's response-length figure and its "aha moment" as numbers (the rate of reflection
phrases), the reward, and what dynamic sampling did; kept in the manifest (a light module: the run report
reads it without importing a trainer)."""

from __future__ import annotations

from typing import Any

# Per-step curves kept in the manifest (R1's response-length figure and its "aha moment" as numbers, and what
# dynamic sampling did): manifest name -> log key.
CURVES = {
    "reward": "reward",
    "response_length": "completions/mean_length",
    "reflection_rate": "aha/reflection_rate",
    "zero_variance_share": "dynamic_sampling/zero_variance_share",
    "extra_prompts": "dynamic_sampling/extra_prompts",
}


def curves(history: list[dict[str, Any]]) -> dict[str, list]:
    """Step -> value lists of the logged CURVES (those the run logged), from the whole log history."""
    steps = [entry for entry in history if "reward" in entry and "step" in entry]
    out: dict[str, list] = {"step": [entry["step"] for entry in steps]}
    for name, key in CURVES.items():
        if any(key in entry for entry in steps):
            out[name] = [None if entry.get(key) is None else round(entry[key], 4) for entry in steps]
    return out


def curves_history(table: dict[str, list]) -> list[dict[str, Any]]:
    """The manifest's curves back as log entries (step + the trainer's log keys), for the run report."""
    rows = []
    for index, step in enumerate(table.get("step") or []):
        entry: dict[str, Any] = {"step": step}
        for name, key in CURVES.items():
            values = table.get(name)
            if values is not None and values[index] is not None:
                entry[key] = values[index]
        rows.append(entry)
    return rows
