"""Stage `publish`: render ``release/`` -- exactly what is uploaded -- then push it to the Hugging Face Hub.

``release/<student>/`` holds a student's model files (hard links to the trained weights: a 140 GB student is
not copied), its model card and the comparison chart; ``release/<recipe>-traces/`` the filtered trace
dataset (parquet with the verifier's verdict columns) and its card; ``release/release.json`` the plan: target
repos, files, sizes and sha256. The gate decides which students ship; ``release.force`` (``distill publish
--force``) pushes the others too, and their cards say they did not pass and why. ``release.dry_run`` stops
after rendering and prints the plan.

Pushing goes through ``distill.publish.hub`` (huggingface_hub's ``create_repo`` + ``upload_folder``): transient
failures are retried, and a rerun after a failure uploads only what the Hub does not have yet. The dataset
is pushed first, so that a model card's link to it never dangles.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.models import hub_id
from distill.publish import cards
from distill.publish.hub import check_repo_id, check_token, push_folder
from distill.rounds import round_recipe, traces_node
from distill.runs import atomic_write_json, atomic_write_text
from distill.secrets import redact, secret_values
from distill.stages import StageResult

_MODEL_FILES = ("*.safetensors", "*.json", "*.txt", "*.model", "*.jinja", "*.tiktoken")
# Trainer bookkeeping that may sit beside the weights: never part of a release.
_NOT_RELEASED = {
    "training_args.bin",
    "trainer_state.json",
    "train_metrics.json",
    "optimizer.pt",
    "scheduler.pt",
}
PLACEHOLDER_NAMESPACE = "<release.namespace>"


@dataclass
class Release:
    """One repo to push: its id, type, local folder, and the gate's decision for a student."""

    name: str
    repo_id: str
    repo_type: str
    folder: Path
    gate: dict[str, Any] | None = None


def dataset_repo_name(recipe) -> str:
    return recipe.release.dataset_name or f"{recipe.name}-traces"


def _repo_id(recipe, name: str) -> str:
    return f"{recipe.release.namespace or PLACEHOLDER_NAMESPACE}/{name}"


def check_release(recipe) -> str | None:
    """Preflight of the publish stage: repo ids are valid and, unless a dry run, a token the Hub accepts.
    Returns a note for the preflight summary."""
    cfg = recipe.release
    names = [s.name for s in recipe.students] + (
        [dataset_repo_name(recipe)] if _pushes_dataset(recipe) else []
    )
    if not names:
        return None
    if cfg.namespace is None:
        if cfg.dry_run:
            return "publish: dry run (release.namespace not set)"
        raise DistillError(
            "release.namespace: not set; give the Hub user or organisation to push to (release.namespace=my-org) "
            "or only render the release: `distill publish RECIPE --dry-run` (release.dry_run=true)"
        )
    for name in names:
        check_repo_id(f"{cfg.namespace}/{name}", "release.namespace" if name == names[0] else "release")
    if cfg.dry_run:
        return f"publish: dry run to {cfg.namespace}"
    return f"publish: as {check_token()} to {cfg.namespace} ({'private' if cfg.private else 'public'})"


def _pushes_dataset(recipe) -> bool:
    return recipe.release.push_dataset and recipe.has_filter()


def publish(recipe, run, out_dir: Path, benchmarks: dict[str, dict] | None = None) -> StageResult:
    """Stage entry point: render every release, then push them unless ``release.dry_run``. ``benchmarks``:
    each eval task's Hub dataset for the model-index (default: the registry's, ``distill.benchmarks``)."""
    if benchmarks is None:
        from distill.benchmarks import hub_ids

        benchmarks = hub_ids()
    cfg = recipe.release
    eval_dir = run.root / "eval"
    rows = json.loads((eval_dir / "comparison.json").read_text())["rows"]
    decisions = json.loads((eval_dir / "gate.json").read_text())["decisions"]
    secrets = secret_values(recipe.model_dump(mode="json"))
    releases = []
    if _pushes_dataset(recipe):
        releases.append(_render_dataset(recipe, run, out_dir, secrets))
    dataset_id = releases[0].repo_id if releases else None
    for student in recipe.students:
        decision = decisions.get(student.name, {"ship": False, "reasons": ["not evaluated"]})
        if not decision["ship"] and not cfg.force:
            print(
                f"[distill] publish: {student.name} held back by the gate: {'; '.join(decision['reasons'])}"
            )
            continue
        release = Release(
            student.name, _repo_id(recipe, student.name), "model", out_dir / student.name, decision
        )
        card = _card(recipe, run, student, rows, benchmarks, decision, dataset_id)
        render_model_folder(
            run.root / "students" / student.name / "final", release.folder, redact(card, secrets)
        )
        shutil.copy2(eval_dir / "comparison.png", release.folder / "comparison.png")
        releases.append(release)
    plan = _write_plan(releases, out_dir)
    _print_plan(plan, cfg.dry_run)
    pushed = [] if cfg.dry_run else [_push(recipe, run, release) for release in releases]
    metrics = {
        "decisions": decisions,
        "released": [r.name for r in releases if r.repo_type == "model"],
        "dataset": dataset_id,
        "dry_run": cfg.dry_run,
        "pushed": pushed,
    }
    return StageResult([out_dir / "release.json", *(r.folder for r in releases)], metrics)


