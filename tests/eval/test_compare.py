import json

import pytest

from eval.compare import comparison_markdown, release_gate, write_comparison
from eval.tasks import utils as task_utils


def row(model, score, ci, task="t"):
    return {
        "model": model,
        "task": task,
        "pass_at_1": score,
        "ci95": ci,
        "pass_at_4": min(1.0, score * 2),
        "problems": 60,
        "samples_per_problem": 4,
        "temperature": 0.8,
        "top_p": 0.95,
        "max_tokens": 48,
    }


def test_markdown_states_samples_interval_and_extraction_rule():
    text = comparison_markdown([row("teacher", 0.07, [0.03, 0.1]), row("s", 0.5, [0.4, 0.6])], "last boxed")
    assert "| s | t | 50.0% | [40.0, 60.0] | 100.0% | 60 | 4 |" in text
    assert "share of 4 samples" in text and "Answer extraction: last boxed." in text


def test_missing_interval_is_shown_as_na_and_fails_a_beats_teacher_gate():
    rows = [row("teacher", 0.1, [0.0, 0.2]), row("s", 0.5, None)]
    assert "n/a" in comparison_markdown(rows, "x")
    gate = release_gate(rows, ["s"], "teacher", "t", 0.0, require_beats_teacher=True)
    assert gate["decisions"]["s"]["ship"] is False


@pytest.mark.parametrize(
    ("student_ci", "min_score", "ship"),
    [([0.41, 0.6], 0.0, True), ([0.15, 0.3], 0.0, False), ([0.41, 0.6], 0.9, False)],
)
def test_gate(student_ci, min_score, ship):
    rows = [row("teacher", 0.1, [0.05, 0.2]), row("s", sum(student_ci) / 2, student_ci)]
    gate = release_gate(rows, ["s"], "teacher", "t", min_score, require_beats_teacher=True)
    assert gate["decisions"]["s"]["ship"] is ship
    assert ship or gate["decisions"]["s"]["reasons"]


def test_write_comparison_files(tmp_path):
    rows = [row("teacher", 0.1, [0.05, 0.2])]
    paths = write_comparison(rows, tmp_path, "rule")
    assert {p.name for p in paths} == {"comparison.md", "comparison.json", "comparison.csv"}
    assert json.loads((tmp_path / "comparison.json").read_text()) == rows
    assert "0.05-0.2" in (tmp_path / "comparison.csv").read_text()


def test_pass_at_k_estimator():
    assert task_utils._pass_at_k(4, 0, 1) == 0.0
    assert task_utils._pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert task_utils._pass_at_k(4, 1, 4) == 1.0
    assert task_utils._pass_at_k(10, 3, 2) == pytest.approx(1 - (7 * 6) / (10 * 9))


def test_task_scoring_uses_the_shared_verifier_on_all_repeats():
    doc = {"answer": "85"}
    # lm-eval passes one instance holding all n responses when `repeats` > 1
    scores = task_utils.process_results_lenient(doc, [["47 + 38 = 85", "\\boxed{85}", "84", "no idea"]])
    assert scores == {"pass_at_1": 0.5, "pass_at_n": 1.0}
    strict = task_utils.process_results_boxed(doc, [["47 + 38 = 85", "\\boxed{85}"]])
    assert strict["pass_at_1"] == 0.5


def test_local_task_loader_reads_shipped_data():
    dataset = task_utils.load_local(data_file="data/addition_heldout.jsonl")
    assert len(dataset["test"]) == 100 and set(dataset["test"][0]) == {"id", "problem", "answer"}
