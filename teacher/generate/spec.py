"""Stage `generate` as the pipeline sees it: its node, fingerprint, run and preflight (see distill.stages)."""

from __future__ import annotations

from pathlib import Path

from distill.config.base import runtime_free
from distill.grpo_teacher import with_trained_teacher
from distill.recipe import Recipe
from distill.runs import Run, source_digest
from distill.stages import PreflightReport, Stage, StageResult, StageSpec


def plan(recipe: Recipe) -> list[StageSpec]:
    if not recipe.has_generate():
        return []
    config = {
        "data": runtime_free(recipe.data),
        "teacher": runtime_free(recipe.teacher),  # endpoints and request pacing are runtime-only
        "source_digest": source_digest(recipe.data.source),
    }
    upstream = ["grpo"] if recipe.grpo_teacher() else []
    return [StageSpec("generate", "generate", config, upstream, run)]


def run(recipe: Recipe, run: Run, folder: Path) -> StageResult:
    from teacher.generate.stage import generate
    from teacher.shards import shard_paths

    metrics = generate(with_trained_teacher(recipe, run.root), run, folder)
    return StageResult([*shard_paths(folder), folder / "prompts.parquet"], metrics)


def check(recipe: Recipe, report: PreflightReport) -> None:
    from teacher.preflight import check_teacher

    check_teacher(recipe.teacher)


def check_inputs(recipe: Recipe, report: PreflightReport) -> None:
    from teacher.preflight import check_prompts

    report.note(check_prompts(recipe, report))


STAGE = Stage(
    "generate", plan, check, check_inputs, missing="it needs teacher and data sections, and no filter.traces"
)
