"""Task loading, per-problem results and the summary rows built from lm-eval's per-sample log."""

import pytest
from suite import write_benchmark_rows

from distill.errors import DistillError
from eval.harness import TokenCounter, load_tasks, local_task_names, problem_results, task_metric
from eval.stage import extraction_rule

REAL = ["math500", "aime24", "aime25", "amc23", "gsm8k", "gpqa_diamond"]


def test_local_tasks_are_discovered():
    assert {"addition_heldout", *REAL} <= local_task_names()


def test_unknown_task_is_a_clear_error():
    with pytest.raises(DistillError, match="unknown task"):
        load_tasks(["addition_heldout", "no_such_task_xyz"], repeats=2)


def test_loaded_tasks_take_their_own_n(tmp_path):
    data_dir = str(write_benchmark_rows(tmp_path, "aime24"))
    tasks = load_tasks(
        ["addition_heldout", "aime24"], repeats={"addition_heldout": 3, "aime24": 32}, data_dir=data_dir
    )
    assert {t.config.task: t.config.repeats for t in tasks} == {"addition_heldout": 3, "aime24": 32}


def test_extraction_rule_names_each_tasks_rule():
    rule = extraction_rule(["addition_heldout", "math500", "gpqa_diamond"])
    assert "for addition_heldout the last number" in rule
    assert "for gpqa_diamond a letter A-D" in rule and "math500" not in rule


def test_extraction_rule_of_code_tasks_is_the_fenced_block_run_against_the_tests():
    """humaneval, mbpp, livecodebench: no \\boxed{} anywhere in the footnote of a code-only comparison; beside
    a math task, the code tasks are named with their own rule."""
    code = "the last fenced python block after </think>, run against the problem's tests in the sandbox"
    assert extraction_rule(["humaneval", "mbpp", "livecodebench"]) == code
    mixed = extraction_rule(["math500", "humaneval", "livecodebench"])
    assert mixed.startswith("the last \\boxed{...}") and mixed.endswith(
        f"; for humaneval, livecodebench {code}"
    )
    assert "fenced" not in extraction_rule(["math500", "gsm8k"])


def test_problem_results_pair_by_benchmark_id_and_count_correct_samples():
    samples = [
        {"doc_id": 0, "doc": {"id": "p7"}, "pass_at_1": 0.75, "maj_at_n": 1.0},
        {"doc_id": 1, "doc": {"id": "p9"}, "pass_at_1": 0.0, "maj_at_n": 0.0},
    ]
    assert problem_results(samples, 4) == {"p7": [4, 3, 1.0], "p9": [4, 0, 0.0]}


def test_an_lm_eval_task_of_its_own_is_read_through_its_first_metric():
    results = {"results": {"arc": {"alias": "arc", "acc,none": 0.5, "acc_stderr,none": 0.1}}}
    assert task_metric(results, "arc") == "acc"
    assert problem_results([{"doc_id": 3, "doc": {}, "acc": 1.0}], 1, "acc") == {"3": [1, 1.0, 1.0]}


def test_truncated_share_counts_answers_at_the_token_limit(tiny_model_dir):
    counter = TokenCounter(str(tiny_model_dir))
    ids = counter.tokenizer("one two three four five six seven eight", add_special_tokens=False)["input_ids"]
    samples = [{"resps": [["one two three four five six seven eight", "one"]]}]
    assert counter.share_at_limit(samples, len(ids)) == 0.5
    assert TokenCounter(None).share_at_limit(samples, 4) is None


def test_vllm_context_defaults_to_prompt_room_plus_answer_budget_within_the_model(tiny_model_dir):
    from eval.backends import PROMPT_ROOM, default_max_model_len

    assert default_max_model_len(str(tiny_model_dir), 8) == 512  # the tiny model's whole context
    assert default_max_model_len("org/not-on-disk", 1000) == PROMPT_ROOM + 1000


def test_votes_give_maj_at_every_k_of_pass_at_k():
    from eval.harness import majority_at_k, problem_votes

    samples = [
        {
            "doc_id": 0,
            "doc": {"id": "p1"},
            "answer_votes": [["7", True], ["7", True], ["3", False], [None, False]],
        },
        {"doc_id": 1, "doc": {"id": "p2"}, "answer_votes": [["1", False]] * 4},
    ]
    votes = problem_votes(samples)
    assert set(votes) == {"p1", "p2"}
    # p1 by hand: maj@1 = 1/2, maj@2 = 4/6, maj@4 = 1; p2 never right
    assert majority_at_k(votes, 4) == {"1": 0.25, "2": round(2 / 6, 4), "4": 0.5}
    assert majority_at_k({}, 4) == {} and majority_at_k(votes, 3) == {}  # no votes / n mismatch: none


def test_the_task_index_is_built_once_and_reused_by_every_row(tmp_path):
    from eval.harness import task_manager

    data_dir = str(write_benchmark_rows(tmp_path, "aime24"))
    first = load_tasks(["aime24"], repeats=2, data_dir=data_dir)
    second = load_tasks(["aime24"], repeats=4, data_dir=data_dir)
    assert task_manager(False, data_dir, 0) is task_manager(False, data_dir, 0)
    assert first[0] is not second[0] and first[0].config.repeats == 2  # Task objects stay per row


def test_a_row_finished_by_older_code_gets_the_current_interval():
    from eval.harness import with_current_intervals

    old = {
        "rows": [{"task": "t", "pass_at_1": 0.0, "ci95": [0.0, 0.0]}],
        "per_problem": {"t": {str(i): [4, 0, 0.0] for i in range(20)}},
    }
    row = with_current_intervals(old)["rows"][0]
    assert row["ci95"] == [0.0, 0.1611] and row["interval_method"] == "wilson"
