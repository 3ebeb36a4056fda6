"""distill: turn a strong reasoning model into smaller, released ones.

The Python API (docs/api.md), the same code the ``distill`` command runs:

- recipes and runs (distill.api): ``load_recipe``, ``run``, ``status``, ``plan``, ``write_report`` and what
  they return (``RunResult``, ``RunStatus``, ``PlannedStage``); errors are ``DistillError``, the CLI's one line;
- the verifier (distill.verify): ``verify_completion``, ``verify_choice``, ``verify_many``, ``verify_code``,
  ``verify_code_many``, ``extract_answer`` and their ``Verdict`` / ``CodeVerdict``;
- the judge (distill.judge): ``open_judge`` -> ``Judge.ask`` -> ``JudgeResult``.

Every name loads its module on first use, so ``import distill`` (and ``distill --help``) stays light: no
pydantic, torch or math-verify until something asks for them. ``distill.verify`` and ``distill.judge`` are the
subpackages themselves, so the verifier's and judge's entry points keep their own names here.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> the module that defines it (imported on first access; PEP 562)
_EXPORTS = {
    **dict.fromkeys(
        ("PlannedStage", "RunResult", "RunStatus", "load_recipe", "plan", "run", "status", "write_report"),
        "distill.api",
    ),
    "Recipe": "distill.recipe",
    "DistillError": "distill.errors",
    **dict.fromkeys(
        ("Verdict", "extract_answer", "verify_choice", "verify_completion", "verify_many"), "distill.verify"
    ),
    **dict.fromkeys(("CodeVerdict", "verify_code", "verify_code_many"), "distill.verify"),
    **dict.fromkeys(("Judge", "JudgeResult", "open_judge"), "distill.judge"),
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'distill' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
