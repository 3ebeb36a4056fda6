"""`students[].method: grpo`: reinforce a student with the one GRPO mechanism (distill/grpo), the grpo stage's.

It starts from another student's final weights (``init``: SFT -> GRPO, on_policy -> GRPO, DeepScaleR's and
Skywork-OR1's way) or from ``model`` (R1-Zero style), samples the prompts of ``grpo.data`` (default: the
recipe's data section) and trains with the student's ``grpo`` options (rewards, groups, stages, dynamic
sampling); its launch is the student's. The model lands in ``students/<name>/final`` like any student's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.config.data import DataConfig
from distill.config.grpo import GRPOTeacherConfig
from distill.errors import DistillError
from distill.recipe import Recipe, StudentConfig


def prompt_source(recipe: Recipe, student: StudentConfig) -> DataConfig:
    """The prompts a grpo student trains on: its grpo.data, else the recipe's data section."""
    data = student.grpo_options().data or recipe.data
    if data is None:
        raise DistillError(
            f"students.{student.name}.grpo.data: method grpo needs prompts with answers and this recipe has no "
            "`data` section; add one or set grpo.data"
        )
    return data


def run_options(student: StudentConfig, model_path: str) -> GRPOTeacherConfig:
    """The student's GRPO options as the mechanism takes them: its grpo section, starting model, launch."""
    options = student.grpo_options().model_dump()
    return GRPOTeacherConfig.model_validate({**options, "model": model_path, "launch": student.launch})


def train_grpo_student(recipe: Recipe, student: StudentConfig, model_path: str, folder: Path, judge=None):
    """Train ``student`` by GRPO from ``model_path``; returns the run's metrics (the manifest's)."""
    from distill.grpo.run import train_grpo

    cfg = run_options(student, model_path)
    metrics: dict[str, Any] = train_grpo(
        model_path, cfg, prompt_source(recipe, student), folder, f"grpo {student.name}", judge
    )
    return {
        **metrics,
        "method": "grpo",
        "rewards": dict(zip(cfg.rewards, cfg.reward_weights or [1.0] * len(cfg.rewards), strict=True)),
    }
