"""Prompts: load a local file or a `datasets` id, map columns, render chat messages; split `<think>` output."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

from distill.errors import DistillError, first_line
from distill.records import decode_text, read_rows, split_think

_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def load_prompt_rows(
    source: str,
    split: str = "train",
    *,
    name: str | None = None,
    revision: str | None = None,
    limit: int | None = None,
    label: str = "data.source",
) -> list[dict[str, Any]]:
    """Rows of a local jsonl/json/parquet/csv file, a local `datasets` folder, or a `datasets` Hub id + split.

    ``limit`` reads only the first N rows; a Hub id or a folder of data files is then streamed, so a smoke
    run over a large published set downloads only what it reads. ``label`` names the recipe field in errors.
    """
    path = Path(source).expanduser()
    if path.is_file() or path.suffix.lower() in _FILE_SUFFIXES:
        rows = read_rows(path)
        return rows[:limit] if limit else rows
    if path.is_dir():
        return _load_dataset_folder(path, split, limit, label)
    if source.startswith((".", "/", "~")):
        raise DistillError(f"{label} {source!r}: no such file or folder")
    try:
        return _read_dataset(source, split, limit, name=name, revision=revision)
    except Exception as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
        hint = "; HF_HUB_OFFLINE=1 is set: load it once online, or point at a local copy" if offline else ""
        raise DistillError(
            f"{label} {source!r} (split {split!r}): not a local file and `datasets` could not load it "
            f"({type(exc).__name__}: {first_line(str(exc), 200)}){hint}"
        ) from None


def _read_dataset(source: str, split: str, limit: int | None, **options: Any) -> list[dict[str, Any]]:
    import datasets

    loaded = datasets.load_dataset(source, split=split, streaming=limit is not None, **options)
    return list(itertools.islice(loaded, limit)) if limit is not None else loaded.to_list()


def _load_dataset_folder(path: Path, split: str, limit: int | None, label: str) -> list[dict[str, Any]]:
    import datasets

    try:
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            loaded = datasets.load_from_disk(str(path))  # written by save_to_disk
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    section = label.rsplit(".", 1)[0]  # data.split or filter.split
                    raise DistillError(
                        f"{section}.split {split!r} not in {path}; it has: {', '.join(loaded)}"
                    )
                loaded = loaded[split]
            return loaded.select(range(min(limit, len(loaded)))).to_list() if limit else loaded.to_list()
        return _read_dataset(str(path), split, limit)
    except DistillError:
        raise
    except Exception as exc:
        raise DistillError(
            f"{label} {path}: `datasets` could not load this folder ({type(exc).__name__}: "
            f"{first_line(str(exc), 200)})"
        ) from None


def build_prompts(
    rows: list[dict[str, Any]],
    *,
    where: str,
    id_column: str | None,
    problem_column: str,
    answer_column: str,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Normalise rows into the Prompts contract: id, problem, answer (+ the optional code fields, see
    ``code_fields``; a row with tests needs no answer). Errors name the row (1-based) and the column: a
    missing or null value, a blank problem, an answer that is not a string or number, a repeated id."""
    if not rows:
        raise DistillError(f"{where}: no rows; expected rows with columns {problem_column}, {answer_column}")
    rows = rows[:limit] if limit else rows
    use_ids = bool(id_column) and id_column in rows[0]
    prompts, seen = [], {}
    for number, row in enumerate(rows, 1):
        coded = row.get("tests") not in (None, "", [], {})  # a code prompt: its tests are the reference
        needed = [answer_column] if not coded or row.get(answer_column) is not None else []
        for column in (problem_column, *needed, *([id_column] if use_ids else [])):
            if column not in row:
                have = ", ".join(sorted(map(str, row))) or "none"
                raise DistillError(
                    f"{where}: row {number} has no column {column!r} (found: {have}); "
                    "map it with data.problem_column / data.answer_column / data.id_column"
                )
            if row[column] is None:
                raise DistillError(
                    f"{where}: row {number} column {column!r} is null; fill it or drop the row"
                )
        prompt_id = _scalar_text(row[id_column], where, number, id_column) if use_ids else str(number - 1)
        if prompt_id in seen:
            raise DistillError(
                f"{where}: row {number} has duplicate id {prompt_id!r} (column {id_column!r}, first in row "
                f"{seen[prompt_id]}); ids must be unique"
            )
        seen[prompt_id] = number
        problem = row[problem_column]
        if not isinstance(problem, str) or not problem.strip():
            raise DistillError(f"{where}: row {number} column {problem_column!r} must be a non-empty string")
        answer = _scalar_text(row[answer_column], where, number, answer_column) if needed else ""
        prompts.append({"id": prompt_id, "problem": problem, "answer": answer, **code_fields(row)})
    if any("tests" in prompt for prompt in prompts):  # one parquet schema for code and non-code rows
        for prompt in prompts:
            prompt.update({key: prompt.get(key) for key in CODE_FIELDS})
    return prompts


