"""Stage `eval`: lm-eval's `simple_evaluate` (hf backend) on the recipe's tasks, n samples per problem.

pass@1 is the mean over problems of the per-problem share of correct samples; its standard error is
lm-eval's (std of per-problem values / sqrt(problems)), so samples of one problem are not counted as
independent. The 95% interval is pass@1 +/- 1.96 SE, clipped to [0, 1].
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.runs import atomic_write_json

TASKS_DIR = Path(__file__).parent / "tasks"
Z95 = 1.959964


def local_task_names() -> set[str]:
    import yaml

    names = set()
    for path in TASKS_DIR.glob("*.yaml"):
        text = path.read_text()
        for line in text.splitlines():
            if line.startswith("task:"):
                names.add(yaml.safe_load(line)["task"])
    return names


def load_tasks(names: list[str], repeats: int):
    """Build lm-eval Task objects (our offline tasks first), with `repeats` = n samples per problem."""
    from lm_eval.tasks import TaskManager

    local = local_task_names()
    needs_builtin = any(name not in local for name in names)
    # Indexing lm-eval's ~10k built-in tasks costs ~12 s; skip it when every task is one of ours.
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=needs_builtin)
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        raise DistillError(
            f"eval.tasks: unknown task(s) {', '.join(unknown)}; ours are {', '.join(sorted(local))} "
            "(eval/tasks/*.yaml), or any lm-eval task name"
        )
    loaded = manager.load(names)["tasks"]
    for task in loaded.values():
        task.config.repeats = repeats
    return list(loaded.values())


def evaluate_model(
    model_path: str,
    label: str,
    out_dir: Path,
    *,
    tasks: list[str],
    samples: int,
    gen: dict[str, Any],
    batch_size: int,
    limit: int | None,
    system_prompt: str | None,
    seed: int,
) -> list[dict[str, Any]]:
    """Evaluate one model; writes lm-eval's results JSON + per-sample logs; returns summary rows."""
    import lm_eval
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args={
            "pretrained": model_path,
            "dtype": "float32" if device == "cpu" else "auto",
            "device": device,
        },
        tasks=load_tasks(tasks, samples),
        batch_size=batch_size,
        limit=limit,
        gen_kwargs={
            "do_sample": gen["temperature"] > 0,
            "temperature": gen["temperature"],
            "top_p": gen["top_p"],
            "max_gen_toks": gen["max_tokens"],
        },
        apply_chat_template=True,
        system_instruction=system_prompt,
        log_samples=True,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
        bootstrap_iters=1000,  # for `mean` lm-eval uses the closed-form SE, so this costs nothing
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    samples_log = results.pop("samples", {})
    for task, rows in samples_log.items():
        with (out_dir / f"samples_{task}.jsonl").open("w") as handle:
            for row in rows:
                handle.write(json.dumps(row, default=str) + "\n")
    atomic_write_json(out_dir / "results.json", results)
    return [summary_row(label, model_path, task, results, samples, gen, device) for task in tasks]


def summary_row(
    label: str, model_path: str, task: str, results: dict, samples: int, gen: dict, device: str
) -> dict[str, Any]:
    metrics = results["results"][task]
    score = float(metrics["pass_at_1,all"])
    stderr = metrics.get("pass_at_1_stderr,all")
    # lm-eval reports "N/A" when it could not estimate the error (e.g. a single problem): no interval then.
    stderr = float(stderr) if isinstance(stderr, int | float) else None
    ci95 = (
        None
        if stderr is None
        else [round(max(0.0, score - Z95 * stderr), 4), round(min(1.0, score + Z95 * stderr), 4)]
    )
    problems = results.get("n-samples", {}).get(task, {}).get("effective")
    return {
        "model": label,
        "path": model_path,
        "task": task,
        "pass_at_1": round(score, 4),
        "stderr": None if stderr is None else round(stderr, 4),
        "ci95": ci95,
        f"pass_at_{samples}": round(float(metrics["pass_at_n,all"]), 4),
        "problems": problems,
        "samples_per_problem": samples,
        "temperature": gen["temperature"],
        "top_p": gen["top_p"],
        "max_tokens": gen["max_tokens"],
        "dtype": "float32" if device == "cpu" else "auto",
    }


def evaluate(recipe, run_root: Path, out_dir: Path) -> tuple[list[dict[str, Any]], list[Path]]:
    """Stage entry point: evaluate the teacher (optional) and every trained student; compare; gate."""
    from distill.models import resolve_model
    from eval.compare import release_gate, write_comparison, write_gate

    cfg = recipe.eval
    models = [_teacher_entry(recipe, resolve_model)] if cfg.include_teacher else []
    for student in recipe.students:
        final = run_root / "students" / student.name / "final"
        if not final.exists():
            raise DistillError(
                f"{final}: student {student.name!r} has no final model; run `distill sft` first"
            )
        models.append((student.name, str(final)))
    gen = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens}
    rows = []
    for label, path in models:
        print(f"[distill] eval: {label} on {', '.join(cfg.tasks)}", flush=True)
        rows += evaluate_model(
            path,
            label,
            out_dir / _safe(label),
            tasks=cfg.tasks,
            samples=cfg.samples_per_problem,
            gen=gen,
            batch_size=cfg.batch_size,
            limit=cfg.limit,
            system_prompt=cfg.system_prompt,
            seed=cfg.seed,
        )
    outputs = write_comparison(rows, out_dir, extraction=extraction_rule(cfg.tasks))
    gate_cfg = recipe.release.gate
    gate = release_gate(
        rows,
        [s.name for s in recipe.students],
        models[0][0] if cfg.include_teacher else None,
        gate_cfg.task or cfg.tasks[0],
        gate_cfg.min_score,
        gate_cfg.require_beats_teacher,
    )
    outputs.append(write_gate(gate, out_dir / "gate.json"))
    print((out_dir / "comparison.md").read_text(), flush=True)
    return rows, outputs


def _teacher_entry(recipe, resolve_model) -> tuple[str, str]:
    ref = recipe.eval.teacher_model or recipe.teacher.model
    try:
        return f"teacher ({ref})", resolve_model(ref)
    except DistillError as exc:
        # A served teacher (backend openai) is often named something no loader knows, e.g. deepseek-reasoner.
        raise DistillError(
            f"eval: cannot load the teacher for evaluation ({exc}); set eval.teacher_model to its weights "
            "(a folder or Hub id) or eval.include_teacher=false"
        ) from None


def extraction_rule(tasks: list[str]) -> str:
    lenient = [t for t in tasks if "process_results_lenient" in _task_text(t)]
    rule = "the last \\boxed{...} in the text after </think>"
    if lenient:
        rule += f"; for {', '.join(lenient)} the last number in that text when nothing is boxed"
    return rule + "; compared with math-verify (plain numbers compared exactly)"


def _task_text(task: str) -> str:
    path = TASKS_DIR / f"{task}.yaml"
    return path.read_text() if path.exists() else ""


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in label).strip("_")
