"""The `distill` command: thin wrappers around the stage functions.

Every subcommand takes a recipe file plus `key.sub=value` overrides. A problem the user can fix is
printed as one line (`distill: error: ...`) with exit status 2; no traceback. Before any stage starts, the
preflight (distill.preflight) checks what the stages about to run need. An unexpected library error is one
line too (exit status 1); `--debug` or DISTILL_DEBUG=1 prints the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import traceback

from pydantic import ValidationError

from distill import __version__, cli_inspect, cli_recipes
from distill.cli_scale import add_filter_scale_args, add_scale_args, run_filter_scale, run_scale, scale_mode
from distill.errors import DistillError, is_bad_input, library_error_line
from distill.install_check import shadowed_package
from distill.recipe import LAUNCH_STRATEGIES, TRACE_FORMATS, LaunchConfig

_DEBUG_HELP = "on an error, print the full traceback (for bug reports); also DISTILL_DEBUG=1"

_STAGE_HELP = {
    "grpo": "train the teacher with TRL's GRPOTrainer on verifiable rewards (recipe section grpo:)",
    "generate": "sample the teacher: prompts -> traces (sharded, resumable)",
    "filter": "verify traces and keep the good ones: traces -> SFT rows + report",
    "sft": "fine-tune every student on the filtered rows with TRL",
    "eval": "evaluate teacher and students with lm-eval; comparison table + release gate",
    "publish": "push students that pass the gate (and the trace dataset) to the Hugging Face Hub with cards",
}


def _at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value

    return parse


def _add_recipe_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "recipe", help="recipe YAML file or built-in recipe name, e.g. recipes/quickstart.yaml or quickstart"
    )
    # Also accepted after the subcommand; SUPPRESS keeps an absent flag from hiding `distill --debug CMD`.
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="training: a line per logging step beside the progress bar (always when not a terminal)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key.sub=value",
        help="override recipe fields, e.g. teacher.batch_size=8 eval.limit=10",
    )


def _add_launch_args(stage: argparse.ArgumentParser) -> None:
    group = stage.add_argument_group("launch (override each student's launch: section)")
    group.add_argument("--student", metavar="NAME", help="train only this student")
    group.add_argument(
        "--launch",
        metavar="STRATEGY",
        choices=LAUNCH_STRATEGIES,
        help=f"how to start training: {', '.join(LAUNCH_STRATEGIES)} (accelerate configs in student/accelerate/)",
    )
    group.add_argument("--nproc", type=_at_least(1), metavar="N", help="processes (GPUs) per node")
    group.add_argument("--nnodes", type=_at_least(1), metavar="M", help="number of nodes")
    group.add_argument(
        "--node-rank", type=_at_least(0), metavar="R", help="this node's rank (0 records the run)"
    )
    group.add_argument("--main-ip", metavar="HOST", help="address of node 0")
    group.add_argument("--main-port", type=_at_least(1), metavar="PORT", help="rendezvous port on node 0")
    group.add_argument(
        "--slurm",
        action="store_true",
        help="write a Slurm batch script per student into the run dir (one accelerate launch per node) "
        "instead of training",
    )


_LAUNCH_FLAGS = ("launch", "nproc", "nnodes", "node_rank", "main_ip", "main_port")


def _apply_launch_args(recipe, args: argparse.Namespace) -> None:
    if args.student:
        chosen = [s for s in recipe.students if s.name == args.student]
        if not chosen:
            names = ", ".join(s.name for s in recipe.students)
            raise DistillError(f"--student {args.student!r}: the recipe's students are {names}")
        recipe.students = chosen
    updates = {flag: getattr(args, flag) for flag in _LAUNCH_FLAGS if getattr(args, flag) is not None}
    if "launch" in updates:
        updates["strategy"] = updates.pop("launch")
    for student in recipe.students:
        merged = {**student.launch.model_dump(), **updates}
        try:
            student.launch = LaunchConfig.model_validate(merged)
        except ValidationError as exc:
            raise DistillError(
                f"launch options for student {student.name}: {exc.errors()[0]['msg']}"
            ) from None


def _add_trace_args(stage: argparse.ArgumentParser) -> None:
    stage.add_argument(
        "--traces",
        metavar="SOURCE",
        help="filter these traces instead of the generate stage's output: a jsonl/json/parquet/csv file, a "
        "`datasets` folder or a Hub id such as open-r1/OpenR1-Math-220k (filter.traces)",
    )
    stage.add_argument(
        "--split", metavar="NAME", help="split of a `datasets` folder or Hub id (filter.split)"
    )
    stage.add_argument(
        "--limit",
        type=_at_least(1),
        metavar="N",
        help="read only the first N source rows; a Hub id is then streamed (filter.limit)",
    )
    stage.add_argument(
        "--format",
        metavar="PRESET",
        help=f"shape of the traces: {', '.join(TRACE_FORMATS)} (filter.format; default auto: detected and "
        "printed)",
    )
    stage.add_argument(
        "--dry-run",
        action="store_true",
        help="print the format chosen and how the first rows are read as traces, then stop (writes nothing)",
    )


# `distill filter` flags that set recipe fields: applied as overrides before the recipe is validated, so a
# recipe with no teacher can get its traces from the command line. JSON-quoted: YAML reads a path verbatim.
_TRACE_FLAGS = {"traces": "traces", "split": "split", "format": "format"}


def _add_publish_args(stage: argparse.ArgumentParser) -> None:
    stage.add_argument(
        "--dry-run",
        action="store_true",
        help="render release/ and print the files and target repos; upload nothing (release.dry_run)",
    )


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    """The flags that set recipe fields (filter's trace flags, publish's --dry-run/--force), as overrides."""
    if args.command == "publish":  # --dry-run / --force set recipe fields: they enter the stage's fingerprint
        flags = {"dry_run": args.dry_run, "force": args.force}
        return [f"release.{field}=true" for field, on in flags.items() if on]
    if args.command != "filter":
        return []
    pairs = [(field, getattr(args, flag)) for flag, field in _TRACE_FLAGS.items()]
    pairs.append(("limit", args.limit))
    return [f"filter.{field}={json.dumps(value)}" for field, value in pairs if value is not None]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distill",
        description="Distil a reasoning teacher into smaller students: [grpo ->] generate -> filter -> sft -> eval "
        "-> publish.",
    )
    parser.add_argument("--version", action="version", version=f"distill {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_run_command(sub)
    for name, text in _STAGE_HELP.items():
        _add_stage_command(sub, name, text)
    cli_recipes.add_validate_command(sub, _add_recipe_args)
    _add_plan_command(sub)
    _add_report_commands(sub)
    cli_recipes.add_recipe_file_commands(sub, _DEBUG_HELP)
    return parser


def _add_report_commands(sub) -> None:
    report = sub.add_parser(
        "report",
        help="write runs/<name>/report.html for the run in any state (also written after every run)",
        description="Write the run report: one self-contained HTML page (stages, generation, filter funnel, "
        "training curves, eval, gate, release, cost) from the manifest and the stage folders.",
    )
    _add_recipe_args(report)
    status = sub.add_parser(
        "status",
        help="print the stage table of a running or finished run (exit 0 only when every stage is done)",
        description="Print each stage's state, wall time and counts from the manifest and partial folders "
        "(no model loads). Exit status: 0 all done, 1 a stage failed, 3 a stage is partial (running or "
        "killed), 4 stages not started or out of date.",
    )
    _add_recipe_args(status)


def _add_run_command(sub) -> None:
    run = sub.add_parser(
        "run",
        help="run every stage of a recipe, skipping finished ones",
        description="Run every stage of a recipe; finished stages with unchanged inputs are skipped.",
    )
    _add_recipe_args(run)
    run.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="STAGE",
        help="rerun STAGE even if finished (repeatable): grpo, generate, filter, sft, eval, publish",
    )


def _add_stage_command(sub, name: str, text: str) -> None:
    stage = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
    _add_recipe_args(stage)
    force_help = "rerun even if finished with the same inputs"
    if name == "publish":
        force_help += "; also push students the gate holds back, their cards saying why (release.force)"
    stage.add_argument("--force", action="store_true", help=force_help)
    if name == "generate":
        stage.add_argument(
            "--limit",
            type=_at_least(1),
            metavar="N",
            help="use only the first N prompts (smoke runs; data.limit)",
        )
        add_scale_args(stage, _at_least)
    if name == "filter":
        _add_trace_args(stage)
        stage.add_argument(
            "--workers", type=_at_least(0), metavar="N", help="verification processes (filter.workers)"
        )
        add_filter_scale_args(stage, _at_least)
    if name == "sft":
        _add_launch_args(stage)
    if name == "publish":
        _add_publish_args(stage)


def _add_plan_command(sub) -> None:
    plan = sub.add_parser(
        "plan",
        help="estimate GPU memory per strategy and the GPUs each student needs",
        description="Print, for every student, per-GPU memory (weights, gradients, optimizer, activations) "
        "for each launch strategy, whether it fits the recipe's GPUs and the minimum GPU count. "
        "Reads config.json files already on this machine; downloads nothing.",
    )
    _add_recipe_args(plan)


def main(argv: list[str] | None = None) -> int:
    shadowed = shadowed_package()
    if shadowed:  # before argparse, so even `--help` says why the stages would not import
        print(f"distill: error: {shadowed}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    # Recorded in the manifest and the model card ("how to reproduce"), secrets redacted there.
    args.command_line = "distill " + shlex.join(sys.argv[1:] if argv is None else argv)
    debug = args.debug or os.environ.get("DISTILL_DEBUG", "0") not in ("", "0")
    if getattr(args, "verbose", False):  # read by the training processes (distill/training.py), launched too
        os.environ["DISTILL_VERBOSE"] = "1"
    if not debug:
        _quiet_libraries()
    try:
        return _dispatch(args)
    except DistillError as exc:
        if debug:
            traceback.print_exc()
        print(f"distill: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("distill: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # a library's error: one line, the traceback only on request
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (rerun with --debug for the traceback)"
        print(f"distill: error: {library_error_line(exc)}{hint}", file=sys.stderr)
        return 2 if is_bad_input(exc) else 1


def _quiet_libraries() -> None:
    """Errors only from `datasets` and `huggingface_hub`: a failed load is then one line (ours), not a
    dozen retry warnings. Set before their import (they read the variables) and after (they may be loaded)."""
    for variable in ("HF_HUB_VERBOSITY", "DATASETS_VERBOSITY"):
        os.environ.setdefault(variable, "error")
    for name in ("huggingface_hub", "datasets", "fsspec"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _dispatch(args: argparse.Namespace) -> int:
    from distill.recipe import load_recipe

    if args.command in ("recipes", "init"):
        return cli_recipes.list_recipes() if args.command == "recipes" else cli_recipes.init_recipe(args)
    recipe = load_recipe(args.recipe, [*args.overrides, *_flag_overrides(args)])
    if args.command == "generate" and args.limit is not None and recipe.data is not None:
        recipe.data.limit = args.limit
    if getattr(args, "workers", None) is not None:
        recipe.filter.workers = args.workers
    if args.command == "validate":
        return cli_recipes.validate(recipe, args)
    if args.command == "filter" and args.dry_run:
        return cli_inspect.preview_traces(recipe)
    if args.command == "plan":
        return cli_inspect.print_plan(recipe)
    if args.command in ("report", "status"):
        return cli_inspect.report_or_status(recipe, args.command)
    if args.command == "sft":
        _apply_launch_args(recipe, args)
        if args.slurm:
            from student.slurm import write_slurm_scripts

            write_slurm_scripts(recipe, args.recipe, args.overrides)
            return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.command == "generate" and scale_mode(args):
        return run_scale(recipe, args)
    if args.command == "filter" and scale_mode(args):
        return run_filter_scale(recipe, args)
    from distill.pipeline import run_pipeline

    if args.command == "run":
        run = run_pipeline(recipe, force=tuple(args.force), command=args.command_line)
        comparison = run.root / "eval" / "comparison.md"
        if comparison.exists():
            print(f"\n{comparison}:\n{comparison.read_text()}", flush=True)
        if (run.root / "report.html").exists():  # the last line: where to look next
            print(f"report: {run.root / 'report.html'}", flush=True)
    else:
        run_pipeline(
            recipe, only=args.command, force=(args.command,) if args.force else (), command=args.command_line
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
