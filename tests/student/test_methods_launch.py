"""on_policy through the launch machinery SFT uses (distill/training.py): a real 2-process `accelerate
launch` (gloo on CPU) and kill -9 after a checkpoint, then a rerun that resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from suite import kill_at_first_checkpoint

from distill.cli import main

REPO = Path(__file__).resolve().parents[2]
ON_POLICY = [
    "students.0.method=on_policy",
    "students.0.max_length=256",
    "students.0.report_to=[]",
    "students.0.on_policy.max_completion_length=8",
    "students.0.on_policy.completions_per_prompt=2",
]


def _filtered(tiny_recipe: Path, capsys) -> dict:
    assert main(["generate", str(tiny_recipe)]) == 0
    assert main(["filter", str(tiny_recipe)]) == 0
    capsys.readouterr()
    return yaml.safe_load(tiny_recipe.read_text())


def _metrics(recipe: dict) -> dict:
    manifest = json.loads((Path(recipe["run_dir"]) / "manifest.json").read_text())
    return manifest["stages"][f"sft:{recipe['students'][0]['name']}"]["metrics"]


@pytest.mark.integration
def test_two_process_on_policy_halves_the_optimizer_steps(tiny_recipe, capsys):
    recipe = _filtered(tiny_recipe, capsys)
    common = [*ON_POLICY, "students.0.epochs=2", "students.0.batch_size=2"]
    assert main(["sft", str(tiny_recipe), *common]) == 0
    single = _metrics(recipe)
    args = ["sft", str(tiny_recipe), *common, "--launch", "cpu", "--nproc", "2", "--main-port", "29661"]
    assert main(args) == 0
    launched = _metrics(recipe)
    # What really ran: two processes over gloo, the student inside DDP, half the optimizer steps at the same
    # per-device batch (each step sees twice the prompts).
    assert (single["world_size"], launched["world_size"]) == (1, 2)
    assert launched["wrapper"] == "DistributedDataParallel" and launched["method"] == "on_policy"
    assert single["steps"] > 0 and launched["steps"] * 2 == single["steps"]
    assert launched["teacher_tokens_scored"] > 0
    from transformers import AutoModelForCausalLM

    final = Path(recipe["run_dir"]) / "students" / recipe["students"][0]["name"] / "final"
    assert AutoModelForCausalLM.from_pretrained(final).config.num_hidden_layers == 2


@pytest.mark.integration
def test_on_policy_kill_after_checkpoint_then_resume(tiny_recipe, capsys):
    recipe = _filtered(tiny_recipe, capsys)
    knobs = [*ON_POLICY, "students.0.max_steps=24", "students.0.save_steps=4", "students.0.batch_size=1"]
    students = Path(recipe["run_dir"]) / "students"
    kill_at_first_checkpoint(["sft", str(tiny_recipe), *knobs], students / "*.partial-*", timeout_s=180)
    partial = next(students.glob("*.partial-*"))
    assert not (partial / "final").exists()
    done = subprocess.run(
        [sys.executable, "-m", "distill.cli", "sft", str(tiny_recipe), *knobs],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = _metrics(recipe)
    assert metrics["steps"] == 24 and metrics["resumed_from"].startswith("checkpoint-")
    assert int(metrics["resumed_from"].split("-")[1]) % 4 == 0
    from transformers import AutoModelForCausalLM

    final = students / recipe["students"][0]["name"] / "final"
    assert AutoModelForCausalLM.from_pretrained(final).config.num_hidden_layers == 2


@pytest.mark.integration
def test_two_process_grpo_student_runs_the_steps_it_was_asked(tiny_recipe):
    # A grpo student (from the model, R1-Zero style: no traces needed) through the same launcher: world size 2
    # really ran, each step's 4 completions (2 groups of 2) split over the two processes, dynamic sampling's
    # refill collective across both ranks.
    recipe = yaml.safe_load(tiny_recipe.read_text())
    recipe["students"] = [
        {
            "name": "rl",
            "model": "tiny-random-llama",
            "method": "grpo",
            "launch": {"strategy": "cpu", "nproc": 2, "main_port": 29663},
            "grpo": {
                "rewards": ["accuracy", "format"],
                "num_generations": 2,
                "batch_size": 2,
                "max_steps": 2,
                "max_completion_length": 6,
                "max_prompt_length": 128,
                "dynamic_sampling": True,
                "max_extra_draws": 1,
                "report_to": [],
            },
        }
    ]
    tiny_recipe.write_text(yaml.safe_dump(recipe, sort_keys=False))
    assert main(["sft", str(tiny_recipe)]) == 0
    manifest = json.loads((Path(recipe["run_dir"]) / "manifest.json").read_text())
    metrics = manifest["stages"]["sft:rl"]["metrics"]
    assert metrics["world_size"] == 2 and metrics["steps"] == 2 and metrics["strategy"] == "cpu"
    assert metrics["method"] == "grpo" and metrics["curves"]["step"] == [1, 2]
    assert (Path(recipe["run_dir"]) / "students" / "rl" / "launch.log").exists()
