"""The stage contract: what every stage package gives the pipeline, and nothing more.

A stage package (``teacher.generate``, ``teacher.filter``, ``teacher.grpo``, ``student``, ``eval``,
``distill.publish``) has a light ``spec.py`` defining ``STAGE``, a :class:`Stage`:

- ``plan(recipe)``: the stage's nodes for this recipe (none, one, or one per student), each a
  :class:`StageSpec` with its folder, the config its fingerprint is computed from (``runtime_free`` of its
  sections plus digests of its input files), the nodes it reads from, and ``run``;
- ``run(recipe, run, folder) -> StageResult``: does the work, writing only into ``folder`` (the partial folder
  the run swaps in on success), and says what it produced (outputs) and measured (metrics);
- ``check(recipe, report)`` / ``check_inputs(recipe, report)``: the preflight, cheap checks first (models,
  settings), then the ones that read input files (prompts, traces); each raises a one-line DistillError, and
  adds a note (or a check it could not make) to the report.

The pipeline (``distill.pipeline``) is a table of these and one loop; it knows no stage's files or keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distill.recipe import Recipe
    from distill.runs import Run


@dataclass
class StageResult:
    """What a stage produced (files and folders, recorded in the manifest) and its metrics."""

    outputs: list[Path]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageSpec:
    """One node of a recipe's stage graph: ``generate``, or ``sft:<student>`` for each student."""

    name: str
    folder: str  # relative to the run dir
    config: Any  # what the fingerprint is computed from
    upstream: list[str] = field(default_factory=list)
    run: Callable[[Recipe, Run, Path], StageResult] | None = None

    @property
    def family(self) -> str:
        return self.name.split(":")[0]


@dataclass
class PreflightReport:
    """What the preflight checked, for ``distill validate`` to print and ``distill run`` to warn about."""

    stages: list[str]
    notes: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # checks that could not be made, and why
    seconds: float = 0.0

    def note(self, text: str | None) -> None:
        if text:
            self.notes.append(text)

    def could_not_check(self, text: str) -> None:
        self.unchecked.append(text)


def _no_check(recipe: Recipe, report: PreflightReport) -> None:
    return None


@dataclass(frozen=True)
class Stage:
    """A stage family as the pipeline sees it (see the module docstring)."""

    family: str
    plan: Callable[[Recipe], list[StageSpec]]
    check: Callable[[Recipe, PreflightReport], None] = _no_check
    check_inputs: Callable[[Recipe, PreflightReport], None] = _no_check
    missing: str = "see its sections"  # why a recipe has no such stage, for `distill <stage>`
