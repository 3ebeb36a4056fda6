"""Row schemas (prompts, traces, SFT rows) and reading/writing them as datasets-loadable files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.errors import DistillError

PROMPT_COLUMNS = ("id", "problem", "answer")
TRACE_COLUMNS = (
    "prompt_id",
    "sample_idx",
    "messages",
    "completion",
    "reasoning",
    "final",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "teacher",
    "sampling",
    "answer",
)
VERIFIED_COLUMNS = ("extracted", "correct", "verify_reason")


def split_think(completion: str) -> tuple[str, str]:
    """(reasoning, final answer text) of a completion: the one place that reads ``<think>`` tags.

    The final text is what follows the last ``</think>`` (cut at any later ``<think>``). A ``</think>``
    without its opening tag counts too: chat templates such as DeepSeek-R1's put ``<think>`` in the
    prompt, so the reasoning must not leak into the answer. An unclosed ``<think>`` (truncated) is all
    reasoning and no answer; no tags at all is all answer.
    """
    close = completion.rfind("</think>")
    if close >= 0:
        head, after = completion[:close], completion[close + len("</think>") :]
        start = head.find("<think>")
        reasoning = head[start + len("<think>") :] if start >= 0 else head
        return reasoning.strip(), after.split("<think>", 1)[0].strip()
    start = completion.find("<think>")
    if start >= 0:
        return completion[start + len("<think>") :].strip(), ""
    return "", completion.strip()


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a jsonl/json/parquet/csv file into a list of dicts; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        data = json.loads(path.read_text())
        if not isinstance(data, list):
            raise DistillError(f"{path}: expected a JSON list of objects")
        return data
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix == ".csv":
        import csv

        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    raise DistillError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json, .parquet or .csv")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open() as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DistillError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DistillError(f"{path}:{number}: expected a JSON object per line")
            rows.append(row)
    return rows


def write_parquet(rows: list[dict[str, Any]], path: Path, schema: Any = None) -> Path:
    """Write rows to parquet atomically (temp file + rename); ``schema`` pins column types if given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distill.runs import atomic_path

    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    return path


def require_columns(rows: list[dict[str, Any]], columns: tuple[str, ...] | list[str], where: str) -> None:
    if not rows:
        raise DistillError(f"{where}: no rows; expected at least one row with columns {', '.join(columns)}")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        have = ", ".join(sorted(rows[0])) or "none"
        raise DistillError(
            f"{where}: missing column(s) {', '.join(missing)} (found: {have}); map them in the recipe"
        )
