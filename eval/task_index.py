"""Which eval task names exist, answered in about a second (preflight) instead of lm-eval's ~12 s index.

lm-eval's ``TaskManager`` parses every one of its ~14k task YAMLs (includes resolved) to learn the names.
A name is only ever declared by a top-level ``task:`` (a task, or a Python task with ``class:``),
``group:`` (a group) or ``tag:`` (a string or a list) line, in a YAML or in a template it ``include``s, so a
plain text scan of those lines finds the same names without parsing YAML: 14,683 names in ~1.4 s, equal to
``TaskManager().all_tasks`` for lm-eval 0.4 (``tests/eval/test_task_index.py`` keeps checking that).
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import os
from pathlib import Path

from distill.errors import DistillError
from eval.harness import local_task_names

_KEYS = ("task:", "group:", "tag:", '"task":', '"group":', '"tag":', "'task':", "'group':", "'tag':")


def check_task_names(names: list[str]) -> None:
    """Raise a one-line DistillError for the first name that is neither ours nor lm-eval's."""
    local = local_task_names()
    unknown = [name for name in names if name not in local]
    if not unknown:
        return
    known = local | builtin_task_names()
    for name in unknown:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DistillError(
                f"eval.tasks: unknown task {name!r}{hint}; ours are {', '.join(sorted(local))} "
                "(eval/tasks/*.yaml), or any lm-eval task name (`lm-eval ls tasks`)"
            )


@functools.lru_cache(maxsize=1)
def builtin_task_names() -> frozenset[str]:
    """Task, group and tag names declared by lm-eval's bundled YAMLs (empty when lm-eval is absent)."""
    spec = importlib.util.find_spec("lm_eval")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    root = Path(next(iter(spec.submodule_search_locations))) / "tasks"
    names: set[str] = set()
    memo: dict[Path, list[str]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", ".ipynb_checkpoints")]
        for file in files:
            if file.endswith(".yaml"):
                names.update(_declared_names(Path(folder, file), memo))
    return frozenset(names)


def _declared_names(path: Path, memo: dict[Path, list[str]]) -> list[str]:
    """Names a YAML declares itself or through the files it includes (tags often live in a template)."""
    if path in memo:
        return memo[path]
    memo[path] = []  # an include cycle ends here
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    found: list[str] = []
    heads = {line.lstrip("'\"").split(":", 1)[0].strip("'\"") for line in lines if line[:1] not in " -#"}
    # lm-eval: a `class:` makes it a Python task named by `task:`; else `group:` makes it a group.
    is_group = "group" in heads and "class" not in heads
    for number, line in enumerate(lines):
        if line.lstrip("'\"").startswith("include"):
            included = _scalar(line.split(":", 1)[-1])
            found += _declared_names(path.parent / included, memo) if included else []
            continue
        key = next((k for k in _KEYS if line.startswith(k)), None)
        kind = key.strip("'\":") if key else None
        if kind is None or (kind == "task" and is_group) or (kind == "group" and not is_group):
            continue  # a group's `task:` lists its members; a Python task's `group:` names nothing
        value = _scalar(line[len(key) :])
        if value.startswith("["):
            found += [_scalar(v) for v in value.strip("[]").split(",") if _scalar(v)]
        elif value and value not in ("null", "~"):
            found.append(value)
        elif kind == "tag":  # block list on the following lines
            found += _block_list(lines[number + 1 :])
    memo[path] = found
    return found


def _block_list(lines: list[str]) -> list[str]:
    items = []
    for line in lines:
        stripped = line.strip()
        if not stripped.startswith("- "):
            break
        items.append(_scalar(stripped[2:]))
    return [item for item in items if item]


def _scalar(text: str) -> str:
    text = text.split(" #", 1)[0].strip()
    return text.strip("'\"").strip()