def render_model_folder(model_dir: Path, out_dir: Path, card: str) -> Path:
    """The model files (hard-linked when possible) and README.md, written to a temp folder then renamed."""
    if not model_dir.is_dir():
        raise DistillError(f"{model_dir}: the trained model folder is missing; rerun `distill sft`")
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for pattern in _MODEL_FILES:
        for path in sorted(model_dir.glob(pattern)):
            if path.name not in _NOT_RELEASED:
                _link_or_copy(path, tmp / path.name)
    if not any(tmp.glob("*.safetensors")):
        raise DistillError(f"{model_dir}: no *.safetensors weights to release; rerun `distill sft`")
    atomic_write_text(tmp / "README.md", card)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)


def _card(recipe, run, student, rows, benchmarks, decision, dataset_id) -> str:
    if student.traces:  # a later round's traces: that round's sampler (as written), prompts and filter;
        rnd = next(r for r in recipe.rounds if r.name == student.traces)
        recipe = round_recipe(recipe, rnd).model_copy(update={"teacher": rnd.teacher})
        dataset_id = None  # the pushed trace dataset is the first round's
    teacher = recipe.teacher.model if recipe.teacher else f"unknown (traces from {recipe.filter.traces})"
    filter_metrics = run.record(traces_node(student)).get("metrics", {})
    source = filter_metrics.get("source")
    datasets = [d for d in (dataset_id, source and source.get("dataset")) if d]
    lineage = {
        "teacher": teacher,
        **({"trace round": student.traces} if student.traces else {}),
        "teacher backend": recipe.teacher.backend if recipe.teacher else "n/a",
        "prompts": recipe.data.source if recipe.data else recipe.filter.traces,
        **({"trace data": _trace_data_line(source)} if source else {}),
        **(
            {"training dataset": f"[{dataset_id}](https://huggingface.co/datasets/{dataset_id})"}
            if dataset_id
            else {}
        ),
        "traces": f"{filter_metrics.get('rows_in')} sampled, {filter_metrics.get('rows_out')} kept after filtering",
        "recipe": f"{recipe.name} (sha256 {recipe.digest()})",
        "training": _training_line(student, run.record(f"sft:{student.name}").get("metrics", {})),
    }
    method = cards.method_facts(student, run.record(f"sft:{student.name}").get("metrics", {}))
    lineage.update({k.replace("_", " "): v for k, v in method.items()})
    return cards.model_card(
        _repo_id(recipe, student.name),
        base_model=hub_id(student.model),
        teacher=teacher,
        rows=[row for row in rows if row["model"] == student.name],
        benchmarks=benchmarks,
        lineage=lineage,
        comparison_md=(run.root / "eval" / "comparison.md").read_text(),
        license=recipe.release.license,
        datasets=datasets,
        gate=decision,
        method=method,
        reproduce={
            "command": run.manifest.get("command") or f"distill run {recipe.name}.yaml",
            "recipe": recipe.model_dump(mode="json", exclude_defaults=True),
            "recipe_hash": recipe.digest(),
            "versions": run.manifest.get("versions", {}),
        },
    )


