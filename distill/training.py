"""The TrainingArguments the two trainers share (students' SFT, the teacher's GRPO): one place for how a
run checkpoints, logs and uses the hardware, so `resume` means the same thing for both."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def shared_trainer_args(cfg: Any, out_dir: Path, cpu: bool) -> dict[str, Any]:
    """Keyword arguments for an SFTConfig / GRPOConfig from a section with the common training keys
    (learning_rate, lr_scheduler, warmup_ratio, epochs, max_steps, batch_size, gradient_accumulation_steps,
    seed, bf16, gradient_checkpointing, logging_steps, save_steps, save_total_limit, report_to)."""
    checkpointing = cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else not cpu
    return {
        "output_dir": str(out_dir / "checkpoints"),
        "learning_rate": cfg.learning_rate,
        "lr_scheduler_type": cfg.lr_scheduler,
        "warmup_steps": cfg.warmup_ratio,  # transformers>=5: a float in [0, 1) is a ratio of total steps
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps or -1,
        "per_device_train_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "seed": cfg.seed,
        "bf16": cfg.bf16 and not cpu,
        "gradient_checkpointing": checkpointing,
        "gradient_checkpointing_kwargs": {"use_reentrant": False} if checkpointing else None,
        "use_cpu": cpu,
        "logging_steps": cfg.logging_steps,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "save_only_model": False,  # optimizer + scheduler + RNG states: resume continues the same run
        "report_to": cfg.report_to or "none",
        "ddp_find_unused_parameters": False,
        "disable_tqdm": False,
    }
