"""What the distillation methods share: the teacher loaded for inference only, its vocabulary aligned with the
student's, the per-step metrics (divergence per token, completion length, truncated share, teacher tokens
scored, tokens/s) and the summary the manifest gets (first-10 / last-10 step means)."""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback

from distill.errors import DistillError
from distill.training import add_to_log, what_ran, wrapper_ran


def load_teacher(path: str, student, cpu: bool):
    """The teacher for scoring only: bf16 on GPU (fp32 on CPU), eval mode, no gradients, so no optimizer
    ever sees it; its output rows cut to the student's table (see ``align_vocab``)."""
    import torch
    from transformers import AutoModelForCausalLM

    teacher = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32 if cpu else torch.bfloat16)
    align_vocab(teacher, student, path)
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


def align_vocab(teacher, student, teacher_path: str) -> None:
    """Make the teacher's embedding table as long as the student's.

    Checkpoints of one tokenizer pad their tables differently (Qwen2.5 7B: 152,064 rows, 1.5B: 151,936); the
    rows past the tokenizer are ids no tokenizer produces, so cutting the teacher's extra rows leaves every id
    the student can emit (checked by the preflight) with the teacher's logit. TRL compares the two full
    distributions and refuses unequal tables."""
    rows = student.get_output_embeddings().weight.shape[0]
    have = teacher.get_output_embeddings().weight.shape[0]
    if have > rows:
        teacher.resize_token_embeddings(rows, mean_resizing=False)
    elif have < rows:
        raise DistillError(
            f"teacher {teacher_path}: its embedding table has {have} rows, fewer than the student's {rows}; "
            "distil from a teacher whose table covers the student's"
        )


def counting(trainer_class, count):
    """``trainer_class`` that counts, per training micro-batch, the tokens the teacher scored and the tokens
    both models ran on: ``count(inputs) -> (scored, tokens, rows)``."""

    class Counted(trainer_class):
        counts = (0, 0, 0)

        def compute_loss(self, model, inputs, *args, **kwargs):
            if model.training:
                self.counts = tuple(a + b for a, b in zip(self.counts, count(inputs), strict=True))
            return super().compute_loss(model, inputs, *args, **kwargs)

    Counted.__name__ = f"Counted{trainer_class.__name__}"
    return Counted


class StepMetrics(TrainerCallback):
    """Adds the distillation metrics to every log entry (and so to report_to and the manifest's history).

    Counts are this rank's; ranks get equal shares, so totals are scaled by the world size."""

    def __init__(self, trainer, truncated_share: float | None = None):
        self.trainer = trainer
        self.truncated_share = truncated_share
        self._last: tuple[float, tuple[int, int, int]] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = (time.perf_counter(), self.trainer.counts)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs or self._last is None:
            return control
        now, counts = time.perf_counter(), self.trainer.counts
        (then, before), world = self._last, args.world_size
        scored, tokens, rows = (a - b for a, b in zip(counts, before, strict=True))
        added = {
            "divergence_per_token": logs["loss"],
            "teacher_tokens_scored": scored * world,
            "tokens": tokens * world,  # prompt + completion tokens both models ran on
            "tokens_per_second": round(tokens * world / max(now - then, 1e-9), 1),
            "completion_length": logs.get("completions/mean_length", scored / max(rows, 1)),
            "truncated_share": logs.get("completions/clipped_ratio", self.truncated_share),
        }
        add_to_log(state, logs, added)
        self._last = (now, counts)
        return control


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def summarise(trainer, result, job: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """What the manifest records for a distillation run: what ran, the divergence's first-10 and last-10
    step means, completion lengths, truncated share, teacher tokens scored and tokens/s."""
    history = [e for e in trainer.state.log_history if "divergence_per_token" in e]
    divergence = [e["divergence_per_token"] for e in history]
    return {
        **what_ran(trainer, result, job),
        **wrapper_ran(trainer),
        **extra,
        "teacher": job["teacher_path"],
        "train_loss": round(result.training_loss, 4),
        "divergence_first10": _mean(divergence[:10]),
        "divergence_last10": _mean(divergence[-10:]),
        "first_loss": _mean(divergence[:1]),
        "last_loss": _mean(divergence[-1:]),
        "completion_length_mean": _mean([e["completion_length"] for e in history]),
        "truncated_share_mean": _mean([e["truncated_share"] for e in history]),
        "teacher_tokens_scored": sum(e["teacher_tokens_scored"] for e in history),
        "tokens_total": sum(e["tokens"] for e in history),
        "tokens_per_second": _mean([e["tokens_per_second"] for e in history]),
        "log_history": trainer.state.log_history,
    }
