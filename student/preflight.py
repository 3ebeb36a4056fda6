"""The students' preflight (stage sft): each base model resolves, max_length fits its context, and the packages
the settings need are installed; for on_policy and kd, the teacher whose logits are used resolves to weights
and shares the student's tokenizer. student/spec.py calls it; each check raises a one-line DistillError."""

from __future__ import annotations

import importlib.util

from distill.config.student import DEEPSPEED_STRATEGIES, STUDENT_PREFIX
from distill.errors import DistillError
from distill.models import check_model, has_cuda, model_context_length
from distill.recipe import Recipe, StudentConfig
from distill.stages import PreflightReport


def check_students(students: list[StudentConfig], report: PreflightReport | None = None) -> None:
    for index, student in enumerate(students):
        check_student(f"students.{index}", student, report)


def check_student(where: str, student: StudentConfig, report: PreflightReport | None = None) -> None:
    """The base model resolves, max_length fits its context, and the packages the settings need exist."""
    config = check_model(f"{where}.model", student.model)
    context = model_context_length(config) if config else None
    if context and student.max_length > context and student.method != "grpo":  # grpo: its own lengths
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
    if student.method == "grpo":
        from distill.grpo.preflight import check_grpo

        check_grpo(
            student.grpo_options(), student.model, student.launch, report, f"{where}.grpo", f"{where}.model"
        )
    if student.method != "grpo":
        check_host_memory(where, student, report)
    if student.lora and student.lora.quantize_4bit and not has_cuda():
        raise DistillError(
            f"{where}.lora.quantize_4bit: 4-bit (QLoRA) loading needs a CUDA GPU and this machine has none; "
            "set it to false to train LoRA adapters in full precision"
        )


def check_host_memory(where: str, student: StudentConfig, report: PreflightReport | None = None) -> None:
    """A student that trains on the CPU (``cpu``, or ``single`` without CUDA) must fit in the RAM that is
    available now; the kernel would kill it mid-run otherwise (student/plan_host.py counts what it keeps)."""
    from student.plan_host import check_host_fits, packed, trains_on_host
    from student.shapes import model_shape

    if not trains_on_host(student):
        return
    try:
        shape, _ = model_shape(student.model)
    except DistillError:
        if report is not None:
            report.could_not_check(f"{where}: host memory for {student.model} (its shape is unknown here)")
        return
    problem = check_host_fits(student, shape)
    if problem and not packed(student):  # rows may be shorter: checked again once the set is tokenized
        if report is not None:
            report.could_not_check(
                f"{where}: host memory with rows shorter than max_length (at max_length: {problem})"
            )
    elif problem:
        raise DistillError(f"{where}: {problem}")


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


def check_teachers(recipe: Recipe, report: PreflightReport | None = None) -> None:
    """Each on_policy / kd student's teacher is local weights (or a model reference) with the student's
    tokenizer: checked before any stage starts, so a mismatch never costs a generate or SFT run."""
    for index, student in enumerate(recipe.students):
        if student.method in ("sft", "grpo"):  # grpo: no teacher, verifiable rewards
            continue
        where = f"students.{index}.distill_from"
        ref, stand_in = _teacher_model(recipe, student, where)
        teacher_config = check_model(where, stand_in)
        student_config = check_model(f"students.{index}.model", student.model)
        if teacher_config is None or student_config is None:
            if report is not None:
                report.could_not_check(f"{where}: the tokenizers of {ref} and {student.model} (not cached)")
            continue
        check_same_tokenizer(where, student.model, student_config.parent, ref, teacher_config.parent, report)


def _teacher_model(recipe: Recipe, student: StudentConfig, where: str) -> tuple[str, str]:
    """(the teacher as named, a model reference with its tokenizer and config to check now)."""
    ref = student.distill_from
    if ref is None:
        if recipe.teacher is None:
            raise DistillError(
                f"{where}: method {student.method} needs a teacher's weights and this recipe has no teacher "
                "section; set distill_from (a model reference, grpo or student:<name>)"
            )
        if recipe.teacher.backend == "openai" and not recipe.grpo_teacher():
            raise DistillError(
                f"{where}: the recipe's teacher {recipe.teacher.model} is served (backend openai), so its "
                "logits are out of reach; set distill_from to its weights (a folder or Hub id)"
            )
        ref = recipe.teacher.model
    if ref == "grpo":
        if recipe.grpo is None:
            raise DistillError(
                f"{where}: grpo names the GRPO-trained teacher and this recipe has no grpo section"
            )
        return ref, recipe.grpo.model  # the checkpoint GRPO starts from has the trained one's tokenizer
    if ref.startswith(STUDENT_PREFIX):
        other = next((s for s in recipe.students if s.name == ref[len(STUDENT_PREFIX) :]), None)
        if other is None or other is student:
            raise DistillError(f"{where}: {ref} is not another student of this recipe")
        return ref, other.model
    return ref, ref


def check_same_tokenizer(
    where: str, student_ref: str, student_dir, teacher_ref: str, teacher_dir, report: PreflightReport | None
) -> None:
    """Every token id the student can emit means the same token to the teacher, and the teacher's output
    table covers the student's. Embedding tables may be padded past the tokenizer differently (Qwen2.5 7B:
    152,064 rows, 1.5B: 151,936); those rows are no token, so the vocabularies are compared, not the sizes."""
    import json

    from transformers import AutoTokenizer

    try:
        student_vocab = AutoTokenizer.from_pretrained(str(student_dir)).get_vocab()
        teacher_vocab = AutoTokenizer.from_pretrained(str(teacher_dir)).get_vocab()
    except Exception as exc:  # a folder without tokenizer files (a cached config only)
        if report is not None:
            report.could_not_check(
                f"{where}: the tokenizers of {teacher_ref} and {student_ref} ({type(exc).__name__})"
            )
        return
    differ = [tok for tok, i in student_vocab.items() if teacher_vocab.get(tok) != i]
    if differ:
        token = sorted(differ, key=student_vocab.get)[0]
        raise DistillError(
            f"{where}: teacher {teacher_ref} and student {student_ref} do not share a tokenizer "
            f"({len(differ)} of the student's {len(student_vocab)} tokens differ, first {token!r}: id {student_vocab[token]} vs "
            f"{teacher_vocab.get(token)}); logit distillation needs one vocabulary - use method sft (text only) "
            "or a same-tokenizer teacher (cross-tokenizer distillation, TRL's GOLD, is not offered)"
        )
    rows = {}
    for name, folder in (("student", student_dir), ("teacher", teacher_dir)):
        config = json.loads((folder / "config.json").read_text())
        rows[name] = config.get("vocab_size") or config.get("text_config", {}).get("vocab_size")
    if rows["teacher"] and rows["student"] and rows["teacher"] < rows["student"]:
        raise DistillError(
            f"{where}: teacher {teacher_ref}'s embedding table has {rows['teacher']} rows, fewer than student "
            f"{student_ref}'s {rows['student']}; distil from a teacher whose table covers the student's"
        )
