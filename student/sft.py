"""Stage `sft`: fine-tune a student on the filtered traces with TRL's SFTTrainer (completion-only loss)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.recipe import StudentConfig

FINAL = "final"


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def train_student(model_path: str, train_file: Path, out_dir: Path, cfg: StudentConfig) -> dict[str, Any]:
    """Train ``model_path`` on ``train_file`` (prompt/completion rows); the final model lands in out_dir/final."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not train_file.exists():
        raise DistillError(f"{train_file}: training set missing; run `distill filter` first")
    dataset = datasets.load_dataset("parquet", data_files=str(train_file), split="train")
    dataset = dataset.select_columns(["prompt", "completion"])
    cpu = _on_cpu()
    args = SFTConfig(
        output_dir=str(out_dir / "checkpoints"),
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_length=cfg.max_length,
        warmup_steps=cfg.warmup_ratio,  # transformers>=5: a float in [0, 1) is a ratio of total steps
        lr_scheduler_type=cfg.lr_scheduler,
        seed=cfg.seed,
        completion_only_loss=True,
        # TRL defaults to bf16 + gradient checkpointing; both only slow a CPU down.
        bf16=cfg.bf16 and not cpu,
        gradient_checkpointing=not cpu,
        use_cpu=cpu,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto" if not cpu else None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train()
    final_dir = out_dir / FINAL
    tmp_dir = out_dir / f".{FINAL}.tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    trainer.save_model(str(tmp_dir))
    tokenizer.save_pretrained(str(tmp_dir))
    shutil.rmtree(final_dir, ignore_errors=True)
    tmp_dir.rename(final_dir)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {
        "train_rows": len(dataset),
        "steps": trainer.state.global_step,
        "train_loss": round(result.training_loss, 4),
        "first_loss": round(losses[0], 4) if losses else None,
        "last_loss": round(losses[-1], 4) if losses else None,
        "train_seconds": round(result.metrics.get("train_runtime", 0.0), 1),
    }
