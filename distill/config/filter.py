"""Recipe section `filter`: verification, filter steps, dedup and decontamination of traces."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from distill import benchmarks
from distill.config.base import Section, added, check_answer_fallback, runtime, sandbox_field
from distill.config.judge import FilterJudgeConfig


class BenchmarkSource(Section):
    """One benchmark set to decontaminate against: a registry name (distill/benchmarks.py: found as eval finds
    it), a local jsonl/json/parquet/csv file, or an owner/name `datasets` id."""

    source: str = Field(
        description="A benchmark name (math500, aime24, aime25, amc23, gsm8k, gpqa_diamond: the local copy "
        "under eval.data_dir, $DISTILL_BENCHMARKS or ../shared/benchmarks, else its Hub id), a file path, "
        "e.g. ../shared/benchmarks/math500/test.jsonl, or a Hub id (owner/name)."
    )
    name: str | None = Field(None, description="Label in the report (default: the benchmark name or source).")
    split: str = Field("test", description="Split, for `datasets` ids only.")
    config: str | None = Field(None, description="Dataset config name, for `datasets` ids only.")
    column: str | None = Field(None, description="Problem column (default: problem, question or prompt).")

    @model_validator(mode="after")
    def _name_takes_no_fields(self) -> BenchmarkSource:
        # A name reads its split and problem field from the registry; one given here would be ignored.
        given = sorted({"split", "config", "column"} & self.model_fields_set)
        if given and benchmarks.is_name(self.source) and not Path(self.source).is_file():
            raise ValueError(
                f"{self.source!r} is a benchmark name: its split and fields come from distill/benchmarks.py; "
                f"drop {', '.join(given)} or give a file path or an owner/name Hub id"
            )
        return self


class DecontaminationConfig(Section):
    """Drop traces whose problem copies a benchmark problem (word n-gram overlap, optional fuzzy pass)."""

    benchmarks: list[BenchmarkSource] = Field(
        default_factory=list,
        description="Benchmark sets (a name, a path, a Hub id, or a mapping); empty = off.",
    )
    ngram: int = Field(
        8, ge=3, description="Word n-gram length; one shared n-gram marks a copy (8: standard)."
    )
    fuzzy: bool = Field(False, description="Also catch light rewording with rapidfuzz (slower).")
    fuzzy_threshold: float = Field(
        90.0, gt=0, le=100, description="rapidfuzz ratio (0-100) counted as a copy."
    )

    @field_validator("benchmarks", mode="before")
    @classmethod
    def _bare_source(cls, value: Any) -> Any:
        # A plain string is shorthand for {source: ...}, so recipes can list files one per line.
        return (
            [{"source": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value
        )


class DedupConfig(Section):
    """Duplicate removal over the whole trace (problem + completion), so equal answers to different problems
    never collapse; near-duplicates must also share the reference answer."""

    exact: bool = Field(
        True, description="Drop repeats of the same problem + completion (whitespace/case aside)."
    )
    near: bool = Field(True, description="Drop MinHash-LSH near-duplicates (datasketch).")
    threshold: float = Field(
        0.85, gt=0, le=1, description="Estimated Jaccard similarity counted as near-duplicate."
    )
    ngram: int = Field(5, ge=1, description="Word-and-symbol shingle length for MinHash.")
    num_perm: int = Field(128, ge=16, description="MinHash permutations: more = more exact, slower.")


TraceFormat = Literal["auto", "generations", "messages", "conversations", "reasoning_columns", "custom"]
TRACE_FORMATS: tuple[str, ...] = get_args(TraceFormat)


class CodeFilterConfig(Section):
    """Traces of prompts that carry `tests` (code): the program of the answer runs against them in the sandbox
    (distill/verify/sandbox.py), through the same pool as GRPO's `code` reward and the humaneval task."""

    min_pass: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of a problem's tests a trace must pass to count as correct (1: all).",
    )
    timeout: float = Field(
        10.0, gt=0, description="Wall seconds per program run (all assert tests, or one stdin/stdout test)."
    )
    memory_mb: int = Field(1024, ge=64, description="Address-space limit of each program (RLIMIT_AS).")
    sandbox: Literal["auto", "local", "forkserver", "bwrap"] = sandbox_field()


