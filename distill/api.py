"""distill's Python API: what the ``distill`` command does, callable from a notebook or an orchestrator.

Every function here calls the same code the command line does (``distill.recipe.load_recipe``,
``distill.pipeline.run_pipeline``, the report's status table): there is no second pipeline. A problem the
user can fix raises `distill.errors.DistillError`, whose message is the one line the CLI prints after
``distill: error:``.

Heavy libraries (torch, transformers, vLLM) load only when a stage that needs them runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distill.recipe import Recipe


@dataclass(frozen=True)
class RunResult:
    """What one `run` call did, read back from the run's manifest.

    Attributes:
        root: The run directory (``runs/<name>`` unless the recipe sets ``run_dir``).
        manifest: The run's ``manifest.json`` as it stands after the call: per stage its status,
            fingerprint, outputs, metrics and wall time.
        ran: The stage nodes this call ran (``generate``, ``sft:<student>`` ...), in run order.
        skipped: The stage nodes that were already done with unchanged inputs, so this call left them.
        report: ``report.html`` of the run, or None where none was written.
    """

    root: Path
    manifest: dict[str, Any]
    ran: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    report: Path | None = None

    @property
    def stages(self) -> dict[str, str]:
        """Each recorded stage node's status (``done``, ``failed``, ``running``)."""
        return {name: rec.get("status", "") for name, rec in self.manifest.get("stages", {}).items()}

    def metrics(self, stage: str) -> dict[str, Any]:
        """The metrics a stage node recorded (``run.metrics("filter")["rows_out"]``); empty if it has none."""
        return dict(self.manifest.get("stages", {}).get(stage, {}).get("metrics") or {})

    @property
    def comparison(self) -> dict[str, Any] | None:
        """``eval/comparison.json`` (pass@1 with intervals per model and task), or None before eval ran."""
        path = self.root / "eval" / "comparison.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


@dataclass(frozen=True)
class RunStatus:
    """The run's state as ``distill status`` prints it.

    Attributes:
        root: The run directory.
        state: ``done``, ``failed``, ``running or interrupted``, ``incomplete`` or ``empty``.
        exit_code: What ``distill status`` exits with: 0 done, 1 failed, 3 partial, 4 not started.
        stages: One dict per stage node: ``name``, ``state`` (``done``, ``skipped``, ``out of date``,
            ``partial``, ``failed``, ``not started``), ``seconds``, ``metrics``, ``produced`` and, where
            there is one, ``progress`` or ``error``.
        text: The table exactly as ``distill status`` prints it.
    """

    root: Path
    state: str
    exit_code: int
    stages: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""


@dataclass(frozen=True)
class PlannedStage:
    """One node of a recipe's stage graph, as `plan` returns it.

    Attributes:
        name: The node's name (``generate``, ``filter``, ``sft:<student>``, ``eval`` ...).
        folder: Its output folder inside the run directory.
        upstream: The nodes whose outputs it reads.
        fingerprint: Its fingerprint now (config and upstream outputs); a done node with another one reruns.
        will_run: Whether ``run`` with the same ``only`` and ``force`` would run it rather than skip it.
    """

    name: str
    folder: str
    upstream: tuple[str, ...]
    fingerprint: str
    will_run: bool


def load_recipe(path: str | Path, overrides: Sequence[str] = (), /, **fields: Any) -> Recipe:
    """Load and validate a recipe, as ``distill <command> RECIPE key=value ...`` does.

    Args:
        path: A recipe YAML file, or a built-in recipe's name (``quickstart``, ``tiny``; see
            ``distill recipes``). Its ``base:`` files are merged first.
        overrides: ``key.sub=value`` strings exactly as on the command line, e.g. ``["eval.limit=10"]``.
            Values are parsed as YAML.
        **fields: The same as keyword arguments: ``run_dir="/tmp/x"`` sets a top-level field, and a dict
            sets fields inside a section without replacing the others: ``teacher={"batch_size": 8}``
            is ``teacher.batch_size=8``. A list or any other value replaces the field. Applied after
            ``overrides``.

    Returns:
        The validated `distill.recipe.Recipe` (pydantic; unknown keys are rejected).

    Raises:
        DistillError: The file is missing or not YAML, a key is unknown, or a value is invalid; the
            message names the file and the field, as the CLI's one-line error does.
    """
    from distill.recipe import load_recipe as load

    return load(path, [*overrides, *_as_overrides(fields)])


