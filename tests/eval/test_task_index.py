"""eval.task_index: task names known in about a second, the same names lm-eval's TaskManager indexes."""

import time

import pytest

from distill.errors import DistillError
from eval.task_index import builtin_task_names, check_task_names


def test_our_tasks_and_lm_eval_tasks_pass_unknown_ones_fail_with_a_suggestion():
    started = time.perf_counter()
    check_task_names(["addition_heldout", "gsm8k", "aime24", "hendrycks_math500", "leaderboard"])
    with pytest.raises(DistillError, match=r"unknown task 'gsm8kk' \(did you mean 'gsm8k'\?\)"):
        check_task_names(["addition_heldout", "gsm8kk"])
    assert time.perf_counter() - started < 8


def test_only_our_tasks_need_no_scan(monkeypatch):
    monkeypatch.setattr("eval.task_index.builtin_task_names", lambda: pytest.fail("scanned lm-eval"))
    check_task_names(["addition_heldout"])


@pytest.mark.integration
def test_the_text_scan_finds_exactly_what_task_manager_indexes():
    from lm_eval.tasks import TaskManager

    assert builtin_task_names() == frozenset(TaskManager().all_tasks)
