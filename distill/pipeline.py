"""Runs a recipe's stages in order, skipping those whose config and inputs are unchanged.

Stage graph: [grpo ->] generate -> filter -> sft:<student> (one per student) -> eval -> publish. With
`teacher.model: grpo`, generate samples from (and eval evaluates) the checkpoint the grpo stage trained.
This is the only module (with cli.py) that imports the stage packages.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill import preflight as checks
from distill.errors import DistillError
from distill.grpo_teacher import checkable, with_trained_teacher
from distill.recipe import Recipe
from distill.runs import Run, file_digest, fingerprint

STAGE_NAMES = ("grpo", "generate", "filter", "sft", "eval", "publish")


@dataclass
class StageSpec:
    name: str
    folder: str
    config: Any
    upstream: list[str] = field(default_factory=list)
    body: Callable[[Recipe, Run, Path], tuple[dict, list[Path]]] | None = None


# Student knobs that do not change the trained model: where this node sits in the rendezvous, how often to
# checkpoint or log, and where to report. Left out of the fingerprint so that every node of a multi-node run
# computes the same partial folder and changing them resumes instead of retraining.
_SFT_RUNTIME_KEYS = ("save_steps", "save_total_limit", "logging_steps", "report_to")
_LAUNCH_RUNTIME_KEYS = ("node_rank", "main_ip", "main_port", "gpu_memory_gb")


def _sft_config(student) -> dict[str, Any]:
    config = {k: v for k, v in student.model_dump(mode="json").items() if k not in _SFT_RUNTIME_KEYS}
    config["launch"] = {k: v for k, v in config["launch"].items() if k not in _LAUNCH_RUNTIME_KEYS}
    return config


def _grpo_config(recipe: Recipe) -> dict[str, Any]:
    grpo = recipe.grpo
    # Like the students' runtime keys, plus verify_workers: speed only, never the trained weights.
    config = {k: v for k, v in _sft_config(grpo).items() if k != "verify_workers"}
    data = grpo.data or recipe.data
    return {**config, "data": data.model_dump(mode="json"), "source_digest": _source_digest(data.source)}


def _grpo_spec(recipe: Recipe) -> list[StageSpec]:
    return [StageSpec("grpo", "teacher", _grpo_config(recipe), [], _grpo_body)] if recipe.grpo else []


def plan(recipe: Recipe) -> list[StageSpec]:
    """The stages this recipe has: generate needs a teacher (and no filter.traces), filter a source of
    traces, sft students; an eval-only recipe (eval.models) is just eval and publish."""
    sft = [
        StageSpec(f"sft:{s.name}", f"students/{s.name}", _sft_config(s), ["filter"], _sft_body(s.name))
        for s in recipe.students
    ]
    eval_config = {
        "eval": recipe.section("eval"),
        "teacher": recipe.section("teacher"),
        "students": [{"name": s.name, "model": s.model} for s in recipe.students],
    }
    generate = []
    if recipe.has_generate():
        generate_config = {
            "data": recipe.section("data"),
            "teacher": _generate_teacher_config(recipe),
            "source_digest": _source_digest(recipe.data.source),
        }
        from_grpo = ["grpo"] if recipe.grpo_teacher() else []
        generate = [StageSpec("generate", "generate", generate_config, from_grpo, _generate_body)]
    filters = (
        [StageSpec("filter", "filter", _filter_config(recipe), [s.name for s in generate], _filter_body)]
        if recipe.has_filter()
        else []
    )
    eval_upstream = [*(["grpo"] if recipe.grpo_teacher() else []), *(s.name for s in sft)]
    return [
        *_grpo_spec(recipe),
        *generate,
        *filters,
        *sft,
        StageSpec("eval", "eval", eval_config, eval_upstream, _eval_body),
        StageSpec("publish", "release", recipe.section("release"), ["eval"], _publish_body),
    ]


# Where and how hard to send requests, never what is sampled: left out of the generate fingerprint so that a
# fleet whose endpoints change between allocations (or a retuned concurrency) resumes instead of restarting.
_OPENAI_RUNTIME_KEYS = (
    "base_url",
    "concurrency",
    "max_retries",
    "retry_backoff",
    "request_timeout",
    "bench_after",
    "bench_seconds",
)


def _generate_teacher_config(recipe: Recipe) -> dict[str, Any]:
    teacher = recipe.section("teacher")
    openai = {k: v for k, v in teacher["openai"].items() if k not in _OPENAI_RUNTIME_KEYS}
    return {**teacher, "openai": openai}


def generate_target(recipe: Recipe) -> tuple[Run, str, Path]:
    """(the run, read only; the generate stage's fingerprint; its folder) - what chunked generation, the
    merge and `--status` share with a plain `distill generate`, so all of them use one partial folder."""
    spec = next((s for s in plan(recipe) if s.name == "generate"), None)
    if spec is None:
        raise DistillError(f"this recipe has no generate stage ({_MISSING_SECTION['generate']})")
    run = Run(recipe.run_path(), write=False)
    fp = fingerprint(spec.config, [run.completion_id(u) for u in spec.upstream])
    return run, fp, run.root / spec.folder


def _source_digest(source: str) -> str | None:
    path = Path(source)
    try:
        if path.is_dir():  # a `datasets` folder: its files' names, sizes and times (hashing GBs is too slow)
            files = sorted(p for p in path.rglob("*") if p.is_file())
            listing = [(str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
            return fingerprint({"files": listing}, [])
        return file_digest(path) if path.is_file() else None
    except OSError:  # unreadable: the preflight names the file and the problem
        return None


def _filter_config(recipe: Recipe) -> dict[str, Any]:
    # A traces file and local benchmark files are inputs: editing them reruns the stage. `workers` only
    # changes speed, so it is left out and changing it does not.
    config = {k: v for k, v in recipe.section("filter").items() if k != "workers"}
    files = [recipe.filter.traces, *(b.source for b in recipe.filter.decontaminate.benchmarks)]
    return {**config, "file_digests": [_source_digest(f) for f in files if f]}


# Stage bodies: thin adapters from the recipe to each stage's function. Imports are lazy so that
# `distill validate` and `--help` never pay for torch/transformers.


def _grpo_body(recipe: Recipe, run: Run, folder: Path):
    from distill.models import resolve_model
    from student.launch import run_launched
    from teacher.grpo.stage import train_teacher

    cfg = recipe.grpo
    metrics = train_teacher(resolve_model(cfg.model), cfg, cfg.data or recipe.data, folder, run_launched)
    return metrics, [folder / "final", folder / "grpo_metrics.json", folder / "prompts.parquet"]


def _generate_body(recipe: Recipe, run: Run, folder: Path):
    from teacher.generate.stage import generate
    from teacher.shards import shard_paths

    metrics = generate(with_trained_teacher(recipe, run.root), run, folder)
    return metrics, [*shard_paths(folder), folder / "prompts.parquet"]


def _filter_body(recipe: Recipe, run: Run, folder: Path):
    from teacher.filter.stage import run_filter

    source = Path(recipe.filter.traces) if recipe.filter.traces else run.root / "generate"
    report = run_filter(source, folder, recipe.filter)
    summary = {
        k: report[k] for k in ("rows_in", "rows_out", "removed", "prompts_in", "prompts_out", "pass_rate")
    }
    if "source" in report:  # external traces: what was read, for the model card's lineage
        keys = ("traces", "dataset", "revision", "split", "config", "format", "source_rows", "not_used")
        summary["source"] = {k: report["source"][k] for k in keys}
    outputs = ["train.parquet", "verified.parquet", "report.json", "report.md", "report.png"]
    return summary, [folder / name for name in outputs]


def _sft_body(name: str):
    def body(recipe: Recipe, run: Run, folder: Path):
        from distill.models import resolve_model
        from student.plan import check_fits
        from student.sft import train_student

        cfg = next(s for s in recipe.students if s.name == name)
        import torch

        # `single` on a machine without CUDA trains in host memory: GPU sizes say nothing about it.
        on_gpus = cfg.launch.strategy != "single" or torch.cuda.is_available()
        warning = check_fits(cfg) if on_gpus else None
        if warning:
            print(f"[distill] warning: {warning}", flush=True)
        metrics = train_student(resolve_model(cfg.model), run.root / "filter" / "train.parquet", folder, cfg)
        return metrics, [folder / "final", folder / "train_metrics.json"]

    return body


def _eval_body(recipe: Recipe, run: Run, folder: Path):
    from eval.stage import evaluate

    return evaluate(with_trained_teacher(recipe, run.root), run.root, folder)


def _publish_body(recipe: Recipe, run: Run, folder: Path):
    from distill.publish.stage import publish
    from eval.benchmarks import BENCHMARKS

    # The model card's model-index names each benchmark by its Hub dataset (eval owns that registry).
    benchmarks = {
        b.name: {"hub_id": b.hub_id, "config": b.hub_config, "split": b.hub_split}
        for b in BENCHMARKS.values()
    }
    return publish(recipe, run, folder, benchmarks)


def preflight(recipe: Recipe, stages: set[str]) -> checks.PreflightReport:
    """Every cheap check for ``stages``, cheapest first, before anything is written (see distill.preflight).
    Raises a one-line DistillError at the first problem."""
    report = checks.PreflightReport(sorted(stages, key=STAGE_NAMES.index))
    if not stages:
        return report
    started = time.perf_counter()
    recipe = checkable(recipe)
    checks.check_run_dir(recipe.run_path())
    if "grpo" in stages:
        from teacher.grpo.stage import check_grpo_prompts

        checks.check_grpo(recipe)
        report.notes.append(check_grpo_prompts(recipe.grpo.data or recipe.data))
    teacher_config = checks.check_teacher(recipe) if "generate" in stages else None
    if "sft" in stages:
        checks.check_students(recipe.students)
    if "eval" in stages:
        from eval.preflight import check_eval

        check_eval(recipe)
    if "filter" in stages:
        from teacher.preflight import check_filter_inputs

        note = check_filter_inputs(recipe.filter)
        if note:
            report.notes.append(note)
    if "publish" in stages:
        from distill.publish.stage import check_release

        note = check_release(recipe)
        if note:
            report.notes.append(note)
    if "generate" in stages:
        from teacher.preflight import check_prompts

        report.notes.append(check_prompts(recipe, teacher_config))
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def pending_stages(recipe: Recipe, only: str | None = None, force: tuple[str, ...] = ()) -> set[str]:
    """The stage families ``run_pipeline`` with these arguments will run rather than skip, read from the
    manifest without writing anything: a stage runs when forced, when it is not done with its current
    fingerprint, or when a stage it reads from runs (that gives its outputs a new completion id)."""
    run = Run(recipe.run_path(), write=False)
    running: set[str] = set()
    for spec in plan(recipe):
        family = spec.name.split(":")[0]
        if only and family != only:
            continue
        fp = fingerprint(spec.config, [run.completion_id(u) for u in spec.upstream])
        upstream_runs = any(u in running for u in spec.upstream)
        if family in force or spec.name in force or upstream_runs or not run.is_done(spec.name, fp):
            running.add(spec.name)
    return {name.split(":")[0] for name in running}


_MISSING_SECTION = {
    "grpo": "it has no grpo section",
    "generate": "it needs teacher and data sections, and no filter.traces",
    "filter": "it needs a teacher + data or filter.traces",
    "sft": "it has no students",
}


def run_pipeline(
    recipe: Recipe, only: str | None = None, force: tuple[str, ...] = (), command: str | None = None
) -> Run:
    """Run every stage (or just ``only``, whose upstream stages must be finished), honouring ``force``."""
    unknown = [f for f in force if f not in STAGE_NAMES and not f.startswith("sft:")]
    if unknown:
        raise DistillError(f"--force {unknown[0]!r}: expected one of {', '.join(STAGE_NAMES)}")
    followers = [s for s in recipe.students if s.launch.node_rank > 0]
    if followers:
        return _follow_students(recipe, followers, only)
    if only and not any(spec.name.split(":")[0] == only for spec in plan(recipe)):
        raise DistillError(
            f"this recipe has no {only} stage ({_MISSING_SECTION.get(only, 'see its sections')})"
        )
    preflight(recipe, pending_stages(recipe, only, force))  # before the run dir is created or touched
    run = Run(recipe.run_path(), recipe.model_dump(mode="json"), recipe.digest())
    if command:  # the exact command, for the model card's "how to reproduce" (secrets redacted)
        from distill.secrets import redact, secret_values

        run.manifest["command"] = redact(command, secret_values(run.manifest["recipe"]))
        run.save()
    specs = plan(recipe)
    for spec in specs:
        family = spec.name.split(":")[0]
        if only and family != only:
            continue
        missing = [u for u in spec.upstream if run.record(u).get("status") != "done"]
        if missing:
            raise DistillError(
                f"stage {spec.name} needs {missing[0]} first: run `distill {missing[0].split(':')[0]}` "
                "or `distill run`"
            )
        fp = fingerprint(spec.config, [run.completion_id(u) for u in spec.upstream])
        forced = family in force or spec.name in force
        if not forced and run.is_done(spec.name, fp):
            print(f"[distill] {spec.name}: up to date, skipped", flush=True)
            continue
        run_stage(run, spec, fp, recipe)
    return run


def _follow_students(recipe: Recipe, students: list, only: str | None) -> None:
    """Nodes 1..M-1 of a multi-node run join node 0's training; only node 0 writes the manifest."""
    from student.sft import follow_job

    if only != "sft":
        raise DistillError(
            "launch.node_rank > 0 is only for `distill sft` on the other nodes of a multi-node run"
        )
    run = Run(recipe.run_path(), write=False)  # read only: node 0 owns the manifest
    if not run.manifest_path.exists():
        raise DistillError(
            f"{run.manifest_path}: not found; start node 0 (node_rank 0) first, on a shared file system"
        )
    filter_id = run.completion_id("filter")
    for student in students:
        folder = recipe.run_path() / "students" / student.name
        follow_job(Run.work_dir(folder, fingerprint(_sft_config(student), [filter_id])), student)


def run_stage(run: Run, spec: StageSpec, fp: str, recipe: Recipe) -> None:
    print(f"[distill] {spec.name}: running", flush=True)
    started = time.time()
    # Inputs: the upstream stages' completion ids (which exact outputs this stage consumed).
    inputs = {u: run.completion_id(u) for u in spec.upstream}
    folder = run.begin(spec.name, fp, run.root / spec.folder, inputs)
    try:
        metrics, outputs = spec.body(recipe, run, folder)
    except BaseException as exc:
        run.fail(spec.name, f"{type(exc).__name__}: {exc}"[:500])
        raise
    run.finish(spec.name, outputs, metrics)
    print(f"[distill] {spec.name}: done in {time.time() - started:.0f}s", flush=True)
