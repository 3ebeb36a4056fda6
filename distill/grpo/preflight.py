"""The grpo stage's preflight: its starting model resolves, prompt + completion fit its context, the engine and
launch strategy it asks for can run here, and every training prompt loads. teacher/grpo/spec.py calls these."""

from __future__ import annotations

import importlib.util

from distill.config.student import DEEPSPEED_STRATEGIES
from distill.errors import DistillError
from distill.models import check_model, has_cuda, model_context_length
from distill.recipe import DataConfig, GRPOTeacherConfig
from distill.stages import PreflightReport
from teacher.prompts import data_prompts


def check_grpo(cfg: GRPOTeacherConfig, report: PreflightReport | None = None) -> None:
    config = check_model("grpo.model", cfg.model)
    context = model_context_length(config) if config else None
    total = cfg.max_prompt_length + cfg.max_completion_length
    if context and total > context:
        raise DistillError(
            f"grpo.max_prompt_length + max_completion_length = {total} exceeds the context of {cfg.model} "
            f"({context} tokens); lower them"
        )
    if context is None and report is not None:
        report.could_not_check(f"grpo prompt + completion lengths against the context of {cfg.model}")
    if cfg.generation != "transformers":
        if importlib.util.find_spec("vllm") is None:
            raise DistillError(f"grpo.generation {cfg.generation} needs vLLM: pip install -e '.[vllm]'")
        if not has_cuda():
            raise DistillError(
                f"grpo.generation {cfg.generation}: TRL's vLLM generation needs CUDA GPUs; use transformers on CPU"
            )
    if cfg.launch.strategy in DEEPSPEED_STRATEGIES and importlib.util.find_spec("deepspeed") is None:
        raise DistillError("grpo.launch.strategy needs the deepspeed package: pip install deepspeed")


def check_grpo_prompts(data: DataConfig) -> str:
    """Every training prompt loads and maps (lengths are checked when the stage starts)."""
    return f"{len(data_prompts(data, f'grpo data.source {data.source}'))} grpo prompts"
