"""Row schemas (prompts, traces, SFT rows) and reading/writing them as datasets-loadable files."""

from __future__ import annotations

import errno
import functools
import io
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from distill.errors import DistillError, first_line

PROMPT_COLUMNS = ("id", "problem", "answer")
VERIFIED_COLUMNS = ("extracted", "correct", "verify_reason")


@functools.cache
def trace_schema():
    """The trace row schema, one row per sample: the one definition, used by the shard writer and every
    reader (its ``names`` are the trace columns). Explicit so that shards written in different runs
    concatenate (a shard whose token counts are all missing would otherwise get a null-typed column that
    clashes with the next shard's int64). Built on first use: pyarrow stays out of the CLI's start-up."""
    import pyarrow as pa

    return pa.schema(
        [
            ("prompt_id", pa.string()),
            ("sample_idx", pa.int64()),
            ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
            ("completion", pa.string()),
            ("reasoning", pa.string()),
            ("final", pa.string()),
            ("finish_reason", pa.string()),
            ("prompt_tokens", pa.int64()),
            ("completion_tokens", pa.int64()),
            (
                "teacher",
                pa.struct([("model", pa.string()), ("backend", pa.string()), ("resolved", pa.string())]),
            ),
            (
                "sampling",
                pa.struct(
                    [
                        ("temperature", pa.float64()),
                        ("top_p", pa.float64()),
                        ("max_tokens", pa.int64()),
                        ("seed", pa.int64()),
                        ("seed_scope", pa.string()),
                        ("engine_seed", pa.int64()),
                    ]
                ),
            ),
            ("answer", pa.string()),
        ]
    )


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
    """Read a jsonl/json/parquet/csv file into a list of dicts.

    Any problem with the file itself (missing, a folder, a symlink loop, binary, not UTF-8, empty, corrupt,
    one malformed row, a column whose type changes between rows) is a one-line DistillError naming the file
    and, where there is one, the line or row. A UTF-8 byte-order mark and CRLF line ends are accepted.
    """
    path = Path(path)
    check_readable_file(path)
    suffix = path.suffix.lower()
    if suffix in _TEXT_KINDS:
        _refuse_binary(path, _TEXT_KINDS[suffix])
    if suffix == ".jsonl":
        rows, lines = _read_jsonl(path)
        _check_column_types(rows, path, lambda i: f"line {lines[i]}")
        return rows
    if suffix == ".json":
        rows = _read_json(path)
        _check_column_types(rows, path, lambda i: f"item {i + 1}")
        return rows
    if suffix == ".parquet":
        return _read_parquet(path)
    if suffix == ".csv":
        return _read_csv(path)
    raise DistillError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json, .parquet or .csv")


_TEXT_KINDS = {".jsonl": "JSON lines", ".json": "JSON", ".csv": "CSV"}


