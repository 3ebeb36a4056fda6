"""Stage `sft` as the pipeline sees it: one node per student, with fingerprint, run and preflight (see
distill.stages), and the follower nodes of a multi-node run."""

from __future__ import annotations

from pathlib import Path

from distill.config.base import runtime_free
from distill.config.grpo import GRPO_TEACHER
from distill.config.student import STUDENT_PREFIX
from distill.errors import DistillError
from distill.recipe import Recipe, StudentConfig
from distill.rounds import traces_folder, traces_node
from distill.runs import Run, fingerprint, source_digest
from distill.stages import PreflightReport, Stage, StageResult, StageSpec


def plan(recipe: Recipe) -> list[StageSpec]:
    # runtime_free: a node's rank and address, checkpoint/log cadence and trackers are left out, so every node
    # of a multi-node run computes the same partial folder and changing them resumes instead of retraining.
    return [
        StageSpec(
            f"sft:{s.name}",
            f"students/{s.name}",
            student_config(recipe, s),
            upstream(recipe, s),
            _runner(s.name),
        )
        for s in in_order(recipe.students)
    ]


def student_config(recipe: Recipe, student: StudentConfig) -> dict:
    """The fingerprint config of one student: its runtime-free section (method fields at their defaults are
    ``added`` ones, left out) without the options of the methods it does not use, plus the teacher it
    distils from."""
    config = runtime_free(student)
    no_teacher = {"distill_from"} if student.method in ("sft", "grpo") else set()
    for key in ({"on_policy", "kd"} - {student.method}) | no_teacher:
        config.pop(key, None)
    if student.method == "grpo":
        return {**config, **grpo_inputs(recipe, student)}
    if student.method != "sft":
        config["teacher_model"] = teacher_reference(recipe, student)
    if _prompts_from_data(student):  # what it samples: the data section and its file's content
        if recipe.data is None:
            raise DistillError(
                f"students.{student.name}.on_policy.prompts: data, but the recipe has no `data` section; add "
                "one or use prompts: traces (the kept traces' prompts)"
            )
        config["data"] = {**recipe.section("data"), "source_digest": source_digest(recipe.data.source)}
    return config


def grpo_inputs(recipe: Recipe, student: StudentConfig) -> dict:
    """What a grpo student's training reads besides its section: its prompts (the data section and its file's
    content) and, for the judge reward, the judge."""
    from student.grpo import prompt_source

    data = prompt_source(recipe, student)
    inputs = {"data": data.model_dump(mode="json"), "source_digest": source_digest(data.source)}
    if "judge" in student.grpo_options().rewards:
        from distill.judge import judge_fingerprint

        inputs["judge"] = judge_fingerprint(recipe.judge, ("rubric",))
    return inputs


def _prompts_from_data(student: StudentConfig) -> bool:
    return student.method == "on_policy" and student.on_policy.prompts == "data"


def teacher_reference(recipe: Recipe, student: StudentConfig) -> str:
    """What `distill_from` resolves to, as written: grpo, student:<name>, or a model reference."""
    if student.distill_from is not None:
        return student.distill_from
    if recipe.teacher is None:
        raise DistillError(
            f"students.{student.name}.distill_from: method {student.method} needs a teacher's weights and this "
            "recipe has no teacher section; name one (a model reference, grpo or student:<name>)"
        )
    return recipe.teacher.model


def upstream(recipe: Recipe, student: StudentConfig) -> list[str]:
    """The filter node of its traces (the recipe's own, or a round's), plus the students (and the grpo
    teacher) whose final weights it reads. A grpo student reads no traces: only the student it starts from."""
    if student.method == "grpo":
        return [f"sft:{student.init}"] if student.init else []
    nodes = [traces_node(student)]
    if student.init:
        nodes.append(f"sft:{student.init}")
    if student.method != "sft":
        ref = teacher_reference(recipe, student)
        if ref == GRPO_TEACHER:
            nodes.append("grpo")
        elif ref.startswith(STUDENT_PREFIX):
            nodes.append(f"sft:{ref[len(STUDENT_PREFIX) :]}")
    return list(dict.fromkeys(nodes))


def _reads_from(student: StudentConfig) -> list[str]:
    names = [student.init] if student.init else []
    if student.distill_from and student.distill_from.startswith(STUDENT_PREFIX):
        names.append(student.distill_from[len(STUDENT_PREFIX) :])
    return names


def in_order(students: list[StudentConfig]) -> list[StudentConfig]:
    """The students in recipe order, moved so that each comes after the students it reads from (init,
    distill_from student:<name>); an unknown name or a circle is a one-line error."""
    by_name = {s.name: s for s in students}
    for index, s in enumerate(students):
        for name in _reads_from(s):
            if name not in by_name or name == s.name:
                field = "init" if name == s.init else "distill_from"
                raise DistillError(
                    f"students.{index}.{field}: {name!r} is not another student of this recipe "
                    f"(students: {', '.join(by_name)})"
                )
    ordered: list[StudentConfig] = []
    visiting: set[str] = set()

    def visit(s: StudentConfig) -> None:
        if s in ordered:
            return
        if s.name in visiting:
            raise DistillError(
                f"students.{s.name}: init/distill_from form a circle; one must start from a model"
            )
        visiting.add(s.name)
        for name in _reads_from(s):
            visit(by_name[name])
        ordered.append(s)

    for s in students:
        visit(s)
    return ordered


