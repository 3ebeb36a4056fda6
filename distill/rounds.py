"""Trace rounds (recipe section `rounds`, distill/config/rounds.py): what a later round is, as the generate,
filter and sft stages and the preflight see it.

A round is the recipe's generate -> filter pair again, with its own teacher, prompts and filter: so each
stage runs a round through its ordinary code on a copy of the recipe whose `teacher`, `data` and `filter`
are the round's (``round_recipe``). Its nodes are ``generate:<round>`` and ``filter:<round>`` in
``rounds/<round>/``; a teacher that is a node of this recipe (``grpo``, ``student:<name>``) is their
upstream, so the pipeline orders them after it and a change to it reruns the round and what the round
trained. The recipe's own generate/filter keep their node names, folders and fingerprints.
"""

from __future__ import annotations

from pathlib import Path

from distill.config.grpo import GRPO_TEACHER
from distill.config.rounds import RoundConfig
from distill.config.student import STUDENT_PREFIX
from distill.recipe import Recipe, StudentConfig
from distill.training import FINAL


def round_named(recipe: Recipe, name: str) -> RoundConfig:
    return next(r for r in recipe.rounds if r.name == name)


def model_node(ref: str) -> str | None:
    """The node whose weights a model reference names (``grpo``, ``student:<name>``), else None."""
    if ref == GRPO_TEACHER:
        return "grpo"
    if ref.startswith(STUDENT_PREFIX):
        return f"sft:{ref[len(STUDENT_PREFIX) :]}"
    return None


def node_weights(ref: str, run_root: Path) -> str:
    """A model reference with a node of this run made concrete: that node's final weights (absolute)."""
    if ref == GRPO_TEACHER:
        return str((run_root / "teacher" / FINAL).absolute())
    if ref.startswith(STUDENT_PREFIX):
        return str((run_root / "students" / ref[len(STUDENT_PREFIX) :] / FINAL).absolute())
    return ref


def starting_model(recipe: Recipe, ref: str) -> str:
    """For the preflight, before the node has run: the model it starts from has its architecture, tokenizer
    and context (grpo: grpo.model; a student: its `model`, through `init` chains)."""
    if ref == GRPO_TEACHER:
        return recipe.grpo.model
    if not ref.startswith(STUDENT_PREFIX):
        return ref
    by_name = {s.name: s for s in recipe.students}
    student, seen = by_name[ref[len(STUDENT_PREFIX) :]], set()
    while student.init and student.init not in seen:  # circles are the recipe validator's error
        seen.add(student.name)
        student = by_name[student.init]
    return student.model


def round_recipe(recipe: Recipe, rnd: RoundConfig, run_root: Path | None = None) -> Recipe:
    """``recipe`` with the round's teacher, prompts and filter in place of its own. With ``run_root``, a
    teacher that is a node of the run is its final weights; without (the preflight), its starting model."""
    ref = rnd.teacher.model
    model = node_weights(ref, run_root) if run_root is not None else starting_model(recipe, ref)
    teacher = rnd.teacher.model_copy(update={"model": model})
    filter_cfg = rnd.filter or recipe.filter.model_copy(update={"traces": None})
    return recipe.model_copy(
        update={"teacher": teacher, "data": rnd.data or recipe.data, "filter": filter_cfg, "rounds": []}
    )


def traces_node(student: StudentConfig) -> str:
    """The filter node whose kept traces train ``student``."""
    return f"filter:{student.traces}" if student.traces else "filter"


def traces_folder(student: StudentConfig) -> str:
    """That node's folder in the run dir."""
    return f"rounds/{student.traces}/filter" if student.traces else "filter"
