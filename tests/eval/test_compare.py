"""The comparison files and chart, and the release gate's decisions and reasons."""

import json

import pytest

from distill.recipe import GateConfig
from eval.compare import comparison_markdown, release_gate, write_comparison


def row(model, score, ci, task="t", role="student"):
    return {
        "model": model,
        "role": role,
        "task": task,
        "pass_at_1": score,
        "stderr": 0.05,
        "ci95": ci,
        "pass_at_k": {"1": score, "2": min(1.0, score * 1.5), "4": min(1.0, score * 2)},
        "maj_at_n": score,
        "problems": 60,
        "samples_per_problem": 4,
        "truncated_share": 0.25,
        "temperature": 0.8,
        "top_p": 0.95,
        "max_tokens": 48,
        "seed": 0,
        "lm_eval_version": "0.4.13",
    }


def diff(versus, value, significant, task="t", student="s"):
    return {
        "student": student,
        "versus": versus,
        "reference": versus,
        "task": task,
        "difference": value,
        "ci95": [value - 0.1, value + 0.1],
        "significant": significant,
        "problems": 60,
    }


def test_markdown_states_settings_intervals_differences_and_extraction_rule():
    rows = [row("teacher", 0.07, [0.03, 0.1], role="teacher"), row("s", 0.5, [0.4, 0.6])]
    text = comparison_markdown(rows, [diff("teacher", 0.43, True)], "last boxed")
    assert "| s | t | 50.0 | [40.0, 60.0] | 100.0 | 50.0 | 4 | 60 | 25.0 |" in text
    assert "| s | teacher: teacher | t | +43.0 | [+33.0, +53.0] | yes |" in text
    assert "temperature 0.8" in text and "lm-eval 0.4.13" in text and "Answer extraction: last boxed." in text


def test_write_comparison_files_and_chart(tmp_path):
    rows = [
        row("teacher", 0.1, [0.05, 0.2], role="teacher"),
        row("s", 0.3, None),
        row("s", 0.2, [0.1, 0.3], "u"),
    ]
    paths = write_comparison(rows, [], tmp_path, "rule")
    assert {p.name for p in paths} == {"comparison.md", "comparison.json", "comparison.csv", "comparison.png"}
    assert json.loads((tmp_path / "comparison.json").read_text())["rows"] == rows
    assert "0.05-0.2" in (tmp_path / "comparison.csv").read_text()
    assert (tmp_path / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert "n/a" in (tmp_path / "comparison.md").read_text()


def decide(rows, diffs, **gate):
    return release_gate(rows, diffs, ["s"], GateConfig(**gate), ["t", "u"])["decisions"]["s"]


ROWS = [row("s", 0.5, [0.4, 0.6]), row("s", 0.3, [0.2, 0.4], "u")]


@pytest.mark.parametrize(
    ("gate", "diffs", "ship", "reason"),
    [
        ({}, [], True, None),
        ({"min_score": 0.4}, [], False, "u: pass@1 0.300 < min_score 0.4"),
        ({"min_score": {"t": 0.45, "u": 0.25}}, [], True, None),
        (
            {"beats_base_by": 0.05},
            [diff("base", 0.1, True), diff("base", 0.02, False, "u")],
            False,
            "u: +0.020 over the base model < beats_base_by 0.05",
        ),
        ({"beats_base_by": 0.05}, [], False, "t: no base-model result"),
        ({"no_regression": True}, [diff("base", -0.05, True, "u")], False, "u: significantly below the base"),
        ({"no_regression": True}, [diff("base", -0.05, False, "u")], True, None),
        (
            {"within_teacher": 0.05},
            [diff("teacher", -0.1, True), diff("teacher", 0.0, False, "u")],
            False,
            "t: -0.100 versus the teacher",
        ),
        (
            {"require_beats_teacher": True},
            [diff("teacher", 0.2, True), diff("teacher", 0.1, False, "u")],
            False,
            "u: not significantly above the teacher",
        ),
        ({"require_beats_teacher": True, "tasks": ["t"]}, [diff("teacher", 0.2, True)], True, None),
    ],
)
def test_gate(gate, diffs, ship, reason):
    decision = decide(ROWS, diffs, **gate)
    assert decision["ship"] is ship
    if reason:
        assert any(reason in r for r in decision["reasons"]), decision["reasons"]


def test_gate_without_a_result_holds_the_student_back():
    decision = release_gate([], [], ["s"], GateConfig(), ["t"])["decisions"]["s"]
    assert decision == {"ship": False, "reasons": ["no result on t"]}


def test_every_table_states_its_interval_method_and_one_problem_says_no_interval():
    lonely = {**row("s", 1.0, None), "problems": 1}
    text = comparison_markdown(
        [row("teacher", 0.07, [0.03, 0.1], role="teacher"), lonely], [diff("t", 0.2, False)], "r"
    )
    assert "| s | t | 100.0 | no interval (1 problem) |" in text
    tables = text.split("\n\n")
    assert "Wilson score interval" in text and "Newcombe" in text
    # the note follows each table: the rows' table, then the differences' table
    assert (
        tables[1].startswith("95% CI of pass@1: Wilson")
        and "Newcombe" in tables[tables.index(next(t for t in tables if "| student | versus" in t)) + 1]
    )


def test_k_table_shows_pass_and_maj_at_every_k():
    rows = [{**row("s", 0.5, [0.4, 0.6]), "maj_at_k": {"1": 0.5, "2": 0.55, "4": 0.6}}]
    text = comparison_markdown(rows, [], "r")
    assert "| model | task | k=1 pass / maj % | k=2 pass / maj % | k=4 pass / maj % |" in text
    assert "| s | t | 50.0 / 50.0 | 75.0 / 55.0 | 100.0 / 60.0 |" in text
