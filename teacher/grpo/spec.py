"""Stage `grpo` as the pipeline sees it: its node, fingerprint, run and preflight (see distill.stages)."""

from __future__ import annotations

from pathlib import Path

from distill.config.base import runtime_free
from distill.recipe import Recipe
from distill.runs import Run, source_digest
from distill.stages import PreflightReport, Stage, StageResult, StageSpec


def plan(recipe: Recipe) -> list[StageSpec]:
    grpo = recipe.grpo
    if grpo is None:
        return []
    data = grpo.data or recipe.data
    config = {
        **runtime_free(grpo),
        "data": data.model_dump(mode="json"),
        "source_digest": source_digest(data.source),
    }
    if "judge" in grpo.rewards:  # the judge's model, sampling and rubric decide the reward
        from distill.judge import judge_fingerprint

        config["judge"] = judge_fingerprint(recipe.judge, ("rubric",))
    return [StageSpec("grpo", "teacher", config, [], run)]


def run(recipe: Recipe, run: Run, folder: Path) -> StageResult:
    from distill.grpo.trainer import METRICS_FILE
    from distill.models import resolve_model
    from distill.training import FINAL
    from teacher.grpo.stage import train_teacher

    cfg = recipe.grpo
    judge = None
    if "judge" in cfg.rewards:
        from distill.judge import judge_job

        judge = judge_job(recipe, run.root)  # the run's judge cache, shared with the other stages
    metrics = train_teacher(resolve_model(cfg.model), cfg, cfg.data or recipe.data, folder, judge)
    return StageResult([folder / FINAL, folder / METRICS_FILE, folder / "prompts.parquet"], metrics)


def check(recipe: Recipe, report: PreflightReport) -> None:
    from distill.grpo.preflight import check_grpo

    check_grpo(recipe.grpo, recipe.grpo.model, recipe.grpo.launch, report)
    if "judge" in recipe.grpo.rewards:
        from distill.judge import check_judge

        report.note(check_judge(recipe, "grpo.rewards judge", ("rubric",)))


def check_inputs(recipe: Recipe, report: PreflightReport) -> None:
    from distill.grpo.preflight import check_grpo_prompts

    report.note(check_grpo_prompts(recipe.grpo.data or recipe.data))


STAGE = Stage("grpo", plan, check, check_inputs, missing="it has no grpo section")
