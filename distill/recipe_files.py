"""Where recipe files come from: built-in recipes by name, `base:` chains, and the data shipped beside them.

- A recipe argument that is an existing path is that file; otherwise a built-in recipe's name
  (``quickstart``, ``quickstart.yaml``) names the file shipped with distill (``recipes/`` in a checkout,
  ``distill/recipes/`` inside the wheel).
- ``base: FILE`` (or a list of files) names recipes this one starts from. A base is looked up relative to
  the file that names it, then among the built-in recipes (``bases/r1-common.yaml``, ``quickstart``).
  Mappings merge key by key, the later file winning (bases in list order, the recipe itself last); lists
  and every other value are replaced whole; ``key: null`` sets the value to null like any other value.
- A built-in recipe names its data relative to the checkout (``recipes/data/...``). When that path does not
  exist from the current folder, the copy shipped beside the built-in recipes is used, so the same recipe
  runs from a checkout (the string is unchanged there: fingerprints stay as they were) and from the wheel.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill.errors import DistillError

BASE_KEY = "base"
# Fields that hold a data file a built-in recipe ships (recipes/data/...).
DATA_PATHS = (("data", "source"), ("grpo", "data", "source"))
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def builtin_dir() -> Path:
    """The built-in recipes: ``distill/recipes`` inside an installed wheel, else the checkout's ``recipes/``."""
    here = Path(__file__).resolve().parent
    installed = here / "recipes"
    return installed if installed.is_dir() else here.parent / "recipes"


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


def builtin_recipe(ref: str) -> Path | None:
    """The built-in recipe file ``ref`` names (``quickstart``, ``tiny.yaml``, ``bases/r1-common.yaml``)."""
    if not ref or Path(ref).is_absolute() or ".." in Path(ref).parts:
        return None
    root = builtin_dir()
    return next((p for p in (root / ref, root / f"{ref}.yaml") if p.is_file()), None)


def find_recipe(ref: str | Path) -> Path:
    """The recipe file a command-line argument names: an existing path wins, then a built-in name."""
    path = Path(ref)
    if path.exists() or path.is_symlink():
        return path
    return builtin_recipe(str(ref)) or path


def not_found_hint(ref: str | Path) -> str:
    """For a recipe that is neither a file nor a built-in name: the built-in names to choose from."""
    if "/" in str(ref) or "\\" in str(ref):
        return ""
    return f" (nor a built-in recipe: {', '.join(builtin_names())}; see `distill recipes`)"


def read_with_bases(path: Path, read_yaml: Callable[[Path], Any]) -> tuple[dict, list[Path]]:
    """The recipe's mapping merged over its bases (recursively), and the files read: the recipe first."""
    return _read_chain(path, read_yaml, ())


def _read_chain(
    path: Path, read_yaml: Callable[[Path], Any], above: tuple[Path, ...]
) -> tuple[dict, list[Path]]:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise DistillError(
            f"{path}: expected a mapping of sections (name, data, teacher, ...) at the top level"
        )
    refs = data.pop(BASE_KEY, None)
    if refs is None:
        return data, [path]
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r.strip() for r in refs):
        raise DistillError(
            f"{path}: field 'base': expected a recipe file or a list of them, e.g. base: bases/r1-common.yaml"
        )
    merged: dict = {}
    files = [path]
    for ref in refs:
        base = _base_file(path, ref, above)
        base_data, base_files = _read_chain(base, read_yaml, (*above, path))
        merged = deep_merge(merged, base_data)
        files += base_files
    return deep_merge(merged, data), files


def _base_file(path: Path, ref: str, above: tuple[Path, ...]) -> Path:
    chain = " -> ".join(str(p) for p in (*above, path))
    candidate = path.parent / ref
    base = candidate if candidate.is_file() else builtin_recipe(ref)
    if base is None:
        raise DistillError(
            f"{chain}: base {ref!r} not found (looked for {candidate} and a built-in recipe of that name)"
        )
    if base.resolve() in {p.resolve() for p in (*above, path)}:
        raise DistillError(
            f"{chain} -> {base}: base cycle; a recipe cannot be its own base, remove one base:"
        )
    return base


def deep_merge(base: dict, child: dict) -> dict:
    """``child`` over ``base``: mappings merge key by key (child wins); lists and scalars are replaced."""
    out = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def describe_chain(files: list[Path]) -> str:
    """How an error names the recipe: the file, and the bases it was merged over."""
    if len(files) == 1:
        return str(files[0])
    return f"{files[0]} (with base {', '.join(str(p) for p in files[1:])})"