CODE_FIELDS = ("tests", "entry_point", "starter_code", "language")


def code_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The prompt contract's optional code fields of a row: ``tests`` (asserts, a check() function, or
    stdin/stdout pairs; stored as JSON text unless already text), ``entry_point``, ``starter_code``,
    ``language``. Empty for a row without tests."""
    import json

    tests = row.get("tests")
    if tests in (None, "", [], {}):
        return {}
    fields = {"tests": tests if isinstance(tests, str) else json.dumps(tests)}
    for key in CODE_FIELDS[1:]:
        fields[key] = None if row.get(key) is None else str(row[key])
    return fields


def data_prompts(data, where: str | None = None) -> list[dict[str, Any]]:
    """The Prompts contract rows (id, problem, answer) of a recipe's ``data`` section (or ``grpo.data``):
    read, mapped and limited the one way generate, grpo, the preflight and chunking all read them."""
    return build_prompts(
        load_prompt_rows(data.source, data.split),
        where=where or f"data.source {data.source}",
        id_column=data.id_column,
        problem_column=data.problem_column,
        answer_column=data.answer_column,
        limit=data.limit,
    )


def chat_prompts(data, where: str | None = None) -> dict[str, list[dict[str, str]]]:
    """Prompt id -> the chat messages the teacher is asked (``data``'s system prompt and template): the one
    rendering of a data section, for a student that samples the same prompts (on_policy ``prompts: data``)."""
    return {
        p["id"]: prompt_messages(p, data.prompt_template, data.system_prompt)
        for p in data_prompts(data, where)
    }


def _scalar_text(value: Any, where: str, number: int, column: str) -> str:
    """An id or answer as text: strings and numbers only (a list or an object is a mapping mistake)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DistillError(
            f"{where}: row {number} column {column!r} must be a string or number, got {type(value).__name__}"
        )
    if not str(value).strip():
        raise DistillError(f"{where}: row {number} column {column!r} is empty")
    return str(value)


DEFAULT_TEMPLATE = "{problem}"


def asked_problem(prompt: dict[str, Any], template: str = DEFAULT_TEMPLATE) -> str:
    """The problem as the teacher reads it: a code prompt (one with tests) under the default template gets
    the instruction its answer will be checked by (distill.verify.code_instruction: one fenced block, stdin or
    a call of the entry point, the starter code); a recipe's own ``prompt_template`` is used as written."""
    if prompt.get("tests") is None or template != DEFAULT_TEMPLATE:
        return prompt["problem"]
    from distill.verify.code import code_instruction, code_problem

    return f"{prompt['problem'].rstrip()}\n\n{code_instruction(code_problem(prompt))}"


def prompt_messages(prompt: dict[str, Any], template: str, system_prompt: str | None) -> list[dict[str, str]]:
    """The chat messages a Prompts-contract row is asked with (generate, GRPO, on-policy ``prompts: data``)."""
    return render_messages(asked_problem(prompt, template), template, system_prompt)


def render_messages(problem: str, template: str, system_prompt: str | None) -> list[dict[str, str]]:
    # str.replace, not str.format: problems and templates often contain literal braces (LaTeX, JSON).
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": template.replace("{problem}", problem)})
    return messages


def load_chat_template(value: str | None) -> str | None:
    """``teacher.chat_template``: a .jinja file or the template text itself; None keeps the model's own."""
    if not value:
        return None
    path = Path(value).expanduser()
    if "\n" not in value and len(value) < 4096 and path.is_file():
        return decode_text(path.read_bytes(), path, "Jinja template")
    if "{%" in value or "{{" in value:
        return value
    raise DistillError(
        f"teacher.chat_template {value[:80]!r}: neither an existing file nor Jinja template text"
    )


def split_reasoning(completion: str, reasoning: str | None = None) -> tuple[str, str]:
    """(reasoning, final) of a completion; ``reasoning`` is what a server returned separately, if any."""
    if reasoning:
        return reasoning.strip(), completion.strip()
    return split_think(completion)


def assemble_completion(content: str, reasoning: str | None) -> str:
    """The assistant text a student should learn: reasoning returned separately goes back inside <think>."""
    if not reasoning:
        return content
    return f"<think>\n{reasoning.strip()}\n</think>\n\n{content.strip()}"
