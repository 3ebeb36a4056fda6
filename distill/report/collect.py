"""What the report shows, gathered from the run dir only: the manifest, the stage folders and what the
trainers logged. Nothing is recomputed here; every number the page prints comes from this dict.

Stage states: ``done``; ``skipped`` (done before this invocation and up to date); ``out of date`` (done with
another fingerprint than the recipe's now); ``partial`` (running, or killed, with its progress read from its
partial folder); ``failed`` (with its one-line error); ``not started``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.report.lineage import lineage_rows
from distill.report.traces import collect_nodes
from distill.runs import MANIFEST, Run


@dataclass(frozen=True)
class Planned:
    """A node of the recipe's stage graph as the report needs it (the pipeline builds these)."""

    name: str
    folder: str
    fingerprint: str | None = None
    upstream: tuple[str, ...] = ()


# What each stage family consumed and produced, as (label, metric key) pairs read from its manifest metrics.
_COUNTS = {
    "generate": (
        [("prompts", "prompts")],
        [("samples", "samples"), ("tokens generated", "completion_tokens")],
    ),
    "filter": ([("rows", "rows_in")], [("rows kept", "rows_out")]),
    "sft": ([("rows", "rows_in")], [("steps", "steps"), ("tokens trained", "tokens")]),
    "grpo": ([("prompts", "prompts")], [("steps", "steps")]),
    "eval": ([], []),
    "publish": ([], []),
}
TRAINING_FILES = {"sft": "train_metrics.json", "grpo": "grpo_metrics.json"}


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def collect(
    root: Path, planned: list[Planned] | None = None, since: float | None = None, now: float | None = None
) -> dict[str, Any]:
    """Every fact the page shows, for a run in any state (a missing file leaves its section out)."""
    now = time.time() if now is None else now
    manifest = read_json(root / MANIFEST) or {"stages": {}}
    planned = planned or [Planned(n, r.get("folder", n)) for n, r in manifest.get("stages", {}).items()]
    stages = stage_rows(root, manifest, planned, since, now)
    recipe = manifest.get("recipe") or {}
    facts: dict[str, Any] = {
        "name": recipe.get("name") or root.name,
        "root": str(root),
        "recipe": recipe,
        "recipe_hash": manifest.get("recipe_hash"),
        "command": manifest.get("command"),
        "versions": manifest.get("versions", {}),
        "hardware": manifest.get("hardware", {}),
        "created": manifest.get("created"),
        "stages": stages,
        "state": overall_state(stages),
        "started": min((s["started"] for s in stages if s.get("started")), default=None),
        "finished": max((s["finished"] for s in stages if s.get("finished")), default=None),
    }
    by_name = {s["name"]: s for s in stages}
    facts["generation"] = _generation(root, manifest, by_name.get("generate"))
    facts["filter"] = read_json(root / "filter" / "report.json") if _has(by_name, "filter") else None
    facts["traces"] = collect_nodes(root, stages, recipe)
    facts["phases"] = lineage_rows(manifest) if recipe.get("students") or recipe.get("grpo") else []
    facts["training"] = [_training(root, s) for s in stages if s["family"] in TRAINING_FILES]
    facts["eval"] = _eval(root) if _has(by_name, "eval") else None
    facts["release"] = read_json(root / "release" / "release.json") if _has(by_name, "publish") else None
    return facts


def _has(by_name: dict[str, dict], name: str) -> bool:
    return name in by_name and by_name[name]["state"] in ("done", "skipped", "out of date")


def stage_rows(
    root: Path, manifest: dict[str, Any], planned: list[Planned], since: float | None, now: float
) -> list[dict[str, Any]]:
    """One row per node; a done stage whose upstream is not done (or out of date) is out of date too: the
    next run redoes it."""
    rows: dict[str, dict[str, Any]] = {}
    for node in planned:
        row = stage_row(root, manifest, node, since, now)
        stale = [u for u in node.upstream if rows.get(u, {}).get("state") not in (None, "done", "skipped")]
        if row["state"] in ("done", "skipped") and stale:
            row["state"], row["progress"] = "out of date", f"reruns after {stale[0]}"
        rows[node.name] = row
    return list(rows.values())


def stage_row(
    root: Path, manifest: dict[str, Any], node: Planned, since: float | None, now: float
) -> dict[str, Any]:
    rec = manifest.get("stages", {}).get(node.name, {})
    family = node.name.split(":")[0]
    row: dict[str, Any] = {
        "name": node.name,
        "family": family,
        "folder": node.folder,
        "status": rec.get("status"),
        "started": rec.get("started"),
        "finished": rec.get("finished"),
        "seconds": rec.get("seconds"),
        "error": rec.get("error"),
        "metrics": rec.get("metrics", {}),
    }
    status = rec.get("status")
    work = Run.work_dir(root / node.folder, rec.get("fingerprint") or node.fingerprint or "")
    if status == "done":
        current = node.fingerprint is None or rec.get("fingerprint") == node.fingerprint
        before = since is not None and rec.get("finished") and _stamp(rec["finished"]) < since - 1
        row["state"] = "out of date" if not current else "skipped" if before else "done"
    elif status == "failed":
        row["state"] = "failed"
    elif status == "running" or (node.fingerprint and work.is_dir()):
        row["state"] = "partial"
        row["progress"] = progress(family, work, manifest.get("recipe") or {})
        if rec.get("started"):
            row["seconds"] = round(now - _stamp(rec["started"]), 2)
    else:
        row["state"] = "not started"
    consumed, produced = _COUNTS.get(family, ([], []))
    metrics = row["metrics"]
    row["consumed"] = [(label, metrics[key]) for label, key in consumed if metrics.get(key) is not None]
    row["produced"] = [(label, metrics[key]) for label, key in produced if metrics.get(key) is not None]
    if family == "eval" and metrics.get("rows"):
        row["produced"] = [("rows evaluated", len(metrics["rows"]))]
    if family == "publish" and "released" in metrics:
        row["produced"] = [("released", len(metrics["released"])), ("pushed", len(metrics.get("pushed", [])))]
    return row


