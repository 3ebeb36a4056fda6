"""Prompt loading and rendering, reasoning splitting, per-sample seeds (fast, no model)."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill.errors import DistillError
from teacher.generate.stage import build_requests, sample_seed
from teacher.prompts import (
    assemble_completion,
    build_prompts,
    load_chat_template,
    load_prompt_rows,
    render_messages,
    split_reasoning,
)

ROWS = [
    {"qid": "a", "question": "What is 1 + 1?", "gold": 2},
    {"qid": "b", "question": "What is {x}?", "gold": 5},
]


def _build(rows, **kwargs):
    mapping = {"where": "test", "id_column": "qid", "problem_column": "question", "answer_column": "gold"}
    return build_prompts(rows, **{**mapping, **kwargs})


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet"])
def test_local_files_load_with_column_mapping(tmp_path, suffix):
    path = tmp_path / f"prompts.{suffix}"
    if suffix == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif suffix == "csv":
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(ROWS[0]))
            writer.writeheader()
            writer.writerows(ROWS)
    else:
        pq.write_table(pa.Table.from_pylist(ROWS), path)
    prompts = _build(load_prompt_rows(str(path)))
    assert prompts == [
        {"id": "a", "problem": "What is 1 + 1?", "answer": "2"},
        {"id": "b", "problem": "What is {x}?", "answer": "5"},
    ]


def test_local_datasets_folder_and_split(tmp_path):
    import datasets

    folder = tmp_path / "saved"
    datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(folder))
    assert len(load_prompt_rows(str(folder), "test")) == 2
    with pytest.raises(DistillError, match=r"data.split 'train' not in .* it has: test"):
        load_prompt_rows(str(folder), "train")


def test_missing_column_names_the_row_and_the_fix():
    rows = [*ROWS, {"qid": "c", "gold": 1}]
    with pytest.raises(DistillError, match=r"row 3 has no column 'question' .*data.problem_column"):
        _build(rows)
    with pytest.raises(DistillError, match="no column 'problem'"):
        build_prompts(ROWS, where="t", id_column="id", problem_column="problem", answer_column="gold")


def test_empty_dataset_duplicates_and_blank_problems(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DistillError, match="no rows"):
        _build(load_prompt_rows(str(empty)))
    with pytest.raises(DistillError, match="row 2 has duplicate id 'a'"):
        _build([ROWS[0], ROWS[0]])
    with pytest.raises(DistillError, match="non-empty string"):
        _build([{"qid": "a", "question": "  ", "gold": 1}])
    with pytest.raises(DistillError, match="no such file"):
        load_prompt_rows("./missing-folder")


def test_limit_and_index_ids():
    prompts = _build(ROWS + [{"qid": "c", "question": None, "gold": 1}], limit=2, id_column=None)
    assert [p["id"] for p in prompts] == ["0", "1"]  # the bad third row is beyond the limit


def test_template_keeps_literal_braces_and_system_prompt():
    messages = render_messages("Solve {x}: $\\frac{1}{2}$", "Problem: {problem}\nThink first.", "Be careful.")
    assert messages == [
        {"role": "system", "content": "Be careful."},
        {"role": "user", "content": "Problem: Solve {x}: $\\frac{1}{2}$\nThink first."},
    ]


@pytest.mark.parametrize(
    ("completion", "reasoning", "expected"),
    [
        ("<think>a b</think> final", None, ("a b", "final")),
        ("a b</think>\nfinal", None, ("a b", "final")),  # template opened <think> in the prompt
        ("<think>cut off", None, ("cut off", "")),  # truncated inside the reasoning
        ("no tags", None, ("", "no tags")),
        ("final", "separate thoughts", ("separate thoughts", "final")),  # reasoning_content from a server
    ],
)
def test_split_reasoning(completion, reasoning, expected):
    assert split_reasoning(completion, reasoning) == expected


def test_separate_reasoning_goes_back_inside_think():
    assert assemble_completion("42", "thoughts") == "<think>\nthoughts\n</think>\n\n42"
    assert assemble_completion("42", None) == "42"


def test_chat_template_from_file_or_text(tmp_path):
    text = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    path = tmp_path / "t.jinja"
    path.write_text(text)
    assert load_chat_template(str(path)) == text
    assert load_chat_template(text) == text
    assert load_chat_template(None) is None
    with pytest.raises(DistillError, match="neither an existing file"):
        load_chat_template("missing.jinja")


def test_per_sample_seeds_are_stable_and_distinct():
    prompts = [{"id": "a", "problem": "x"}, {"id": "b", "problem": "y"}]
    requests = build_requests(prompts, "{problem}", None, 3, seed=7)
    assert [(r.prompt_id, r.sample_idx) for r in requests] == [
        ("a", 0),
        ("a", 1),
        ("a", 2),
        ("b", 0),
        ("b", 1),
        ("b", 2),
    ]
    assert len({r.seed for r in requests}) == 6
    # The seed of ("b", 1) does not depend on which other prompts are in the run (limit, resume).
    alone = build_requests(prompts[1:], "{problem}", None, 3, seed=7)
    assert alone[1].seed == requests[4].seed == sample_seed(7, "b", 1)
    assert build_requests(prompts, "{problem}", None, 3, seed=8)[0].seed != requests[0].seed


def test_code_prompts_are_told_how_their_answer_is_read_under_the_default_template():
    stdio = {"id": "s", "problem": "Sum two numbers.", "tests": json.dumps([{"input": "1 2", "output": "3"}])}
    call = {"id": "f", "problem": "Add.", "tests": "assert add(1, 2) == 3", "entry_point": "add"}
    starter = {**call, "id": "g", "starter_code": "def add(a, b):\n    pass"}
    plain = {"id": "m", "problem": "What is 1 + 1?", "tests": None}
    requests = build_requests([stdio, call, starter, plain], "{problem}", None, 1, seed=0)
    texts = [r.messages[-1]["content"] for r in requests]
    assert texts[0].startswith("Sum two numbers.\n\n") and "standard input" in texts[0]
    assert "one ```python fenced block" in texts[0] and "Define the function `add`" in texts[1]
    assert texts[2].endswith("```python\ndef add(a, b):\n    pass\n```")
    assert texts[3] == "What is 1 + 1?"  # no tests: not a code prompt
    # A recipe's own template is used as written: the instruction is the recipe's to give.
    custom = build_requests([stdio], "Solve in C: {problem}", None, 1, seed=0)
    assert custom[0].messages[-1]["content"] == "Solve in C: Sum two numbers."
