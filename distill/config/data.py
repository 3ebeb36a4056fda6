"""Recipe section `data`: the prompts the teacher answers, and the sampling settings shared by engines."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from distill.config.base import Section


class Sampling(Section):
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(1024, ge=1, description="Completion token budget per sample.")
    seed: int = 0


class DataConfig(Section):
    source: str = Field(description="Prompts: a local jsonl/parquet/csv file or a `datasets` Hub id.")
    split: str = "train"
    id_column: str | None = "id"
    problem_column: str = "problem"
    answer_column: str = "answer"
    system_prompt: str | None = None
    prompt_template: str = Field(
        "{problem}",
        description="The user turn; {problem} is the prompt's text. With this default a code prompt (one with "
        "tests) also gets an instruction to answer in one fenced block (teacher.prompts.asked_problem).",
    )
    limit: int | None = Field(None, ge=1, description="Use only the first N prompts (smoke runs).")
    too_long: Literal["drop", "error"] = Field(
        "drop",
        description="Prompts longer than the teacher can take (its context minus sampling.max_tokens): "
        "drop (counted in the manifest) or error.",
    )

    @field_validator("prompt_template")
    @classmethod
    def _template_has_problem(cls, value: str) -> str:
        if "{problem}" not in value:
            raise ValueError("must contain the placeholder {problem}")
        return value