def _render_dataset(recipe, run, out_dir: Path, secrets: list[str]) -> Release:
    """The filtered traces as a dataset repo: kept rows (default config), every verified row (``all``)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    name = dataset_repo_name(recipe)
    filter_dir = run.root / "filter"
    folder = out_dir / name
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "data").mkdir(parents=True)
    (folder / "all").mkdir()
    verified = pq.read_table(filter_dir / "verified.parquet")
    kept = verified.filter(pc.field("kept"))
    pq.write_table(kept, folder / "data" / "train-00000-of-00001.parquet")
    _link_or_copy(filter_dir / "verified.parquet", folder / "all" / "train-00000-of-00001.parquet")
    shutil.copy2(filter_dir / "report.png", folder / "filter_report.png")
    teacher = recipe.teacher.model if recipe.teacher else f"unknown (traces from {recipe.filter.traces})"
    source = run.record("filter").get("metrics", {}).get("source") or {}
    card = cards.dataset_card(
        _repo_id(recipe, name),
        license=recipe.release.license,
        teacher=teacher,
        prompts=recipe.data.source
        if recipe.data
        else _trace_data_line(source)
        if source
        else str(recipe.filter.traces),
        sampling=recipe.teacher.sampling.model_dump(mode="json") if recipe.teacher else None,
        report_md=(filter_dir / "report.md").read_text(),
        rows_kept=kept.num_rows,
        rows_all=verified.num_rows,
        recipe_hash=recipe.digest(),
        source_datasets=[source["dataset"]] if source.get("dataset") else None,
    )
    atomic_write_text(folder / "README.md", redact(card, secrets))
    return Release(name, _repo_id(recipe, name), "dataset", folder)


def _write_plan(releases: list[Release], out_dir: Path) -> dict[str, Any]:
    plan = {"repos": []}
    for release in releases:
        files = [
            {"path": str(p.relative_to(release.folder)), "bytes": p.stat().st_size, "sha256": _sha256(p)}
            for p in sorted(release.folder.rglob("*"))
            if p.is_file()
        ]
        plan["repos"].append(
            {
                "repo": release.repo_id,
                "type": release.repo_type,
                "folder": release.folder.name,
                "files": files,
            }
        )
    atomic_write_json(out_dir / "release.json", plan)
    return plan


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _print_plan(plan: dict[str, Any], dry_run: bool) -> None:
    verb = "would push" if dry_run else "pushing"
    for repo in plan["repos"]:
        size = sum(f["bytes"] for f in repo["files"])
        print(
            f"[distill] publish: {verb} {repo['type']} repo {repo['repo']} ({len(repo['files'])} files, {size / 1e6:.1f} MB)"
        )
        for item in repo["files"]:
            print(f"    {item['path']}  {item['bytes']:,} bytes")
    if dry_run:
        print("[distill] publish: dry run: nothing uploaded (release.dry_run)", flush=True)


def _push(recipe, run, release: Release) -> dict[str, Any]:
    cfg = recipe.release
    what = "trace dataset" if release.repo_type == "dataset" else f"student {release.name}"
    message = f"distill: {what} from run {recipe.name} (recipe sha256 {recipe.digest()})"
    description = redact(f"Command: {run.manifest.get('command') or 'distill run'}")
    result = push_folder(
        release.folder,
        release.repo_id,
        repo_type=release.repo_type,
        private=cfg.private,
        revision=cfg.revision,
        message=message,
        description=description,
    )
    print(f"[distill] publish: {release.repo_id} at {result['commit'][:12]} ({result['url']})", flush=True)
    return result


_TRAINERS = {"sft": "SFT", "on_policy": "DistillationTrainer (on-policy)", "kd": "GKDTrainer (KD, lmbda 0)"}


def _training_line(student, metrics: dict[str, Any]) -> str:
    """How the student was trained, as the sft stage recorded it (strategy, world size, LoRA save form)."""
    launch = student.launch
    world = metrics.get("world_size", launch.world_size)
    if student.method == "grpo":  # its knobs are its grpo options (the card's method lines say the rest)
        grpo = student.grpo_options()
        return (
            f"TRL GRPOTrainer, lr {grpo.learning_rate}, {grpo.num_generations} completions per prompt, "
            f"micro-batch {grpo.batch_size} x grad accum {grpo.gradient_accumulation_steps} x {world} "
            f"process(es) ({launch.strategy}), max_completion_length {grpo.longest_completion()}, "
            f"{metrics.get('steps', '?')} optimizer steps"
        )
    line = (
        f"TRL {_TRAINERS[student.method]}, lr {student.learning_rate}, {student.epochs} epochs, micro-batch {student.batch_size} x "
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
