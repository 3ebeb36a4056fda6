"""The students' preflight (stage sft): each base model resolves, max_length fits its context, and the packages
the settings need are installed. student/spec.py calls it; each check raises a one-line DistillError."""

from __future__ import annotations

import importlib.util

from distill.config.student import DEEPSPEED_STRATEGIES
from distill.errors import DistillError
from distill.models import check_model, has_cuda, model_context_length
from distill.recipe import StudentConfig
from distill.stages import PreflightReport


def check_students(students: list[StudentConfig], report: PreflightReport | None = None) -> None:
    for index, student in enumerate(students):
        check_student(f"students.{index}", student, report)


def check_student(where: str, student: StudentConfig, report: PreflightReport | None = None) -> None:
    """The base model resolves, max_length fits its context, and the packages the settings need exist."""
    config = check_model(f"{where}.model", student.model)
    context = model_context_length(config) if config else None
    if context and student.max_length > context:
        raise DistillError(
            f"{where}.max_length {student.max_length} exceeds the context of {student.model} "
            f"({context} tokens, max_position_embeddings in {config}); lower it"
        )
    if context is None and report is not None:
        why = "its config.json is not on disk yet" if config is None else "its config declares no context"
        report.could_not_check(f"{where}.max_length against the context of {student.model} ({why})")
    for setting, module, package in _needed_packages(student):
        if importlib.util.find_spec(module) is None:
            raise DistillError(f"{where}.{setting} needs the {package} package: pip install {package}")
    if student.lora and student.lora.quantize_4bit and not has_cuda():
        raise DistillError(
            f"{where}.lora.quantize_4bit: 4-bit (QLoRA) loading needs a CUDA GPU and this machine has none; "
            "set it to false to train LoRA adapters in full precision"
        )


def _needed_packages(student: StudentConfig) -> list[tuple[str, str, str]]:
    """(setting, module, pip package) for each optional package the student's settings need."""
    needed = []
    if student.lora is not None:
        needed.append(("lora", "peft", "peft"))
        if student.lora.quantize_4bit:
            needed.append(("lora.quantize_4bit", "bitsandbytes", "bitsandbytes"))
    if student.launch.strategy in DEEPSPEED_STRATEGIES:
        needed.append(("launch.strategy", "deepspeed", "deepspeed"))
    if student.liger:
        needed.append(("liger", "liger_kernel", "liger-kernel"))
    if student.attn_implementation == "flash_attention_2":
        needed.append(("attn_implementation", "flash_attn", "flash-attn"))
    return needed
