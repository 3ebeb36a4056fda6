"""The teacher's preflight (stages generate and filter): the teacher model or server, the prompt source (every
row), prompt lengths against the teacher's context, the chat template file, and the filter stage's own input
files (a traces file, benchmark sets). The stages' spec.py files call these; each raises a one-line
DistillError and writes nothing."""

from __future__ import annotations

from pathlib import Path

from distill.errors import DistillError
from distill.models import check_model
from distill.recipe import FilterConfig, Recipe, TeacherConfig
from distill.stages import PreflightReport
from teacher.prompt_length import apply_policy, check_lengths
from teacher.prompts import data_prompts, load_chat_template


def check_teacher(teacher: TeacherConfig) -> Path | None:
    """The teacher the generate stage will load (or the server it will call); its config.json if known."""
    if teacher.backend == "openai":
        for url in teacher.openai.base_urls or [""]:
            if not url.startswith(("http://", "https://")):
                raise DistillError(
                    f"teacher.openai.base_url {url!r}: expected an http(s) URL such as "
                    "http://127.0.0.1:8000/v1"
                )
        return None
    return check_model("teacher.model", teacher.model)


def check_prompts(recipe: Recipe, report: PreflightReport) -> str:
    """Load and check every prompt as the generate stage will; returns a one-line summary.

    Lengths are checked against the teacher's tokenizer and context (a built-in model's are known before it is
    built). When they cannot be (the context is unknown), that is reported, and ``data.too_long: error`` fails
    here rather than trusting the generate stage to find out later.
    """
    data, teacher = recipe.data, recipe.teacher
    where = f"data.source {data.source}"
    if teacher.chat_template:
        load_chat_template(teacher.chat_template)
    prompts = data_prompts(data, where)
    note = f"{len(prompts)} prompts"
    if teacher.backend == "openai":
        return note + " (lengths: the server decides)"
    teacher_config = check_teacher(teacher)
    check = (
        None
        if teacher_config is None
        else check_lengths(prompts, teacher_config.parent, teacher, data, light=True)
    )
    if check is None:
        why = "its config.json is not on disk" if teacher_config is None else "its config declares no context"
        if data.too_long == "error":
            raise DistillError(
                f"data.too_long: error, but the prompt lengths cannot be checked before generating: the "
                f"context of teacher.model {teacher.model} is unknown ({why}); set teacher.vllm.max_model_len "
                "or data.too_long: drop"
            )
        report.could_not_check(f"prompt lengths against the teacher's context ({why})")
        return note
    apply_policy(prompts, check, data.too_long, where)  # raises for `error`, or when none would be left
    return f"{note}, {len(check.too_long)} {check.summary()}, data.too_long: {data.too_long}"


def check_filter_inputs(cfg: FilterConfig, data_dir: str | Path | None = None) -> str | None:
    """External traces (``filter.traces``) read in their shape, with the columns it needs, and the
    decontamination benchmarks load. A Hub id is checked on its first rows only (streamed), so this stays
    cheap; a local file is read batch by batch, so a bad row fails here rather than in the stage. A
    benchmark name must be known and, offline, have its local copy under ``data_dir`` (eval.data_dir) or the
    default data dir. Returns a summary."""
    from teacher.filter.batches import TraceBatches
    from teacher.filter.decontaminate import check_names, load_benchmark
    from teacher.filter.stage import check_fits
    from teacher.filter.trace_source import source_kind

    note = None
    if cfg.traces:
        limit = min(cfg.limit or _HUB_ROWS, _HUB_ROWS) if source_kind(cfg.traces) == "hub" else cfg.limit
        reader = TraceBatches(cfg.traces, cfg.model_copy(update={"limit": limit}), cfg.batch_rows)
        for batch in reader:  # batch by batch: a large local set is checked in bounded memory
            check_fits(batch, cfg, cfg.traces)
        info = reader.info
        if cfg.tokenizer and (cfg.min_completion_tokens or cfg.max_completion_tokens):
            check_model("filter.tokenizer", cfg.tokenizer)
        note = f"traces {info['summary']}" if info else None
    check_names(cfg.decontaminate.benchmarks)  # a misspelt name fails before any set is read
    for spec in cfg.decontaminate.benchmarks:
        load_benchmark(spec, data_dir)  # a name without its local copy offline: one line saying where
    return note


_HUB_ROWS = 16  # rows of a Hub trace set the preflight streams to check its shape
