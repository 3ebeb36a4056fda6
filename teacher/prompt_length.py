"""Prompts against the teacher's context: the one length check that preflight and the generate stage share.

A local teacher (transformers, vllm) can take ``context - teacher.sampling.max_tokens`` prompt tokens, where
the context is ``teacher.vllm.max_model_len`` (vllm backend, when set) or the model's
``max_position_embeddings``. Prompts are rendered with the chat template and tokenized the way the local
backends do. ``data.too_long`` says what happens to longer ones: ``drop`` (counted in the generate stage's
manifest metrics) or ``error``. The openai backend is not checked: the server's tokenizer is unknown here.

A prompt far over any budget (a pasted file, a 5 MB line) is judged on a prefix: when its first
``budget x 16`` characters alone are already more than the budget (plus a few tokens, because a cut can
split its last word differently), so is the whole prompt. No tokenizer ever chews on megabytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.models import model_context_length
from distill.recipe import DataConfig, TeacherConfig
from teacher.prompts import asked_problem, load_chat_template, render_messages

_PREFIX_CHARS_PER_TOKEN = 16
_CUT_MARGIN = 8
_BATCH = 512


@dataclass
class LengthCheck:
    budget: int
    context: int
    too_long: dict[str, int] = field(default_factory=dict)  # prompt id -> tokens
    chars: dict[str, int] = field(default_factory=dict)  # prompt id -> characters, for the message
    cut: set[str] = field(default_factory=set)  # ids judged on a prefix: their count is a lower bound

    def summary(self) -> str:
        return (
            f"over the teacher's budget of {self.budget} prompt tokens (context {self.context} "
            f"- teacher.sampling.max_tokens {self.context - self.budget})"
        )


def prompt_budget(teacher: TeacherConfig, config_path: Path | None) -> tuple[int, int] | None:
    """(prompt token budget, context) of a local teacher; None when unknown (openai, no config on disk)."""
    if teacher.backend == "openai":
        return None
    context = teacher.vllm.max_model_len if teacher.backend == "vllm" else None
    if context is None and config_path is not None:
        context = model_context_length(config_path)
    if context is None:
        return None
    budget = context - teacher.sampling.max_tokens
    if budget < 1:
        raise DistillError(
            f"teacher.sampling.max_tokens {teacher.sampling.max_tokens} leaves no room for a prompt in the "
            f"teacher's context of {context} tokens; lower it"
            + (" or raise teacher.vllm.max_model_len" if teacher.backend == "vllm" else "")
        )
    return budget, context


def check_lengths(
    prompts: list[dict[str, Any]],
    model_dir: str | Path,
    teacher: TeacherConfig,
    data: DataConfig,
    *,
    light: bool = False,
) -> LengthCheck | None:
    """Find the prompts over the teacher's budget; None when the budget is unknown. ``light``: load the
    tokenizer the quick way (preflight; see load_chat_tokenizer)."""
    found = prompt_budget(teacher, Path(model_dir) / "config.json")
    if found is None:
        return None
    from teacher.backends.base import load_chat_tokenizer

    template = load_chat_template(teacher.chat_template)
    tokenizer = load_chat_tokenizer(str(model_dir), template, light=light)
    check = LengthCheck(*found)
    cap = check.budget * _PREFIX_CHARS_PER_TOKEN
    texts = [asked_problem(p, data.prompt_template) for p in prompts]  # what the teacher will read
    cut = [text[:cap] for text in texts]
    for prompt, text, tokens, head in zip(
        prompts, texts, _token_counts(tokenizer, cut, data), cut, strict=True
    ):
        whole = len(head) == len(text)
        if not whole and tokens <= check.budget + _CUT_MARGIN:
            tokens = _token_counts(tokenizer, [text], data)[0]  # rare: > 16 characters a token
            whole = True
        if tokens > check.budget + (0 if whole else _CUT_MARGIN):
            check.too_long[prompt["id"]] = tokens
            check.chars[prompt["id"]] = len(text)
            if not whole:
                check.cut.add(prompt["id"])
    return check


def fit_prompts(
    prompts: list[dict[str, Any]], model_dir: str | Path, teacher: TeacherConfig, data: DataConfig, where: str
) -> tuple[list[dict[str, Any]], int]:
    """The generate stage's step: (the prompts the teacher can take, how many were dropped)."""
    if teacher.backend == "openai":
        return prompts, 0
    check = check_lengths(prompts, model_dir, teacher, data)
    kept = apply_policy(prompts, check, data.too_long, where)
    if check and len(kept) < len(prompts):
        print(
            f"[distill] generate: dropped {len(prompts) - len(kept)} of {len(prompts)} prompts "
            f"{check.summary()}; data.too_long: drop",
            flush=True,
        )
    return kept, len(prompts) - len(kept)


def apply_policy(
    prompts: list[dict[str, Any]], check: LengthCheck | None, policy: str, where: str
) -> list[dict[str, Any]]:
    """``data.too_long``: drop the over-long prompts, or raise naming the first one (also when all are)."""
    count = len(check.too_long) if check else 0
    if not count:
        return prompts
    if policy == "drop" and count < len(prompts):
        return [p for p in prompts if p["id"] not in check.too_long]
    first = next(iter(check.too_long))
    over = "over " if first in check.cut else ""
    fix = "shorten it or lower teacher.sampling.max_tokens"
    fix += "; or set data.too_long: drop" if policy == "error" else ""
    raise DistillError(
        f"{where}: {count} of {len(prompts)} prompts are {check.summary()}; the first, id {first!r}, has "
        f"{check.chars[first]:,} characters and {over}{check.too_long[first]:,} tokens; {fix}"
    )


def _token_counts(tokenizer: Any, problems: list[str], data: DataConfig) -> list[int]:
    counts: list[int] = []
    for start in range(0, len(problems), _BATCH):
        texts = [
            tokenizer.apply_chat_template(
                render_messages(problem, data.prompt_template, data.system_prompt),
                tokenize=False,
                add_generation_prompt=True,
            )
            for problem in problems[start : start + _BATCH]
        ]
        counts += [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    return counts