def _as_overrides(fields: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``{"teacher": {"batch_size": 8}}`` -> ``["teacher.batch_size=8"]``: the CLI's overrides, values as
    JSON (which YAML reads back as the same value)."""
    out: list[str] = []
    for key, value in fields.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out += _as_overrides(value, f"{name}.")
        else:
            out.append(f"{name}={json.dumps(_plain(value))}")
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _recipe(recipe: Recipe | str | Path) -> tuple[Recipe, str | None]:
    """(the recipe, the command that reproduces it) for a Recipe or a recipe file's path."""
    if isinstance(recipe, str | Path):
        return load_recipe(recipe), f"distill run {os.fspath(recipe)}"
    return recipe, None


def run(recipe: Recipe | str | Path, only: str | None = None, force: str | Iterable[str] = ()) -> RunResult:
    """Run a recipe's stages in order, skipping those already done with unchanged inputs.

    This is ``distill run`` (``only=None``) and ``distill <stage>`` (``only="<stage>"``): the same
    preflight first (nothing is written when it refuses), the same run directory, manifest and resume, and
    the report written at the end, finished or failed.

    Args:
        recipe: A recipe from `load_recipe`, or a recipe file's path (then its command is recorded
            in the manifest for the model card's "how to reproduce").
        only: Run just this stage family (``generate``, ``filter``, ``sft``, ``eval``, ``publish``,
            ``grpo``); the stages it reads from must be done.
        force: Stage families or nodes to rerun even when up to date (``"eval"``, ``("sft:small",)``);
            the stages downstream of a rerun stage rerun too.

    Returns:
        A `RunResult`: the run directory, its manifest, which nodes ran and which were skipped.

    Raises:
        DistillError: A one-line, user-fixable problem (the preflight's, or a stage's); stages finished
            before it stay recorded as done.
    """
    from distill.pipeline import plan as stage_plan
    from distill.pipeline import run_pipeline
    from distill.runs import Run

    recipe, command = _recipe(recipe)
    forced = (force,) if isinstance(force, str) else tuple(force)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # as the CLI: no fork warnings from tokenizers
    root = recipe.run_path()
    before = Run(root, write=False).manifest.get("stages", {}) if root.is_dir() else {}
    run_pipeline(recipe, only=only, force=forced, command=command)
    manifest = Run(root, write=False).manifest
    nodes = [s.name for s in stage_plan(recipe) if not only or s.family == only]
    after = manifest.get("stages", {})
    ran = tuple(n for n in nodes if n in after and _record_changed(before.get(n), after[n]))
    skipped = tuple(n for n in nodes if n in after and n not in ran)
    report = root / "report.html"
    return RunResult(root, manifest, ran, skipped, report if report.is_file() else None)


def _record_changed(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    """A node ran when its record is new, or it finished again (a new completion id), or it did not finish."""
    if before is None or after.get("status") != "done":
        return True
    return before.get("completion_id") != after.get("completion_id")


def status(recipe: Recipe | str | Path) -> RunStatus:
    """The run's state and its stage table, as ``distill status`` prints it; reads files, loads no model.

    Args:
        recipe: A recipe from `load_recipe`, or a recipe file's path.

    Returns:
        A `RunStatus` (``state``, ``exit_code``, a dict per stage node, the printed ``text``).
    """
    from distill.pipeline import planned
    from distill.report.status import status_rows, status_text

    recipe, _ = _recipe(recipe)
    root = recipe.run_path()
    rows, state, code = status_rows(root, planned(recipe))
    return RunStatus(root, state, code, rows, status_text(root, rows, state))


def plan(
    recipe: Recipe | str | Path, only: str | None = None, force: str | Iterable[str] = ()
) -> list[PlannedStage]:
    """The recipe's stage graph and what `run` with these arguments would run; writes nothing.

    Args:
        recipe: A recipe from `load_recipe`, or a recipe file's path.
        only: As in `run`.
        force: As in `run`.

    Returns:
        One `PlannedStage` per node, in run order (only ``only``'s nodes when given).
    """
    from distill.pipeline import pending_nodes, planned

    recipe, _ = _recipe(recipe)
    forced = (force,) if isinstance(force, str) else tuple(force)
    running = pending_nodes(recipe, only, forced)
    return [
        PlannedStage(node.name, node.folder, node.upstream, node.fingerprint, node.name in running)
        for node in planned(recipe)
        if not only or node.name.split(":")[0] == only
    ]


def write_report(recipe: Recipe | str | Path) -> Path:
    """Write ``report.html`` for the run as it stands (any state), as ``distill report`` does.

    Args:
        recipe: A recipe from `load_recipe`, or a recipe file's path.

    Returns:
        The page's path.

    Raises:
        DistillError: There is no run yet (no ``manifest.json`` in the run directory).
    """
    from distill.cli_inspect import report_or_status

    recipe, _ = _recipe(recipe)
    report_or_status(recipe, "report")
    return recipe.run_path() / "report.html"


__all__ = [
    "PlannedStage",
    "RunResult",
    "RunStatus",
    "load_recipe",
    "plan",
    "run",
    "status",
    "write_report",
]
