"""Typed recipe schema: one YAML per experiment, `key.sub=value` overrides, unknown keys rejected.

Every section is a pydantic model with ``extra="forbid"`` so a misspelled key fails loudly, and every
error is reported on one line naming the file, the field and what was expected.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from distill.errors import DistillError


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

    @field_validator("prompt_template")
    @classmethod
    def _template_has_problem(cls, value: str) -> str:
        if "{problem}" not in value:
            raise ValueError("must contain the placeholder {problem}")
        return value


class TeacherConfig(Section):
    model: str
    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    samples_per_prompt: int = Field(4, ge=1)
    sampling: Sampling = Sampling()
    batch_size: int = Field(32, ge=1)
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"
    shard_size: int = Field(256, ge=1, description="Trace rows per output shard; a crash loses at most one shard.")


class FilterConfig(Section):
    correctness: bool = True
    keep_per_prompt: int | None = Field(None, ge=1, description="At most this many kept samples per prompt.")
    keep_policy: Literal["first", "shortest"] = "shortest"
    answer_fallback: Literal["none", "last_number"] = "none"
    max_completion_tokens: int | None = Field(None, ge=1)
    drop_truncated: bool = True


class StudentConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model: str
    learning_rate: float = Field(2e-5, gt=0)
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=16)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    lr_scheduler: str = "cosine"
    bf16: bool = False
    seed: int = 0


class EvalConfig(Section):
    tasks: list[str] = Field(min_length=1)
    include_teacher: bool = True
    samples_per_problem: int = Field(4, ge=1, description="n samples per problem; pass@1 is their mean.")
    temperature: float = Field(0.6, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(1024, ge=1)
    batch_size: int = Field(16, ge=1)
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N problems of each task.")
    system_prompt: str | None = None
    seed: int = 0


class GateConfig(Section):
    task: str | None = Field(None, description="Task the gate looks at (default: the first eval task).")
    min_score: float = Field(0.0, ge=0, le=1)
    require_beats_teacher: bool = False


class ReleaseConfig(Section):
    repo_prefix: str | None = Field(None, description="Hub namespace for uploads, e.g. my-org.")
    private: bool = True
    license: str = "apache-2.0"
    gate: GateConfig = GateConfig()


class Recipe(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    run_dir: str | None = Field(None, description="Default: runs/<name>.")
    data: DataConfig
    teacher: TeacherConfig
    filter: FilterConfig = FilterConfig()
    students: list[StudentConfig] = Field(min_length=1)
    eval: EvalConfig
    release: ReleaseConfig = ReleaseConfig()

    def run_path(self) -> Path:
        return Path(self.run_dir or f"runs/{self.name}")

    def section(self, name: str) -> dict[str, Any]:
        return self.model_dump(mode="json")[name]

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load and validate a recipe file, applying ``key.sub=value`` overrides (values parsed as YAML)."""
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"{path}: recipe file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise DistillError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise DistillError(f"{path}: expected a mapping of sections (name, data, teacher, ...) at the top level")
    for override in overrides:
        _apply_override(data, override, path)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise DistillError(f"{path}: {_first_error(exc)}") from None


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
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "<top level>"
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown key '{field}' (check the spelling; `distill validate --help` lists the sections)"
    if kind == "missing":
        return f"missing required field '{field}'"
    got = err.get("input")
    got_text = "" if isinstance(got, dict | list) else f", got {got!r}"
    return f"field '{field}': {err['msg'].lower()}{got_text}"
