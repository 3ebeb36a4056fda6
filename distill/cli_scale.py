"""`distill generate` and `distill filter` beyond one process: the --chunk, --merge, --status and --slurm
flags (thin wrappers over teacher.generate.scale, teacher.generate.chunk_status, teacher.generate.slurm and
teacher.filter.spec.run_chunk; the README's "Generating at scale", docs/data-scale.md)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from distill.errors import DistillError


def add_scale_args(stage: argparse.ArgumentParser, at_least) -> None:
    group = stage.add_argument_group("at scale (docs/generate-at-scale.md)")
    mode = group.add_mutually_exclusive_group()
    mode.add_argument(
        "--chunk",
        metavar="I/N",
        help="generate only chunk I of N (counted from 0) of the prompts into the run's shared folder; chunks "
        "may run at once on machines sharing the file system; the last to finish merges",
    )
    mode.add_argument(
        "--merge",
        action="store_true",
        help="check that every (prompt_id, sample_idx) is present exactly once (duplicates set aside, missing "
        "ones listed) and mark the stage done; generates nothing",
    )
    mode.add_argument(
        "--status", action="store_true", help="per chunk: prompts done, samples, tokens, stalls"
    )
    mode.add_argument(
        "--slurm", action="store_true", help="write a Slurm array script (one task per chunk) instead"
    )
    group.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        metavar="PATH",
        help="with --merge: first import traces from these folders or files (other chunks, another tool)",
    )
    group.add_argument("--stalled-after", type=float, metavar="MIN", help="with --status: stall threshold")
    _add_slurm_args(group, at_least, gpus=True)


def _add_slurm_args(group, at_least, gpus: bool) -> None:
    """The --slurm companions generate and filter share (generate's tasks also take GPUs)."""
    group.add_argument("--chunks", type=at_least(1), metavar="N", help="with --slurm: array tasks")
    if gpus:
        group.add_argument(
            "--gpus-per-node", type=at_least(0), metavar="G", help="with --slurm: GPUs per task"
        )
    group.add_argument("--partition", metavar="P", help="with --slurm: #SBATCH --partition")
    group.add_argument("--time", metavar="T", help="with --slurm: #SBATCH --time, e.g. 04:00:00")
    group.add_argument("--submit", action="store_true", help="with --slurm: also run sbatch on the script")


def add_filter_scale_args(stage: argparse.ArgumentParser, at_least) -> None:
    group = stage.add_argument_group("across nodes (docs/data-scale.md)")
    mode = group.add_mutually_exclusive_group()
    mode.add_argument(
        "--chunk",
        metavar="I/N",
        help="verify only the trace batches I, I+N, I+2N, ... (counted from 0) into the stage's shared partial "
        "folder; chunks may run at once on machines sharing the file system; the last to finish merges",
    )
    mode.add_argument(
        "--merge",
        action="store_true",
        help="run the set-wide filters over every finished batch and write the outputs (batches no chunk "
        "finished are filtered first)",
    )
    mode.add_argument(
        "--slurm", action="store_true", help="write a Slurm array script (one task per chunk) instead"
    )
    _add_slurm_args(group, at_least, gpus=False)


def scale_mode(args: argparse.Namespace) -> bool:
    _check_companions(args)
    return bool(args.chunk or args.merge or getattr(args, "status", False) or args.slurm)


_COMPANIONS = {
    "sources": "merge",
    "stalled_after": "status",
    "chunks": "slurm",
    "gpus_per_node": "slurm",
    "partition": "slurm",
    "time": "slurm",
    "submit": "slurm",
}


def _check_companions(args: argparse.Namespace) -> None:
    for flag, mode in _COMPANIONS.items():
        if getattr(args, flag, None) not in (None, False) and not getattr(args, mode):
            name = "--from" if flag == "sources" else "--" + flag.replace("_", "-")
            raise DistillError(f"{name} goes with --{mode}")


def run_scale(recipe, args: argparse.Namespace) -> int:
    from distill.pipeline import generate_target, preflight
    from teacher.generate import scale

    if args.slurm:
        return _write_slurm(recipe, args)
    run, fp, folder = generate_target(recipe)
    if args.status:
        return _print_status(recipe, run, fp, folder, args.stalled_after)
    concrete = _teacher_made_concrete(recipe, run)
    if args.merge:
        if not run.is_done("generate", fp):
            preflight(recipe, {"generate"})
        scale.merge(concrete, fp, folder, tuple(args.sources or ()), snapshot=recipe)
        return 0
    from teacher.generate.chunks import parse_chunk

    chunk = parse_chunk(args.chunk)
    if run.is_done("generate", fp):
        print("[distill] generate: up to date (merged), skipped", flush=True)
        return 0
    preflight(recipe, {"generate"})
    if scale.run_chunk(concrete, run, fp, folder, chunk):
        scale.merge(concrete, fp, folder, auto=True, snapshot=recipe)
    return 0


def run_filter_scale(recipe, args: argparse.Namespace) -> int:
    """`distill filter --chunk I/N | --merge | --slurm`."""
    from distill.chunks import parse_chunk
    from distill.pipeline import preflight, run_pipeline, stage_target
    from distill.runs import Run

    if args.slurm:
        return _write_filter_slurm(recipe, args)
    chunk = parse_chunk(args.chunk) if args.chunk else None
    run, fp, folder = stage_target(recipe, "filter")
    if run.is_done("filter", fp):
        print("[distill] filter: up to date (merged), skipped", flush=True)
        return 0
    if chunk is not None:
        from teacher.filter.spec import run_chunk

        preflight(recipe, {"filter"})
        if not run_chunk(recipe, run, Run.work_dir(folder, fp), chunk):
            return 0
    run_pipeline(recipe, only="filter", command=args.command_line)  # the merge: set-wide filters, outputs
    return 0


def _write_filter_slurm(recipe, args: argparse.Namespace) -> int:
    from distill.launch import chunk_array_script, submit, write_script

    if args.chunks is None:
        raise DistillError("--slurm needs --chunks N: how many array tasks to split the trace batches over")
    notes = (
        f"Written by `distill filter --slurm`: {args.chunks} array tasks, each verifying every "
        f"{args.chunks}th batch of\n"
        "the traces. Each resumes from its finished batches when rerun; the chunk that finishes last runs "
        "the\nset-wide filters and writes the outputs. Uses the Python environment that wrote it."
    )
    logs = recipe.run_path().resolve() / "slurm"
    distill_args = [str(Path(args.recipe).resolve()), *args.overrides]
    text = chunk_array_script(
        "filter", recipe.name, logs, distill_args, args.chunks, notes, 0, args.partition, args.time
    )
    path = write_script(recipe.run_path() / "slurm" / "filter.sbatch", text)
    print(f"[distill] wrote {path}: {args.chunks} array tasks; submit with:\nsbatch {path}", flush=True)
    if args.submit:
        print(submit(path), flush=True)
    return 0


def _teacher_made_concrete(recipe, run):
    """`teacher.model: grpo` -> the grpo stage's checkpoint, as the plain generate stage does."""
    from distill.grpo_teacher import with_trained_teacher

    if recipe.grpo_teacher() and run.record("grpo").get("status") != "done":
        raise DistillError("teacher.model grpo: run `distill grpo RECIPE` before generating in chunks")
    return with_trained_teacher(recipe, run.root)


def _write_slurm(recipe, args: argparse.Namespace) -> int:
    from distill.launch import submit
    from teacher.generate.slurm import write_slurm_script

    if args.chunks is None:
        raise DistillError("--slurm needs --chunks N: how many array tasks to split the prompts over")
    overrides = [*args.overrides, *([f"data.limit={args.limit}"] if args.limit else [])]
    script = write_slurm_script(
        recipe,
        args.recipe,
        overrides,
        args.chunks,
        len(_prompt_ids(recipe)),
        args.gpus_per_node,
        args.partition,
        args.time,
    )
    if args.submit:
        print(submit(script), flush=True)
    return 0


def _prompt_ids(recipe) -> list[str]:
    from teacher.prompts import data_prompts

    return [p["id"] for p in data_prompts(recipe.data)]


def _print_status(recipe, run, fp: str, folder, stalled_after: float | None) -> int:
    from distill.runs import Run
    from teacher.generate.chunk_status import chunk_rows, render_status, rerun_hint, untagged_samples

    done = run.is_done("generate", fp)
    work = folder if done else Run.work_dir(folder, fp)
    now = time.time()
    threshold = stalled_after * 60 if stalled_after else None
    rows = chunk_rows(work, _prompt_ids(recipe), recipe.teacher.samples_per_prompt, now, threshold)
    print(f"generate: {work}")
    if rows:
        print(render_status(rows, now))
    plain = untagged_samples(work) if work.is_dir() else 0
    if plain:
        print(f"{plain:,} samples written by unchunked runs")
    if not rows and not plain:
        print("nothing generated yet")
    if done:
        metrics = run.record("generate").get("metrics", {})
        print(f"merged: done - {metrics.get('samples')} samples, every (prompt_id, sample_idx) exactly once")
    else:
        print("merged: not yet (the last chunk to finish merges; or distill generate RECIPE --merge)")
        hint = rows and rerun_hint(rows, run.root / "slurm" / "generate.sbatch")
        if hint:
            print(hint)
    return 0