def overall_state(stages: list[dict[str, Any]]) -> str:
    states = {s["state"] for s in stages}
    if not stages:
        return "empty"
    if "failed" in states:
        return "failed"
    if "partial" in states:
        return "running or interrupted"
    if states <= {"done", "skipped"}:
        return "done"
    return "incomplete"


def progress(family: str, work: Path, recipe: dict[str, Any]) -> str:
    """How far a running (or killed) stage got, read from its partial folder; no model is loaded."""
    if not work.is_dir():
        return "started (no partial folder)"
    if family == "generate":
        samples = sum(_parquet_rows(p) for p in work.glob("shard-*.parquet"))
        prompts = _parquet_rows(work / "prompts.parquet")
        per_prompt = (recipe.get("teacher") or {}).get("samples_per_prompt") or 1
        total = f" of {prompts * per_prompt:,}" if prompts else ""
        return f"{samples:,}{total} samples"
    if family in TRAINING_FILES:
        state = _last_trainer_state(work)
        if state is None:
            return "no checkpoint yet"
        return f"step {state.get('global_step', 0):,} of {state.get('max_steps', 0):,} (last checkpoint)"
    if family == "eval":
        done = sorted(p.parent.name for p in work.glob("*/results.json"))
        return f"{len(done)} model(s) evaluated" + (f": {', '.join(done)}" if done else "")
    return "started"


def _parquet_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    try:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # a shard being written right now
        return 0


def _last_trainer_state(folder: Path) -> dict[str, Any] | None:
    states = sorted(
        folder.glob("checkpoints/checkpoint-*/trainer_state.json"),
        key=lambda p: (
            int(p.parent.name.rsplit("-", 1)[-1]) if p.parent.name.rsplit("-", 1)[-1].isdigit() else -1
        ),
    )
    return read_json(states[-1]) if states else None


def _generation(root: Path, manifest: dict[str, Any], row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None or row["state"] not in ("done", "skipped", "out of date"):
        return None
    lengths: list[int] = []
    for shard in sorted((root / row["folder"]).glob("shard-*.parquet")):
        try:
            import pyarrow.parquet as pq

            lengths += [
                v or 0 for v in pq.read_table(shard, columns=["completion_tokens"]).column(0).to_pylist()
            ]
        except Exception:  # noqa: S112 - a shard without the column: no histogram from it
            continue
    backend = ((manifest.get("recipe") or {}).get("teacher") or {}).get("backend")
    return {"metrics": row["metrics"], "lengths": lengths, "backend": backend}


def _training(root: Path, row: dict[str, Any]) -> dict[str, Any]:
    """A training run's logged history: the final metrics file (the whole run, resumes included), else the
    newest checkpoint's trainer_state.json (a run still going or killed)."""
    folder = root / row["folder"]
    metrics = row.get("metrics") or {}
    name = TRAINING_FILES["grpo"] if metrics.get("method") == "grpo" else TRAINING_FILES[row["family"]]
    logged = read_json(folder / name) or {}
    history, source = logged.get("log_history"), name
    if not history and metrics.get("curves"):  # a GRPO run in context stages: the manifest keeps its curves
        from distill.grpo.curves import curves_history

        history, source = curves_history(metrics["curves"]), "the manifest's per-step curves"
    if not history:
        for candidate in [folder, *sorted(folder.parent.glob(f"{folder.name}.partial-*"))]:
            state = _last_trainer_state(candidate)
            if state and state.get("log_history"):
                history, source = state["log_history"], "checkpoints/*/trainer_state.json"
                break
    if not history:  # killed before its first checkpoint, or a method that only logs to TensorBoard
        history = tensorboard_history([folder, *sorted(folder.parent.glob(f"{folder.name}.partial-*"))])
        source = "TensorBoard events"
    return {
        "name": row["name"],
        "family": row["family"],
        "history": history or [],
        "source": source if history else None,
        "resumed_from": (row.get("metrics") or {}).get("resumed_from"),
    }


def tensorboard_history(folders: list[Path]) -> list[dict[str, Any]]:
    """The scalars transformers' TensorBoard callback wrote (``train/loss`` ...), as log-history entries
    (``{"step": 3, "loss": ...}``; float32, as TensorBoard stores them). Empty without tensorboard."""
    files = sorted(f for folder in folders for f in folder.rglob("events.out.tfevents.*"))
    if not files:
        return []
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return []
    by_step: dict[int, dict[str, Any]] = {}
    summary: dict[str, Any] = {}  # the end-of-training entry (train_runtime, train_loss ...) on its own
    for path in files:
        events = EventAccumulator(str(path), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags().get("scalars", []):
            key = tag.removeprefix("train/")
            for scalar in events.Scalars(tag):
                if key.startswith("train_") or key == "total_flos":
                    summary.update({"step": scalar.step, key: scalar.value})
                else:
                    by_step.setdefault(scalar.step, {"step": scalar.step})[key] = scalar.value
    return [by_step[step] for step in sorted(by_step)] + ([summary] if summary else [])


def _eval(root: Path) -> dict[str, Any] | None:
    comparison = read_json(root / "eval" / "comparison.json")
    if comparison is None:
        return None
    return {**comparison, "gate": read_json(root / "eval" / "gate.json")}


def _stamp(text: str) -> float:
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S%z"))
