"""Stage `generate` as the pipeline sees it: its node, fingerprint, run and preflight (see distill.stages)."""

from __future__ import annotations

from pathlib import Path

from distill.config.base import runtime_free
from distill.grpo_teacher import with_trained_teacher
from distill.recipe import Recipe
from distill.rounds import model_node, round_named, round_recipe
from distill.runs import Run, source_digest
from distill.stages import PreflightReport, Stage, StageResult, StageSpec


def plan(recipe: Recipe) -> list[StageSpec]:
    nodes = []
    if recipe.has_generate():
        upstream = ["grpo"] if recipe.grpo_teacher() else []
        nodes.append(StageSpec("generate", "generate", _config(recipe), upstream, run))
    for rnd in recipe.rounds:  # later rounds: the same stage on the round's teacher and prompts
        sampler = model_node(rnd.teacher.model)
        nodes.append(
            StageSpec(
                f"generate:{rnd.name}",
                f"rounds/{rnd.name}/generate",
                _config(round_recipe(recipe, rnd)),
                [sampler] if sampler else [],
                _round_runner(rnd.name),
            )
        )
    return nodes


def _config(recipe: Recipe) -> dict:
    return {
        "data": runtime_free(recipe.data),
        "teacher": runtime_free(recipe.teacher),  # endpoints and request pacing are runtime-only
        "source_digest": source_digest(recipe.data.source),
    }


def run(recipe: Recipe, run: Run, folder: Path) -> StageResult:
    from teacher.generate.stage import generate
    from teacher.shards import shard_paths

    metrics = generate(with_trained_teacher(recipe, run.root), run, folder)
    return StageResult([*shard_paths(folder), folder / "prompts.parquet"], metrics)


def _round_runner(name: str):
    def run_round(recipe: Recipe, run: Run, folder: Path) -> StageResult:
        from teacher.generate.stage import generate
        from teacher.shards import shard_paths

        sampler = round_recipe(recipe, round_named(recipe, name), run.root)
        metrics = generate(sampler, run, folder)
        return StageResult([*shard_paths(folder), folder / "prompts.parquet"], metrics)

    return run_round


def _every_round(recipe: Recipe) -> list[tuple[str, Recipe]]:
    """(a label, the recipe) for the recipe itself (when it generates) and each round as a recipe of its own,
    as the preflight sees them: a teacher that is a node of the run stands in by the model it starts from."""
    own = [("", recipe)] if recipe.has_generate() else []
    return own + [(f"round {rnd.name}: ", round_recipe(recipe, rnd)) for rnd in recipe.rounds]


def check(recipe: Recipe, report: PreflightReport) -> None:
    from teacher.preflight import check_teacher

    for _, sampler in _every_round(recipe):
        check_teacher(sampler.teacher)


def check_inputs(recipe: Recipe, report: PreflightReport) -> None:
    from teacher.preflight import check_prompts

    for label, sampler in _every_round(recipe):
        report.note(label + check_prompts(sampler, report))


STAGE = Stage(
    "generate", plan, check, check_inputs, missing="it needs teacher and data sections, and no filter.traces"
)
