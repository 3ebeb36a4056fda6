import pytest

from distill.errors import DistillError
from eval.harness import extraction_rule, load_tasks, local_task_names


def test_local_tasks_are_discovered():
    assert "addition_heldout" in local_task_names()


def test_unknown_task_is_a_clear_error():
    with pytest.raises(DistillError, match="unknown task"):
        load_tasks(["addition_heldout", "no_such_task_xyz"], repeats=2)


def test_loaded_task_takes_the_recipe_repeats():
    (task,) = load_tasks(["addition_heldout"], repeats=3)
    assert task.config.repeats == 3


def test_extraction_rule_mentions_lenient_fallback():
    assert "last number" in extraction_rule(["addition_heldout"])
