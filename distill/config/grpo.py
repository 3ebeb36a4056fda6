"""Recipe section `grpo`: train the teacher with TRL's GRPOTrainer on verifiable rewards (R1-Zero style).

Its options are GRPOOptions (distill/config/grpo_options.py), the same a grpo student takes under
`students[].grpo`; this section adds the starting model and the launch.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from distill.config.grpo_options import (  # noqa: F401  (re-exported: the section's names live here too)
    LOSS_TYPES,
    REFLECTION_PHRASES,
    REWARD_NAMES,
    CodeRewardOptions,
    CosineOptions,
    GRPOOptions,
    GRPOStage,
    PassRateFilter,
    RepetitionOptions,
)
from distill.config.student import LaunchConfig, StudentConfig

GRPO_TEACHER = "grpo"  # teacher.model value meaning "the checkpoint the grpo stage trained"


class GRPOTeacherConfig(GRPOOptions):
    """Stage `grpo`. Prompts come from `data` (or `grpo.data`), rendered like the generate stage's."""

    model: str = Field(description="Starting model reference (folder, Hub id or built-in name).")
    launch: LaunchConfig = LaunchConfig()

    @model_validator(mode="after")
    def _whole_groups(self) -> GRPOTeacherConfig:
        self.check_groups(self.launch.world_size)
        return self

    def policy_shape(self, name: str = "grpo-teacher") -> StudentConfig:
        """The policy's training run in the students' terms, for `distill plan` (student/plan.py): one
        micro-batch holds batch_size sequences of prompt + completion tokens (the longest stage's)."""
        return StudentConfig(
            name=name,
            model=self.model,
            batch_size=self.batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            max_length=self.max_prompt_length + self.longest_completion(),
            bf16=self.bf16,
            gradient_checkpointing=self.gradient_checkpointing,
            launch=self.launch,
        )
