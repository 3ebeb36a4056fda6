"""Stage `filter` as the pipeline sees it: its node, fingerprint, run and preflight (see distill.stages)."""

from __future__ import annotations

from pathlib import Path

from distill.config.base import runtime_free
from distill.recipe import Recipe
from distill.rounds import round_named, round_recipe
from distill.runs import Run, source_digest
from distill.stages import PreflightReport, Stage, StageResult, StageSpec

_OUTPUTS = ("train.parquet", "verified.parquet", "report.json", "report.md", "report.png")
# What the model card's lineage needs of an external trace source.
_SOURCE_KEYS = ("traces", "dataset", "revision", "split", "config", "format", "source_rows", "not_used")
_SUMMARY_KEYS = ("rows_in", "rows_out", "removed", "prompts_in", "prompts_out", "pass_rate")
_JUDGE_USES = ("equivalence", "rubric")


def plan(recipe: Recipe) -> list[StageSpec]:
    nodes = []
    if recipe.has_filter():
        upstream = ["generate"] if recipe.has_generate() else []
        nodes.append(StageSpec("filter", "filter", _config(recipe), upstream, run))
    for rnd in recipe.rounds:  # later rounds: the same stage on the round's own traces and settings
        nodes.append(
            StageSpec(
                f"filter:{rnd.name}",
                f"rounds/{rnd.name}/filter",
                _config(round_recipe(recipe, rnd)),
                [f"generate:{rnd.name}"],
                _round_runner(rnd.name),
            )
        )
    return nodes


def _config(recipe: Recipe) -> dict:
    cfg = recipe.filter
    # A traces file and local benchmark files are inputs: editing them reruns the stage.
    # A benchmark named by its registry name counts by the file it resolves to (or its Hub id).
    from teacher.filter.decontaminate import benchmark_files

    files = [cfg.traces, *benchmark_files(cfg.decontaminate, recipe.eval.data_dir)]
    config = {**runtime_free(cfg), "file_digests": [source_digest(f) for f in files if f]}
    if cfg.judge is not None:  # the judge's model, sampling and templates (by content) decide verdicts
        from distill.judge import judge_fingerprint

        uses = (*_JUDGE_USES, *(["readability"] if cfg.judge.readability else []))
        config["judge"] = {**config["judge"], "judge": judge_fingerprint(recipe.judge, uses)}
    return config


def _round_runner(name: str):
    def run_round(recipe: Recipe, run: Run, folder: Path) -> StageResult:
        source = run.root / "rounds" / name / "generate"
        return _filter(round_recipe(recipe, round_named(recipe, name)), run, folder, source)

    return run_round


def run(recipe: Recipe, run: Run, folder: Path) -> StageResult:
    source = Path(recipe.filter.traces) if recipe.filter.traces else run.root / "generate"
    return _filter(recipe, run, folder, source)


def _filter(recipe: Recipe, run: Run, folder: Path, source: Path) -> StageResult:
    from teacher.filter.stage import run_filter

    judge = None
    if recipe.filter.judge is not None:
        from distill.judge import open_judge

        judge = open_judge(recipe, run.root)  # the run's judge cache, shared with the other stages
    try:
        report = run_filter(source, folder, recipe.filter, recipe.eval.data_dir, judge)
    finally:
        if judge is not None:
            judge.close()
    summary = {k: report[k] for k in _SUMMARY_KEYS}
    if "judge" in report:  # verdict counts, agreement and cost in the manifest
        summary["judge"] = report["judge"]
    if "source" in report:
        summary["source"] = {k: report["source"][k] for k in _SOURCE_KEYS}
    return StageResult([folder / name for name in _OUTPUTS], summary)


def run_chunk(recipe: Recipe, run: Run, work: Path, chunk) -> bool:
    """`distill filter --chunk I/N`: filter chunk I of N of the trace batches into the stage's partial folder
    ``work``; True when every batch is finished (the outputs are then written by a plain run, the merge)."""
    from distill.errors import DistillError
    from teacher.filter.stage import run_filter
    from teacher.filter.stream import all_finished

    if recipe.filter.judge is not None:
        raise DistillError("distill filter --chunk: not with filter.judge (the judge reads the set whole)")
    source = Path(recipe.filter.traces) if recipe.filter.traces else run.root / "generate"
    run_filter(source, work, recipe.filter, recipe.eval.data_dir, chunk=chunk)
    return all_finished(work)


def check(recipe: Recipe, report: PreflightReport) -> None:
    """filter.judge (and each round's): the judge section, its endpoint, templates and key."""
    if recipe.has_filter():
        _check_judge(recipe, report)
    for rnd in recipe.rounds:
        _check_judge(round_recipe(recipe, rnd), report)


def _check_judge(recipe: Recipe, report: PreflightReport) -> None:
    judged = recipe.filter.judge
    if judged is None:
        return
    from distill.judge import check_judge

    uses = (*(["equivalence"] if judged.equivalence or judged.agreement_sample else []),)
    uses += ("rubric",) if judged.quality else ()
    uses += ("readability",) if judged.readability else ()
    report.note(check_judge(recipe, "filter.judge", uses))


def check_inputs(recipe: Recipe, report: PreflightReport) -> None:
    from teacher.preflight import check_filter_inputs

    if recipe.has_filter():
        report.note(check_filter_inputs(recipe.filter, recipe.eval.data_dir))
    for rnd in recipe.rounds:
        report.note(check_filter_inputs(round_recipe(recipe, rnd).filter, recipe.eval.data_dir))


STAGE = Stage(
    "filter", plan, check, check_inputs=check_inputs, missing="it needs a teacher + data or filter.traces"
)
