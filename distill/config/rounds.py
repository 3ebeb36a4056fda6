"""Recipe section `rounds`: later trace rounds, each sampled from a model the recipe itself makes.

The recipe's own `teacher` + `data` (+ `filter`) are the first round, as always. A round listed here names its
teacher by node (``grpo``: the GRPO-trained teacher; ``student:<name>``: a student's final weights) or by any
model reference, samples its prompts (the recipe's `data` unless it has its own), filters the traces (the
recipe's `filter` unless it has its own) and trains the students whose ``traces`` names it. R1's phases read
top to bottom: cold start -> reasoning RL -> rejection sampling (a round from the RL student) -> SFT on it ->
diverse RL.
"""

from __future__ import annotations

from pydantic import Field

from distill.config.base import Section
from distill.config.data import DataConfig
from distill.config.filter import FilterConfig
from distill.config.teacher import TeacherConfig

ROUND_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class RoundConfig(Section):
    """One later round of traces: generate from ``teacher`` on ``data``'s prompts, then filter."""

    name: str = Field(pattern=ROUND_NAME, description="The round's name: students pick it with `traces`.")
    teacher: TeacherConfig = Field(
        description="The round's sampler: every `teacher` option; `model` is grpo, student:<name> (a student "
        "of this recipe, which then runs first) or any model reference."
    )
    data: DataConfig | None = Field(None, description="Prompts for this round. Default: the recipe's `data`.")
    filter: FilterConfig | None = Field(
        None,
        description="How this round's traces are filtered (its own report). Default: the recipe's `filter`. "
        "`traces` is not allowed here: a round samples its own.",
    )
