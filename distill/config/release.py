"""Recipe section `release`: the release gate and where (and whether) students are pushed to the Hub."""

from __future__ import annotations

from pydantic import Field, field_validator

from distill.config.base import Section


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