class FilterConfig(Section):
    """Stage `filter`. Order: decontamination -> truncated -> length -> format -> language -> repetition ->
    correctness (no reference answer, incorrect) -> pass-rate band -> exact dup -> near dup -> keep-per-prompt; each counts its removals."""

    traces: str | None = Field(
        None,
        description="Filter these traces instead of the generate stage's shards: a jsonl/json/parquet/csv "
        "file, a `datasets` folder or a `datasets` Hub id (a published trace set).",
    )
    format: TraceFormat = Field(
        "auto",
        description="Shape of the `traces` rows: auto (detected from the columns, and printed), generations "
        "(a list of samples per problem, OpenR1-Math), messages ([{role, content}], Mixture-of-Thoughts), "
        "conversations ([{from, value}] + system, OpenThoughts/ShareGPT), reasoning_columns (problem, "
        "reasoning and answer in separate columns, s1K) or custom (one trace per row, renamed with `columns`).",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="For `traces`: our column (or a format's role: generations, verdicts, reasoning, final, "
        "system, solution, ...) -> the source's column, e.g. {problem: question, completion: response}.",
    )
    split: str = Field("train", description="Split of a `datasets` folder or Hub id in `traces`.")
    config: str | None = Field(None, description="Dataset config name, for a Hub id in `traces`.")
    revision: str | None = Field(
        None,
        description="Branch, tag or commit of a Hub id in `traces` (default main); the commit read is "
        "recorded in the report and the model card's lineage.",
    )
    limit: int | None = Field(
        None, ge=1, description="Read only the first N source rows (a Hub id is then streamed)."
    )
    answer_from: Literal["auto", "column", "solution", "none"] = Field(
        "auto",
        description="Reference answers of `traces`: column (filter.columns.answer, default `answer`), "
        "solution (the last \\boxed{} of a reference solution column), none (correctness off, with a "
        "warning), auto (the first of these the source has; format custom asks for an answer column "
        "unless it has a solution).",
    )
    reverify: bool = Field(
        True,
        description="Re-check a source's own per-sample verdicts (e.g. correctness_math_verify) with our "
        "verifier; false trusts them (verifying only samples without one).",
    )
    tokenizer: str | None = Field(
        None,
        description="Model reference whose tokenizer counts completion tokens for min/max_completion_tokens "
        "when the traces carry no completion_tokens (published sets), e.g. your student's model.",
    )
    workers: int = runtime(2, ge=0, description="Verification processes (0: in-process, no hard deadline).")
    batch_rows: int = runtime(
        4096,
        ge=1,
        description="Traces verified per batch: memory held at once, the unit of resume and chunks.",
    )
    verify_timeout: float = Field(
        10.0, gt=0, description="Hard seconds per answer; a stuck worker is killed."
    )
    correctness: bool = True
    keep_per_prompt: int | None = Field(None, ge=1, description="At most this many kept samples per prompt.")
    keep_policy: Literal["first", "shortest"] = "shortest"
    answer_fallback: str = Field(
        "none", description="No \\boxed{} answer: none | last_number | regex:<pattern> (group 1 if any)."
    )
    pass_rate_band: tuple[float, float] | None = Field(
        None, description="Keep prompts whose share of correct samples lies in [low, high], e.g. [0.1, 0.9]."
    )
    drop_truncated: bool = True
    min_completion_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    require_think_format: bool = Field(
        False,
        description="Keep only one well-formed <think>...</think> followed by an answer (reasoning teachers).",
    )
    language_consistency: bool = Field(False, description="Drop reasoning not in the prompt's language.")
    min_language_share: float = Field(
        0.8, ge=0, le=1, description="Share of reasoning letters in that language."
    )
    max_repetition: float | None = Field(
        0.5, gt=0, le=1, description="Drop completions whose repeated word n-grams exceed this share (loops)."
    )
    repetition_ngram: int = Field(10, ge=2)
    dedup: DedupConfig = DedupConfig()
    decontaminate: DecontaminationConfig = DecontaminationConfig()
    judge: FilterJudgeConfig | None = added(
        None, description="Ask the recipe's `judge` where the verifier cannot decide (equivalence, quality)."
    )
    code: CodeFilterConfig | None = added(
        None,
        description="Code traces (rows with `tests`): pass threshold and sandbox limits; unset: all tests must "
        "pass, default limits.",
    )

    @field_validator("answer_fallback")
    @classmethod
    def _known_fallback(cls, value: str) -> str:
        return check_answer_fallback(value)

    @model_validator(mode="after")
    def _readability_removes_through_correctness(self) -> FilterConfig:
        if self.judge is not None and self.judge.readability and not self.correctness:
            raise ValueError(
                "judge.readability drops unreadable traces through the correctness step: set correctness: true"
            )
        return self

    @field_validator("pass_rate_band")
    @classmethod
    def _band_in_order(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 <= value[0] <= value[1] <= 1:
            raise ValueError("expected [low, high] with 0 <= low <= high <= 1")
        return value
