"""Typed recipe schema: one YAML per experiment, `key.sub=value` overrides, unknown keys rejected.

Every section is a pydantic model with ``extra="forbid"`` so a misspelled key fails loudly, and every
error is reported on one line naming the file, the field and what was expected.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from distill import config, recipe_files
from distill.config import (
    GRPO_TEACHER,
    DataConfig,
    EvalConfig,
    FilterConfig,
    GRPOTeacherConfig,
    JudgeConfig,
    ReleaseConfig,
    ReportConfig,
    Section,
    StudentConfig,
    TeacherConfig,
)
from distill.config.base import added
from distill.config.rounds import RoundConfig
from distill.config.student import STUDENT_PREFIX
from distill.errors import DistillError
from distill.records import check_readable_file, decode_text


class Recipe(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    run_dir: str | None = Field(None, description="Default: runs/<name>.")
    data: DataConfig | None = Field(None, description="Prompts for the teacher (absent: no generate stage).")
    teacher: TeacherConfig | None = None
    grpo: GRPOTeacherConfig | None = Field(
        None, description="Train the teacher with GRPO first; `teacher.model: grpo` then samples from it."
    )
    filter: FilterConfig = FilterConfig()
    students: list[StudentConfig] = Field(default_factory=list)
    eval: EvalConfig
    release: ReleaseConfig = ReleaseConfig()
    report: ReportConfig | None = added(None, description="Run report settings (prices for its cost table).")
    judge: JudgeConfig | None = added(
        None,
        description="The LLM judge (filter.judge, the grpo reward `judge`, eval.judged) over an endpoint.",
    )
    rounds: list[RoundConfig] = added(
        default_factory=list,
        description="Later trace rounds sampled from models this recipe makes (grpo, student:<name>); "
        "students pick one with `traces`.",
    )

    @model_validator(mode="after")
    def _stages_have_their_inputs(self) -> Recipe:
        if (self.teacher is None) != (self.data is None) and not self.filter.traces:
            raise ValueError("teacher and data go together: the teacher answers data's prompts")
        if self.teacher is not None and self.teacher.model == GRPO_TEACHER and self.grpo is None:
            raise ValueError("teacher.model grpo samples from the GRPO-trained teacher: add a grpo section")
        if self.grpo_teacher() and self.teacher.backend == "openai":
            raise ValueError("teacher.model grpo is local weights: use teacher.backend transformers or vllm")
        if self.grpo is not None and self.grpo.data is None and self.data is None:
            raise ValueError("grpo needs training prompts: a data section (or grpo.data)")
        trained_on_traces = [s for s in self.students if s.method != "grpo"]  # grpo: prompts + rewards
        if trained_on_traces and not (self.teacher or self.filter.traces):
            raise ValueError("students need traces: a teacher + data section, or filter.traces")
        self._rounds_name_their_nodes()
        if self.eval.backend == "served" and self.students:
            raise ValueError(
                "eval.backend served evaluates models behind a URL; students are local weights: use hf or vllm"
            )
        dataset_repo = self.release.dataset_name or f"{self.name}-traces"
        if self.release.push_dataset and dataset_repo in {s.name for s in self.students}:
            raise ValueError(
                f"student name {dataset_repo} is also the trace dataset's repo name: rename one (release.dataset_name)"
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

    def _rounds_name_their_nodes(self) -> None:
        names = [r.name for r in self.rounds]
        students = {s.name for s in self.students}
        for index, rnd in enumerate(self.rounds):
            where, ref = f"rounds.{index}", rnd.teacher.model
            if names.count(rnd.name) > 1:
                raise ValueError(f"{where}.name: {rnd.name!r} is used by two rounds; name each round once")
            if rnd.filter is not None and rnd.filter.traces:
                raise ValueError(f"{where}.filter.traces: a round filters the traces it samples; remove it")
            if rnd.data is None and self.data is None:
                raise ValueError(
                    f"{where}.data: the recipe has no `data` section; give the round its prompts"
                )
            if ref == GRPO_TEACHER and self.grpo is None:
                raise ValueError(
                    f"{where}.teacher.model: grpo samples from the GRPO teacher; add a grpo section"
                )
            node = ref.startswith(STUDENT_PREFIX) or ref == GRPO_TEACHER
            if ref.startswith(STUDENT_PREFIX) and ref[len(STUDENT_PREFIX) :] not in students:
                raise ValueError(
                    f"{where}.teacher.model: {ref!r} names no student of this recipe "
                    f"(students: {', '.join(sorted(students)) or 'none'})"
                )
            if node and rnd.teacher.backend == "openai":
                raise ValueError(
                    f"{where}.teacher.backend: {ref} is local weights; use backend transformers or vllm"
                )
        for index, student in enumerate(self.students):
            if student.traces is not None and student.traces not in names:
                raise ValueError(
                    f"students.{index}.traces: {student.traces!r} is not a round of this recipe "
                    f"(rounds: {', '.join(names) or 'none'})"
                )

    def has_generate(self) -> bool:
        return self.teacher is not None and not self.filter.traces

    def grpo_teacher(self) -> bool:
        """Does generate (and eval's teacher row) use the checkpoint the grpo stage trains?"""
        return self.teacher is not None and self.teacher.model == GRPO_TEACHER

    def has_filter(self) -> bool:
        return self.teacher is not None or bool(self.filter.traces)

    def run_path(self) -> Path:
        return Path(self.run_dir or f"runs/{self.name}")

    def section(self, name: str) -> dict[str, Any]:
        return self.model_dump(mode="json")[name]

    def digest(self) -> str:
        data = self.model_dump(mode="json")  # `added` sections left out while unset (distill/config/base.py)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load and validate a recipe file (or a built-in recipe's name), merged over its ``base:`` files
    (distill.recipe_files), then ``key.sub=value`` overrides applied (values parsed as YAML)."""
    path = recipe_files.find_recipe(path)
    data, files = recipe_files.read_with_bases(path, _read_yaml)
    for override in overrides:
        _apply_override(data, override, path)
    recipe_files.resolve_shipped_data(data, files)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise DistillError(f"{recipe_files.describe_chain(files)}: {_first_error(exc)}") from None


def _read_yaml(path: Path) -> Any:
    """The recipe file parsed, or one line saying why not: missing, a folder, a link loop, binary, not
    UTF-8, empty, or not YAML (with the line). A UTF-8 byte-order mark and CRLF line ends are fine."""
    if not path.exists() and not path.is_symlink():
        raise DistillError(f"{path}: recipe file not found{recipe_files.not_found_hint(path)}")
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


# The sections live in distill.config (one file each); `from distill.recipe import LoraConfig` keeps working.
__all__ = [*config.__all__, "Recipe", "load_recipe"]


def __getattr__(name: str):
    if name in config.__all__:
        return getattr(config, name)
    raise AttributeError(f"module 'distill.recipe' has no attribute {name!r}")
