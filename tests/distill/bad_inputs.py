"""A corpus of bad input files, built at test time (no binary blobs in git).

Each case is a file a user hands over -- a recipe, a prompts file, a traces file, a benchmark set, a chat
template -- that is broken in one way, and the words the one-line error must contain.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[2]
GOOD_ROWS = [
    {"id": "a", "problem": "What is 1 + 1?", "answer": "2"},
    {"id": "b", "problem": "What is 2 + 3?", "answer": "5"},
]
GOOD_TRACE = {"problem": "What is 1 + 1?", "answer": "2", "completion": "\\boxed{2}"}
BIG = 5 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    id: str
    target: str  # recipe | prompts | traces | benchmark | template: where the file goes
    name: str  # file name (its suffix picks the reader)
    make: Callable[[Path], None]  # writes the broken file at the given path
    expect: str  # words the error line must contain


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _text(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text, encoding="utf-8")


def _jsonl(rows: list) -> Callable[[Path], None]:
    return _text("".join(json.dumps(row) + "\n" for row in rows))


def _directory(path: Path) -> None:
    path.mkdir()


def _link_loop(path: Path) -> None:
    other = path.with_name(path.name + ".other")
    os.symlink(other, path)
    os.symlink(path, other)


def _dangling_link(path: Path) -> None:
    os.symlink(path.with_name("gone" + path.suffix), path)


def _parquet(rows: list) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


def _recipe_text() -> str:
    return (REPO / "recipes" / "tiny.yaml").read_text()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256))
LATIN1_JSONL = (
    json.dumps(GOOD_ROWS[0])
    + "\n"
    + json.dumps(GOOD_ROWS[1])
    + "\n"
    + '{"id": "c", "problem": "caf\xe9?", "answer": "1"}\n'
).encode("latin-1")

RECIPE_CASES = [
    Case("binary", "recipe", "r.yaml", _bytes(PNG), "binary data"),
    Case("latin1", "recipe", "r.yaml", _bytes("name: caf\xe9\n".encode("latin-1")), "not UTF-8 text"),
    Case("utf16", "recipe", "r.yaml", _bytes("name: x\n".encode("utf-16")), "UTF-16"),
    Case("empty", "recipe", "r.yaml", _bytes(b""), "empty file"),
    Case("whitespace", "recipe", "r.yaml", _bytes(b"  \n\t\n\r\n"), "empty file"),
    Case("directory", "recipe", "r.yaml", _directory, "is a folder"),
    Case("link_loop", "recipe", "r.yaml", _link_loop, "symbolic link loop"),
    Case("dangling_link", "recipe", "r.yaml", _dangling_link, "file not found"),
    Case("invalid_yaml", "recipe", "r.yaml", _text("name: x\nteacher: [unclosed\n"), "not valid YAML"),
    Case("top_level_list", "recipe", "r.yaml", _text("- name\n- teacher\n"), "expected a mapping"),
    Case(
        "truncated",
        "recipe",
        "r.yaml",
        _text(_recipe_text().split("\nstudents:")[0]),
        "missing required field",
    ),
    Case(
        "typo_top_level",
        "recipe",
        "r.yaml",
        _text(_recipe_text().replace("\nstudents:", "\nstudnets:")),
        "unknown key 'studnets' (did you mean 'students'?)",
    ),
    Case("nested_too_deep", "recipe", "r.yaml", _text("name: " + "[" * 100_000), "not valid YAML"),
    Case(
        "huge_value",
        "recipe",
        "r.yaml",
        _text(_recipe_text().replace("name: tiny", "name: '" + "x y" * (BIG // 3) + "'", 1)),
        "field 'name'",
    ),
]

PROMPT_CASES = [
    Case("jsonl_binary", "prompts", "p.jsonl", _bytes(PNG), "binary data"),
    Case("jsonl_latin1", "prompts", "p.jsonl", _bytes(LATIN1_JSONL), "p.jsonl:3: not UTF-8 text"),
    Case("jsonl_utf16", "prompts", "p.jsonl", _bytes(json.dumps(GOOD_ROWS[0]).encode("utf-16")), "UTF-16"),
    Case("jsonl_empty", "prompts", "p.jsonl", _bytes(b""), "empty file"),
    Case("jsonl_whitespace", "prompts", "p.jsonl", _bytes(b"\n  \n\r\n"), "empty file"),
    Case(
        "jsonl_bad_line",
        "prompts",
        "p.jsonl",
        _text(json.dumps(GOOD_ROWS[0]) + "\n{oops}\n"),
        "p.jsonl:2: not valid JSON",
    ),
    Case("jsonl_list_line", "prompts", "p.jsonl", _text("[1, 2]\n"), "p.jsonl:1: expected a JSON object"),
    Case(
        "jsonl_truncated",
        "prompts",
        "p.jsonl",
        _text(json.dumps(GOOD_ROWS[0]) + "\n" + json.dumps(GOOD_ROWS[1])[:20]),
        "p.jsonl:2: not valid JSON",
    ),
    Case(
        "jsonl_5mb_broken_line",
        "prompts",
        "p.jsonl",
        _text('{"id": "a", "problem": "' + "x" * BIG + "\n"),
        "p.jsonl:1: not valid JSON",
    ),
    Case(
        "jsonl_nested_too_deep",
        "prompts",
        "p.jsonl",
        _text('{"a": ' + "[" * 100_000 + "\n"),
        "nested too deeply",
    ),
    Case(
        "jsonl_missing_column",
        "prompts",
        "p.jsonl",
        _jsonl([{"id": "a", "question": "?", "answer": "1"}]),
        "row 1 has no column 'problem'",
    ),
    Case(
        "jsonl_null_answer",
        "prompts",
        "p.jsonl",
        _jsonl([GOOD_ROWS[0], {**GOOD_ROWS[1], "answer": None}]),
        "row 2 column 'answer' is null",
    ),
    Case(
        "jsonl_empty_answer",
        "prompts",
        "p.jsonl",
        _jsonl([{**GOOD_ROWS[0], "answer": " "}]),
        "row 1 column 'answer' is empty",
    ),
    Case(
        "jsonl_object_answer",
        "prompts",
        "p.jsonl",
        _jsonl([{**GOOD_ROWS[0], "answer": {"value": 2}}]),
        "row 1 column 'answer' must be a string or number",
    ),
    Case(
        "jsonl_mixed_types",
        "prompts",
        "p.jsonl",
        _jsonl([GOOD_ROWS[0], {**GOOD_ROWS[1], "answer": 5}]),
        "line 2: column 'answer' is a number here but a string in line 1",
    ),
    Case(
        "jsonl_duplicate_ids",
        "prompts",
        "p.jsonl",
        _jsonl([GOOD_ROWS[0], GOOD_ROWS[0]]),
        "row 2 has duplicate id 'a'",
    ),
    Case(
        "jsonl_blank_problem",
        "prompts",
        "p.jsonl",
        _jsonl([{**GOOD_ROWS[0], "problem": "   "}]),
        "non-empty string",
    ),
    Case("jsonl_directory", "prompts", "p.jsonl", _directory, "is a folder"),
    Case("jsonl_link_loop", "prompts", "p.jsonl", _link_loop, "symbolic link loop"),
    Case("jsonl_missing", "prompts", "p.jsonl", lambda path: None, "file not found"),
    Case("json_object", "prompts", "p.json", _text('{"rows": []}'), "expected a JSON list of objects"),
    Case("json_list_of_strings", "prompts", "p.json", _text('["a", "b"]'), "item 1 is a str"),
    Case("json_invalid", "prompts", "p.json", _text('[\n{"id": "a",\n'), "p.json:3: not valid JSON"),
    Case("json_empty_list", "prompts", "p.json", _text("[]"), "empty list"),
    Case(
        "csv_ragged_row",
        "prompts",
        "p.csv",
        _text("id,problem,answer\na,What?,1\nb,x,y,z\n"),
        "p.csv:3: 4 fields",
    ),
    Case("csv_duplicate_header", "prompts", "p.csv", _text("id,problem,problem\na,b,c\n"), "appears twice"),
    Case("csv_header_only", "prompts", "p.csv", _text("id,problem,answer\n"), "no rows below the header"),
    Case(
        "csv_latin1",
        "prompts",
        "p.csv",
        _bytes("id,problem,answer\na,caf\xe9,1\n".encode("latin-1")),
        "p.csv:2: not UTF-8",
    ),
    Case("csv_binary", "prompts", "p.csv", _bytes(PNG), "binary data"),
    Case(
        "csv_empty_answer",
        "prompts",
        "p.csv",
        _text("id,problem,answer\na,What?,\n"),
        "column 'answer' is empty",
    ),
    Case(
        "parquet_not_parquet",
        "prompts",
        "p.parquet",
        _text("id,problem,answer\n"),
        "not a readable parquet file",
    ),
    Case(
        "parquet_truncated",
        "prompts",
        "p.parquet",
        _bytes(_parquet(GOOD_ROWS)[:-40]),
        "not a readable parquet file",
    ),
    Case("parquet_empty", "prompts", "p.parquet", _bytes(b""), "empty file"),
    Case("unsupported_suffix", "prompts", "p.txt", _text("What is 1 + 1?\n"), "unsupported file type"),
]

TRACE_CASES = [
    Case(
        "traces_no_completion",
        "traces",
        "t.jsonl",
        _jsonl([{"problem": "?", "answer": "1"}]),
        "missing column(s) completion",
    ),
    Case(
        "traces_null_answer",
        "traces",
        "t.jsonl",
        _jsonl([{**GOOD_TRACE, "answer": None}]),
        "row 1: answer must be",
    ),
    Case(
        "traces_completion_not_text",
        "traces",
        "t.jsonl",
        _jsonl([{**GOOD_TRACE, "completion": 7}]),
        "completion must be a string",
    ),
    Case(
        "traces_mixed_types",
        "traces",
        "t.jsonl",
        _jsonl([{**GOOD_TRACE, "completion_tokens": 3}, {**GOOD_TRACE, "completion_tokens": "3"}]),
        "column 'completion_tokens' is a string here",
    ),
    Case(
        "traces_corrupt_parquet", "traces", "t.parquet", _bytes(b"PAR1" + PNG), "not a readable parquet file"
    ),
]

OTHER_CASES = [
    Case("benchmark_binary", "benchmark", "b.jsonl", _bytes(PNG), "binary data"),
    Case("benchmark_no_problem_column", "benchmark", "b.jsonl", _jsonl([{"text": "x"}]), "no problem column"),
    Case("benchmark_missing", "benchmark", "b.jsonl", lambda path: None, "benchmark file not found"),
    Case("template_binary", "template", "t.jinja", _bytes(PNG), "binary data"),
]

CASES = RECIPE_CASES + PROMPT_CASES + TRACE_CASES + OTHER_CASES


def command_for(case: Case, bad: Path, recipe: dict, folder: Path) -> list[str]:
    """The `distill` arguments that hand ``bad`` to the CLI the way a user would."""
    if case.target == "recipe":
        return ["run", str(bad)]
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    if case.target == "prompts":
        return ["run", str(path), f"data.source={bad}"]
    if case.target == "traces":
        return ["filter", str(path), "--traces", str(bad)]
    if case.target == "benchmark":
        return ["run", str(path), f"filter.decontaminate.benchmarks=[{bad}]"]
    return ["run", str(path), f"teacher.chat_template={bad}"]
