"""The read-only `distill` commands: `plan` (memory per GPU), `filter --dry-run` (how a trace source is
read), `report` and `status` (the run as it stands). None of them trains, generates or writes a stage."""

from __future__ import annotations

from distill.errors import DistillError


def report_or_status(recipe, command: str) -> int:
    from distill.pipeline import planned, write_report

    if command == "status":
        from distill.report.status import status_table

        text, code = status_table(recipe.run_path(), planned(recipe))
        print(text)
        return code
    if write_report(recipe, record_hardware=False) is None:
        raise DistillError(
            f"{recipe.run_path()}: no run there yet (no manifest.json); start one with `distill run`"
        )
    return 0


def preview_traces(recipe) -> int:
    """`distill filter --dry-run`: how the source is read, on its first rows; nothing is written."""
    from teacher.filter.batches import TraceBatches
    from teacher.filter.trace_source import PREVIEW_ROWS, preview, source_kind

    cfg = recipe.filter
    if not cfg.traces:
        raise DistillError("--dry-run previews external traces: give --traces SOURCE (or set filter.traces)")
    # A Hub set is streamed for a few rows unless --limit asks for more; a local source is read whole.
    limit = cfg.limit or (PREVIEW_ROWS if source_kind(cfg.traces) == "hub" else None)
    reader = TraceBatches(cfg.traces, cfg.model_copy(update={"limit": limit}), cfg.batch_rows)
    shown = 3  # source rows previewed; the rest is only counted, a batch at a time
    rows = [row for batch in reader for row in batch if row.get("source_row", shown) < shown]
    if reader.info is None:
        print(f"{cfg.traces}: a generate stage folder, {reader.rows} traces")
        return 0
    print(preview(rows, reader.info, shown))
    return 0


def print_plan(recipe) -> int:
    from student.plan import render_plan
    from student.plan_teacher import teacher_model

    if recipe.grpo is not None:
        print(_grpo_plan(recipe.grpo, render_plan) + ("\n" if recipe.students else ""))
    for index, student in enumerate(recipe.students):
        if student.method == "grpo":  # the GRPO policy's run, at its longest stage
            from student.grpo import run_options

            print(
                ("\n" if index else "")
                + _grpo_plan(run_options(student, student.model), render_plan, student.name)
            )
            continue
        try:
            table = render_plan(student, teacher_ref=teacher_model(recipe, student))
        except DistillError as exc:
            table = f"student {student.name}: no estimate ({exc})"
        print(("\n" if index else "") + table)
    return 0


def _grpo_plan(grpo, render_plan, name: str = "grpo-teacher") -> str:
    """The GRPO policy's training memory (the students' planner) and what GRPO adds on top of it."""
    try:
        table = render_plan(grpo.policy_shape(name))
    except DistillError as exc:
        return f"{name}: no estimate ({exc})"
    extra = []
    if grpo.generation == "vllm-colocate":
        extra.append(f"vLLM (colocated) takes {grpo.vllm_gpu_memory_utilization:.0%} of each GPU on top")
    if grpo.beta > 0:
        extra.append("beta > 0 loads a frozen reference copy of the weights (add the weights column again)")
    return table + "".join(f"\n  grpo: {line}" for line in extra)
