"""The GRPO options one GRPO mechanism (distill/grpo) reads: the `grpo` stage's section (distill/config/grpo.py)
and a grpo student's `students[].grpo` are both this model, so the two are never typed twice.

Defaults follow what R1-Zero reproductions use (DAPO token-level loss, no KL term, group-normalised
rewards) but are sized to run on a CPU; the real-scale recipes (recipes/grpo-r1zero-qwen2.5-math-7b.yaml,
recipes/r1-deepscaler-1.5b.yaml) say which values they change and why.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from distill.config.base import Section, added, check_answer_fallback, runtime, sandbox_field, tracker_list
from distill.config.data import DataConfig

REWARD_NAMES = ("accuracy", "format", "cosine", "repetition", "code", "judge", "language")
LossType = Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo"]
LOSS_TYPES: tuple[str, ...] = get_args(LossType)


class CosineOptions(Section):
    """Length-aware correctness reward: short correct answers earn most, short wrong ones lose most."""

    max_len: int | None = Field(
        None, ge=1, description="Length (tokens) where the cosine ends; default max_completion_length."
    )
    min_value_wrong: float = Field(-1.0, description="Reward of a wrong answer of length 0.")
    max_value_wrong: float = Field(-0.5, description="Reward of a wrong answer of max_len tokens.")
    min_value_correct: float = Field(0.5, description="Reward of a correct answer of max_len tokens.")
    max_value_correct: float = Field(1.0, description="Reward of a correct answer of length 0.")


class RepetitionOptions(Section):
    """Penalty for repeated word n-grams (looping completions)."""

    ngram: int = Field(3, ge=1, description="Word n-gram length.")
    max_penalty: float = Field(-1.0, le=0, description="Reward when every n-gram repeats.")


class CodeRewardOptions(Section):
    """Reward `code`: the program of the answer runs against the prompt's `tests` in the sandbox."""

    all_or_nothing: bool = Field(
        False, description="1.0 only when every test passes; default: the share of tests passed."
    )
    timeout: float = Field(
        10.0, gt=0, description="Wall seconds per program run (all assert tests, or one stdin/stdout test)."
    )
    memory_mb: int = Field(1024, ge=64, description="Address-space limit of each program (RLIMIT_AS).")
    sandbox: Literal["auto", "local", "forkserver", "bwrap"] = sandbox_field()


class PassRateFilter(Section):
    """Keep only prompts the starting model solves sometimes: all-right or all-wrong groups give GRPO no
    signal (every advantage is 0). Measured first with a few samples per prompt."""

    band: tuple[float, float] = Field(
        description="[low, high] share of correct samples to keep, e.g. [0.1, 0.9]."
    )
    samples: int = Field(4, ge=1, description="Samples per prompt for the measurement.")
    batch_size: int = Field(32, ge=1, description="Sequences per generate() call (transformers).")

    @field_validator("band")
    @classmethod
    def _band_in_order(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] <= value[1] <= 1:
            raise ValueError("expected [low, high] with 0 <= low <= high <= 1")
        return value


# R1's "aha moment" words (DeepSeek-R1 paper, Table 3: "Wait, wait. Wait. That's an aha moment") and the
# re-checking phrases R1-Zero reproductions count (SimpleRL-Zoo, Open-Reasoner-Zero).
REFLECTION_PHRASES = (
    "wait",
    "let me check",
    "let me verify",
    "re-examine",
    "recheck",
    "double-check",
    "let's check",
    "alternatively",
    "however, ",
)


class GRPOStage(Section):
    """One context stage (DeepScaleR: 8k -> 16k -> 24k): the policy continues from the previous stage's weights
    with a longer completion budget, optionally on a prompt pool re-filtered by the current policy."""

    name: str | None = Field(None, description="Label in messages and the manifest (default: stage<N>).")
    max_completion_length: int = Field(ge=1, description="Completion budget (tokens) in this stage.")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps of this stage.")
    epochs: float | None = Field(
        None, gt=0, description="Epochs over the stage's prompts (when no max_steps)."
    )
    pass_rate_filter: PassRateFilter | None = Field(
        None,
        description="Before the stage: keep only prompts the CURRENT policy solves inside the band "
        "(Skywork-OR1 drops prompts it always or never solves).",
    )

    @model_validator(mode="after")
    def _has_length(self) -> GRPOStage:
        if self.max_steps is None and self.epochs is None:
            raise ValueError("give max_steps or epochs for each stage")
        return self


