"""students[].method: grpo through the one GRPO mechanism (distill/grpo): a tiny grpo student started from an
SFT student (graph order, what a change reruns), context stages (the next stage's budget, the pass-rate
re-filter by the current policy, kill -9 mid-stage then a rerun that resumes in that stage), and the bad
inputs refused in one line before any stage starts."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from distill.cli import main

REPO = Path(__file__).resolve().parents[2]
GRPO = {
    "rewards": ["accuracy", "format"],
    "answer_fallback": "last_number",
    "num_generations": 2,
    "batch_size": 4,
    "learning_rate": 0.01,
    "max_prompt_length": 128,
    "report_to": [],
    "save_steps": 1,
}
STAGES = [
    {"name": "short", "max_completion_length": 4, "max_steps": 1},
    {"name": "long", "max_completion_length": 8, "max_steps": 3},
]


def with_grpo_student(recipe: dict, **grpo) -> dict:
    sft = recipe["students"][0]["name"]
    recipe["students"].append(
        {"name": "rl", "model": "tiny-random-llama", "method": "grpo", "init": sft, "grpo": {**GRPO, **grpo}}
    )
    return recipe


def save(recipe: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def manifest(recipe: dict) -> dict:
    return json.loads((Path(recipe["run_dir"]) / "manifest.json").read_text())


def test_the_graph_runs_the_init_student_first_and_reads_no_traces(tiny_recipe_dict, tmp_path):
    from distill.pipeline import plan
    from distill.recipe import load_recipe

    recipe = load_recipe(save(with_grpo_student(tiny_recipe_dict, max_steps=1), tmp_path / "r.yaml"))
    names = [spec.name for spec in plan(recipe)]
    sft = f"sft:{tiny_recipe_dict['students'][0]['name']}"
    specs = {spec.name: spec for spec in plan(recipe)}
    assert names.index(sft) < names.index("sft:rl") and specs["sft:rl"].upstream == [sft]
    assert specs["sft:rl"].folder == "students/rl"
    # what it trains on is in its fingerprint: the prompts' file content; no teacher, no other method's options
    config = specs["sft:rl"].config
    assert config["source_digest"] and "teacher_model" not in config and "on_policy" not in config


@pytest.mark.integration
def test_sft_then_grpo_a_change_to_the_sft_student_reruns_both_and_nothing_else(tiny_recipe_dict, tmp_path):
    from distill.pipeline import pending_nodes
    from distill.recipe import load_recipe

    recipe = with_grpo_student(tiny_recipe_dict, max_steps=1)  # dynamic sampling: test_dynamic_sampling.py
    path = save(recipe, tmp_path / "r.yaml")
    for stage in ("generate", "filter", "sft"):
        assert main([stage, str(path)]) == 0
    metrics = manifest(recipe)["stages"]["sft:rl"]["metrics"]
    sft = recipe["students"][0]["name"]
    assert metrics["method"] == "grpo" and metrics["steps"] == 1 and metrics["init"] == f"student {sft}"
    assert metrics["rewards"] == {"accuracy": 1.0, "format": 1.0}
    curves = metrics["curves"]  # per step: R1's response length and "aha" rate
    assert curves["step"] == [1] and len(curves["response_length"]) == len(curves["reflection_rate"]) == 1
    assert (Path(recipe["run_dir"]) / "students" / "rl" / "final" / "config.json").exists()
    assert pending_nodes(load_recipe(path), "sft") == set()
    learning_rate = recipe["students"][0]["learning_rate"]
    recipe["students"][0]["learning_rate"] = learning_rate * 2
    assert pending_nodes(load_recipe(save(recipe, path))) >= {f"sft:{sft}", "sft:rl"}
    assert not pending_nodes(load_recipe(path)) & {"generate", "filter"}
    recipe["students"][0]["learning_rate"] = learning_rate  # back as it ran
    recipe["students"][1]["grpo"]["max_steps"] = 2  # the grpo student's own change reruns only it
    assert pending_nodes(load_recipe(save(recipe, path)), "sft") == {"sft:rl"}


def _staged(tiny_recipe_dict: dict, tmp_path: Path, stages=STAGES) -> tuple[dict, Path]:
    # From the model (R1-Zero style): no init, no traces needed; the SFT student is left out.
    recipe = dict(tiny_recipe_dict)
    recipe["students"] = [
        {"name": "rl", "model": "tiny-random-llama", "method": "grpo", "grpo": {**GRPO, "stages": stages}}
    ]
    return recipe, save(recipe, tmp_path / "staged.yaml")


@pytest.mark.integration  # two trained stages, a re-filter and the run report: ~20 s quiet, more under load
def test_stages_switch_budget_and_the_refilter_drops_what_the_policy_always_solves(
    tiny_recipe_dict, tmp_path, monkeypatch
):
    import distill.grpo.prompts as pool
    from distill.records import read_rows

    # A scripted policy: it always answers prompts "0" and "1" right and never the others. The re-filter
    # before stage "long" (band [0, 0.5]) must drop exactly those two.
    def scripted(model_path, messages, cfg, band):
        asked = [m[-1]["content"] for m in messages]
        return [f"\\boxed{{{answers[q]}}}" if q in solved else "0" for q in asked]

    stages = [
        STAGES[0],
        {**STAGES[1], "max_steps": 1, "pass_rate_filter": {"band": [0.0, 0.5], "samples": 2}},
    ]
    recipe, path = _staged(tiny_recipe_dict, tmp_path, stages)
    rows = read_rows(Path(recipe["data"]["source"]))[: recipe["data"]["limit"]]
    answers = {r["problem"]: str(r["answer"]) for r in rows}
    solved = {rows[0]["problem"], rows[1]["problem"]}
    monkeypatch.setattr(pool, "sample_policy", scripted)
    assert main(["sft", str(path)]) == 0
    metrics = manifest(recipe)["stages"]["sft:rl"]["metrics"]
    short, long = metrics["stages"]
    assert (short["stage"], long["stage"]) == ("short", "long") and metrics["steps"] == 2
    assert (short["max_completion_length"], long["max_completion_length"]) == (4, 8)
    assert long["refilter"]["prompts_in"] == len(rows) and long["refilter"]["prompts"] == len(rows) - 2
    folder = next((Path(recipe["run_dir"]) / "students" / "rl" / "stages").glob("2-long"))
    kept = {r["prompt"][-1]["content"] for r in read_rows(folder / "prompts.parquet")}
    assert kept == set(answers) - solved
    job = json.loads((folder / "job.json").read_text())
    assert job["grpo"]["max_completion_length"] == 8 and job["model_path"].endswith("1-short/final")
    # each stage generated within its own budget
    assert short["completion_length_last10"] <= 4 and long["completion_length_last10"] <= 8
    # the run report draws the "aha" curves from the manifest's per-step curves (both stages, steps 1-2)
    assert metrics["curves"]["step"] == [1, 2]
    report = (Path(recipe["run_dir"]) / "report.html").read_text()
    assert "reflection-phrase rate (aha)" in report and "the manifest&#x27;s per-step curves" in report


@pytest.mark.integration
def test_kill_mid_stage_then_rerun_resumes_in_that_stage(tiny_recipe_dict, tmp_path):
    from distill.checkpoints import COMPLETE

    recipe, path = _staged(tiny_recipe_dict, tmp_path)
    run_dir = Path(recipe["run_dir"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "distill.cli", "sft", str(path)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pattern = str(
        run_dir / "students" / "rl.partial-*" / "stages" / "2-long" / "checkpoints" / "*" / COMPLETE
    )
    deadline = time.time() + 180
    while not glob.glob(pattern):
        assert proc.poll() is None and time.time() < deadline, (
            "training ended before stage 2's first checkpoint"
        )
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stage1 = next(run_dir.glob("students/rl.partial-*/stages/1-short/grpo_metrics.json"))
    written = stage1.stat().st_mtime_ns
    assert main(["sft", str(path)]) == 0
    short, long = manifest(recipe)["stages"]["sft:rl"]["metrics"]["stages"]
    assert short["resumed_from"] is None and long["resumed_from"].startswith("checkpoint-")
    assert long["steps"] == 3 and 1 <= long["resumed_from_step"] < 3
    assert (
        run_dir / "students" / "rl" / "stages" / "1-short" / "grpo_metrics.json"
    ).stat().st_mtime_ns == written


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rewards": ["accuracy", "lenght"]}, "unknown reward 'lenght'"),
        (
            {"stages": [STAGES[1], STAGES[0]]},
            "stages out of order: short max_completion_length 4 < 8 of the stage before it",
        ),
        ({"init": "nobody"}, "students.1.init: 'nobody' is not another student of this recipe"),
    ],
)
def test_bad_grpo_student_inputs_are_one_line_before_any_stage(
    tiny_recipe_dict, tmp_path, capsys, change, message
):
    recipe = with_grpo_student(tiny_recipe_dict)
    if "init" in change:
        recipe["students"][1]["init"] = change["init"]
    else:
        recipe["students"][1]["grpo"].update(change)
    path = save(recipe, tmp_path / "bad.yaml")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not Path(recipe["run_dir"]).exists()


def test_model_card_states_init_rewards_weights_stages_and_steps():
    from distill.publish.cards import method_facts, model_card
    from distill.recipe import StudentConfig

    student = StudentConfig(
        name="rl",
        model="tiny-random-llama",
        method="grpo",
        init="s1",
        grpo={"rewards": ["accuracy", "language"], "reward_weights": [1.0, 0.1], "stages": STAGES},
    )
    metrics = {"steps": 4, "stages": [{"stage": "short", "max_completion_length": 4, "steps": 1},
                                      {"stage": "long", "max_completion_length": 8, "steps": 3}]}  # fmt: skip
    facts = method_facts(student, metrics)
    card = model_card(
        "org/rl", base_model=None, teacher="t", rows=[], benchmarks={}, lineage={"teacher": "t", **facts},
        comparison_md="| table |\n", license="apache-2.0", method=facts,
    )  # fmt: skip
    intro = card.split("# rl\n")[1].split("## Evaluation")[0]
    assert "GRPO" in intro and "accuracy x 1, language x 0.1" in intro and "4 steps in all" in intro
    assert "short (4 tokens, 1 steps) -> long (8 tokens, 3 steps)" in intro
    assert "the final weights of student s1" in intro and "grpo" in card.split("---\n")[1]


def test_plan_sizes_the_policy_at_the_longest_stage(tiny_recipe_dict, tmp_path, capsys):
    recipe, path = _staged(tiny_recipe_dict, tmp_path)
    assert main(["plan", str(path)]) == 0
    # 128 prompt tokens + stage "long"'s 8 completion tokens, batch_size 4 sequences per micro-batch
    assert "student rl:" in (out := capsys.readouterr().out) and "4 x 136 = 544 tokens per micro-batch" in out
