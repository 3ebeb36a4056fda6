"""Which columns of a published trace set mean what: the presets (``filter.format``), each a set of roles
(problem, generations, messages, reasoning, ...) with the column names the public sets use for them, and
``resolve_layout``, which picks the preset (``auto``: the first whose columns are present), applies
``filter.columns`` and decides where reference answers come from (``filter.answer_from``). Reading the rows
themselves is teacher.filter.trace_formats."""

from __future__ import annotations

from dataclasses import dataclass, field

from distill.errors import DistillError
from distill.recipe import FilterConfig

# Role -> source columns tried in order (filter.columns.<role> names another). Shared by every preset.
_SHARED: dict[str, tuple[str, ...]] = {
    "id": ("uuid", "id", "problem_id"),
    "system": ("system",),
    "answer": ("answer",),
    "solution": ("solution", "ground_truth_solution", "reference_solution"),
    # code sets (teacher.filter.trace_formats.code_fields): tests decide correctness instead of an answer
    "tests": ("tests", "test_cases", "verification_info", "input_output"),
    "entry_point": ("entry_point", "fn_name"),
    "starter_code": ("starter_code",),
    "language": ("language",),
}
# Flat published shapes read as format custom with their columns renamed to ours (unless filter.columns
# maps them): NVIDIA OpenMathReasoning (problem, generated_solution, expected_answer).
IMPLIED_RENAMES = {
    "openmathreasoning": {"completion": "generated_solution", "answer": "expected_answer"},
}
PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "generations": {
        "problem": ("problem", "question"),
        "generations": ("generations",),
        "verdicts": ("correctness_math_verify",),
        "finish_reasons": ("finish_reasons",),
    },
    "conversations": {"conversations": ("conversations",)},
    "messages": {"messages": ("messages",)},
    "reasoning_columns": {
        "problem": ("question", "problem"),
        "reasoning": (
            "thinking_trajectories",
            "deepseek_thinking_trajectory",
            "deepseek_reasoning",
            "reasoning",
        ),
        "final": ("attempt", "deepseek_attempt", "deepseek_solution"),
    },
}
_REQUIRED = {
    "generations": ("problem", "generations"),
    "conversations": ("conversations",),
    "messages": ("messages",),
    "reasoning_columns": ("problem", "reasoning", "final"),
}


@dataclass(frozen=True)
class Layout:
    """How a source is read: the preset, the column read for each role, and what is left unread."""

    format: str
    detected: bool
    columns: dict[str, str]
    answers: str  # column | solution | none: where the reference answers come from
    unread: list[str] = field(default_factory=list)

    def describe(self) -> str:
        roles = ", ".join(f"{role}={column}" for role, column in self.columns.items()) or "as named"
        how = "detected" if self.detected else "filter.format"
        answers = {"column": f"column {self.columns.get('answer', 'answer')!r}", "none": "none"}.get(
            self.answers, f"last \\boxed{{}} of {self.columns.get('solution')!r}"
        )
        return f"format {self.format} ({how}): {roles}; reference answers: {answers}"


def resolve_layout(present: list[str], cfg: FilterConfig, where: str) -> Layout:
    """The layout for a source whose first row has the columns ``present``; one line when it cannot fit."""
    have = set(present)
    found = ", ".join(sorted(have)) or "none"
    absent = [theirs for theirs in cfg.columns.values() if theirs not in have]
    if absent:
        raise DistillError(
            f"{where}: filter.columns names column {absent[0]!r}, which the source lacks (found: {found})"
        )
    fmt, detected = (cfg.format, False) if cfg.format != "auto" else (_detect(have, cfg.columns), True)
    if fmt == "custom" and detected:
        cfg = _implied(have, cfg)
    if fmt == "custom":
        # Our own flat shape documents an answer column: without one, auto asks for it rather than
        # turning correctness off (a published chat set, by contrast, often has no answers at all).
        roles = _custom_roles(have, cfg)
        answer_from = "column" if cfg.answer_from == "auto" and "solution" not in roles else cfg.answer_from
        # (a missing answer column is named by the custom reader, together with any other missing column)
        answers = _answers(answer_from, roles, where if answer_from == "solution" else "")
        return Layout("custom", detected, dict(cfg.columns), answers)
    roles = {**PRESETS[fmt], **_SHARED}
    unknown = sorted(set(cfg.columns) - set(roles))
    if unknown:
        raise DistillError(
            f"{where}: filter.columns.{unknown[0]} is not read by format {fmt} (it reads {', '.join(roles)}); "
            "use format custom to rename our own trace columns"
        )
    chosen = {
        role: cfg.columns.get(role) or next((c for c in candidates if c in have), None)
        for role, candidates in roles.items()
    }
    chosen = {role: column for role, column in chosen.items() if column}
    for role in _REQUIRED[fmt]:
        if role not in chosen:
            raise DistillError(
                f"{where}: format {fmt} needs a {role} column ({' or '.join(roles[role])}; found: {found}); "
                f"name yours with filter.columns.{role}=<column>"
            )
    answers = _answers(cfg.answer_from, chosen, where)
    for role, needed in (("answer", "column"), ("solution", "solution")):
        if answers != needed:
            chosen.pop(role, None)
    return Layout(fmt, detected, chosen, answers, sorted(have - set(chosen.values())))


def _detect(have: set[str], mapped: dict[str, str]) -> str:
    """The first shape whose columns are present; our own (custom) when a completion column is."""
    if "completion" in have | set(mapped):
        return "custom"
    for fmt in ("generations", "conversations", "messages", "reasoning_columns"):
        roles = PRESETS[fmt]
        if all(role in mapped or any(c in have for c in roles[role]) for role in _REQUIRED[fmt]):
            return fmt
    return "custom"  # nothing fits: the custom reader names the missing columns


def _implied(have: set[str], cfg: FilterConfig) -> FilterConfig:
    """Add the renames of a known flat shape (IMPLIED_RENAMES) whose columns are all present."""
    for renames in IMPLIED_RENAMES.values():
        if "completion" not in have and set(renames.values()) <= have:
            columns = {**renames, **cfg.columns}
            return cfg.model_copy(update={"columns": columns})
    return cfg


def _custom_roles(have: set[str], cfg: FilterConfig) -> dict[str, str]:
    renamed = {theirs: ours for ours, theirs in cfg.columns.items()}
    names = {renamed.get(c, c) for c in have if c in renamed or c not in cfg.columns}
    return {role: role for role in ("answer", "solution") if role in names}


def _answers(answer_from: str, chosen: dict[str, str], where: str = "") -> str:
    if answer_from == "auto":
        return "column" if "answer" in chosen else "solution" if "solution" in chosen else "none"
    role = {"column": "answer", "solution": "solution"}.get(answer_from)
    if role and role not in chosen and where:
        raise DistillError(
            f"{where}: filter.answer_from {answer_from}: the source has no {role} column; name it with "
            f"filter.columns.{role}=<column>, or set filter.answer_from to another of auto, column, solution, none"
        )
    return answer_from
