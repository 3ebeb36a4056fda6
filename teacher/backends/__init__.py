"""Generation backends behind one small interface (see base.py)."""

from __future__ import annotations

from typing import Any

from distill.errors import DistillError
from teacher.backends.base import Backend, GenerationRequest, GenerationResult, SamplingSpec

__all__ = ["BACKENDS", "Backend", "GenerationRequest", "GenerationResult", "SamplingSpec", "make_backend"]

BACKENDS = ("transformers", "vllm", "openai")


def make_backend(name: str, model: str, **options: Any) -> Backend:
    """Build the backend named in the recipe; heavy imports happen only for the one selected."""
    if name == "transformers":
        from teacher.backends.transformers_backend import TransformersBackend

        return TransformersBackend(model, **options)
    if name == "vllm":
        from teacher.backends.vllm_parallel import make_vllm_backend

        return make_vllm_backend(model, **options)
    if name == "openai":
        from teacher.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(model, **options)
    raise DistillError(f"teacher.backend {name!r} is not available; choose one of: {', '.join(BACKENDS)}")
