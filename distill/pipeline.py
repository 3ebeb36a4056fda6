"""Runs a recipe's stages in order, skipping those whose config and inputs are unchanged.

The pipeline is a table of stages and one loop. Each stage package's ``spec.py`` says what its nodes are,
what their fingerprints are computed from, how they run and what they check first (distill.stages); this
module knows none of that. Stage graph: [grpo ->] generate -> filter -> sft:<student> (one per student) ->
eval -> publish. This is the only module (with cli.py and preflight.py) that imports the stage packages.
"""

from __future__ import annotations

import importlib
import time
from functools import cache
from pathlib import Path

from distill import preflight as checks
from distill.errors import DistillError
from distill.recipe import Recipe
from distill.runs import Run, fingerprint
from distill.stages import PreflightReport, Stage, StageSpec

# The stage table, in run order: the module of each stage package that defines its STAGE.
_STAGE_MODULES = (
    "teacher.grpo.spec",
    "teacher.generate.spec",
    "teacher.filter.spec",
    "student.spec",
    "eval.spec",
    "distill.publish.spec",
)
STAGE_NAMES = ("grpo", "generate", "filter", "sft", "eval", "publish")


@cache
def stages() -> tuple[Stage, ...]:
    return tuple(importlib.import_module(module).STAGE for module in _STAGE_MODULES)


def plan(recipe: Recipe) -> list[StageSpec]:
    """Every node this recipe has, in run order: the stage table's order, with a node moved after the nodes
    it reads from (a later trace round samples from a student, so its generate runs after that sft)."""
    return in_graph_order([spec for stage in stages() for spec in stage.plan(recipe)])


def in_graph_order(nodes: list[StageSpec]) -> list[StageSpec]:
    """``nodes`` in table order, each moved after its upstream nodes; a circle is a one-line error."""
    by_name = {node.name: node for node in nodes}
    ordered: list[StageSpec] = []
    placed: set[str] = set()
    path: list[str] = []

    def visit(node: StageSpec) -> None:
        if node.name in placed:
            return
        if node.name in path:
            # In the direction data flows: each node feeds the next.
            circle = " -> ".join(reversed([*path[path.index(node.name) :], node.name]))
            raise DistillError(
                f"the stage graph has a circle: {circle}; a round's teacher must be a model made before "
                "the students its traces train"
            )
        path.append(node.name)
        for name in node.upstream:
            if name in by_name:  # an upstream outside the plan is the run's "needs ... first" error
                visit(by_name[name])
        path.pop()
        placed.add(node.name)
        ordered.append(node)

    for node in nodes:
        visit(node)
    return ordered


def preflight(recipe: Recipe, families: set[str]) -> PreflightReport:
    """Every cheap check for the stage families about to run (see distill.preflight)."""
    return checks.preflight(recipe, list(stages()), families)


def generate_target(recipe: Recipe) -> tuple[Run, str, Path]:
    """(the run, read only; the generate stage's fingerprint; its folder) - what chunked generation, the
    merge and `--status` share with a plain `distill generate`, so all of them use one partial folder."""
    return stage_target(recipe, "generate")


def stage_target(recipe: Recipe, name: str) -> tuple[Run, str, Path]:
    """(the run, read only; stage ``name``'s fingerprint; its folder): what its chunks share with a plain
    run of the stage (generate, filter), so that all of them use one partial folder."""
    spec = next((s for s in plan(recipe) if s.name == name), None)
    if spec is None:
        raise DistillError(f"this recipe has no {name} stage ({_stage(name).missing})")
    run = Run(recipe.run_path(), write=False)
    fp = fingerprint(spec.config, [run.completion_id(u) for u in spec.upstream])
    return run, fp, run.root / spec.folder


def pending_stages(recipe: Recipe, only: str | None = None, force: tuple[str, ...] = ()) -> set[str]:
    """The stage families ``run_pipeline`` with these arguments will run rather than skip (``pending_nodes``)."""
    return {name.split(":")[0] for name in pending_nodes(recipe, only, force)}


def pending_nodes(recipe: Recipe, only: str | None = None, force: tuple[str, ...] = ()) -> set[str]:
    """The stage nodes ``run_pipeline`` with these arguments will run rather than skip, read from the
    manifest without writing anything: a stage runs when forced, when it is not done with its current
    fingerprint, or when a stage it reads from runs (that gives its outputs a new completion id)."""
    run = Run(recipe.run_path(), write=False)
    running: set[str] = set()
    for spec in plan(recipe):
        if only and spec.family != only:
            continue
        fp = fingerprint(spec.config, [run.completion_id(u) for u in spec.upstream])
        upstream_runs = any(u in running for u in spec.upstream)
        if _forced(spec, force) or upstream_runs or not run.is_done(spec.name, fp):
            running.add(spec.name)
    return running


