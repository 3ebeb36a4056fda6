"""GRPO's preflight, for the grpo stage (teacher/grpo/spec.py) and grpo students (student/preflight.py): the
starting model resolves, prompt + the longest stage's completion fit its context, the engine and launch
strategy asked for can run here, and every training prompt loads."""

from __future__ import annotations

import importlib.util

from distill.config.data import DataConfig
from distill.config.grpo_options import GRPOOptions
from distill.config.student import DEEPSPEED_STRATEGIES, LaunchConfig
from distill.errors import DistillError
from distill.models import check_model, has_cuda, model_context_length
from distill.prompts import data_prompts
from distill.stages import PreflightReport


def check_grpo(
    cfg: GRPOOptions,
    model: str,
    launch: LaunchConfig,
    report: PreflightReport | None = None,
    where: str = "grpo",
    model_field: str = "grpo.model",
) -> None:
    """``where`` names the options in messages (grpo, students.<name>.grpo); ``model_field`` the model's field."""
    config = check_model(model_field, model)
    context = model_context_length(config) if config else None
    total = cfg.max_prompt_length + cfg.longest_completion()
    if context and total > context:
        raise DistillError(
            f"{where}.max_prompt_length + max_completion_length = {total} exceeds the context of {model} "
            f"({context} tokens); lower them" + (" (the longest stage's)" if cfg.stages else "")
        )
    if context is None and report is not None:
        report.could_not_check(f"{where} prompt + completion lengths against the context of {model}")
    if cfg.generation != "transformers":
        if importlib.util.find_spec("vllm") is None:
            raise DistillError(f"{where}.generation {cfg.generation} needs vLLM: pip install -e '.[vllm]'")
        if not has_cuda():
            raise DistillError(
                f"{where}.generation {cfg.generation}: TRL's vLLM generation needs CUDA GPUs; use transformers "
                "on CPU"
            )
    if launch.strategy in DEEPSPEED_STRATEGIES and importlib.util.find_spec("deepspeed") is None:
        raise DistillError(f"{where}: launch.strategy needs the deepspeed package: pip install deepspeed")


def check_grpo_prompts(data: DataConfig, where: str = "grpo") -> str:
    """Every training prompt loads and maps (lengths are checked when the stage starts)."""
    return f"{len(data_prompts(data, f'{where} data.source {data.source}'))} {where} prompts"
