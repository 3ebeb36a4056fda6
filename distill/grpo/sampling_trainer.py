"""GRPOTrainer plus DAPO's dynamic sampling and the "aha" curve (the rate of reflection phrases per step).

Written against TRL 1.16.0. It hooks one method, ``GRPOTrainer._generate_and_score_completions(inputs)``: the
generation, rewards and advantages of one generation batch, which ``_prepare_inputs`` calls every
``steps_per_generation * num_iterations`` steps and then splits into the optimizer step's micro-batches.

Dynamic sampling (DAPO, Yu et al. 2025, section 3.2): a group whose rewards are all equal has every advantage
0 and moves nothing. Such groups are dropped and the batch is refilled, up to ``max_extra_draws`` times, with
the groups of further prompts drawn from the training set (a deterministic draw per step and round): each
round is one more call of the hooked method on as many prompts as the batch holds, so every rank takes part
in its collective gathers. The refilled batch has exactly the size of the original, so every optimizer step
sees a full batch; when the cap is reached first, the batch keeps some of its zero-variance groups (counted).
Each rank refills its own groups, so a rank must hold whole groups (batch_size x gradient_accumulation_steps a
multiple of num_generations; checked by the config).

Logged per step (tracker, progress line, manifest): ``dynamic_sampling/zero_variance_share`` (of the first
draw's groups, all ranks), ``dynamic_sampling/extra_prompts`` (prompts drawn beyond the batch, all ranks),
``dynamic_sampling/short_groups`` (zero-variance groups left in after the cap) and ``aha/reflection_rate``.
"""

from __future__ import annotations

import random
from typing import Any

from trl import GRPOTrainer

# Keys padded along the completion (right) or prompt (left) axis when groups of several draws are merged.
_COMPLETION_KEYS = ("completion_ids", "completion_mask", "old_per_token_logps", "ref_per_token_logps",
                    "sampling_per_token_logps", "importance_sampling_ratio")  # fmt: skip
_PROMPT_KEYS = ("prompt_ids", "prompt_mask")
_MERGEABLE = {*_COMPLETION_KEYS, *_PROMPT_KEYS, "advantages", "num_items_in_batch"}


def reflection_rate(texts: list[str], phrases: list[str]) -> tuple[int, int]:
    """(completions containing at least one of ``phrases``, completions): lowercase substring match."""
    lowered = [p.lower() for p in phrases]
    return sum(any(p in text.lower() for p in lowered) for text in texts), len(texts)


def zero_variance_groups(advantages, group_size: int) -> list[bool]:
    """Per whole group of ``advantages`` (this rank's rows): are all its advantages 0? True exactly when its
    rewards were all equal (or unscorable): TRL subtracts the group mean before any scaling."""
    grouped = advantages.view(-1, group_size)
    return (grouped == 0).all(dim=1).tolist()


