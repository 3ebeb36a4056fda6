"""Stage `sft` as the pipeline sees it: one node per student, with fingerprint, run and preflight (see
distill.stages), and the follower nodes of a multi-node run."""

from __future__ import annotations

from pathlib import Path

from distill.config.base import runtime_free
from distill.errors import DistillError
from distill.recipe import Recipe, StudentConfig
from distill.runs import Run, fingerprint
from distill.stages import PreflightReport, Stage, StageResult, StageSpec


def plan(recipe: Recipe) -> list[StageSpec]:
    # runtime_free: a node's rank and address, checkpoint/log cadence and trackers are left out, so every node
    # of a multi-node run computes the same partial folder and changing them resumes instead of retraining.
    return [
        StageSpec(f"sft:{s.name}", f"students/{s.name}", runtime_free(s), ["filter"], _runner(s.name))
        for s in recipe.students
    ]


def _runner(name: str):
    def run(recipe: Recipe, run: Run, folder: Path) -> StageResult:
        import torch

        from distill.models import resolve_model
        from distill.training import FINAL
        from student.plan import check_fits
        from student.sft import train_student
        from student.trainer import METRICS_FILE

        cfg = next(s for s in recipe.students if s.name == name)
        # `single` on a machine without CUDA trains in host memory: GPU sizes say nothing about it.
        on_gpus = cfg.launch.strategy != "single" or torch.cuda.is_available()
        warning = check_fits(cfg) if on_gpus else None
        if warning:
            print(f"[distill] warning: {warning}", flush=True)
        metrics = train_student(resolve_model(cfg.model), run.root / "filter" / "train.parquet", folder, cfg)
        return StageResult([folder / FINAL, folder / METRICS_FILE], metrics)

    return run


def check(recipe: Recipe, report: PreflightReport) -> None:
    from student.preflight import check_students

    check_students(recipe.students, report)


def followers(recipe: Recipe) -> list[StudentConfig]:
    """Students this process joins as node 1..M-1 of a multi-node run (launch.node_rank > 0)."""
    return [s for s in recipe.students if s.launch.node_rank > 0]


def follow(recipe: Recipe, students: list[StudentConfig], only: str | None) -> None:
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
        follow_job(Run.work_dir(folder, fingerprint(runtime_free(student), [filter_id])), student)


STAGE = Stage("sft", plan, check, missing="it has no students")
