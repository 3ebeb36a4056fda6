"""Preflight checks that need the teacher package: the prompt source (every row), prompt lengths against
the teacher's context, the chat template file, and the filter stage's own input files (a traces file,
benchmark sets). ``distill.pipeline.preflight`` runs them; each raises a one-line DistillError."""

from __future__ import annotations

from pathlib import Path

from distill.recipe import FilterConfig, Recipe
from teacher.prompt_length import apply_policy, check_lengths
from teacher.prompts import build_prompts, load_chat_template, load_prompt_rows


def check_prompts(recipe: Recipe, teacher_config: Path | None) -> str:
    """Load and check every prompt as the generate stage will; returns a one-line summary.

    Lengths are checked when the teacher's tokenizer is already on disk (``teacher_config``); otherwise the
    generate stage checks them itself before generating anything.
    """
    data, teacher = recipe.data, recipe.teacher
    where = f"data.source {data.source}"
    if teacher.chat_template:
        load_chat_template(teacher.chat_template)
    prompts = build_prompts(
        load_prompt_rows(data.source, data.split),
        where=where,
        id_column=data.id_column,
        problem_column=data.problem_column,
        answer_column=data.answer_column,
        limit=data.limit,
    )
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


def check_filter_inputs(cfg: FilterConfig) -> None:
    """A traces file (``filter.traces``) and the decontamination benchmarks load, with their columns."""
    from teacher.decontaminate import load_benchmark
    from teacher.filters import load_traces

    if cfg.traces:
        load_traces(Path(cfg.traces), cfg.columns)
    for spec in cfg.decontaminate.benchmarks:
        load_benchmark(spec)
