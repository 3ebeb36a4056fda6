"""The reference table: its figures and sources, a row of a published model annotated with the published
pass@1 and whether it lies in our CI, and (on a served stand-in whose answers are scripted to a known score)
the comparison and the model card showing it."""

from __future__ import annotations

import json

import pytest
import yaml
from servers import StandInChatServer

from distill.cli import main
from eval import reference
from eval.compare import comparison_markdown

R1_15B = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
FAMILY = ["Qwen-1.5B", "Qwen-7B", "Qwen-14B", "Qwen-32B", "Llama-8B", "Llama-70B"]


def test_table_covers_the_family_on_every_published_benchmark_with_a_source():
    models = reference.table()["models"]
    assert set(models) == {f"deepseek-ai/DeepSeek-R1-Distill-{name}" for name in FAMILY}
    for tasks in models.values():
        assert set(tasks) == {"aime24", "math500", "gpqa_diamond", "livecodebench"}
        assert all(0 < s["pass_at_1"] < 100 for s in tasks.values())
    assert "Table 5" in reference.table()["source"] and "2501.12948" in reference.table()["source"]
    # spot checks against the paper's Table 5
    assert models[R1_15B]["aime24"] == {"pass_at_1": 28.9, "maj_at_64": 52.7}
    assert models["deepseek-ai/DeepSeek-R1-Distill-Llama-70B"]["gpqa_diamond"]["pass_at_1"] == 65.2


def row(score, ci, task="math500"):
    return {"model": "m", "task": task, "pass_at_1": score, "ci95": ci}


def test_annotate_says_inside_or_outside_our_interval():
    inside = reference.annotate(row(0.85, [0.64, 0.95]), R1_15B)["reference"]
    assert inside["score"] == 0.839 and inside["inside_ci95"] is True and inside["difference"] == 0.011
    outside = reference.annotate(row(0.5, [0.3, 0.7]), R1_15B.lower())["reference"]  # Hub ids case-blind
    assert outside["inside_ci95"] is False
    assert reference.annotate(row(0.5, None), R1_15B)["reference"]["inside_ci95"] is None
    assert "reference" not in reference.annotate(row(0.5, [0.3, 0.7]), "someone/else")
    assert "reference" not in reference.annotate(row(0.5, [0.3, 0.7], task="gsm8k"), R1_15B)


def scripted_data(tmp_path, answers: dict[str, list[str]]):
    for task, golds in answers.items():
        folder = tmp_path / "benchmarks" / task
        folder.mkdir(parents=True)
        rows = [
            {"id": f"{task}-{i}", "problem": f"{task} problem {i}?", "answer": a} for i, a in enumerate(golds)
        ]
        (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "benchmarks"


def test_a_served_published_model_lands_inside_and_outside_as_scripted(tmp_path, capsys):
    """The stand-in answers 42 to everything: MATH-500 scripted to 17/20 (Wilson [64.0, 94.8] holds the
    published 83.9), AIME 2024 to 20/20 ([83.9, 100], which 28.9 is far outside)."""
    data_dir = scripted_data(tmp_path, {"math500": ["42"] * 17 + ["7"] * 3, "aime24": ["42"] * 20})
    recipe = {
        "name": "ref",
        "run_dir": str(tmp_path / "run"),
        "eval": {
            "tasks": ["math500", "aime24"],
            "backend": "served",
            "data_dir": str(data_dir),
            "samples_per_problem": 1,
            "max_tokens": 32,
            "models": [{"label": "r1-1.5b", "model": R1_15B, "base_url": "", "seed_per_request": False}],
        },
    }
    with StandInChatServer(model=R1_15B) as server:
        recipe["eval"]["models"][0]["base_url"] = server.url
        path = tmp_path / "ref.yaml"
        path.write_text(yaml.safe_dump(recipe))
        assert main(["run", str(path)]) == 0
    rows = {
        r["task"]: r for r in json.loads((tmp_path / "run" / "eval" / "comparison.json").read_text())["rows"]
    }
    assert rows["math500"]["pass_at_1"] == 0.85 and rows["math500"]["reference"]["inside_ci95"] is True
    assert rows["aime24"]["pass_at_1"] == 1.0 and rows["aime24"]["reference"]["inside_ci95"] is False
    text = (tmp_path / "run" / "eval" / "comparison.md").read_text()
    assert "83.9 (inside our CI)" in text and "28.9 (outside our CI)" in text and "reference.yaml" in text


def test_the_model_card_shows_the_published_figure():
    from distill.publish.cards import eval_results

    annotated = reference.annotate(
        {
            **row(0.85, [0.64, 0.95]),
            "samples_per_problem": 4,
            "problems": 20,
            "maj_at_n": 0.9,
        },
        R1_15B,
    )
    text = comparison_markdown([{**annotated, **_settings()}], [], "last boxed")
    assert "| published pass@1 % |" in text and "83.9 (inside our CI)" in text
    result = eval_results([annotated], {})[0]
    assert result.metric_args["published"]["score"] == 0.839 and result.metric_args["ci95"] == [0.64, 0.95]


def _settings():
    return {
        "pass_at_k": {"1": 0.85, "4": 0.95},
        "truncated_share": None,
        "temperature": 0.6,
        "top_p": 0.95,
        "max_tokens": 32768,
        "seed": 0,
        "lm_eval_version": "0.4.13",
    }


@pytest.mark.parametrize("task", ["math500", "aime24", "gpqa_diamond"])
def test_published_scores_are_fractions(task):
    assert 0 < reference.published(R1_15B, task)["pass_at_1"] < 1
