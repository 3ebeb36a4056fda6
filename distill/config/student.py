"""Recipe section `students`: each student's base model, training method and launch (strategy, nodes)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from distill.config.base import Section, added, runtime, tracker_list
from distill.config.grpo_options import GRPOOptions

LaunchStrategy = Literal["single", "cpu", "ddp", "zero2", "zero3", "zero3-offload", "fsdp2"]
LAUNCH_STRATEGIES: tuple[str, ...] = get_args(LaunchStrategy)
DEEPSPEED_STRATEGIES = ("zero2", "zero3", "zero3-offload")  # strategies that need the deepspeed package


class LaunchConfig(Section):
    """How a student's training is started. ``single``: in this process (the CPU default). Any other
    strategy runs ``accelerate launch`` with ``student/accelerate/<strategy>.yaml``."""

    strategy: LaunchStrategy = Field(
        "single",
        description="single | cpu (DDP over gloo, for tests) | ddp | zero2 | zero3 | zero3-offload | fsdp2.",
    )
    nproc: int = Field(1, ge=1, description="Processes (GPUs) per node.")
    nnodes: int = Field(1, ge=1, description="Nodes; >1 needs main_ip and one launch per node (see --slurm).")
    node_rank: int = runtime(0, ge=0, description="This node's rank (0 = the node that records the run).")
    main_ip: str = runtime("127.0.0.1", description="Address of node 0, reachable from every node.")
    main_port: int = runtime(
        29500,
        ge=1,
        le=65535,
        description="TCP port on node 0 for the rendezvous; a single-node job left at 29500 "
        "takes a free one the kernel picks (jobs started together must not share it).",
    )
    gpu_memory_gb: float = runtime(
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


StudentMethod = Literal["sft", "on_policy", "kd", "grpo"]
STUDENT_PREFIX = "student:"  # distill_from: student:<name> is another student's final weights


class OnPolicyConfig(Section):
    """`method: on_policy` (TRL DistillationTrainer): the student samples, the teacher scores every token of
    the student's completions, the loss is the generalised JSD between them. Defaults are TRL 1.16's
    ``DistillationConfig`` unless said otherwise."""

    beta: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Divergence: 0 forward KL, 0.5 JSD, 1 reverse KL. 1.0: TRL's default and the per-token "
        "reverse KL of Thinking Machines' On-Policy Distillation (2025) and Qwen3's on-policy stage.",
    )
    temperature: float = Field(
        1.0,
        gt=0,
        description="Sampling and loss temperature (TRL default 1.0: the student's own distribution).",
    )
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling (TRL default 1.0: none).")
    max_completion_length: int = Field(
        512, ge=1, description="Tokens the student samples per completion (TRL default 512)."
    )
    completions_per_prompt: int = Field(
        1,
        ge=1,
        description="Samples per prompt: each kept prompt repeated this many times (TRL samples one per row; "
        "Thinking Machines used 4 per prompt).",
    )
    prompts: Literal["traces", "data"] = added(
        "traces",
        description="traces: the kept traces' distinct prompts as they were asked (system prompt included); "
        "data: every prompt of the recipe's `data` section, rendered as generate renders it (also those no kept "
        "trace answered; a change to data reruns the student).",
    )
    use_vllm: bool = Field(
        False, description="Sample with vLLM (GPU; TRL default False: transformers generate)."
    )
    vllm_mode: Literal["colocate", "server"] = Field("colocate", description="TRL default colocate.")


class KDConfig(Section):
    """`method: kd`: token-level logit distillation on the kept traces (TRL GKDTrainer with lmbda 0: no
    student sampling, so the teacher's distribution is matched on the teacher's own completions)."""

    beta: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Divergence: 0 forward KL (the default here: classic KD, Hinton 2015; GKD's own default "
        "is 0.5 JSD), 1 reverse KL.",
    )
    temperature: float = Field(
        1.0, gt=0, description="Softmax temperature of both distributions in the loss (1.0: unscaled)."
    )


class StudentConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model: str
    method: StudentMethod = added(
        "sft",
        description="sft (the kept traces, TRL SFTTrainer) | on_policy (student samples, teacher scores every "
        "token: TRL DistillationTrainer) | kd (teacher's logits on the kept traces: TRL GKDTrainer, lmbda 0) | grpo "
        "(reinforced on verifiable rewards from `init` or `model`: the grpo stage's GRPO, options under `grpo`).",
    )
    distill_from: str | None = added(
        None,
        description="on_policy/kd: the model whose logits are matched. Default: the recipe's teacher (its GRPO "
        "checkpoint when teacher.model is grpo); grpo; student:<name> (another student's final weights); or any "
        "model reference. Must share the student's tokenizer.",
    )
    init: str | None = added(
        None,
        description="Start from this other student's final weights instead of `model` (e.g. sft, then "
        "on_policy); that student runs first and a change to it reruns this one.",
    )
    traces: str | None = added(
        None,
        description="Which trace round trains this student: the name of a `rounds` entry. Default: the "
        "recipe's own generate/filter (or filter.traces).",
    )
    on_policy: OnPolicyConfig = added(OnPolicyConfig())
    kd: KDConfig = added(KDConfig())
    grpo: GRPOOptions | None = added(
        None,
        description="method grpo: the grpo stage's options (rewards, groups, lengths, stages, dynamic sampling, "
        "learning rate, steps...); its prompts: grpo.data, else the recipe's data section.",
    )
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
    save_steps: int = runtime(
        200, ge=1, description="Checkpoint every N optimizer steps; a rerun resumes there."
    )
    save_total_limit: int = runtime(2, ge=1, description="Checkpoints kept (older ones deleted).")
    logging_steps: int = runtime(1, ge=1)
    report_to: list[str] = runtime(
        default_factory=lambda: ["tensorboard"],
        description="Trackers: tensorboard (default), wandb, trackio, or [] for none.",
    )
    launch: LaunchConfig = LaunchConfig()

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_tracker(cls, value: Any) -> Any:
        return tracker_list(value)

    @model_validator(mode="after")
    def _grpo_options_in_one_place(self) -> StudentConfig:
        if self.method != "grpo":
            if self.grpo is not None:
                raise ValueError(f"grpo options are for method grpo (this student's method is {self.method})")
            return self
        # A grpo student trains by its grpo options (GRPO's learning rate, steps...): the SFT ones would be
        # ignored silently, so setting them is refused.
        ignored = sorted(set(self.model_fields_set) & set(GRPOOptions.model_fields) - {"data"})
        if ignored:
            raise ValueError(
                f"method grpo takes {', '.join(ignored)} from its grpo options: move them under "
                f"students[{self.name}].grpo"
            )
        (self.grpo or GRPOOptions()).check_groups(self.launch.world_size)
        return self

    def grpo_options(self) -> GRPOOptions:
        """A grpo student's GRPO options (the defaults when it gives none)."""
        return self.grpo or GRPOOptions()
