"""Stage `eval` entry point: which rows to evaluate, then the comparison, the differences and the gate."""

from __future__ import annotations

from pathlib import Path

from distill.errors import DistillError
from distill.stages import StageResult
from eval import reference as published_figures
from eval import stats
from eval.backends import EvalTarget


def eval_targets(recipe, run_root: Path, resolve=None) -> tuple[list[EvalTarget], dict[str, str]]:
    """The rows to evaluate, in comparison order (teacher, bases, students, extra models), and for each
    student the label of its base model's row (with eval.include_base)."""
    if resolve is None:
        from distill.models import resolve_model as resolve
    cfg = recipe.eval
    targets = [_teacher_target(recipe, resolve)] if recipe.teacher and cfg.include_teacher else []
    bases: dict[str, str] = {}
    if cfg.include_base:
        for student in recipe.students:
            path = resolve(student.model)
            existing = next((t for t in targets if t.ref == path), None)
            if existing is None:
                existing = _local(f"base ({student.model})", path, cfg.backend, "base")
                targets.append(existing)
            bases[student.name] = existing.label
    for student in recipe.students:
        final = run_root / "students" / student.name / "final"
        if not final.exists():
            raise DistillError(
                f"{final}: student {student.name!r} has no final model; run `distill sft` first"
            )
        targets.append(_local(student.name, str(final), cfg.backend, "student"))
    for extra in cfg.models:
        if extra.base_url:
            targets.append(
                EvalTarget(
                    extra.label,
                    extra.model,
                    "served",
                    "model",
                    extra.base_url,
                    extra.api_key_env,
                    extra.tokenizer,
                    extra.seed_per_request,
                )
            )
        else:
            targets.append(_local(extra.label, resolve(extra.model), cfg.backend, "model"))
    return targets, bases


def _local(label: str, path: str, backend: str, role: str) -> EvalTarget:
    if backend == "served":
        raise DistillError(
            f"eval: {label} is local weights ({path}) but eval.backend is served; use hf or vllm, or give "
            "the row a base_url in eval.models"
        )
    return EvalTarget(label, path, backend, role, tokenizer=path)


def _teacher_target(recipe, resolve) -> EvalTarget:
    teacher, cfg = recipe.teacher, recipe.eval
    if teacher.backend == "openai" and not cfg.teacher_model:
        # A teacher that only exists behind a server (vllm serve, SGLang, an API) is evaluated through it;
        # of a fleet of replicas, through the first (lm-eval takes one URL).
        opts = teacher.openai
        return EvalTarget(
            f"teacher ({teacher.model})",
            teacher.model,
            "served",
            "teacher",
            opts.base_urls[0],
            opts.api_key_env,
            seed_per_request=teacher.seed_per_sample,
        )
    ref = cfg.teacher_model or teacher.model
    target = _local(f"teacher ({ref})", resolve(ref), cfg.backend, "teacher")
    return target


def differences(
    results: dict[str, dict],
    targets: list[EvalTarget],
    bases: dict[str, str],
    tasks,
    inits: dict[str, str] | None = None,
):
    """Each student against its base model, the teacher and (``inits``: student -> the student it started
    from) the model it came from: what each phase of a multi-stage recipe added, paired over problems."""
    teacher = next((t.label for t in targets if t.role == "teacher"), None)
    out = []
    for student in (t.label for t in targets if t.role == "student"):
        compared = (("base", bases.get(student)), ("teacher", teacher), ("init", (inits or {}).get(student)))
        for versus, reference in compared:
            if reference is None:
                continue
            for task in tasks:
                diff = stats.paired_difference(
                    _scores(results[student], task), _scores(results[reference], task)
                )
                if diff is None:
                    continue
                out.append(
                    {
                        "student": student,
                        "versus": versus,
                        "reference": reference,
                        "task": task,
                        "difference": round(diff.mean, 4),
                        "ci95": stats.rounded(diff.ci95),
                        "significant": diff.significant,
                        "problems": diff.problems,
                    }
                )
    return out


def _scores(result: dict, task: str) -> dict[str, float]:
    return {key: c / n for key, (n, c, _) in result["per_problem"][task].items()}


