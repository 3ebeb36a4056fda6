"""DAPO's dynamic sampling over TRL's GRPOTrainer (distill/grpo/sampling_trainer.py), on the tiny random model:
groups whose rewards are all equal are dropped, every optimizer step still gets a full batch of groups that
carry a gradient, and the counts are logged; plus the merge of rows of several draws and the "aha" rate."""

from __future__ import annotations

import zlib

import pytest

from distill.grpo.sampling_trainer import merge_groups, reflection_rate, zero_variance_groups

CONSTANT = {"0", "1", "2", "3"}  # prompts whose reward is the same for every completion: no gradient


def reward(completions, prompt_id, **_):
    """1.0 on the CONSTANT prompts whatever the answer; elsewhere a number that differs between texts."""
    return [1.0 if pid in CONSTANT else float(zlib.crc32(str(c).encode()) % 997) for c, pid in zip(completions, prompt_id, strict=True)]  # fmt: skip


def _trainer(tmp_path, tiny_model_dir, dynamic: bool):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from distill.grpo.sampling_trainer import DistillGRPOTrainer

    class Spy(DistillGRPOTrainer):
        """Records each batch the optimizer steps are cut from (after any refill)."""

        seen: list = []

        def _generate_and_score_completions(self, inputs):
            batch = super()._generate_and_score_completions(inputs)
            if self.model.training:
                self.seen.append((len(inputs), batch))
            return batch

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    rows = [
        {"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}], "prompt_id": str(i)}
        for i in range(8)
    ]
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=2,
        max_completion_length=6, max_steps=3, learning_rate=1e-3, use_cpu=True, report_to="none",
        logging_steps=1, save_strategy="no", seed=3, disable_tqdm=True,
    )  # fmt: skip
    trainer = Spy(
        dynamic_sampling=dynamic, max_extra_draws=6, reflection_phrases=["wait"],
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), reward_funcs=[reward], args=args,
        train_dataset=datasets.Dataset.from_list(rows), processing_class=tokenizer,
    )  # fmt: skip
    trainer.seen = []
    trainer.train()
    return trainer


def test_zero_variance_groups_are_dropped_and_every_step_gets_a_full_batch(tmp_path, tiny_model_dir):
    plain = _trainer(tmp_path / "plain", tiny_model_dir, dynamic=False)
    zero_plain = sum(sum(zero_variance_groups(b["advantages"], 2)) for _, b in plain.seen)
    assert zero_plain > 0  # without dynamic sampling the constant prompts' groups reach the optimizer

    trainer = _trainer(tmp_path / "dynamic", tiny_model_dir, dynamic=True)
    assert len(trainer.seen) == 3
    for size, batch in trainer.seen:  # full batch, every group with a gradient
        assert batch["completion_ids"].shape[0] == batch["advantages"].shape[0] == size == 4
        assert not any(zero_variance_groups(batch["advantages"], 2))
        assert batch["prompt_ids"].shape[0] == 4 and int(batch["num_items_in_batch"]) == int(
            batch["completion_mask"].sum()
        )
    steps = [e for e in trainer.state.log_history if "dynamic_sampling/zero_variance_share" in e]
    assert len(steps) == 3 and all("aha/reflection_rate" in e for e in steps)
    assert any(e["dynamic_sampling/zero_variance_share"] > 0 for e in steps)
    # every zero-variance group was replaced by the groups of further prompts (2 per extra draw here)
    for e in steps:
        dropped = e["dynamic_sampling/zero_variance_share"] * 2
        assert e["dynamic_sampling/short_groups"] == 0
        assert (e["dynamic_sampling/extra_prompts"] > 0) == (dropped > 0)


def test_merge_pads_prompts_left_and_completions_right():
    import torch

    class OneProcess:
        def gather(self, tensor):
            return tensor.reshape(1)

    def draw(prompt_len: int, completion_len: int, advantages: list[float]) -> dict:
        rows = len(advantages)
        return {
            "prompt_ids": torch.full((rows, prompt_len), 7),
            "prompt_mask": torch.ones(rows, prompt_len, dtype=torch.long),
            "completion_ids": torch.full((rows, completion_len), 9),
            "completion_mask": torch.ones(rows, completion_len, dtype=torch.long),
            "advantages": torch.tensor(advantages),
            "num_items_in_batch": torch.tensor(rows * completion_len),
            "old_per_token_logps": None,
        }

    first, second = draw(2, 3, [0.0, 0.0, 1.0, -1.0]), draw(4, 1, [0.5, -0.5, 0.0, 0.0])
    merged = merge_groups([first, second], [(0, 1), (1, 0)], 2, OneProcess(), pad=0)
    assert merged["prompt_ids"].tolist()[0] == [0, 0, 7, 7] and merged["prompt_mask"].tolist()[0] == [
        0,
        0,
        1,
        1,
    ]
    assert merged["completion_ids"].tolist()[2] == [9, 0, 0] and merged["completion_mask"].tolist()[2] == [
        1,
        0,
        0,
    ]
    assert merged["advantages"].tolist() == [1.0, -1.0, 0.5, -0.5] and "old_per_token_logps" not in merged
    assert int(merged["num_items_in_batch"]) == 3 + 3 + 1 + 1


@pytest.mark.parametrize(
    ("texts", "hits"),
    [(["Wait, 2+2 is 4", "so 4", "Let me check: 5"], 2), (["no reflection here"], 0)],
)
def test_reflection_rate_counts_completions_with_a_phrase(texts, hits):
    assert reflection_rate(texts, ["wait", "let me check"]) == (hits, len(texts))
