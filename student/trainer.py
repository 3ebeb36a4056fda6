"""The training process: TRL SFTTrainer on the pre-tokenized set, resumable, saving the final student.

Runs in the stage's own process (strategy ``single``) or in every process that ``accelerate launch``
starts (``python -m student.trainer JOB.json``). The job file is the only input: paths plus the student's
recipe section, so a launched process never re-reads the recipe. What is common to every trainer (resume,
checkpoint markers, the final save, the entry point) is distill/training.py; this module builds TRL's
SFTTrainer and summarises its run. Rank 0 writes ``train_metrics.json`` with what really ran (world size,
the model wrapper, optimizer steps) for the stage to check.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from distill.recipe import StudentConfig
from distill.training import Method, fit, main, on_cpu, run_loss, shared_trainer_args, what_ran, wrapper_ran
from student.data import load_tokenized
from student.metrics import PackedRowsCollator, ThroughputCallback, TokenCounter

METRICS_FILE = "train_metrics.json"


def build_args(cfg: StudentConfig, out_dir: Path, cpu: bool, packing: bool):
    from trl import SFTConfig

    return SFTConfig(
        **shared_trainer_args(cfg, out_dir, cpu),
        max_length=cfg.max_length,
        packing=packing,
        packing_strategy="bfd",  # best-fit decreasing, whole examples only (never split across rows)
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        completion_only_loss=True,
        use_liger_kernel=cfg.liger,
        dataloader_num_workers=0,  # the token counter lives in the collator, which must run in-process
    )


def load_model(model_path: str, cfg: StudentConfig, cpu: bool):
    import torch
    from transformers import AutoModelForCausalLM

    # Full fine-tuning without ZeRO/FSDP keeps fp32 weights as the optimizer's master copy and trains under
    # bf16 autocast; AdamW on bf16-loaded weights loses small updates. DeepSpeed keeps its own fp32 masters
    # and FSDP2 upcasts, so those (and LoRA's frozen base) load in bf16 to save host memory.
    fp32_master = cfg.lora is None and cfg.launch.strategy in ("single", "ddp", "cpu")
    wide = cpu or fp32_master or not cfg.bf16
    kwargs: dict[str, Any] = {"dtype": torch.float32 if wide else torch.bfloat16}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if cfg.lora and cfg.lora.quantize_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
    return AutoModelForCausalLM.from_pretrained(model_path, **kwargs)


def lora_config(cfg: StudentConfig):
    if cfg.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def packed_collator(model, tokenizer):
    """None (TRL's flat padding-free batch) for flash attention's varlen kernels; packed rows otherwise."""
    if "flash" in str(getattr(model.config, "_attn_implementation", "")):
        return None
    return PackedRowsCollator(tokenizer.pad_token_id)


def run_training(job: dict[str, Any]) -> dict[str, Any]:
    """Train as described by ``job`` (see student/sft.py ``prepare_job``); returns rank 0's metrics."""
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    cfg = StudentConfig.model_validate(job["student"])
    out_dir = Path(job["out_dir"])
    cpu = on_cpu()
    args = build_args(cfg, out_dir, cpu, job["packing"])
    tokenizer = AutoTokenizer.from_pretrained(job["tokenizer"])
    model = load_model(job["model_path"], cfg, cpu)
    if job.get("eos_token_id") is not None:
        model.config.eos_token_id = job["eos_token_id"]
        if model.generation_config is not None:
            model.generation_config.eos_token_id = job["eos_token_id"]
    dataset = load_tokenized(job["train_file"])  # memory-mapped Arrow shards
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(cfg),
    )
    if job["packing"]:
        # TRL refuses a custom collator with packing at construction; the swap happens before any batch.
        trainer.data_collator = packed_collator(model, tokenizer) or trainer.data_collator
    counter = TokenCounter(trainer.data_collator)
    trainer.data_collator = counter
    throughput = ThroughputCallback(counter, trainer.args.world_size)
    # First in line, so report_to callbacks (tensorboard, wandb) see the added keys too.
    trainer.callback_handler.callbacks.insert(0, throughput)
    merge = cfg.lora is not None and cfg.lora.save == "merged"
    return fit(
        trainer,
        tokenizer,
        job,
        METHOD,
        lambda trainer, result: _summarise(trainer, result, throughput, job),
        (lambda folder: _merge_adapter(job["model_path"], folder, tokenizer)) if merge else None,
    )


def _merge_adapter(base_path: str, adapter_dir: Path, tokenizer) -> None:
    """Fold the saved adapter into a fresh copy of the base weights (works for every strategy)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.bfloat16 if not on_cpu() else None)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.config.eos_token_id = tokenizer.eos_token_id
    for name in os.listdir(adapter_dir):
        (adapter_dir / name).unlink()
    merged.save_pretrained(str(adapter_dir), safe_serialization=True)


def _summarise(trainer, result, throughput: ThroughputCallback, job: dict[str, Any]) -> dict[str, Any]:
    history = trainer.state.log_history
    losses = [entry["loss"] for entry in history if "loss" in entry]
    speeds = [entry["tokens_per_second"] for entry in history if "tokens_per_second" in entry]
    totals = throughput.totals
    return {
        **what_ran(trainer, result, job),
        **wrapper_ran(trainer),
        # The whole run's loss (resumes included); the Trainer's own covers only this attempt's steps.
        "train_loss": run_loss(history) or round(result.training_loss, 4),
        **({"train_loss_this_attempt": round(result.training_loss, 4)} if job.get("resume_from") else {}),
        "first_loss": round(losses[0], 4) if losses else None,
        "last_loss": round(losses[-1], 4) if losses else None,
        "grad_norm_last": next((e["grad_norm"] for e in reversed(history) if "grad_norm" in e), None),
        "learning_rate_last": next(
            (e["learning_rate"] for e in reversed(history) if "learning_rate" in e), None
        ),
        "tokens_per_second": round(sum(speeds) / len(speeds), 1) if speeds else None,
        "real_token_share": round(totals["real_tokens"] / max(totals["token_slots"], 1), 4),
        "log_history": history,
    }


METHOD = Method(module="student.trainer", train=run_training, metrics_file=METRICS_FILE)

if __name__ == "__main__":
    sys.exit(main(run_training))
