"""CPU fallback backend: `model.generate` on batches of prompts.

Length bucketing (on by default) sorts prompts by token length before batching, so a batch pads its
prompts to similar lengths; ``bucket_by_length=False`` keeps request order (naive fixed batching), which
the benchmark compares against.
"""

from __future__ import annotations

from collections.abc import Iterator

from teacher.backends.base import GenerationRequest, GenerationResult, SamplingSpec, load_chat_tokenizer

_DTYPES = ("float32", "bfloat16", "float16")  # anything else ("auto") loads float32, the CPU default


class TransformersBackend:
    name = "transformers"
    seed_scope = "batch"  # HF sampling draws a whole batch from one generator

    def __init__(
        self,
        model: str,
        batch_size: int = 32,
        dtype: str = "auto",
        bucket_by_length: bool = True,
        chat_template: str | None = None,
    ):
        import torch
        from transformers import AutoModelForCausalLM

        self.model_id = model
        self.batch_size = batch_size
        self.bucket_by_length = bucket_by_length
        self.tokenizer = load_chat_tokenizer(model, chat_template)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = getattr(torch, dtype) if dtype in _DTYPES else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).eval()

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingSpec
    ) -> Iterator[GenerationResult]:
        texts = [
            self.tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True)
            for r in requests
        ]
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        order = list(range(len(requests)))
        if self.bucket_by_length:
            order.sort(key=lambda i: lengths[i])
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            yield from self._generate_batch([requests[i] for i in batch], [texts[i] for i in batch], sampling)

    def _generate_batch(self, requests, texts, sampling: SamplingSpec) -> Iterator[GenerationResult]:
        import torch

        # One generator per batch: HF sampling cannot seed each row, so the batch takes its first row's seed.
        torch.manual_seed(requests[0].seed)
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        do_sample = sampling.temperature > 0
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                do_sample=do_sample,
                temperature=sampling.temperature if do_sample else None,
                top_p=sampling.top_p if do_sample else None,
                top_k=0 if do_sample else None,
                max_new_tokens=sampling.max_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = out[:, enc["input_ids"].shape[1] :]
        eos_ids = _eos_ids(self.model.generation_config, self.tokenizer)
        prompt_lengths = enc["attention_mask"].sum(dim=1).tolist()
        for row, request in enumerate(requests):
            ids = new_tokens[row].tolist()
            stop_at = next((i for i, t in enumerate(ids) if t in eos_ids), None)
            kept = ids if stop_at is None else ids[:stop_at]
            yield GenerationResult(
                prompt_id=request.prompt_id,
                sample_idx=request.sample_idx,
                completion=self.tokenizer.decode(kept, skip_special_tokens=True),
                finish_reason="length" if stop_at is None else "stop",
                prompt_tokens=int(prompt_lengths[row]),
                completion_tokens=len(kept),
            )

    def close(self) -> None:
        self.model = None


def _eos_ids(generation_config, tokenizer) -> set[int]:
    eos = generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    if tokenizer.pad_token_id is not None:
        ids.add(tokenizer.pad_token_id)
    return ids