def planned(recipe: Recipe) -> list:
    """The recipe's nodes with their current fingerprints, for the report and `distill status`."""
    from distill.report import Planned

    run = Run(recipe.run_path(), write=False)
    return [
        Planned(
            s.name,
            s.folder,
            fingerprint(s.config, [run.completion_id(u) for u in s.upstream]),
            tuple(s.upstream),
        )
        for s in plan(recipe)
    ]


def write_report(recipe: Recipe, since: float | None = None, record_hardware: bool = True) -> Path | None:
    """runs/<name>/report.html for the run as it stands (any state); None where there is no run yet or
    this is a follower node. A report that cannot be written is a warning, never the run's error."""
    from student.spec import followers

    root = recipe.run_path()
    if not (root / "manifest.json").exists() or followers(recipe):
        return None
    try:
        from distill.report import hardware
        from distill.report import write_report as write_page

        if record_hardware:
            run = Run(root, write=False)
            run.manifest["hardware"] = hardware()
            run.save()
        path = write_page(root, planned(recipe), since)
    except Exception as exc:  # the report must never hide what the stages did
        print(f"[distill] warning: report not written ({type(exc).__name__}: {exc})", flush=True)
        return None
    print(f"[distill] report: {path}", flush=True)
    return path


def run_pipeline(
    recipe: Recipe, only: str | None = None, force: tuple[str, ...] = (), command: str | None = None
) -> Run | None:
    """Run every stage (or just ``only``, whose upstream stages must be finished), honouring ``force``;
    then, finished or failed, write the run report (runs/<name>/report.html). A command the preflight
    refuses writes nothing, report included."""
    started = time.time()
    unknown = [f for f in force if f.split(":")[0] not in STAGE_NAMES]
    if unknown:
        raise DistillError(f"--force {unknown[0]!r}: expected one of {', '.join(STAGE_NAMES)}")
    from student.spec import follow, followers

    if followers(recipe):  # nodes 1..M-1 of a multi-node run join node 0's training
        return follow(recipe, followers(recipe), only)
    if only and not any(spec.family == only for spec in plan(recipe)):
        raise DistillError(f"this recipe has no {only} stage ({_stage(only).missing})")
    report = preflight(recipe, pending_stages(recipe, only, force))  # before the run dir is touched
    for line in report.unchecked:
        print(f"[distill] warning: not checked before starting: {line}", flush=True)
    run = Run(recipe.run_path(), recipe.model_dump(mode="json"), recipe.digest())
    try:
        _run_stages(recipe, run, only, force, command)
    finally:
        write_report(recipe, since=started)
    return run


def _run_stages(
    recipe: Recipe, run: Run, only: str | None, force: tuple[str, ...], command: str | None
) -> None:
    if command:  # the exact command, for the model card's "how to reproduce" (secrets redacted)
        from distill.secrets import redact, secret_values

        run.manifest["command"] = redact(command, secret_values(run.manifest["recipe"]))
        run.save()
    for spec in plan(recipe):
        if only and spec.family != only:
            continue
        missing = [u for u in spec.upstream if run.record(u).get("status") != "done"]
        if missing:
            raise DistillError(
                f"stage {spec.name} needs {missing[0]} first: run `distill {missing[0].split(':')[0]}` "
                "or `distill run`"
            )
        fp = fingerprint(spec.config, [run.completion_id(u) for u in spec.upstream])
        if not _forced(spec, force) and run.is_done(spec.name, fp):
            print(f"[distill] {spec.name}: up to date, skipped", flush=True)
            continue
        run_stage(run, spec, fp, recipe)


def run_stage(run: Run, spec: StageSpec, fp: str, recipe: Recipe) -> None:
    print(f"[distill] {spec.name}: running", flush=True)
    started = time.time()
    # Inputs: the upstream stages' completion ids (which exact outputs this stage consumed).
    inputs = {u: run.completion_id(u) for u in spec.upstream}
    folder = run.begin(spec.name, fp, run.root / spec.folder, inputs)
    try:
        result = spec.run(recipe, run, folder)
    except BaseException as exc:
        run.fail(spec.name, f"{type(exc).__name__}: {exc}"[:500])
        raise
    run.finish(spec.name, result.outputs, result.metrics)
    print(f"[distill] {spec.name}: done in {time.time() - started:.0f}s", flush=True)


def _forced(spec: StageSpec, force: tuple[str, ...]) -> bool:
    return spec.family in force or spec.name in force


def _stage(family: str) -> Stage:
    return next(s for s in stages() if s.family == family)
