"""Generation backends behind one small interface (see base.py)."""

from __future__ import annotations

from teacher.backends.base import Backend, GenerationRequest, GenerationResult, SamplingSpec

__all__ = ["Backend", "GenerationRequest", "GenerationResult", "SamplingSpec", "make_backend"]


def make_backend(name: str, model: str, **options) -> Backend:
    """Build the backend named in the recipe; heavy imports happen only for the one selected."""
    if name == "transformers":
        from teacher.backends.transformers_backend import TransformersBackend

        return TransformersBackend(model, **options)
    from distill.errors import DistillError

    raise DistillError(f"teacher.backend {name!r} is not available; choose one of: transformers")
