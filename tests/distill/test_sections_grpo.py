"""The grpo recipe section: defaults, and bad input as one line with exit status 2 (nothing written)."""

from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.recipe import load_recipe

GRPO = {"model": "tiny-random-llama", "num_generations": 2, "batch_size": 4}


def write(tmp_path, data):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_grpo_section_defaults_and_teacher_reference(tmp_path, tiny_recipe_dict):
    tiny_recipe_dict.update(grpo=GRPO)
    tiny_recipe_dict["teacher"]["model"] = "grpo"
    recipe = load_recipe(write(tmp_path, tiny_recipe_dict))
    assert recipe.grpo_teacher() and recipe.grpo.rewards == ["accuracy", "format"]
    assert recipe.grpo.beta == 0.0 and recipe.grpo.loss_type == "dapo"
    options = recipe.grpo.reward_options()
    assert options["cosine"]["max_len"] == recipe.grpo.max_completion_length
    assert options["accuracy"]["timeout"] == recipe.grpo.verify_timeout


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"rewards": ["acuracy"]}, "unknown reward 'acuracy' (did you mean 'accuracy'?"),
        ({"reward_weights": [1.0]}, "reward_weights has 1 values for 2 rewards (accuracy, format)"),
        ({"num_generations": 1, "batch_size": 4}, "num_generations 1: the group size must be >= 2"),
        (
            {"num_generations": 3, "batch_size": 4},
            "= 4 completions per step is not divisible by num_generations 3",
        ),
        ({"loss_typ": "grpo"}, "unknown key 'grpo.loss_typ' (did you mean 'loss_type'?)"),
        ({"loss_type": "ppo"}, "field 'grpo.loss_type'"),
    ],
)
def test_bad_grpo_sections_are_one_line_errors(tmp_path, tiny_recipe_dict, capsys, overrides, expected):
    tiny_recipe_dict.update(grpo={**GRPO, **overrides})
    path = write(tmp_path, tiny_recipe_dict)
    assert main(["validate", str(path), "--schema-only"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "run").exists()


def test_teacher_grpo_without_a_grpo_section(tmp_path, tiny_recipe_dict, capsys):
    tiny_recipe_dict["teacher"]["model"] = "grpo"
    assert main(["validate", str(write(tmp_path, tiny_recipe_dict)), "--schema-only"]) == 2
    assert (
        "teacher.model grpo samples from the GRPO-trained teacher: add a grpo section"
        in capsys.readouterr().err
    )


def test_plan_covers_the_grpo_policy(capsys):
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "grpo-r1zero-qwen2.5-math-7b.yaml"
    assert main(["plan", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert "student grpo-teacher: Qwen/Qwen2.5-Math-7B" in out and "2 x 4024 = 8,048 tokens" in out
    assert "grpo: vLLM (colocated) takes 30% of each GPU on top" in out
    assert "student qwen2.5-math-1.5b-grpo-distilled" in out
