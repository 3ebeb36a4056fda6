"""The house's import rules (docs/architecture.md "Who may import whom"), checked on the source: imports go
downward, stage packages never import each other, and only the top floor of the core imports a stage."""

from __future__ import annotations

import ast
from pathlib import Path

from suite import REPO

STAGE_PACKAGES = {"teacher", "student", "eval"}
# The core's top floor (the pipeline, the preflight, the Python API and the CLI modules) may reach the
# stages, lazily.
TOP_FLOOR = {
    "pipeline.py",
    "preflight.py",
    "api.py",
    "cli.py",
    "cli_recipes.py",
    "cli_scale.py",
    "cli_inspect.py",
}
# distill/publish and distill/report are stages that live inside distill/: they may import the core only.
CORE_STAGES = ("publish", "report")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def owner(module: str) -> str:
    """The room a module belongs to: a stage package, a stage inside distill/, or the core."""
    parts = module.split(".")
    if parts[0] == "distill" and len(parts) > 1 and parts[1] in CORE_STAGES:
        return f"distill.{parts[1]}"
    return parts[0]


def violations() -> list[str]:
    found = []
    for path in sorted(REPO.glob("*/**/*.py")):
        rel = path.relative_to(REPO)
        room = owner(".".join(rel.with_suffix("").parts))
        if room not in STAGE_PACKAGES | {f"distill.{s}" for s in CORE_STAGES} | {"distill"}:
            continue  # tests, bench, recipes
        for module in imported_modules(path):
            target = owner(module)
            if target == room or target not in STAGE_PACKAGES | {f"distill.{s}" for s in CORE_STAGES}:
                continue
            if room == "distill" and rel.parts[1] in TOP_FLOOR:
                continue
            found.append(f"{rel} imports {module}")
    return found


def test_imports_go_downward_and_stages_never_import_each_other():
    assert violations() == []


def test_the_check_sees_a_planted_violation(tmp_path):
    planted = tmp_path / "student_spec.py"
    planted.write_text("def f():\n    from teacher.prompts import chat_prompts\n")
    assert "teacher.prompts" in imported_modules(planted)
    assert owner("teacher.prompts") == "teacher" and owner("distill.report.page") == "distill.report"