class DistillGRPOTrainer(GRPOTrainer):
    """GRPOTrainer with optional dynamic sampling and the reflection-phrase rate per step."""

    def __init__(
        self, *args: Any, dynamic_sampling: bool = False, max_extra_draws: int = 4,
        reflection_phrases: list[str] | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.dynamic_sampling = dynamic_sampling
        self.max_extra_draws = max_extra_draws
        self.reflection_phrases = list(reflection_phrases or [])

    def _generate_and_score_completions(self, inputs):
        batch = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return batch
        if self.dynamic_sampling:
            batch = self._refill(inputs, batch)
        self._log_reflection(batch)
        return batch

    # --- dynamic sampling ------------------------------------------------------------------------------

    def _refill(self, inputs: list[dict[str, Any]], batch: dict[str, Any]) -> dict[str, Any]:
        size = self.num_generations
        groups = len(inputs) // size
        unmergeable = sorted(
            key for key, value in batch.items() if value is not None and key not in _MERGEABLE
        )
        if len(inputs) % size or unmergeable:
            raise ValueError(
                f"dynamic_sampling: this rank holds {len(inputs)} completions for groups of {size}"
                + (f" and batch fields {unmergeable} it cannot merge" if unmergeable else "")
            )
        draws = [batch]
        zero = zero_variance_groups(batch["advantages"], size)
        kept = [(0, g) for g, is_zero in enumerate(zero) if not is_zero]
        rounds = 0
        while rounds < self.max_extra_draws and self._anyone_short(groups - len(kept)):
            rounds += 1
            extra = super()._generate_and_score_completions(self._further_prompts(groups, rounds))
            draws.append(extra)
            fresh = [
                (rounds, g) for g, z in enumerate(zero_variance_groups(extra["advantages"], size)) if not z
            ]
            kept += fresh[: max(groups - len(kept), 0)]
        short = groups - len(kept)
        kept += [(0, g) for g, is_zero in enumerate(zero) if is_zero][:short]  # cap reached: zero groups stay
        self._log_counts(sum(zero), groups, rounds * groups, short)
        return merge_groups(draws, kept, size, self.accelerator, self._tokenizer.pad_token_id)

    def _anyone_short(self, short: int) -> bool:
        """Does any rank still miss groups? The same answer on every rank: the next draw is collective."""
        import torch

        missing = torch.tensor([max(short, 0)], device=self.accelerator.device)
        return bool(self.accelerator.gather(missing).max().item() > 0)

    def _further_prompts(self, groups: int, round_: int) -> list[dict[str, Any]]:
        """``groups`` prompts for this rank, each repeated num_generations times (the sampler's layout): a
        draw over the training set seeded by (seed, step, round), the same on every rank, split by rank."""
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        rng = random.Random(f"{self.args.seed}-{self.state.global_step}-{round_}")
        total = len(self.train_dataset)
        picked = [rng.randrange(total) for _ in range(groups * world)][rank * groups : (rank + 1) * groups]
        return [self.train_dataset[i] for i in picked for _ in range(self.num_generations)]

    def _log_counts(self, zero: int, groups: int, extra_prompts: int, short: int) -> None:
        import torch

        local = torch.tensor([zero, groups, extra_prompts, max(short, 0)], dtype=torch.float32)
        zero_all, groups_all, extra_all, short_all = (
            self.accelerator.gather(local.to(self.accelerator.device)).view(-1, 4).sum(dim=0).tolist()
        )
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/zero_variance_share"].append(zero_all / max(groups_all, 1))
        metrics["dynamic_sampling/extra_prompts"].append(extra_all)
        metrics["dynamic_sampling/short_groups"].append(short_all)

    # --- the "aha" curve ------------------------------------------------------------------------------

    def _log_reflection(self, batch: dict[str, Any]) -> None:
        import torch

        if not self.reflection_phrases:
            return
        texts = [
            self._tokenizer.decode(ids[mask.bool()], skip_special_tokens=True)
            for ids, mask in zip(batch["completion_ids"], batch["completion_mask"], strict=True)
        ]
        hits, count = reflection_rate(texts, self.reflection_phrases)
        local = torch.tensor([hits, count], dtype=torch.float32, device=self.accelerator.device)
        hits_all, count_all = self.accelerator.gather(local).view(-1, 2).sum(dim=0).tolist()
        self._metrics["train"]["aha/reflection_rate"].append(hits_all / max(count_all, 1))


def merge_groups(draws: list[dict[str, Any]], kept: list[tuple[int, int]], size: int, accelerator, pad: int):
    """One batch of the ``kept`` (draw, group) pairs, in that order: prompts left-padded, completions (and
    their per-token values) right-padded to the longest kept row; ``num_items_in_batch`` recounted over every
    rank's kept completion tokens."""
    import torch

    rows = [(d, g * size + i) for d, g in kept for i in range(size)]
    merged: dict[str, Any] = {}
    for key in draws[0]:
        if key == "num_items_in_batch" or draws[0][key] is None:
            continue
        values = [draws[d][key][r] for d, r in rows]
        if values[0].ndim == 0:
            merged[key] = torch.stack(values)
            continue
        width = max(v.shape[0] for v in values)
        fill = pad if key in ("prompt_ids", "completion_ids") else 0
        left = key in _PROMPT_KEYS
        merged[key] = torch.stack([_pad(v, width, fill, left) for v in values])
    merged["num_items_in_batch"] = accelerator.gather(merged["completion_mask"].sum()).sum()
    return merged


def _pad(row, width: int, fill, left: bool):
    import torch

    missing = width - row.shape[0]
    if missing <= 0:
        return row
    padding = torch.full((missing, *row.shape[1:]), fill, dtype=row.dtype, device=row.device)
    return torch.cat([padding, row] if left else [row, padding])
