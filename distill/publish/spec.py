"""Stage `publish` as the pipeline sees it: its node, fingerprint, run and preflight (see distill.stages)."""

from __future__ import annotations

from pathlib import Path

from distill.config.base import runtime_free
from distill.recipe import Recipe
from distill.runs import Run
from distill.stages import PreflightReport, Stage, StageResult, StageSpec


def plan(recipe: Recipe) -> list[StageSpec]:
    return [StageSpec("publish", "release", runtime_free(recipe.release), ["eval"], run)]


def run(recipe: Recipe, run: Run, folder: Path) -> StageResult:
    from distill.publish.stage import publish

    return publish(recipe, run, folder)


def check(recipe: Recipe, report: PreflightReport) -> None:
    from distill.publish.stage import check_release

    report.note(check_release(recipe))


STAGE = Stage("publish", plan, check)
