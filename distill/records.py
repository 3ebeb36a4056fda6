"""Row schemas (prompts, traces, SFT rows) and reading/writing them as datasets-loadable files."""

from __future__ import annotations

import json
import re
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
_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)


def split_think(completion: str) -> tuple[str, str]:
    """Split a completion into (reasoning inside <think>, final text after it); no tags -> ("", text)."""
    match = _THINK.search(completion)
    if not match:
        return "", completion.strip()
    closed = "</think>" in completion[match.start() :]
    final = completion[match.end() :].strip() if closed else ""
    return match.group(1).strip(), final


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


def write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write rows to parquet atomically (temp file + rename)."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    os.replace(tmp, path)
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
