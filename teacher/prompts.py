"""Prompts: load a local file or a `datasets` id, map columns, render the template into chat messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.records import read_rows, require_columns


def load_prompt_rows(source: str, split: str = "train") -> list[dict[str, Any]]:
    """Rows of a local jsonl/json/parquet/csv file, or of a `datasets` Hub id + split."""
    path = Path(source)
    if path.exists() or path.suffix in (".jsonl", ".json", ".parquet", ".csv"):
        return read_rows(path)
    import datasets

    try:
        return datasets.load_dataset(source, split=split).to_list()
    except Exception as exc:
        raise DistillError(
            f"data.source {source!r}: not a local file and `datasets` could not load it "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
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
    """Normalise rows into the Prompts contract: id, problem, answer (+ source)."""
    needed = [problem_column, answer_column] + ([id_column] if id_column and rows and id_column in rows[0] else [])
    require_columns(rows, needed, where)
    prompts, seen = [], set()
    for index, row in enumerate(rows[:limit] if limit else rows):
        prompt_id = str(row[id_column]) if id_column and id_column in row else str(index)
        if prompt_id in seen:
            raise DistillError(f"{where}: duplicate id {prompt_id!r} in column {id_column!r}; ids must be unique")
        seen.add(prompt_id)
        problem = row[problem_column]
        if not isinstance(problem, str) or not problem.strip():
            raise DistillError(f"{where}: row {index} column {problem_column!r} must be a non-empty string")
        prompts.append({"id": prompt_id, "problem": problem, "answer": str(row[answer_column])})
    return prompts


def render_messages(problem: str, template: str, system_prompt: str | None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": template.replace("{problem}", problem)})
    return messages
