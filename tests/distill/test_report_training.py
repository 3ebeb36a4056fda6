"""What training records and prints for the report: the whole run's loss across a resume, the resume point,
no "missing keys" warning for a tied embedding, tokens/s and real-token share on every logged step, one
compact line per logging step when the output is not a terminal (distill/training.py, student/metrics.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from suite import REPO, kill_at_first_checkpoint

from distill.training import quiet_tied_keys, run_loss, tied_parameter_names


def test_run_loss_weights_each_logged_loss_by_its_steps():
    history = [{"step": 2, "loss": 1.0}, {"step": 3, "loss": 4.0}, {"step": 3, "train_loss": 9.0}]
    assert run_loss(history) == 2.0  # (2 x 1.0 + 1 x 4.0) / 3 steps
    assert run_loss([{"step": 1, "train_runtime": 1.0}]) is None


def _tiny_llama(tied: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    config.tie_word_embeddings = tied
    return LlamaForCausalLM(config)


def test_tied_parameters_are_named_and_only_their_missing_keys_are_quiet():
    from torch.nn.modules.module import _IncompatibleKeys

    tied = _tiny_llama(tied=True)
    assert tied_parameter_names(tied) == {"lm_head.weight", "model.embed_tokens.weight"}
    assert tied_parameter_names(_tiny_llama(tied=False)) == set()

    class Trainer:  # what quiet_tied_keys touches of a transformers Trainer
        def __init__(self, model):
            self.model, self.warned = model, []

        def _issue_warnings_after_load(self, load_result):
            self.warned.append(list(load_result.missing_keys))

    for model, missing, warned in (
        (tied, ["lm_head.weight"], []),
        (tied, ["lm_head.weight", "model.norm.weight"], ["model.norm.weight"]),
        (_tiny_llama(tied=False), ["lm_head.weight"], ["lm_head.weight"]),  # untied: a real loss, kept
    ):
        trainer = Trainer(model)
        quiet_tied_keys(trainer)
        trainer._issue_warnings_after_load(_IncompatibleKeys(missing_keys=list(missing), unexpected_keys=[]))
        assert trainer.warned == [warned]


def _distill(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "distill.cli", *args]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.integration
def test_a_resumed_student_records_the_loss_of_the_whole_run(tmp_path, tiny_recipe, tiny_recipe_dict):
    """Killed after its first checkpoint and resumed, a student records the same train_loss as the same
    training uninterrupted, the step it resumed from, and no missing-keys warning for its tied lm_head."""
    for stage in ("generate", "filter"):
        assert _distill(stage, str(tiny_recipe)).returncode == 0
    knobs = ["students.0.max_steps=12", "students.0.save_steps=4", "students.0.batch_size=1"]
    knobs += ["students.0.report_to=[]", "students.0.logging_steps=1"]
    run_dir = Path(tiny_recipe_dict["run_dir"])
    uninterrupted_dir = tmp_path / "uninterrupted"
    shutil.copytree(run_dir, uninterrupted_dir)

    kill_at_first_checkpoint(["sft", str(tiny_recipe), *knobs], run_dir / "students" / "*.partial-*")
    resumed = _distill("sft", str(tiny_recipe), *knobs)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    plain = _distill("sft", str(tiny_recipe), *knobs, f"run_dir={uninterrupted_dir}")
    assert plain.returncode == 0, plain.stderr[-2000:]

    name = f"sft:{tiny_recipe_dict['students'][0]['name']}"
    after_resume, whole = (
        json.loads((folder / "manifest.json").read_text())["stages"][name]["metrics"]
        for folder in (run_dir, uninterrupted_dir)
    )
    assert after_resume["resumed_from_step"] in (4, 8) and whole["resumed_from_step"] is None
    assert after_resume["steps"] == whole["steps"] == 12
    assert after_resume["train_loss"] == pytest.approx(whole["train_loss"], abs=1e-4)
    assert "train_loss_this_attempt" in after_resume and "train_loss_this_attempt" not in whole
    assert "missing keys" not in resumed.stderr + resumed.stdout
    assert f"[distill] sft {tiny_recipe_dict['students'][0]['name']} step 12/12: loss " in plain.stdout
    # Not a terminal: one compact line per logging step, no bar and no raw dict of the Trainer's.
    lines = [
        line for line in plain.stdout.splitlines() if " step " in line and line.startswith("[distill] sft")
    ]
    assert len(lines) == 12 and "{'loss'" not in plain.stdout + plain.stderr
    logged = yaml.safe_load(
        (
            uninterrupted_dir / "students" / tiny_recipe_dict["students"][0]["name"] / "train_metrics.json"
        ).read_text()
    )["log_history"]
    steps = [entry for entry in logged if "loss" in entry]
    assert len(steps) == 12
    assert all(e["tokens_per_second"] > 0 and e["real_token_share"] > 0 for e in steps)  # epoch ends too
