"""recipes/r1-pipeline-quickstart.yaml end to end on the tiny model (no judge): every phase of R1's pipeline
runs in graph order through the real CLI - R1-Zero GRPO, the first round, cold-start SFT, reasoning RL (a grpo
student), the rejection-sampling round sampled from it, SFT on that round, diverse RL - then eval and
publish; a rerun skips every node; the phases page names who came from whom. ~5 minutes: the slow tier."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from suite import REPO, run_distill

RL = ["max_steps=2", "num_generations=2", "batch_size=4", "max_completion_length=8", "report_to=[]"]
NO_FILTERING = ["correctness=false", "drop_truncated=false", "max_repetition=null", "keep_per_prompt=null"]


def overrides(run_dir: Path) -> list[str]:
    """The recipe shrunk to the tiny model and a handful of rows, without the judge (it needs a server)."""
    out = [
        f"run_dir={run_dir}",
        "data.limit=4",
        "judge=null",
        "filter.judge=null",
        "grpo.model=tiny-random-llama",
    ]
    out += ["grpo.data.limit=8", *(f"grpo.{knob}" for knob in RL), "teacher.samples_per_prompt=2"]
    out += ["teacher.sampling.max_tokens=8", *(f"filter.{knob}" for knob in NO_FILTERING)]
    out += ["rounds.0.teacher.samples_per_prompt=2", "rounds.0.teacher.sampling.max_tokens=8"]
    out += [f"rounds.0.filter.{knob}" for knob in NO_FILTERING]
    for index in range(4):
        out.append(f"students.{index}.model=tiny-random-llama")
        if index in (1, 3):  # the grpo students
            out += [f"students.{index}.grpo.{knob}" for knob in RL]
        else:
            out += [f"students.{index}.epochs=1", f"students.{index}.report_to=none"]
    out += ["students.3.grpo.rewards=[accuracy]", "students.3.grpo.reward_weights=null"]
    return [*out, "eval.limit=2", "eval.samples_per_problem=2", "eval.max_tokens=8"]


@pytest.mark.slow
def test_every_phase_runs_in_graph_order_and_a_rerun_skips_them(tmp_path):
    recipe = REPO / "recipes" / "r1-pipeline-quickstart.yaml"
    args = overrides(tmp_path / "run")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = run_distill("run", recipe, *args, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    started = [line.split()[1].rstrip(":") for line in done.stdout.splitlines() if line.endswith(": running")]
    assert started == [
        "grpo",
        "generate",
        "filter",
        "sft:cold-start",
        "sft:reasoning-rl",
        "generate:rejection-sampling",
        "filter:rejection-sampling",
        "sft:rejection-sft",
        "sft:diverse-rl",
        "eval",
        "publish",
    ]
    again = run_distill("run", recipe, *args, cwd=REPO, env=env)
    assert again.returncode == 0 and ": running" not in again.stdout
    status = run_distill("status", recipe, *args, cwd=REPO, env=env)
    assert status.returncode == 0, status.stdout
    phases = status.stdout.split("phases (held-out pass@1 on addition_heldout")[1]
    assert "traces sampled by student:reasoning-rl" in phases and "vs init: rejection-sft" in phases
    card = (tmp_path / "run" / "release" / "rejection-sft" / "README.md").read_text()
    assert "**teacher**: student:reasoning-rl" in card and "**trace round**: rejection-sampling" in card