def is_builtin(path: Path) -> bool:
    return path.resolve().is_relative_to(builtin_dir().resolve())


def shipped_data(value: Any) -> Path | None:
    """The file shipped with the built-in recipes that a relative data path names, if the plain path does
    not exist from the current folder."""
    if not isinstance(value, str) or not value or Path(value).is_absolute() or Path(value).exists():
        return None
    shipped = builtin_dir().parent / value
    return shipped if shipped.exists() else None


def resolve_shipped_data(data: dict, files: list[Path]) -> None:
    """A recipe read from (or over) a built-in file: its data paths that do not exist from the current
    folder name the files shipped beside the built-in recipes."""
    if not any(is_builtin(f) for f in files):
        return
    for keys in DATA_PATHS:
        node: Any = data
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and (shipped := shipped_data(node.get(keys[-1]))):
            node[keys[-1]] = str(shipped)


def header(text: str) -> list[str]:
    """The leading comment of a recipe, one entry per line, without the ``#`` (indentation kept)."""
    lines = []
    for line in text.lstrip("\ufeff").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].removeprefix(" ").rstrip())
    return lines


_SENTENCE_END = re.compile(r"(?<![Ee]\.g)(?<!i\.e)\.(?=\s|$)")


def _sentence(lines: list[str], limit: int) -> str:
    """The first sentence of a comment paragraph that may wrap over several lines; an indented line (a
    command) or a blank one ends the paragraph."""
    text = lines[0].strip() if lines else ""
    for line in lines[1:]:
        if _SENTENCE_END.search(text) or not line.strip() or line.startswith(" "):
            break
        text += " " + line.strip()
    end = _SENTENCE_END.search(text)
    text = text[: end.end()] if end else text
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def summary(path: Path, limit: int = 160) -> tuple[str, str]:
    """A recipe's purpose (the first sentence of its leading comment) and hardware (the first sentence
    after ``Hardware:``), as `distill recipes` lists them."""
    lines = header(path.read_text(encoding="utf-8"))
    start = next((i for i, line in enumerate(lines) if line.startswith("Hardware:")), None)
    hardware = (
        ""
        if start is None
        else _sentence([lines[start].removeprefix("Hardware:"), *lines[start + 1 :]], limit)
    )
    return _sentence(lines, limit), hardware


def copy_recipe(source: Path, name: str, folder: Path) -> Path:
    """Write ``folder/NAME.yaml``: the recipe ``source`` with ``name: NAME``, its comments kept, and data
    paths that only resolve beside the built-in recipes made absolute (so the copy runs from ``folder``)."""
    if not re.match(NAME_PATTERN, name):
        raise DistillError(
            f"distill init {name!r}: a recipe name is letters, digits, '.', '_', '-' (e.g. my-run)"
        )
    target = folder / f"{name}.yaml"
    if target.exists() or target.is_symlink():
        raise DistillError(f"{target}: already exists; choose another NAME or remove the file first")
    text = source.read_text(encoding="utf-8").lstrip("\ufeff")
    text, count = re.subn(r"^name:.*$", f"name: {name}", text, count=1, flags=re.M)
    if not count:
        raise DistillError(f"{source}: has no top-level name: line to rename; copy it by hand")
    text = _base_lines_absolute(text, source, folder)
    if is_builtin(source):
        for value in set(re.findall(r"^\s*source:\s*['\"]?([^'\"#\s]+)", text, flags=re.M)):
            if shipped := shipped_data(value):
                text = re.sub(
                    rf"(source:\s*)(['\"]?){re.escape(value)}\2", rf"\g<1>{json.dumps(str(shipped))}", text
                )
    target.write_text(text, encoding="utf-8")
    return target


def _base_lines_absolute(text: str, source: Path, folder: Path) -> str:
    """``base: FILE`` lines that would not find the same file from the copy's folder, made absolute."""

    def fix(match: re.Match) -> str:
        ref = match.group(2)
        beside = source.parent / ref
        if not beside.is_file() or (folder / ref).resolve() == beside.resolve() or is_builtin(beside):
            return match.group(0)
        return f"{match.group(1)}{json.dumps(str(beside.resolve()))}"

    return re.sub(r"^(base:\s*)['\"]?([^'\"#\s\[]+)['\"]?", fix, text, flags=re.M)
