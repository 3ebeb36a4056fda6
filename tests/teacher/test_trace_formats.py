"""Published trace shapes through `distill filter --traces`: each fixture, written here in the shape a public
set uses, must give exactly the SFT rows written out by hand; bad rows are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.records import read_rows

B = "\\boxed"
QUIET = {"workers": 0, "max_repetition": None, "dedup": {"exact": False, "near": False}}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def sft(prompt: list[dict], completion: str, prompt_id: str, sample_idx: int) -> dict:
    return {
        "prompt": prompt,
        "completion": [assistant(completion)],
        "prompt_id": prompt_id,
        "sample_idx": sample_idx,
    }


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def byo_recipe(tmp_path: Path, tiny_recipe_dict: dict, **filter_fields) -> Path:
    """The tiny recipe without generate sections: the traces come from --traces."""
    recipe = {k: v for k, v in tiny_recipe_dict.items() if k not in ("data", "teacher")}
    recipe["filter"] = {**QUIET, **filter_fields}
    path = tmp_path / "byo.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def filter_cli(recipe: Path, traces: Path | str, *extra: str) -> tuple[list[dict], dict]:
    """Run `distill filter` (``extra``: overrides and flags); (SFT rows, report.json)."""
    assert main(["filter", str(recipe), *extra, "--traces", str(traces)]) == 0
    out = Path(yaml.safe_load(recipe.read_text())["run_dir"]) / "filter"
    return read_rows(out / "train.parquet"), json.loads((out / "report.json").read_text())


THINK = {n: f"<think>\nadding\n</think>\n\nSo the sum is {B}{{{n}}}." for n in range(20)}


def openr1_rows(verdicts: bool = True) -> list[dict]:
    rows = [
        {
            "problem": "What is 1 + 1?",
            "answer": "2",
            "uuid": "u1",
            "generations": [THINK[2], THINK[3]],
            "correctness_math_verify": [True, False],
            "finish_reasons": ["stop", "stop"],
            "messages": [user("What is 1 + 1?"), assistant(THINK[2])],
            "source": "amc",
        },
        {
            "problem": "What is 2 + 2?",
            "answer": "4",
            "uuid": "u2",
            "generations": ["", THINK[4], THINK[4] + " Check: 2 + 2 = 4."],
            "correctness_math_verify": [False, True, True],
            "finish_reasons": ["length", "stop", "length"],
            "messages": [user("What is 2 + 2?"), assistant(THINK[4])],
            "source": "amc",
        },
    ]
    if not verdicts:
        for row in rows:
            del row["correctness_math_verify"], row["finish_reasons"]
    return rows


def test_generations_with_verdicts_one_trace_per_generation(tmp_path, tiny_recipe_dict, capsys):
    traces = write_jsonl(tmp_path / "openr1.jsonl", openr1_rows())
    rows, report = filter_cli(byo_recipe(tmp_path, tiny_recipe_dict, correctness=True), traces)
    assert rows == [
        sft([user("What is 1 + 1?")], THINK[2], "u1", 0),
        sft([user("What is 2 + 2?")], THINK[4], "u2", 1),  # sample_idx is the list position
    ]
    source = report["source"]
    assert source["format"] == "generations" and source["format_detected"]
    assert source["columns"]["verdicts"] == "correctness_math_verify"
    assert source["not_used"] == {"empty generation in generations": 1}
    assert set(source["columns_not_read"]) == {"messages", "source"}
    assert report["removed"]["truncated"] == 1 and report["removed"]["incorrect"] == 1
    assert source["source_verdicts"] == {
        "column": "correctness_math_verify",
        "agree": 4,
        "disagree": 0,
        "trusted": 0,
    }
    assert "format generations (detected)" in capsys.readouterr().out


def test_generations_verdicts_are_re_verified_or_trusted(tmp_path, tiny_recipe_dict):
    data = openr1_rows()
    data[0]["correctness_math_verify"] = [True, True]  # the source calls \boxed{3} right for 1 + 1
    traces = write_jsonl(tmp_path / "openr1.jsonl", data)
    recipe = byo_recipe(tmp_path, tiny_recipe_dict, correctness=True, drop_truncated=False)
    rows, report = filter_cli(recipe, traces)
    assert [(r["prompt_id"], r["sample_idx"]) for r in rows] == [("u1", 0), ("u2", 1), ("u2", 2)]
    assert report["source"]["source_verdicts"]["disagree"] == 1
    rows, report = filter_cli(recipe, traces, "filter.reverify=false", "--force")
    assert [(r["prompt_id"], r["sample_idx"]) for r in rows] == [("u1", 0), ("u1", 1), ("u2", 1), ("u2", 2)]
    assert report["source"]["source_verdicts"]["trusted"] == 4
    assert report["verification"]["reasons"]["source verdict"] == 4


def test_generations_without_verdicts_or_answers(tmp_path, tiny_recipe_dict, capsys):
    data = openr1_rows(verdicts=False)
    traces = write_jsonl(tmp_path / "gens.jsonl", data)
    recipe = byo_recipe(tmp_path, tiny_recipe_dict, correctness=True)
    rows, _ = filter_cli(recipe, traces)
    assert [(r["prompt_id"], r["sample_idx"]) for r in rows] == [("u1", 0), ("u2", 1), ("u2", 2)]
    for row in data:
        del row["answer"]
    write_jsonl(traces, data)
    capsys.readouterr()
    rows, report = filter_cli(recipe, traces, "--force")
    assert len(rows) == 4  # no reference answers: correctness is off, with a warning
    assert "warning" in capsys.readouterr().out and report["pass_rate"] is None
    assert any("no reference answers" in note for note in report["notes"])


def test_messages_keep_the_system_prompt_and_earlier_turns(tmp_path, tiny_recipe_dict):
    system = {"role": "system", "content": "Think step by step, then box the answer."}
    first = [system, user("What is 3 + 4?"), assistant(f"<think>\n3 and 4\n</think>\n\n{B}{{7}}")]
    second = [
        user("Hi"),
        assistant("Hello!"),
        user("What is 5 + 5?"),
        assistant(f"<think>5+5</think>{B}{{10}}"),
    ]
    traces = write_jsonl(
        tmp_path / "mot.jsonl",
        [
            {"messages": first, "num_tokens": 30, "source": "math"},
            {"messages": second, "num_tokens": 12, "source": "math"},
        ],
    )
    rows, report = filter_cli(byo_recipe(tmp_path, tiny_recipe_dict), traces)
    assert [(r["prompt"], r["completion"]) for r in rows] == [
        (first[:2], [first[2]]),
        (second[:3], [second[3]]),
    ]
    assert report["source"]["format"] == "messages" and report["source"]["answers"] == "none"


def test_conversations_with_system_and_a_named_answer_column(tmp_path, tiny_recipe_dict):
    system = "Your role as an assistant involves thoroughly exploring questions."
    solved = f"<|begin_of_thought|>\n\n6 plus 1\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n{B}{{7}}\n\n<|end_of_solution|>"
    data = [
        {
            "system": system,
            "gold": 7,
            "conversations": [
                {"from": "user", "value": "What is 6 + 1?"},
                {"from": "assistant", "value": solved},
            ],
        },
        {
            "system": system,
            "gold": 8,
            "conversations": [
                {"from": "human", "value": "What is 4 + 4?"},
                {"from": "gpt", "value": f"{B}{{9}}"},
            ],
        },
        {
            "system": "",
            "gold": 8,
            "conversations": [
                {"from": "human", "value": "What is 4 + 4?"},
                {"from": "gpt", "value": f"{B}{{8}}"},
            ],
        },
    ]
    traces = write_jsonl(tmp_path / "openthoughts.jsonl", data)
    recipe = byo_recipe(tmp_path, tiny_recipe_dict, correctness=True, columns={"answer": "gold"})
    rows, report = filter_cli(recipe, traces)
    assert [(r["prompt"], r["completion"][0]["content"]) for r in rows] == [
        ([{"role": "system", "content": system}, user("What is 6 + 1?")], solved),
        ([user("What is 4 + 4?")], f"{B}{{8}}"),  # an empty system column adds no system turn
    ]
    assert report["source"]["format"] == "conversations" and report["removed"]["incorrect"] == 1


def test_reasoning_columns_assemble_think_and_take_answers_from_the_solution(tmp_path, tiny_recipe_dict):
    data = [
        {
            "solution": f"Add them: $4 + 5 = {B}{{9}}$.",
            "question": "What is 4 + 5?",
            "cot_type": "math",
            "thinking_trajectories": ["4 plus 5 is 9."],
            "attempt": f"The answer is {B}{{9}}.",
        },
        {
            "solution": "By induction on n.",
            "question": "Prove that n < 2^n.",
            "cot_type": "math",
            "thinking_trajectories": ["Induction works."],
            "attempt": "Proof: induction.",
        },
    ]
    traces = write_jsonl(tmp_path / "s1k.jsonl", data)
    rows, report = filter_cli(byo_recipe(tmp_path, tiny_recipe_dict, correctness=True), traces)
    completion = f"<think>\n4 plus 5 is 9.\n</think>\n\nThe answer is {B}{{9}}."
    assert [(r["prompt"], r["completion"][0]["content"]) for r in rows] == [
        ([user("What is 4 + 5?")], completion)
    ]
    assert report["source"]["answers"] == "solution"
    assert report["removed"]["no_reference_answer"] == 1
    verified = read_rows(Path(tiny_recipe_dict["run_dir"]) / "filter" / "verified.parquet")
    assert verified[1]["removed_detail"] == "no \\boxed{} in solution"


def test_answer_from_column_or_solution_must_exist(tmp_path, tiny_recipe_dict, capsys):
    data = [{k: v for k, v in row.items() if k != "answer"} for row in openr1_rows()]
    traces = write_jsonl(tmp_path / "gens.jsonl", data)
    recipe = byo_recipe(tmp_path, tiny_recipe_dict, answer_from="column")
    capsys.readouterr()
    assert main(["filter", str(recipe), "--traces", str(traces)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "filter.answer_from column: the source has no answer column" in err[0]
    assert str(traces) in err[0] and not Path(tiny_recipe_dict["run_dir"]).exists()


@pytest.mark.parametrize(
    ("rows", "fields", "message"),
    [
        (
            [
                {"problem": "p", "answer": "1", "generations": ["a"], "correctness_math_verify": [True]},
                {"problem": "q", "answer": "1", "generations": ["a", "b"], "correctness_math_verify": [True]},
            ],
            {},
            "row 2: generations has 2 items but correctness_math_verify has 1 items",
        ),
        (
            [{"problem": "p", "answer": "1", "generations": ["a"], "finish_reasons": "stop"}],
            {},
            "row 1: generations has 1 items but finish_reasons has a str",
        ),
        (
            [
                {"messages": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "a"}]},
                {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "p"}]},
            ],
            {},
            "row 2: messages has no assistant turn after the last user turn",
        ),
        (
            [{"system": "s", "conversations": [{"from": "human", "value": "p"}]}],
            {},
            "row 1: conversations has no assistant turn after the last user turn",
        ),
        (
            [{"conversations": [{"from": "robot", "value": "p"}]}],
            {},
            "row 1: conversations[0] is from 'robot'",
        ),
        (
            [{"messages": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "a"}]}],
            {"format": "generations"},
            "format generations needs a problem column",
        ),
        (
            [{"messages": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "a"}]}],
            {"columns": {"completion": "messages"}, "format": "messages"},
            "filter.columns.completion is not read by format messages",
        ),
        (
            [{"question": "p", "thinking_trajectories": ["a", "b"], "attempt": "x"}],
            {},
            "row 1: column 'thinking_trajectories' holds 2 texts",
        ),
    ],
)
def test_bad_rows_are_one_line_errors_naming_file_and_row(
    tmp_path, tiny_recipe_dict, capsys, rows, fields, message
):
    traces = write_jsonl(tmp_path / "bad.jsonl", rows)
    recipe = byo_recipe(tmp_path, tiny_recipe_dict, **fields)
    capsys.readouterr()
    assert main(["filter", str(recipe), "--traces", str(traces)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(traces) in err[0], err
    assert not Path(
        tiny_recipe_dict["run_dir"]
    ).exists()  # the preflight caught it before anything was written


def test_unknown_preset_is_one_line_naming_the_recipe(tmp_path, tiny_recipe_dict, capsys):
    traces = write_jsonl(tmp_path / "t.jsonl", openr1_rows())
    recipe = byo_recipe(tmp_path, tiny_recipe_dict)
    capsys.readouterr()
    assert main(["filter", str(recipe), "--traces", str(traces), "--format", "openr1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(recipe) in err[0] and "filter.format" in err[0] and "generations" in err[0]


def test_length_band_on_a_set_without_token_counts(tmp_path, tiny_recipe_dict, capsys):
    long = THINK[2] + " Checking once more:" + " one plus one is two," * 40
    data = [{"problem": "What is 1 + 1?", "answer": "2", "generations": [THINK[2], long]}]
    traces = write_jsonl(tmp_path / "gens.jsonl", data)
    recipe = byo_recipe(tmp_path, tiny_recipe_dict, max_completion_tokens=100)
    capsys.readouterr()
    assert main(["filter", str(recipe), "--traces", str(traces)]) == 2
    assert "set filter.tokenizer=<model> to count them" in capsys.readouterr().err
    rows, report = filter_cli(recipe, traces, "filter.tokenizer=tiny-random-llama")
    assert [r["sample_idx"] for r in rows] == [0] and report["removed"]["length"] == 1
    assert "completion_tokens counted with the tokenizer of tiny-random-llama" in report["notes"]


def test_custom_rows_take_answers_from_a_solution_or_go_without(tmp_path, tiny_recipe_dict, capsys):
    data = [
        {"question": "What is 2 + 3?", "solution": f"So {B}{{5}}.", "response": f"{B}{{5}}"},
        {"question": "What is 2 + 4?", "solution": f"So {B}{{6}}.", "response": f"{B}{{7}}"},
    ]
    traces = write_jsonl(tmp_path / "mine.jsonl", data)
    columns = {"problem": "question", "completion": "response"}
    recipe = byo_recipe(tmp_path, tiny_recipe_dict, correctness=True, columns=columns)
    rows, report = filter_cli(recipe, traces)
    assert rows == [sft([user("What is 2 + 3?")], f"{B}{{5}}", rows[0]["prompt_id"], 0)]
    assert report["source"]["format"] == "custom" and report["source"]["answers"] == "solution"
    capsys.readouterr()
    rows, report = filter_cli(recipe, traces, "filter.answer_from=none", "--force")
    assert len(rows) == 2 and report["pass_rate"] is None and "warning" in capsys.readouterr().out
