"""Preflight: what is cheap to check about a recipe, for the stages a command will run, before any work.

A mistake should cost one line and a second, not hours of generation followed by a failure in the eval
stage. So before a stage starts (and before the run dir is created), ``preflight`` checks that the run dir can
be written, then asks each stage about to run for its own checks (``Stage.check`` in the stage package's
spec.py: models resolve, settings fit their model, packages exist, task names, servers, tokens), then for
the checks that read input files (``Stage.check_inputs``: prompts, traces, benchmark files). Cheap checks
of every stage come before any file is read.

This module holds no stage's checks: it orchestrates them (model-reference checks live in distill.models).
Every check raises a one-line DistillError; none writes anything. A check that cannot be made (a model
whose files are not on disk yet) is never passed silently: it is listed in the report, which `distill
validate` prints and `distill run` warns about.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from distill.errors import DistillError
from distill.grpo_teacher import checkable
from distill.recipe import Recipe
from distill.runs import Run
from distill.stages import PreflightReport, Stage


def check_run_dir(path: Path) -> None:
    """The run dir exists as a folder we can write, or can be created; an existing manifest parses.
    Nothing is created here: a failed preflight leaves no trace."""
    if os.path.lexists(path) and not path.exists():
        raise DistillError(f"run_dir {path}: a broken symbolic link or a link loop; set run_dir elsewhere")
    if path.exists() and not path.is_dir():
        raise DistillError(f"run_dir {path}: is a file, not a folder; set run_dir elsewhere")
    if path.is_dir():
        Run(path, write=False)  # an unreadable manifest is one line here, not a traceback later
    probe = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not probe.is_dir():
        raise DistillError(f"run_dir {path}: {probe} is a file, so the run folder cannot be created there")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DistillError(f"run_dir {path}: {probe} is not writable; set run_dir to a folder you can write")


def preflight(recipe: Recipe, stages: list[Stage], families: set[str]) -> PreflightReport:
    """Every check of the ``stages`` whose family is in ``families``, cheap ones first, before anything is
    written. Raises a one-line DistillError at the first problem."""
    order = [s.family for s in stages]
    report = PreflightReport(sorted(families, key=order.index))
    if not families:
        return report
    started = time.perf_counter()
    recipe = checkable(recipe)  # `teacher.model: grpo` is checked as the model GRPO starts from
    check_run_dir(recipe.run_path())
    chosen = [s for s in stages if s.family in families]
    for stage in chosen:
        stage.check(recipe, report)
    for stage in chosen:
        stage.check_inputs(recipe, report)
    report.seconds = round(time.perf_counter() - started, 2)
    return report
