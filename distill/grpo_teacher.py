"""`teacher.model: grpo`: the teacher is the checkpoint the grpo stage trains in ``<run>/teacher/final``.

Before that stage has run, the starting model stands in for it (the preflight); once it has, the trained
checkpoint replaces the name (generate, eval), and the eval gains a row for the starting model.
"""

from __future__ import annotations

from pathlib import Path

from distill.recipe import EvalModel, Recipe


def with_trained_teacher(recipe: Recipe, run_root: Path) -> Recipe:
    """`teacher.model: grpo` made concrete: the grpo stage's final checkpoint; the eval also gets a row for
    the model GRPO started from, so the comparison shows start -> GRPO teacher -> students."""
    if not recipe.grpo_teacher():
        return recipe
    teacher = recipe.teacher.model_copy(update={"model": str((run_root / "teacher" / "final").absolute())})
    start = EvalModel(label=f"grpo start ({recipe.grpo.model})", model=recipe.grpo.model)
    listed = any(m.model == start.model for m in recipe.eval.models)
    rows = recipe.eval.models if listed else [start, *recipe.eval.models]
    evals = recipe.eval.model_copy(update={"models": rows})
    return recipe.model_copy(update={"teacher": teacher, "eval": evals})


def checkable(recipe: Recipe) -> Recipe:
    """For the preflight, before the grpo stage ran: its starting model has the trained teacher's
    architecture, tokenizer and context, so it stands in for `teacher.model: grpo`."""
    if not recipe.grpo_teacher():
        return recipe
    teacher = recipe.teacher.model_copy(update={"model": recipe.grpo.model})
    return recipe.model_copy(update={"teacher": teacher})
