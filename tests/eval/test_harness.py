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


def _recipe(tiny_recipe_dict, **eval_fields):
    from distill.recipe import Recipe

    openai = {"base_url": "http://127.0.0.1:9/v1"}
    tiny_recipe_dict["teacher"].update(model="deepseek-reasoner", backend="openai", openai=openai)
    tiny_recipe_dict["eval"].update(eval_fields)
    return Recipe.model_validate(tiny_recipe_dict)


def test_served_teacher_name_is_a_clear_eval_error(tiny_recipe_dict):
    from distill.models import resolve_model
    from eval.harness import _teacher_entry

    with pytest.raises(DistillError, match="set eval.teacher_model"):
        _teacher_entry(_recipe(tiny_recipe_dict), resolve_model)


def test_eval_teacher_model_overrides_the_served_name(tiny_recipe_dict):
    from eval.harness import _teacher_entry

    label, path = _teacher_entry(_recipe(tiny_recipe_dict, teacher_model="org/weights"), lambda ref: ref)
    assert (label, path) == ("teacher (org/weights)", "org/weights")
