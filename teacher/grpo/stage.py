"""Stage `grpo`: train the teacher with TRL's GRPOTrainer on verifiable rewards (R1-Zero style).

A thin caller of the one GRPO mechanism (distill/grpo, which grpo students use too):
1. prompts: the same sources and rendering as the generate stage (distill/prompts.py); prompts longer than
   ``grpo.max_prompt_length`` tokens are dropped and counted; optionally only prompts whose pass rate under
   the starting model lies in ``grpo.pass_rate_filter.band`` are kept (all-right or all-wrong groups give
   GRPO no signal). Written once into the partial folder, so a resumed attempt trains on the same set;
2. train through the one training-job mechanism (distill/training.py), in context stages when
   ``grpo.stages`` lists them, resuming from the last complete checkpoint when a killed attempt left one;
3. check that training ran with the world size the recipe asked for; the teacher lands in out_dir/final.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.grpo.run import train_grpo
from distill.recipe import DataConfig, GRPOTeacherConfig


def train_teacher(
    model_path: str, cfg: GRPOTeacherConfig, data: DataConfig, out_dir: Path, judge: dict | None = None
) -> dict[str, Any]:
    """GRPO-train ``model_path`` on ``data``'s prompts; the trained teacher lands in out_dir/final."""
    return train_grpo(model_path, cfg, data, out_dir, "grpo", judge)
