"""The backend interface: a batch of requests in, one result per request out (any order)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


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


@dataclass(frozen=True)
class GenerationResult:
    prompt_id: str
    sample_idx: int
    completion: str
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int
    reasoning: str | None = None  # servers that return `reasoning_content` separately


class Backend(Protocol):
    name: str
    model_id: str

    def generate(self, requests: list[GenerationRequest], sampling: SamplingSpec) -> Iterator[GenerationResult]:
        """Yield one result per request; may yield in any order and in several batches."""
        ...

    def close(self) -> None: ...