def iter_row_batches(path: str | Path, batch_rows: int = 1024) -> Iterator[list[dict[str, Any]]]:
    """The rows of a file, ``batch_rows`` at a time: a .parquet file in Arrow record batches and a .jsonl
    file line by line, so that memory holds one batch; .json and .csv are read whole, then handed out in
    batches. Errors as read_rows'; a column's type is checked within each batch of a .jsonl file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _parquet_batches(path, batch_rows)
    elif suffix == ".jsonl":
        check_readable_file(path)
        _refuse_binary(path, _TEXT_KINDS[suffix])
        yield from _jsonl_batches(path, batch_rows)
    else:
        rows = read_rows(path)
        for start in range(0, len(rows), batch_rows):
            yield rows[start : start + batch_rows]


def _parquet_batches(path: Path, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_readable_file(path)
    if path.stat().st_size == 0:
        raise DistillError(f"{path}: empty file, no rows")
    try:
        # pre_buffer off: on, pyarrow keeps the whole file's column chunks buffered as it goes (RSS grew
        # with the file: 435 MB for a 530 MB set, 199 MB without)
        batches = pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=batch_rows)
        for batch in batches:
            yield batch.to_pylist()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DistillError(
            f"{path}: not a readable parquet file ({first_line(str(exc), 120) or type(exc).__name__}); "
            "is it truncated, or another format renamed .parquet?"
        ) from None


def _jsonl_batches(path: Path, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    any_rows = False
    for number, row in _jsonl_rows(path):
        rows.append(row)
        lines.append(number)
        if len(rows) == batch_rows:
            _check_column_types(rows, path, lambda i, lines=lines: f"line {lines[i]}")
            yield rows
            any_rows, rows, lines = True, [], []
    if not rows and not any_rows:
        raise DistillError(f"{path}: empty file, no rows")
    if rows:
        _check_column_types(rows, path, lambda i: f"line {lines[i]}")
        yield rows


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, the row) for each non-blank line, read a line at a time."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            line = decode_text(raw, path, "JSON lines", number)
            if line.strip():
                yield number, _json_object(line, f"{path}:{number}")


def check_readable_file(path: Path) -> None:
    """One line for a path that is not a regular file: missing, a folder, a dangling link or a link loop."""
    try:
        info = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DistillError(f"{path}: symbolic link loop; point at the real file") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            dangling = " (a symbolic link to a missing file)" if path.is_symlink() else ""
            raise DistillError(f"{path}: file not found{dangling}") from None
        raise DistillError(f"{path}: cannot read it ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise DistillError(f"{path}: is a folder, expected a file")
    if not stat.S_ISREG(info.st_mode):
        raise DistillError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise DistillError(f"{path}: permission denied")


def _refuse_binary(path: Path, kind: str) -> None:
    """A text format whose first 8 KB hold a NUL byte (an image, an archive, UTF-16) is not text at all."""
    with path.open("rb") as handle:
        _check_not_binary(handle.read(8192), path, kind, 1)


def decode_text(data: bytes, path: Path, kind: str, start_line: int = 1) -> str:
    """UTF-8 text of ``data`` (a BOM is dropped); binary or other encodings -> one line with the line number."""
    _check_not_binary(data, path, kind, start_line)
    try:
        return data.decode("utf-8-sig" if start_line == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        line = start_line + data.count(b"\n", 0, exc.start)
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DistillError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at column {column}); "
            f"save the file as UTF-8 {kind}"
        ) from None


def _check_not_binary(data: bytes, path: Path, kind: str, start_line: int) -> None:
    if start_line == 1 and data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DistillError(f"{path}: UTF-16 text; save it as UTF-8 {kind}")
    if b"\x00" in data:
        line = start_line + data.count(b"\n", 0, data.index(b"\x00"))
        raise DistillError(f"{path}:{line}: binary data (NUL bytes), expected UTF-8 {kind} text")


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DistillError(f"{path}: cannot read it ({exc.strerror})") from None
    if not data.strip():
        raise DistillError(f"{path}: empty file, no rows")
    return data


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    numbered = list(_jsonl_rows(path))
    rows, lines = [row for _, row in numbered], [number for number, _ in numbered]
    if not rows:
        raise DistillError(f"{path}: empty file, no rows")
    return rows, lines


def _parse_json(text: str, where: str, line_prefix: str | None = None) -> Any:
    """json.loads with one-line errors; ``line_prefix`` (a path) makes the error name the failing line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"{line_prefix}:{exc.lineno}" if line_prefix else where
        raise DistillError(f"{at}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise DistillError(f"{where}: JSON nested too deeply") from None


def _json_object(line: str, where: str) -> dict[str, Any]:
    row = _parse_json(line, where)
    if not isinstance(row, dict):
        raise DistillError(f"{where}: expected a JSON object per line, got {type(row).__name__}")
    return row


def _read_json(path: Path) -> list[dict[str, Any]]:
    text = decode_text(_read_bytes(path), path, "JSON")
    data = _parse_json(text, str(path), line_prefix=str(path))
    if not isinstance(data, list):
        raise DistillError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise DistillError(f"{path}: item {index + 1} is a {type(item).__name__}, expected an object")
    if not data:
        raise DistillError(f"{path}: empty list, no rows")
    return data


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise DistillError(f"{path}: empty file, no rows")
    try:
        return pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DistillError(
            f"{path}: not a readable parquet file ({first_line(str(exc), 120) or type(exc).__name__}); "
            "is it truncated, or another format renamed .parquet?"
        ) from None


def _read_csv(path: Path) -> list[dict[str, Any]]:
    import csv

    text = decode_text(_read_bytes(path), path, "CSV")
    csv.field_size_limit(2**31 - 1)  # the default (128 KB) would refuse a long problem statement
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        if len(set(header)) < len(header):
            twice = next(name for name in header if header.count(name) > 1)
            raise DistillError(f"{path}:1: column {twice!r} appears twice in the header")
        rows = []
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise DistillError(
                    f"{path}:{reader.line_num}: {len(fields)} fields, the header has {len(header)} "
                    "(an unquoted comma or quote?)"
                )
            rows.append(dict(zip(header, fields, strict=True)))
    except csv.Error as exc:
        raise DistillError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
    if not rows:
        raise DistillError(f"{path}: no rows below the header")
    return rows


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "list", dict: "object"}.get(type(value), type(value).__name__)


def _check_column_types(rows: list[dict[str, Any]], path: Path, label: Callable[[int], str]) -> None:
    """One type per column (nulls aside), as `datasets`/pyarrow require: a type change fails here, not
    when a stage writes its output hours later."""
    first: dict[str, tuple[str, int]] = {}
    for index, row in enumerate(rows):
        for column, value in row.items():
            kind = _kind(value)
            if kind is None:
                continue
            seen = first.setdefault(column, (kind, index))
            if seen[0] != kind:
                raise DistillError(
                    f"{path}: {label(index)}: column {column!r} is a {kind} here but a {seen[0]} in "
                    f"{label(seen[1])}; use one type per column (e.g. quote the numbers)"
                )


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
