"""Stage `publish`: render ``release/<student>/`` -- exactly what is (or would be) uploaded to the Hub.

The folder holds the model files and a model card whose front matter carries the eval results
(`model-index`) and whose body states the lineage: teacher, trace data, filter counts, recipe hash.
Secrets never reach it: the card is built only from the recipe, the manifest metrics and eval rows.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from distill.models import hub_id
from distill.runs import atomic_write_text

_MODEL_FILES = ("*.safetensors", "*.json", "*.txt", "*.model", "*.jinja")


def render_release(
    student: str, model_dir: Path, out_dir: Path, *, base_model: str | None, card: dict[str, Any]
) -> Path:
    """Copy the model files and write README.md; written to a temp folder then renamed into place."""
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for pattern in _MODEL_FILES:
        for path in model_dir.glob(pattern):
            if path.name != "training_args.bin":
                shutil.copy2(path, tmp / path.name)
    atomic_write_text(tmp / "README.md", model_card(student, base_model, **card))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def model_card(
    student: str,
    base_model: str | None,
    *,
    teacher: str,
    rows: list[dict[str, Any]],
    lineage: dict[str, Any],
    comparison_md: str,
    license: str,
    datasets: list[str] | None = None,
) -> str:
    results = [
        {
            "task": {"type": "text-generation", "name": row["task"]},
            "dataset": {"name": row["task"], "type": row["task"]},
            "metrics": [
                {
                    "type": "pass@1",
                    "value": row["pass_at_1"],
                    "name": f"pass@1 (n={row['samples_per_problem']})",
                }
            ],
        }
        for row in rows
        if row["model"] == student
    ]
    # The Hub checks base_model against its repositories: only a real Hub id goes there.
    front = {
        "license": license,
        **({"base_model": base_model} if base_model else {}),
        **({"datasets": datasets} if datasets else {}),  # Hub ids of the trace sets trained on
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["distill", "reasoning", "sft"],
        "model-index": [{"name": student, "results": results}],
    }
    lineage_lines = "\n".join(f"- **{key}**: {value}" for key, value in lineage.items())
    return (
        f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n\n"
        f"# {student}\n\n"
        f"Distilled from **{teacher}** with [distill](https://pypi.org/project/distill/): the teacher sampled "
        "reasoning traces, a verifier kept the correct ones, and this model was fine-tuned on them with TRL.\n\n"
        f"## Evaluation\n\n{comparison_md}\n"
        f"## Lineage\n\n{lineage_lines}\n"
    )


def _training_line(student, metrics: dict[str, Any]) -> str:
    """How the student was trained, as the sft stage recorded it (strategy, world size, LoRA save form)."""
    launch = student.launch
    world = metrics.get("world_size", launch.world_size)
    line = (
        f"TRL SFT, lr {student.learning_rate}, {student.epochs} epochs, micro-batch {student.batch_size} x "
        f"grad accum {student.gradient_accumulation_steps} x {world} process(es) ({launch.strategy}), "
        f"max_length {student.max_length}, packing {'on' if metrics.get('packing') else 'off'}, "
        f"{metrics.get('steps', '?')} optimizer steps, {metrics.get('too_long', 0)} over-long examples "
        f"{'truncated' if student.too_long == 'truncate' else 'dropped'}"
    )
    if student.lora is not None:
        kind = "QLoRA" if student.lora.quantize_4bit else "LoRA"
        saved = (
            "merged into the base weights"
            if student.lora.save == "merged"
            else "adapter only (load it on the base model)"
        )
        line += f"; {kind} r={student.lora.r} alpha={student.lora.alpha}, {saved}"
    return line


def _trace_data_line(source: dict[str, Any]) -> str:
    """Where external traces came from: the source, the exact revision read, split, format, rows read."""
    where = source["dataset"] or source["traces"]
    details = [
        "Hub dataset" if source["dataset"] else "local file or folder",
        f"revision {source.get('revision') or 'not resolved (read offline)'}" if source["dataset"] else None,
        f"config {source['config']}" if source.get("config") else None,
        f"split {source['split']}" if source.get("split") else None,
        f"format {source['format']}",
        f"{source['source_rows']} source rows read",
    ]
    return f"{where} ({', '.join(d for d in details if d)})"


def publish(recipe, run, out_dir: Path) -> tuple[dict[str, Any], list[Path]]:
    """Stage entry point: render a release folder for every student the gate lets ship."""
    import json

    eval_dir = run.root / "eval"
    rows = json.loads((eval_dir / "comparison.json").read_text())["rows"]
    gate = json.loads((eval_dir / "gate.json").read_text())
    comparison_md = (eval_dir / "comparison.md").read_text()
    filter_metrics = run.record("filter").get("metrics", {})
    outputs, decisions = [], {}
    for student in recipe.students:
        decision = gate["decisions"].get(student.name, {"ship": False, "reasons": ["not evaluated"]})
        decisions[student.name] = decision
        if not decision["ship"]:
            print(
                f"[distill] publish: {student.name} held back by the gate: {'; '.join(decision['reasons'])}"
            )
            continue
        teacher = recipe.teacher.model if recipe.teacher else f"unknown (traces from {recipe.filter.traces})"
        source = filter_metrics.get("source")
        lineage = {
            "teacher": teacher,
            "teacher backend": recipe.teacher.backend if recipe.teacher else "n/a",
            "prompts": recipe.data.source if recipe.data else recipe.filter.traces,
            **({"trace data": _trace_data_line(source)} if source else {}),
            "traces": f"{filter_metrics.get('rows_in')} sampled, {filter_metrics.get('rows_out')} kept after filtering",
            "recipe": f"{recipe.name} (sha256 {recipe.digest()})",
            "training": _training_line(student, run.record(f"sft:{student.name}").get("metrics", {})),
        }
        card = {
            "teacher": teacher,
            "rows": rows,
            "lineage": lineage,
            "comparison_md": comparison_md,
            "license": recipe.release.license,
            "datasets": [source["dataset"]] if source and source.get("dataset") else None,
        }
        target = out_dir / student.name
        render_release(
            student.name,
            run.root / "students" / student.name / "final",
            target,
            base_model=hub_id(student.model),
            card=card,
        )
        outputs.append(target)
    return {"decisions": decisions, "released": [p.name for p in outputs]}, outputs
