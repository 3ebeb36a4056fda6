"""Training throughput metrics the Trainer does not log: tokens/s and the share of real (non-pad) tokens.

The collator is wrapped to count, per batch, the token slots the model computes on and how many of them
are real; a callback turns the counts into ``tokens_per_second`` (real tokens, summed over ranks) and
``real_token_share`` at each logging step, so they reach report_to and the manifest like the loss.

Batches are counted when a training step consumes them, not when they are built: the dataloader builds one
batch ahead (accelerate looks ahead to flag the last one), so counting at build time credited each interval
with the next one's tokens and left the last interval of every epoch with none (tokens/s 0, share 0).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from transformers import TrainerCallback

from distill.training import add_to_log


class TokenCounter:
    """Wraps a data collator; counts real and total token slots of every batch it builds."""

    def __init__(self, collator):
        self.collator = collator
        self.real = 0  # of the batches training steps have consumed
        self.slots = 0
        self.built: deque[tuple[int, int]] = deque()  # (real, slots) of batches built, not yet consumed

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(examples)
        mask = batch.get("attention_mask")
        # Padding-free batches have no mask: one flat row, padded only up to pad_to_multiple_of.
        real = int(mask.sum()) if mask is not None else sum(len(example["input_ids"]) for example in examples)
        self.built.append((real, batch["input_ids"].numel()))
        return batch

    def consume(self) -> None:
        """One micro-batch went through a training step: the oldest batch built (batches are used in order)."""
        if self.built:
            real, slots = self.built.popleft()
            self.real += real
            self.slots += slots


class PackedRowsCollator:
    """Packed rows kept apart for attention without a varlen kernel (SDPA, eager).

    TRL's padding-free collator flattens the whole micro-batch into one row; flash attention then runs each
    example on its own, but SDPA computes a masked attention over the full (batch x max_length)^2 square.
    Here each BFD-packed row stays a row: position ids restart at every example and the attention mask is
    dropped, so transformers derives a block-diagonal mask per row (no example sees another). Pad tokens
    sit after every real token of their row, so causal attention never lets a real token see one, and they
    carry no loss.
    """

    def __init__(self, pad_token_id: int):
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        self.inner = DataCollatorForLanguageModeling(pad_token_id=pad_token_id, return_position_ids=True)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(examples)
        batch.pop("attention_mask", None)
        batch["labels"][batch["position_ids"] == 0] = -100  # no example is a target of the one before it
        return batch


class ThroughputCallback(TrainerCallback):
    """Adds tokens_per_second and real_token_share to every log entry (world totals)."""

    def __init__(self, counter: TokenCounter, world_size: int):
        self.counter = counter
        self.world_size = world_size
        self.started: float | None = None
        self.totals = {"real_tokens": 0, "token_slots": 0}

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self._last = (self.started, 0, 0)
        return control

    def on_substep_end(self, args, state, control, **kwargs):  # a micro-batch of gradient accumulation
        self.counter.consume()
        return control

    def on_step_end(self, args, state, control, **kwargs):  # the micro-batch that ends an optimizer step
        self.counter.consume()
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs or self.started is None:
            return control
        now, real, slots = time.perf_counter(), self.counter.real, self.counter.slots
        last_time, last_real, last_slots = self._last
        # Every rank sees its own batches; ranks get equal-sized shares, so scale by the world size.
        added = {
            "tokens_per_second": round((real - last_real) * self.world_size / max(now - last_time, 1e-9), 1),
            "real_token_share": round((real - last_real) / max(slots - last_slots, 1), 4),
        }
        add_to_log(state, logs, added)
        self._last = (now, real, slots)
        self.totals = {"real_tokens": real * self.world_size, "token_slots": slots * self.world_size}
        return control
