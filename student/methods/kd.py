"""`method: kd`: token-level logit distillation on the kept traces with TRL's GKDTrainer at ``lmbda=0``.

Why GKD and these settings: TRL has no plain "KD on a fixed dataset" trainer; GKDTrainer mixes student
samples (probability ``lmbda``) with the dataset's completions, so ``lmbda=0`` never samples and matches the
teacher's distribution on the teacher's own completions (supervised KD, Agarwal et al. 2024 sec. 3), and
``seq_kd=False`` keeps the teacher from generating new ones. ``beta=0`` makes the generalised JSD the forward
KL(teacher || student), the classic KD objective (Hinton et al. 2015); DistillationTrainer would sample
from the student. The rows are the SFT stage's tokenization (student/data.py: same over-long handling, the
template's end-of-turn check), so kd and sft train on exactly the same tokens."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from distill.recipe import StudentConfig
from distill.training import Method, fit, main, on_cpu, shared_trainer_args
from student.methods.common import StepMetrics, counting, load_teacher, summarise

METRICS_FILE = "distill_metrics.json"


def build_args(cfg: StudentConfig, out_dir: Path, cpu: bool):
    from trl.experimental.gkd import GKDConfig

    return GKDConfig(
        **shared_trainer_args(cfg, out_dir, cpu),
        max_length=cfg.max_length,
        packing=False,
        max_grad_norm=cfg.max_grad_norm,
        weight_decay=cfg.weight_decay,
        lmbda=0.0,  # never sample from the student: the kept traces only
        seq_kd=False,  # never let the teacher generate either
        beta=cfg.kd.beta,
        temperature=cfg.kd.temperature,
        dataloader_num_workers=0,
    )


class PaddedRows:
    """Pre-tokenized rows (input_ids, completion_mask) -> a right-padded batch; labels only on completions."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(e["input_ids"]) for e in examples)
        ids = torch.full((len(examples), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        labels = torch.full((len(examples), width), -100, dtype=torch.long)
        for row, e in enumerate(examples):
            n = len(e["input_ids"])
            ids[row, :n] = torch.tensor(e["input_ids"])
            mask[row, :n] = 1
            keep = torch.tensor(e["completion_mask"], dtype=torch.bool)
            labels[row, :n][keep] = ids[row, :n][keep]
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _count(inputs) -> tuple[int, int, int]:
    return (
        int((inputs["labels"][:, 1:] != -100).sum()),
        int(inputs["attention_mask"].sum()),
        len(inputs["labels"]),
    )


def _scaled_loss(trainer_class, temperature: float):
    """GKDTrainer.compute_loss calls the loss without the configured temperature; pass it."""
    if temperature == 1.0:
        return trainer_class
    base = trainer_class.generalized_jsd_loss

    class Scaled(trainer_class):
        @staticmethod
        def generalized_jsd_loss(*args, **kwargs):
            kwargs.setdefault("temperature", temperature)
            return base(*args, **kwargs)

    return Scaled


def run_training(job: dict[str, Any]) -> dict[str, Any]:
    """Train as ``job`` says (student/sft.py ``prepare_job`` plus the teacher); returns rank 0's metrics."""
    from transformers import AutoTokenizer
    from trl.experimental.gkd import GKDTrainer

    from student.data import load_tokenized
    from student.trainer import load_model

    cfg = StudentConfig.model_validate(job["student"])
    out_dir, cpu = Path(job["out_dir"]), on_cpu()
    tokenizer = AutoTokenizer.from_pretrained(job["tokenizer"])
    model = load_model(job["model_path"], cfg, cpu)
    if job.get("eos_token_id") is not None:
        model.config.eos_token_id = job["eos_token_id"]
        model.generation_config.eos_token_id = job["eos_token_id"]
    teacher = load_teacher(job["teacher_path"], model, cpu)
    dataset = load_tokenized(job["train_file"])  # memory-mapped Arrow shards
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = counting(_scaled_loss(GKDTrainer, cfg.kd.temperature), _count)(
        model=model,
        teacher_model=teacher,
        args=build_args(cfg, out_dir, cpu),
        train_dataset=dataset,
        processing_class=tokenizer,
        data_collator=PaddedRows(pad),
    )
    data = job["data"]
    truncated = data["too_long_truncated"] / max(data["train_rows"], 1)
    trainer.callback_handler.callbacks.insert(0, StepMetrics(trainer, truncated_share=truncated))
    extra = {"kd": {**cfg.kd.model_dump(), "lmbda": 0.0, "seq_kd": False}}
    return fit(trainer, tokenizer, job, METHOD, lambda t, r: summarise(t, r, job, extra))


METHOD = Method(module="student.methods.kd", train=run_training, metrics_file=METRICS_FILE)

if __name__ == "__main__":
    sys.exit(main(run_training))
