"""Preflight: what is cheap to check about a recipe, for the stages a command will run, before any work.

A mistake should cost one line and a second, not hours of generation followed by a failure in the eval
stage. So before a stage starts (and before the run dir is created), ``distill.pipeline.preflight`` checks:
the run dir can be written; every model reference resolves (teacher, students, the model the teacher is
evaluated with); students' settings fit their model and the optional packages they need are installed;
eval task names exist; the prompt source, a traces file and benchmark files load, row by row; prompts fit
the teacher's context (``data.too_long``).

Layering (imports go downward): this module holds the checks that need only the core -- run dir, model
references, students. Checks that need a stage package live in that package, next to the code they protect
(``teacher.preflight`` for prompts and filter inputs, ``eval.task_index`` for task names), and
``distill.pipeline`` -- the one core module besides the CLI that may import stage packages -- runs them all,
cheapest first. Every check raises a one-line DistillError; none writes anything.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from distill.errors import DistillError
from distill.models import check_model_ref, model_context_length
from distill.recipe import Recipe, StudentConfig
from distill.runs import Run

_DEEPSPEED_STRATEGIES = ("zero2", "zero3", "zero3-offload")


@dataclass
class PreflightReport:
    """What was checked, for ``distill validate`` to print."""

    stages: list[str]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def check_run_dir(path: Path) -> None:
    """The run dir exists as a folder we can write, or can be created; an existing manifest parses.
    Nothing is created here: a failed preflight leaves no trace."""
    if os.path.lexists(path) and not path.exists():
        raise DistillError(f"run_dir {path}: a broken symbolic link or a link loop; set run_dir elsewhere")
    if path.exists() and not path.is_dir():
        raise DistillError(f"run_dir {path}: is a file, not a folder; set run_dir elsewhere")
    if path.is_dir():
        Run(path, write=False)  # an unreadable manifest is one line here, not a traceback later
    probe = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not probe.is_dir():
        raise DistillError(f"run_dir {path}: {probe} is a file, so the run folder cannot be created there")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DistillError(f"run_dir {path}: {probe} is not writable; set run_dir to a folder you can write")


def check_model(where: str, ref: str) -> Path | None:
    """``check_model_ref`` with the recipe field in front of its message; returns the config.json if on disk."""
    try:
        return check_model_ref(ref)
    except DistillError as exc:
        raise DistillError(f"{where}: {exc}") from None


def check_teacher(recipe: Recipe) -> Path | None:
    """The teacher the generate stage will load (or the server it will call); its config.json if on disk."""
    teacher = recipe.teacher
    if teacher.backend == "openai":
        for url in teacher.openai.base_urls or [""]:
            if not url.startswith(("http://", "https://")):
                raise DistillError(
                    f"teacher.openai.base_url {url!r}: expected an http(s) URL such as "
                    "http://127.0.0.1:8000/v1"
                )
        return None
    return check_model("teacher.model", teacher.model)


def check_students(students: list[StudentConfig]) -> None:
    for index, student in enumerate(students):
        check_student(f"students.{index}", student)


def check_student(where: str, student: StudentConfig) -> None:
    """The base model resolves, max_length fits its context, and the packages the settings need exist."""
    config = check_model(f"{where}.model", student.model)
    context = model_context_length(config) if config else None
    if context and student.max_length > context:
        raise DistillError(
            f"{where}.max_length {student.max_length} exceeds the context of {student.model} "
            f"({context} tokens, max_position_embeddings in {config}); lower it"
        )
    for setting, module, package in _needed_packages(student):
        if importlib.util.find_spec(module) is None:
            raise DistillError(f"{where}.{setting} needs the {package} package: pip install {package}")
    if student.lora and student.lora.quantize_4bit and not _has_cuda():
        raise DistillError(
            f"{where}.lora.quantize_4bit: 4-bit (QLoRA) loading needs a CUDA GPU and this machine has none; "
            "set it to false to train LoRA adapters in full precision"
        )


def check_grpo(recipe: Recipe) -> None:
    """The grpo stage: its starting model resolves, prompt + completion fit its context, and the engine and
    launch strategy it asks for can run here."""
    cfg = recipe.grpo
    config = check_model("grpo.model", cfg.model)
    context = model_context_length(config) if config else None
    total = cfg.max_prompt_length + cfg.max_completion_length
    if context and total > context:
        raise DistillError(
            f"grpo.max_prompt_length + max_completion_length = {total} exceeds the context of {cfg.model} "
            f"({context} tokens); lower them"
        )
    if cfg.generation != "transformers":
        if importlib.util.find_spec("vllm") is None:
            raise DistillError(f"grpo.generation {cfg.generation} needs vLLM: pip install -e '.[vllm]'")
        if not _has_cuda():
            raise DistillError(
                f"grpo.generation {cfg.generation}: TRL's vLLM generation needs CUDA GPUs; use transformers on CPU"
            )
    if cfg.launch.strategy in _DEEPSPEED_STRATEGIES and importlib.util.find_spec("deepspeed") is None:
        raise DistillError("grpo.launch.strategy needs the deepspeed package: pip install deepspeed")


def _needed_packages(student: StudentConfig) -> list[tuple[str, str, str]]:
    """(setting, module, pip package) for each optional package the student's settings need."""
    needed = []
    if student.lora is not None:
        needed.append(("lora", "peft", "peft"))
        if student.lora.quantize_4bit:
            needed.append(("lora.quantize_4bit", "bitsandbytes", "bitsandbytes"))
    if student.launch.strategy in _DEEPSPEED_STRATEGIES:
        needed.append(("launch.strategy", "deepspeed", "deepspeed"))
    if student.liger:
        needed.append(("liger", "liger_kernel", "liger-kernel"))
    if student.attn_implementation == "flash_attention_2":
        needed.append(("attn_implementation", "flash_attn", "flash-attn"))
    return needed


def _has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()
