"""eval.preset: every preset expands into plain keys and validates, the recipe's own keys win and the row
records each deviation, the expansion is what `distill validate --resolved` prints, and a recipe without a
preset dumps its eval section exactly as before (the eval stage's fingerprint is unchanged)."""

from __future__ import annotations

import yaml
from suite import REPO, write_benchmark_rows

from distill.cli import main
from distill.config import eval_presets as presets
from distill.recipe import Recipe, load_recipe
from eval.harness import load_tasks

TASKS = ["math500", "aime24", "gpqa_diamond"]


def eval_recipe(**fields) -> Recipe:
    return Recipe.model_validate(
        {"name": "p", "eval": {"tasks": TASKS, "models": [{"label": "m", "model": "x"}], **fields}}
    )


def test_every_preset_resolves_validates_and_records_no_deviation():
    for name, preset in presets.PRESETS.items():
        cfg = eval_recipe(preset=name).eval
        for key, value in preset.keys.items():
            assert getattr(cfg, key) == value, (name, key)
        assert cfg.n_for("aime24") == preset.samples.get("aime24", preset.keys["samples_per_problem"])
        assert presets.deviations(cfg) == {}
        assert preset.source


def test_deepseek_r1_is_the_papers_settings():
    cfg = eval_recipe(preset="deepseek-r1").eval
    assert (cfg.temperature, cfg.top_p, cfg.max_tokens, cfg.generation_prefix) == (
        0.6,
        0.95,
        32768,
        "<think>\n",
    )
    assert cfg.n_for("aime24") == 64 and cfg.system_prompt is None


def test_keys_the_recipe_sets_override_the_preset_and_are_recorded():
    cfg = eval_recipe(preset="deepseek-r1", max_tokens=1024, samples={"aime24": 8}).eval
    assert cfg.max_tokens == 1024 and cfg.temperature == 0.6 and cfg.n_for("aime24") == 8
    deviations = presets.deviations(cfg)
    assert deviations["max_tokens"] == {"preset": 32768, "used": 1024}
    assert deviations["samples"]["used"]["aime24"] == 8 and set(deviations) == {"max_tokens", "samples"}


def test_per_task_samples_apply_only_to_evaluated_tasks():
    cfg = Recipe.model_validate(
        {
            "name": "p",
            "eval": {"tasks": ["math500"], "preset": "deepseek-r1", "models": [{"label": "m", "model": "x"}]},
        }
    ).eval
    assert cfg.samples == {} and cfg.n_for("math500") == 4


def test_without_a_preset_the_dumped_section_has_no_new_keys():
    dumped = eval_recipe().section("eval")
    assert not {"preset", "prompt", "generation_prefix", "allow_template_mismatch"} & set(dumped)
    assert eval_recipe(preset="lighteval").section("eval")["preset"] == "lighteval"


def test_resolved_recipe_shows_the_expansion_and_is_itself_valid(capsys, tmp_path):
    path = REPO / "recipes" / "eval-r1-distill-qwen-1.5b.yaml"
    assert main(["validate", str(path), "--resolved"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["eval"]["preset"] == "deepseek-r1"
    assert resolved["eval"]["max_tokens"] == 32768 and resolved["eval"]["generation_prefix"] == "<think>\n"
    assert resolved["eval"]["samples"] == {"aime24": 64}
    again = tmp_path / "resolved.yaml"
    again.write_text(yaml.safe_dump(resolved))
    assert load_recipe(again).eval == load_recipe(path).eval


def test_prompt_and_prefix_reach_lm_eval_tasks(tmp_path):
    data_dir = str(write_benchmark_rows(tmp_path, "aime24"))
    prompt = presets.PRESETS["evalchemy"].keys["prompt"]
    tasks = load_tasks(["aime24"], repeats=1, data_dir=data_dir, prompt=prompt, generation_prefix="<think>\n")
    task = tasks[0]
    doc = task.test_docs()[0]
    assert task.doc_to_text(doc) == f"Problem: {doc['problem']}\nMark your solution with \\boxed\nAnswer:"
    assert task.doc_to_prefix(doc) == "<think>\n"


def test_a_prefill_on_a_served_row_is_refused_before_anything_runs(tmp_path, capsys):
    import json

    recipe = {
        "name": "served-prefill",
        "run_dir": str(tmp_path / "run"),
        "eval": {
            "preset": "deepseek-r1",
            "tasks": ["math500"],
            "backend": "served",
            "data_dir": str(write_benchmark_rows(tmp_path, "math500")),
            "models": [{"label": "api", "model": "m", "base_url": "http://127.0.0.1:9/v1"}],
        },
    }
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(recipe))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        "eval.generation_prefix '<think>\\n': api is a served row" in err and "generation_prefix: null" in err
    )
