"""distill installs the top-level import packages ``teacher``, ``student`` and ``eval`` beside ``distill``
(the stages' rooms; the layout is part of the design). Other PyPI distributions use those names too: one
installed in the same environment, or a folder of that name on PYTHONPATH, would be imported instead of
ours and fail far from the cause. The CLI checks first and says which distribution is in the way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import distill

STAGE_PACKAGES = ("teacher", "student", "eval")


def _location(name: str) -> Path | None:
    """The folder the import system would load package ``name`` from (without importing it)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("namespace", "built-in", "frozen"):
        origin = Path(spec.origin)
        return origin.parent if origin.name == "__init__.py" else origin
    locations = list(spec.submodule_search_locations or [])
    return Path(locations[0]) if locations else None


def shadowed_package() -> str | None:
    """One line naming a stage package that does not come from distill's own installation, or None."""
    home = Path(distill.__file__).resolve().parent.parent
    for name in STAGE_PACKAGES:
        where = _location(name)
        if where is None:
            return f"distill's package {name!r} is missing from {home}: reinstall distill (pip install --force-reinstall)"
        if where.resolve().parent == home:
            continue
        return (
            f"the import package {name!r} comes from {where} ({_provider(name)}), not from distill's "
            f"installation in {home}: distill's stage packages teacher, student and eval share names with "
            "other distributions; uninstall that one or install distill in its own virtual environment"
        )
    return None


def _provider(name: str) -> str:
    from importlib.metadata import packages_distributions

    others = sorted({d for d in packages_distributions().get(name, []) if d.lower() != "distill"})
    if others:
        return f"installed by {', '.join(others)}"
    return "not installed by any distribution: a folder on PYTHONPATH or in the current folder?"
