"""Template consistency: a student is evaluated with the chat template and generation prefix it was trained
with, checked from the files its SFT stage left, before any model loads; eval.allow_template_mismatch
overrides knowingly and the row records the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.recipe import Recipe
from distill.records import write_parquet
from eval import stage
from eval.preflight import check_templates, completion_opening

TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}<|assistant|>"


def trained_run(root: Path, completions: list[str], final_template: str = TEMPLATE) -> Path:
    """What `distill sft` leaves: students/<name>/tokenizer (as trained), final/ (as evaluated), the set."""
    for folder, template in (("tokenizer", TEMPLATE), ("final", final_template)):
        path = root / "students" / "smollm2-135m-addition" / folder
        path.mkdir(parents=True)
        (path / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    rows = [
        {
            "prompt": [{"role": "user", "content": f"q{i}"}],
            "completion": [{"role": "assistant", "content": c}],
        }
        for i, c in enumerate(completions)
    ]
    write_parquet(rows, root / "filter" / "train.parquet")
    return root


def recipe(tiny_recipe_dict, **eval_fields) -> Recipe:
    tiny_recipe_dict["eval"].update(eval_fields)
    return Recipe.model_validate(tiny_recipe_dict)


R1_TRACES = ["<think>\nadd the units</think> \\boxed{85}", "<think>\ncarry one</think> \\boxed{12}"]
PLAIN = ["The sum is \\boxed{85}.", "It is \\boxed{12}."]


def test_completion_opening_is_what_every_training_completion_starts_with(tmp_path):
    assert (
        completion_opening(trained_run(tmp_path / "a", R1_TRACES) / "filter" / "train.parquet") == "<think>\n"
    )
    assert completion_opening(trained_run(tmp_path / "b", PLAIN) / "filter" / "train.parquet") == ""


def test_matching_prefix_passes_and_is_recorded(tmp_path, tiny_recipe_dict):
    root = trained_run(tmp_path, R1_TRACES)
    verdict = check_templates(recipe(tiny_recipe_dict, preset="deepseek-r1"), root)
    assert verdict["smollm2-135m-addition"]["consistent"] is True
    assert check_templates(recipe(tiny_recipe_dict), root)["smollm2-135m-addition"][
        "consistent"
    ]  # no prefill


def test_a_prefill_the_student_never_saw_is_an_error_unless_allowed(tmp_path, tiny_recipe_dict):
    root = trained_run(tmp_path, PLAIN)
    with pytest.raises(DistillError, match=r"generation prefix '<think>\\n'.*allow_template_mismatch"):
        check_templates(recipe(tiny_recipe_dict, generation_prefix="<think>\n"), root)
    allowed = recipe(tiny_recipe_dict, generation_prefix="<think>\n", allow_template_mismatch=True)
    verdict = check_templates(allowed, root)["smollm2-135m-addition"]
    assert verdict["consistent"] is False and "never learned" in verdict["mismatches"][0]


def test_a_changed_chat_template_in_final_is_an_error(tmp_path, tiny_recipe_dict):
    root = trained_run(tmp_path, R1_TRACES, final_template="{{ messages }}")
    with pytest.raises(DistillError, match="chat template in .*final differs"):
        check_templates(recipe(tiny_recipe_dict), root)


def test_the_stage_stops_before_any_model_loads(tmp_path, tiny_recipe_dict, monkeypatch):
    root = trained_run(tmp_path, PLAIN)
    loaded = []
    monkeypatch.setattr("eval.harness.evaluate_target", lambda *a, **k: loaded.append(a))
    monkeypatch.setattr(stage, "eval_targets", lambda r, root: ([object()], {}))
    with pytest.raises(DistillError, match="generation prefix"):
        stage.evaluate(recipe(tiny_recipe_dict, preset="deepseek-r1"), root, tmp_path / "out")
    assert loaded == []


def test_untrained_students_are_not_checked(tmp_path, tiny_recipe_dict):
    assert check_templates(recipe(tiny_recipe_dict, preset="deepseek-r1"), tmp_path) == {}