def evaluate(recipe, run_root: Path, out_dir: Path) -> StageResult:
    """Stage entry point: evaluate every row, write the comparison and the gate."""
    import torch

    from eval.compare import release_gate, write_comparison, write_gate
    from eval.harness import evaluate_target
    from eval.preflight import check_templates

    cfg = recipe.eval
    targets, bases = eval_targets(recipe, run_root)
    if not targets:
        raise DistillError("eval: nothing to evaluate; add students, a teacher or eval.models")
    templates = check_templates(recipe, run_root)  # before any model loads
    on_gpu = torch.cuda.is_available()
    results = {t.label: evaluate_target(t, cfg, out_dir / _safe(t.label), on_gpu) for t in targets}
    ids = model_ids(recipe)
    rows = [
        published_figures.annotate(row, ids.get(t.label)) for t in targets for row in results[t.label]["rows"]
    ]
    rows = [
        {**row, "trained_template": templates[row["model"]]} if row["model"] in templates else row
        for row in rows
    ]
    inits = {s.name: s.init for s in recipe.students if s.init}
    diffs = differences(results, targets, bases, cfg.tasks, inits)
    outputs = write_comparison(rows, diffs, out_dir, extraction=extraction_rule(cfg.tasks))
    students = [t.label for t in targets if t.role == "student"]
    gate = release_gate(rows, diffs, students, recipe.release.gate, cfg.tasks)
    outputs.append(write_gate(gate, out_dir / "gate.json"))
    judged = _judged(recipe, targets, bases, run_root, out_dir, on_gpu) if cfg.judged else None
    if judged is not None:  # the verified comparison is on disk before any judge call; now with the judged
        write_comparison(rows, diffs, out_dir, extraction=extraction_rule(cfg.tasks), judged=judged)
        outputs.append(out_dir / "judged.json")
    print((out_dir / "comparison.md").read_text(), flush=True)
    seconds = {label: result["seconds"] for label, result in results.items()}
    metrics = {"rows": rows, "differences": diffs, "seconds_per_row": seconds}
    return StageResult(outputs, metrics if judged is None else {**metrics, **judged})


def _judged(recipe, targets, bases, run_root: Path, out_dir: Path, on_gpu: bool) -> dict:
    """eval.judged (eval/judged.py): rows and the judge's cost, also written to judged.json."""
    from distill.judge import open_judge
    from distill.runs import atomic_write_json
    from eval.judged import run_judged

    judge = open_judge(recipe, run_root)  # the run's judge cache: a retried stage asks nothing again
    try:
        rows = run_judged(recipe, targets, bases, out_dir, on_gpu, judge)
    finally:
        judge.close()
    result = {"judged": rows, "judge_cost": judge.report()}
    atomic_write_json(out_dir / "judged.json", result)
    return result


def model_ids(recipe) -> dict[str, str]:
    """Row label -> the model reference the recipe names (a Hub id where it is one), for eval/reference.py."""
    cfg, ids = recipe.eval, {}
    if recipe.teacher:
        ref = cfg.teacher_model or recipe.teacher.model
        ids[f"teacher ({ref})"] = ref
        ids[f"teacher ({recipe.teacher.model})"] = recipe.teacher.model
    for student in recipe.students:
        ids[f"base ({student.model})"] = student.model
    ids.update({extra.label: extra.model for extra in cfg.models})
    return ids


def extraction_rule(tasks: list[str]) -> str:
    texts = {task: _task_text(task) for task in tasks}
    code = [t for t, text in texts.items() if "process_results_code" in text]
    code_rule = "the last fenced python block after </think>, run against the problem's tests in the sandbox"
    if code and len(code) == len(texts):
        return code_rule
    rule = "the last \\boxed{...} in the text after </think>"
    lenient = [t for t, text in texts.items() if "process_results_lenient" in text]
    choice = [t for t, text in texts.items() if "process_results_choice" in text]
    if lenient:
        rule += f"; for {', '.join(lenient)} the last number in that text when nothing is boxed"
    if choice:
        rule += f"; for {', '.join(choice)} a letter A-D (boxed, else 'answer is X'), compared exactly"
    rule += "; compared with math-verify (plain numbers compared exactly)"
    return rule + (f"; for {', '.join(code)} {code_rule}" if code else "")


def _task_text(task: str) -> str:
    from eval.harness import TASKS_DIR

    path = TASKS_DIR / f"{task}.yaml"
    return path.read_text() if path.exists() else ""


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in label).strip("_")