class GRPOOptions(Section):
    """GRPO over TRL's GRPOTrainer. Prompts come from `data` (default: the recipe's data section), rendered
    like the generate stage's."""

    data: DataConfig | None = Field(None, description="Training prompts; default: the recipe's data section.")
    rewards: list[str] = Field(
        default_factory=lambda: ["accuracy", "format"],
        description="Reward functions (distill/grpo/rewards.py): accuracy, format, cosine, repetition, code "
        "(share of the prompt's tests passed), judge (the recipe's judge's rubric score, 0-1), language (share "
        "of the reasoning in the prompt's language, R1).",
    )
    reward_weights: list[float] | None = Field(
        None, description="One weight per reward, in the same order (default: all 1.0)."
    )
    answer_fallback: str = Field(
        "none", description="Verifier answer rule when there is no \\boxed{}: none | last_number | regex:<p>."
    )
    verify_workers: int = runtime(
        1, ge=1, description="Verification processes (each answer has a hard deadline)."
    )
    verify_timeout: float = Field(5.0, gt=0, description="Seconds per answer before it scores 0 (timeout).")
    cosine: CosineOptions = CosineOptions()
    repetition: RepetitionOptions = RepetitionOptions()
    code: CodeRewardOptions | None = added(
        None, description="Options of the `code` reward (unset: share of tests passed, default limits)."
    )
    num_generations: int = Field(8, description="Group size: completions per prompt (>= 2).")
    batch_size: int = Field(8, ge=1, description="Completions per device per micro-batch.")
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(1e-6, gt=0)
    lr_scheduler: str = "constant"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    beta: float = Field(
        0.0, ge=0, description="KL coefficient against the starting model (0: no reference model)."
    )
    epsilon: float = Field(0.2, gt=0, description="Lower clipping range of the policy ratio.")
    epsilon_high: float | None = Field(
        None, gt=0, description="Upper clipping range (DAPO clip-higher: 0.28)."
    )
    loss_type: LossType = Field("dapo", description="TRL loss: grpo, dr_grpo, dapo, bnpo, cispo, sapo.")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="Divide advantages by the group's (or batch's) std; none as in Dr. GRPO."
    )
    num_iterations: int = Field(1, ge=1, description="Optimisation passes per generated batch (mu).")
    mask_truncated_completions: bool = Field(
        False, description="Leave truncated completions out of the loss."
    )
    max_prompt_length: int = Field(
        512, ge=8, description="Longer prompts are dropped (counted in the manifest)."
    )
    max_completion_length: int = Field(256, ge=1)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    generation: Literal["transformers", "vllm-colocate", "vllm-server"] = Field(
        "transformers",
        description="transformers (CPU); vllm-colocate (vLLM inside the training processes, GPU); vllm-server "
        "(`trl vllm-serve --model M` on other GPUs).",
    )
    vllm_server_host: str = "127.0.0.1"
    vllm_server_port: int = Field(8000, ge=1, le=65535)
    vllm_gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1, description="vllm-colocate: GPU share for vLLM."
    )
    pass_rate_filter: PassRateFilter | None = Field(
        None, description="Pre-filter prompts to a pass-rate band."
    )
    bf16: bool = False
    gradient_checkpointing: bool | None = Field(None, description="Default: on with CUDA, off on CPU.")
    seed: int = 0
    save_steps: int = runtime(50, ge=1, description="Checkpoint every N steps; a rerun resumes there.")
    save_total_limit: int = runtime(2, ge=1)
    logging_steps: int = runtime(1, ge=1)
    report_to: list[str] = runtime(
        default_factory=lambda: ["tensorboard"], description="tensorboard, wandb, ..."
    )
    dynamic_sampling: bool = added(
        False,
        description="DAPO dynamic sampling: groups whose rewards are all equal (no gradient) are dropped and the "
        "batch is refilled with groups of further prompts (needs batch_size x gradient_accumulation_steps a "
        "multiple of num_generations).",
    )
    max_extra_draws: int = added(
        4,
        ge=0,
        description="dynamic_sampling: extra generation rounds per step at most; short after that, the "
        "batch keeps some zero-variance groups (counted).",
    )
    stages: list[GRPOStage] | None = added(
        None,
        description="Context stages in order (each its max_completion_length, steps or epochs, optional pass-rate "
        "re-filter by the current policy); replaces max_completion_length/max_steps/epochs.",
    )
    reflection_phrases: list[str] = added(
        default_factory=lambda: list(REFLECTION_PHRASES),
        description="Phrases counted per step for the 'aha' curve (share of completions with one, lowercase "
        "match); the mean response length is logged beside it.",
    )

    @field_validator("rewards")
    @classmethod
    def _known_rewards(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"give at least one reward: {', '.join(REWARD_NAMES)}")
        for name in value:
            if name not in REWARD_NAMES:
                close = difflib.get_close_matches(name, REWARD_NAMES, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ValueError(f"unknown reward '{name}' ({hint}known: {', '.join(REWARD_NAMES)})")
        if len(set(value)) != len(value):
            raise ValueError("each reward may appear once")
        return value

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_tracker(cls, value: Any) -> Any:
        return tracker_list(value)

    @field_validator("answer_fallback")
    @classmethod
    def _known_fallback(cls, value: str) -> str:
        return check_answer_fallback(value)

    @model_validator(mode="after")
    def _groups_fit(self) -> GRPOOptions:
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(
                f"reward_weights has {len(self.reward_weights)} values for {len(self.rewards)} rewards "
                f"({', '.join(self.rewards)}); give one weight per reward, in the same order"
            )
        if self.num_generations < 2:
            raise ValueError(
                f"num_generations {self.num_generations}: the group size must be >= 2 (GRPO's advantage compares "
                "completions of the same prompt)"
            )
        self._stages_in_order()
        return self

    def _stages_in_order(self) -> None:
        stages = self.stages or []
        if stages and self.max_steps is not None:
            raise ValueError("stages set their own max_steps; remove the top-level max_steps")
        for before, stage in zip(stages, stages[1:], strict=False):
            if stage.max_completion_length < before.max_completion_length:
                raise ValueError(
                    f"stages out of order: {stage_label(stages, stage)} max_completion_length "
                    f"{stage.max_completion_length} < {before.max_completion_length} of the stage before it; "
                    "list them shortest first (context lengthening)"
                )
        names = [stage_label(stages, stage) for stage in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names repeat ({', '.join(names)}); give each stage its own name")

    def check_groups(self, world_size: int) -> None:
        """Whole groups per step over every process (and per process, for dynamic sampling's refill)."""
        per_device = self.batch_size * self.gradient_accumulation_steps
        per_step = per_device * world_size
        if per_step % self.num_generations:
            raise ValueError(
                f"batch_size x gradient_accumulation_steps x processes = {per_step} completions per step is not "
                f"divisible by num_generations {self.num_generations}; make it a multiple (whole groups only)"
            )
        if self.dynamic_sampling and per_device % self.num_generations:
            raise ValueError(
                f"dynamic_sampling refills whole groups in each process: batch_size x gradient_accumulation_steps "
                f"= {per_device} must be a multiple of num_generations {self.num_generations}"
            )

    def longest_completion(self) -> int:
        """The completion budget of the longest stage (the whole run without stages): what memory plans use."""
        return max([s.max_completion_length for s in self.stages or []] or [self.max_completion_length])

    def reward_options(self) -> dict[str, dict[str, Any]]:
        """Keyword options of each reward function (distill.grpo.rewards.build_reward_funcs)."""
        verify = {
            "fallback": self.answer_fallback,
            "workers": self.verify_workers,
            "timeout": self.verify_timeout,
        }
        cosine = self.cosine.model_dump()
        cosine["max_len"] = cosine["max_len"] or self.max_completion_length
        return {
            "accuracy": verify,
            "cosine": {**cosine, **verify},
            "repetition": self.repetition.model_dump(),
            "code": {**(self.code or CodeRewardOptions()).model_dump(), "workers": self.verify_workers},
        }


def stage_label(stages: list[GRPOStage], stage: GRPOStage) -> str:
    return stage.name or f"stage{stages.index(stage) + 1}"
