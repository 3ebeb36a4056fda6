"""Recipe section `judge`: the LLM judge (distill/judge) the filter, GRPO and eval stages ask where no verifier
can decide; and `filter.judge`, the filter stage's use of it.

The judge is any OpenAI-compatible endpoint (or a fleet of them). Which endpoint, the key's variable name,
concurrency, retries and prices change no verdict, so they are runtime-only: changing them resumes a stage
instead of redoing it. The model, the templates (by content) and the sampling settings are in the fingerprint.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from distill.config.base import Section, added, check_key_env_name, runtime

JUDGE_USES = ("equivalence", "rubric", "pairwise", "readability")


class JudgePrices(Section):
    """US dollars per million tokens, for the cost estimate in the manifest and the reports."""

    input: float = Field(ge=0, description="Per million prompt tokens.")
    output: float = Field(ge=0, description="Per million completion tokens.")


class JudgeConfig(Section):
    model: str = Field(min_length=1, description="The served model name the judge requests name.")
    base_url: str | list[str] | None = runtime(
        None,
        description="OpenAI-compatible endpoint(s) ending in /v1; several serving the same model share the "
        "work (the teacher's fleet routing). Default: teacher.openai.base_url (the teacher's own server).",
    )
    api_key_env: str | None = runtime(
        None, description="NAME of the environment variable holding the key (never the key itself)."
    )
    temperature: float = Field(0.0, ge=0, description="0: the same question gets the same verdict.")
    max_tokens: int = Field(512, ge=16, description="Room for the judge's reasoning and its verdict line.")
    constrain: int | None = added(
        None,
        ge=0,
        le=64,
        description="vLLM servers only (hosted APIs reject the field): decode every reply under a regex of its "
        "template's format, at most this many lines of reasoning and then the verdict line (0: the verdict "
        "line alone), so a small local judge cannot miss the format; max_tokens must leave room for the lines. "
        "The verdict is still parsed strictly. Default: unconstrained.",
    )
    templates: dict[str, str] = Field(
        default_factory=dict,
        description="Replace a shipped template (distill/judge/templates/<use>.yaml): use -> your file, for "
        "uses equivalence, rubric, pairwise, readability. Its content enters the fingerprint.",
    )
    concurrency: int = runtime(8, ge=1, description="Requests in flight per endpoint.")
    max_retries: int = runtime(6, ge=0, description="Retries per call on 429/5xx/timeouts/disconnects.")
    retry_backoff: float = runtime(1.0, ge=0, description="Base seconds of the jittered backoff.")
    request_timeout: float = runtime(120.0, gt=0, description="Seconds per request before a retry.")
    price_per_million: JudgePrices | None = runtime(
        None, description="{input, output} dollars per million tokens: the estimated cost is reported."
    )

    @model_validator(mode="before")
    @classmethod
    def _key_env_is_a_name(cls, data: Any) -> Any:
        return check_key_env_name(data)

    @field_validator("templates")
    @classmethod
    def _known_uses(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(JUDGE_USES))
        if unknown:
            raise ValueError(f"unknown template use {', '.join(unknown)}; expected {', '.join(JUDGE_USES)}")
        return value

    def base_urls(self) -> list[str]:
        if self.base_url is None:
            return []
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)


class FilterJudgeConfig(Section):
    """`filter.judge`: ask the recipe's judge where the verifier cannot decide. Judged rows carry judge_*
    columns in verified.parquet; the report counts verdicts, agreement and cost."""

    equivalence: bool = Field(
        True,
        description="Traces the verifier gives no verdict (unparseable reference, no extractable answer, "
        "timeout): the judge says whether the final answer matches the reference.",
    )
    quality: bool = Field(
        False,
        description="Prompts without a reference answer: a rubric score (correctness, completeness, "
        "readability, language consistency), kept at min_score or above.",
    )
    min_score: int = Field(7, ge=1, le=10, description="Keep threshold of the 1-10 rubric score.")
    readability: bool = added(
        False,
        description="Every trace the verifier (or the judge) kept: a 1-10 readability score of its reasoning "
        "(language consistency, structure, a plainly stated answer; template `readability`), kept at "
        "min_readability or above: R1's cold-start filter, for any round.",
    )
    min_readability: int = added(6, ge=1, le=10, description="Keep threshold of the readability score.")
    agreement_sample: int = Field(
        0,
        ge=0,
        description="Also judge this many traces the verifier decided (their verdicts unchanged) and report "
        "the agreement and Cohen's kappa: how far this judge can be trusted where it decides alone.",
    )


class JudgedBenchmark(Section):
    """`eval.judged`: open-ended prompts on which each student is compared with a baseline by the judge,
    pairwise, each pair asked in both orders (position bias measured); win/tie/loss with 95% intervals and the
    length gap in comparison.md and the stage's metrics."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", description="Label in the comparison.")
    prompts: str = Field(
        description="A local jsonl/json/parquet/csv file or an owner/name `datasets` id with one prompt per row."
    )
    column: str | None = Field(
        None, description="Prompt column (default: prompt, instruction, problem, question)."
    )
    split: str = Field("test", description="Split, for a `datasets` id only.")
    baseline: str = Field(
        "base",
        description="What each student is compared with: base (its base model's row; needs eval.include_base), "
        "teacher, or the label of an eval.models row.",
    )
    limit: int | None = Field(None, ge=1, description="Use only the first N prompts.")
    max_tokens: int = Field(512, ge=1, description="Answer budget of both sides.")