def _runner(name: str):
    def run(recipe: Recipe, run: Run, folder: Path) -> StageResult:
        import torch

        from distill.models import resolve_model
        from distill.prompts import chat_prompts
        from distill.training import FINAL
        from student.plan import check_fits
        from student.plan_teacher import teacher_shape
        from student.sft import train_student

        cfg = next(s for s in recipe.students if s.name == name)
        if cfg.method == "grpo":
            return _run_grpo(recipe, run, folder, cfg)
        # `single` on a machine without CUDA trains in host memory: GPU sizes say nothing about it.
        on_gpus = cfg.launch.strategy != "single" or torch.cuda.is_available()
        warning = check_fits(cfg, teacher=teacher_shape(recipe, cfg)) if on_gpus else None
        if warning:
            print(f"[distill] warning: {warning}", flush=True)
        model = str(run.root / "students" / cfg.init / FINAL) if cfg.init else resolve_model(cfg.model)
        teacher = teacher_path(recipe, cfg, run.root) if cfg.method != "sft" else None
        train = run.root / traces_folder(cfg) / "train.parquet"
        prompts = chat_prompts(recipe.data) if _prompts_from_data(cfg) else None
        metrics = train_student(model, train, folder, cfg, teacher=teacher, prompts=prompts)
        if cfg.init:
            metrics["init"] = f"student {cfg.init}"
        return StageResult([folder / FINAL, folder / metrics_file(cfg)], metrics)

    return run


def _run_grpo(recipe: Recipe, run: Run, folder: Path, cfg: StudentConfig) -> StageResult:
    from distill.models import resolve_model
    from distill.training import FINAL
    from student.grpo import train_grpo_student

    model = str(run.root / "students" / cfg.init / FINAL) if cfg.init else resolve_model(cfg.model)
    judge = None
    if "judge" in cfg.grpo_options().rewards:
        from distill.judge import judge_job

        judge = judge_job(recipe, run.root)  # the run's judge cache, shared with the other stages
    metrics = train_grpo_student(recipe, cfg, model, folder, judge)
    metrics["init"] = f"student {cfg.init}" if cfg.init else cfg.model
    return StageResult([folder / FINAL, folder / metrics_file(cfg)], metrics)


def metrics_file(cfg: StudentConfig) -> str:
    from student.sft import method_of

    return method_of(cfg).metrics_file


def teacher_path(recipe: Recipe, student: StudentConfig, run_root: Path) -> str:
    """The local weights whose logits ``student`` matches (on_policy, kd)."""
    from distill.models import resolve_model
    from distill.training import FINAL

    ref = teacher_reference(recipe, student)
    if ref == GRPO_TEACHER:
        return str(run_root / "teacher" / FINAL)
    if ref.startswith(STUDENT_PREFIX):
        return str(run_root / "students" / ref[len(STUDENT_PREFIX) :] / FINAL)
    return resolve_model(ref)


def check(recipe: Recipe, report: PreflightReport) -> None:
    from student.preflight import check_students, check_teachers

    in_order(recipe.students)  # init / distill_from name other students, in no circle
    check_students(recipe.students, report)
    check_teachers(recipe, report)
    for student in recipe.students:  # a grpo student's judge reward asks the recipe's judge
        if student.method == "grpo" and "judge" in student.grpo_options().rewards:
            from distill.judge import check_judge

            report.note(check_judge(recipe, f"students.{student.name}.grpo.rewards judge", ("rubric",)))


def followers(recipe: Recipe) -> list[StudentConfig]:
    """Students this process joins as node 1..M-1 of a multi-node run (launch.node_rank > 0)."""
    return [s for s in recipe.students if s.launch.node_rank > 0]


def follow(recipe: Recipe, students: list[StudentConfig], only: str | None) -> None:
    """Nodes 1..M-1 of a multi-node run join node 0's training; only node 0 writes the manifest."""
    from student.sft import follow_job

    if only != "sft":
        raise DistillError(
            "launch.node_rank > 0 is only for `distill sft` on the other nodes of a multi-node run"
        )
    run = Run(recipe.run_path(), write=False)  # read only: node 0 owns the manifest
    if not run.manifest_path.exists():
        raise DistillError(
            f"{run.manifest_path}: not found; start node 0 (node_rank 0) first, on a shared file system"
        )
    for student in students:
        folder = recipe.run_path() / "students" / student.name
        ids = [run.completion_id(u) for u in upstream(recipe, student)]
        follow_job(Run.work_dir(folder, fingerprint(student_config(recipe, student), ids)), student)


STAGE = Stage("sft", plan, check, missing="it has no students")
