"""The progress of a training run on the terminal (a bar with the current loss, lr and tokens/s) or, in a log
file or with ``--verbose``, a compact line per logging step; distill/training.py's ``fit`` installs it."""

from __future__ import annotations

import os
import sys
from typing import Any


def job_label(job: dict[str, Any]) -> str:
    student = job.get("student")
    return f"sft {student['name']}" if isinstance(student, dict) and "name" in student else "grpo"


# On the bar: the current values; on a line also the grad norm and the real-token share.
_BAR_FIELDS = (
    ("loss", "loss"),
    ("reward", "reward"),
    ("kl", "kl"),
    ("learning_rate", "lr"),
    ("tokens_per_second", "tok/s"),
)
_LINE_FIELDS = (
    *_BAR_FIELDS,
    ("grad_norm", "grad norm"),
    ("real_token_share", "real tokens"),
    ("dynamic_sampling/zero_variance_share", "zero-variance groups"),  # GRPO's dynamic sampling
    ("dynamic_sampling/extra_prompts", "extra prompts"),
    ("aha/reflection_rate", "reflection"),  # GRPO's "aha" curve
)


def _fields(logs: dict[str, Any], fields: tuple[tuple[str, str], ...]) -> str:
    formats = {
        "learning_rate": "{:.2e}",
        "tokens_per_second": "{:,.0f}",
        "real_token_share": "{:.1%}",
        "dynamic_sampling/zero_variance_share": "{:.0%}",
        "dynamic_sampling/extra_prompts": "{:.0f}",
        "aha/reflection_rate": "{:.1%}",
    }
    return ", ".join(
        f"{label} {formats.get(key, '{:.4g}').format(logs[key])}"
        for key, label in fields
        if isinstance(logs.get(key), int | float)
    )


def verbose() -> bool:
    """A compact line per logging step even on a terminal (`--verbose`, DISTILL_VERBOSE=1)."""
    return os.environ.get("DISTILL_VERBOSE", "0") not in ("", "0")


def training_progress(label: str):
    """One progress bar per training run with the current loss, lr and tokens/s on it (on a terminal); a
    compact line per logging step with ``verbose()`` or when the output is not a terminal (a log file,
    Slurm), where a bar would only add carriage returns. Rank 0 only, as transformers' own bar."""
    from tqdm.auto import tqdm
    from transformers.trainer_callback import ProgressCallback

    class TrainingProgress(ProgressCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.terminal = sys.stderr.isatty()
            self.lines = verbose() or not self.terminal
            if state.is_world_process_zero:  # a resumed run starts where its checkpoint left off
                self.training_bar = tqdm(
                    total=state.max_steps,
                    initial=state.global_step,
                    desc=label,
                    dynamic_ncols=True,
                    disable=not self.terminal,
                )
            self.current_step = state.global_step

        def on_log(self, args, state, control, logs=None, **kwargs):
            if (
                not state.is_world_process_zero
                or self.training_bar is None
                or not logs
                or "train_runtime" in logs
            ):
                return
            if self.terminal:
                self.training_bar.set_postfix_str(_fields(logs, _BAR_FIELDS))
            if self.lines:
                where = f"step {state.global_step:,}/{state.max_steps:,}"
                tqdm.write(f"[distill] {label} {where}: {_fields(logs, _LINE_FIELDS)}")

    return TrainingProgress()
