"""Stage `filter` as the pipeline sees it: its node, fingerprint, run and preflight (see distill.stages)."""

from __future__ import annotations

from pathlib import Path

from distill.config.base import runtime_free
from distill.recipe import Recipe
from distill.runs import Run, source_digest
from distill.stages import PreflightReport, Stage, StageResult, StageSpec

_OUTPUTS = ("train.parquet", "verified.parquet", "report.json", "report.md", "report.png")
# What the model card's lineage needs of an external trace source.
_SOURCE_KEYS = ("traces", "dataset", "revision", "split", "config", "format", "source_rows", "not_used")
_SUMMARY_KEYS = ("rows_in", "rows_out", "removed", "prompts_in", "prompts_out", "pass_rate")
_JUDGE_USES = ("equivalence", "rubric")


def plan(recipe: Recipe) -> list[StageSpec]:
    if not recipe.has_filter():
        return []
    cfg = recipe.filter
    # A traces file and local benchmark files are inputs: editing them reruns the stage.
    # A benchmark named by its registry name counts by the file it resolves to (or its Hub id).
    from teacher.filter.decontaminate import benchmark_files

    files = [cfg.traces, *benchmark_files(cfg.decontaminate, recipe.eval.data_dir)]
    config = {**runtime_free(cfg), "file_digests": [source_digest(f) for f in files if f]}
    if cfg.judge is not None:  # the judge's model, sampling and templates (by content) decide verdicts
        from distill.judge import judge_fingerprint

        config["judge"] = {**config["judge"], "judge": judge_fingerprint(recipe.judge, _JUDGE_USES)}
    upstream = ["generate"] if recipe.has_generate() else []
    return [StageSpec("filter", "filter", config, upstream, run)]


def run(recipe: Recipe, run: Run, folder: Path) -> StageResult:
    from teacher.filter.stage import run_filter

    source = Path(recipe.filter.traces) if recipe.filter.traces else run.root / "generate"
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


def check(recipe: Recipe, report: PreflightReport) -> None:
    """filter.judge: the judge section, its endpoint, its templates and its key (distill.judge.check_judge)."""
    judged = recipe.filter.judge
    if not recipe.has_filter() or judged is None:
        return
    from distill.judge import check_judge

    uses = (*(["equivalence"] if judged.equivalence or judged.agreement_sample else []),)
    uses += ("rubric",) if judged.quality else ()
    report.note(check_judge(recipe, "filter.judge", uses))


def check_inputs(recipe: Recipe, report: PreflightReport) -> None:
    from teacher.preflight import check_filter_inputs

    report.note(check_filter_inputs(recipe.filter, recipe.eval.data_dir))


STAGE = Stage(
    "filter", plan, check, check_inputs=check_inputs, missing="it needs a teacher + data or filter.traces"
)
