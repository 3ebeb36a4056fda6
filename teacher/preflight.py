"""Preflight checks that need the teacher package: the prompt source (every row), prompt lengths against
the teacher's context, the chat template file, and the filter stage's own input files (a traces file,
benchmark sets). ``distill.pipeline.preflight`` runs them; each raises a one-line DistillError."""

from __future__ import annotations

from pathlib import Path

from distill.recipe import FilterConfig, Recipe
from teacher.prompt_length import apply_policy, check_lengths
from teacher.prompts import data_prompts, load_chat_template


def check_prompts(recipe: Recipe, teacher_config: Path | None) -> str:
    """Load and check every prompt as the generate stage will; returns a one-line summary.

    Lengths are checked when the teacher's tokenizer is already on disk (``teacher_config``); otherwise the
    generate stage checks them itself before generating anything.
    """
    data, teacher = recipe.data, recipe.teacher
    where = f"data.source {data.source}"
    if teacher.chat_template:
        load_chat_template(teacher.chat_template)
    prompts = data_prompts(data, where)
    note = f"{len(prompts)} prompts"
    if teacher.backend == "openai":
        return note + " (lengths: the server decides)"
    if teacher_config is None:
        return note + " (lengths are checked when generation starts: the teacher is not on disk yet)"
    check = check_lengths(prompts, teacher_config.parent, teacher, data, light=True)
    apply_policy(prompts, check, data.too_long, where)  # raises for `error`, or when none would be left
    if check is None:
        return note + " (the teacher's context is unknown: lengths not checked)"
    return f"{note}, {len(check.too_long)} {check.summary()}, data.too_long: {data.too_long}"


def check_filter_inputs(cfg: FilterConfig) -> str | None:
    """External traces (``filter.traces``) read in their shape, with the columns it needs, and the
    decontamination benchmarks load. A Hub id is checked on its first rows only (streamed), so this stays
    cheap; a local file is read whole, so a bad row fails here rather than in the stage. Returns a summary."""
    from teacher.filter.decontaminate import load_benchmark
    from teacher.filter.stage import check_fits, read_traces
    from teacher.filter.trace_source import source_kind

    note = None
    if cfg.traces:
        limit = min(cfg.limit or _HUB_ROWS, _HUB_ROWS) if source_kind(cfg.traces) == "hub" else None
        rows, info = read_traces(cfg.traces, cfg, limit)
        check_fits(rows, cfg, cfg.traces)
        if cfg.tokenizer and (cfg.min_completion_tokens or cfg.max_completion_tokens):
            from distill.preflight import check_model

            check_model("filter.tokenizer", cfg.tokenizer)
        note = f"traces {info['summary']}" if info else None
    for spec in cfg.decontaminate.benchmarks:
        load_benchmark(spec)
    return note


_HUB_ROWS = 16  # rows of a Hub trace set the preflight streams to check its shape
