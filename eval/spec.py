"""Stage `eval` as the pipeline sees it: its node, fingerprint, run and preflight (see distill.stages)."""

from __future__ import annotations

from pathlib import Path

from distill.grpo_teacher import with_trained_teacher
from distill.recipe import Recipe
from distill.runs import Run
from distill.stages import PreflightReport, Stage, StageResult, StageSpec


def plan(recipe: Recipe) -> list[StageSpec]:
    section = recipe.section("eval")
    config = {
        "eval": section,
        # The whole teacher section, runtime-only fields too: it has always been so, and leaving them out now
        # would rerun the eval of every existing run.
        "teacher": recipe.section("teacher"),
        "students": [{"name": s.name, "model": s.model} for s in recipe.students],
    }
    if recipe.eval.judged:  # the judge's model, sampling and pairwise template decide the verdicts
        from distill.judge import judge_fingerprint

        config["judge"] = judge_fingerprint(recipe.judge, ("pairwise",))
    upstream = [*(["grpo"] if recipe.grpo_teacher() else []), *(f"sft:{s.name}" for s in recipe.students)]
    return [StageSpec("eval", "eval", config, upstream, run)]


def run(recipe: Recipe, run: Run, folder: Path) -> StageResult:
    from eval.stage import evaluate

    return evaluate(with_trained_teacher(recipe, run.root), run.root, folder)


def check(recipe: Recipe, report: PreflightReport) -> None:
    from eval.preflight import check_eval

    check_eval(recipe)
    if recipe.eval.judged:
        from eval.judged import check_judged

        report.note(check_judged(recipe))


STAGE = Stage("eval", plan, check)
