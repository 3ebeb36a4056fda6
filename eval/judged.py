"""eval.judged: pairwise judged benchmarks inside the eval stage.

1. ``load_prompts``: the benchmark's prompts (a local jsonl/json/parquet/csv file or a `datasets` id).
2. ``generate_answers``: each row answers them through lm-eval, with the row's own backend (hf | vllm |
   served, eval/backends.py), the recipe's chat template, system prompt and sampling, the benchmark's token
   budget; answers are kept in the row's folder (``judged_<name>.jsonl``) so a retried stage reuses them.
3. ``run_judged``: for every student and benchmark, the judge compares its answers with the baseline's in
   both orders (eval/pairwise.py); calls go through the run's judge cache, so nothing is asked twice.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from distill.errors import DistillError
from distill.records import read_rows
from eval.backends import EvalTarget, lm_eval_model
from eval.harness import generation_settings
from eval.pairwise import ask_both_orders, summarize

_PROMPT_COLUMNS = ("prompt", "instruction", "problem", "question")


def load_prompts(bench) -> list[dict[str, str]]:
    """[{id, prompt}] of a judged benchmark (``eval.judged[]``), its first ``limit`` rows."""
    source = bench.prompts
    where = f"eval.judged {bench.name}: {source}"
    if Path(source).exists():
        rows = read_rows(Path(source))
    elif "/" in source and not source.startswith((".", "/")):
        from datasets import load_dataset

        try:
            rows = list(load_dataset(source, split=bench.split))
        except Exception as exc:  # offline, unknown id, gated: one line
            raise DistillError(f"{where}: cannot load the `datasets` id ({type(exc).__name__})") from None
    else:
        raise DistillError(f"{where}: no such file; give a jsonl/json/parquet/csv file or an owner/name id")
    if not rows:
        raise DistillError(f"{where}: no prompts")
    column = bench.column or next((c for c in _PROMPT_COLUMNS if c in rows[0]), None)
    if column is None or column not in rows[0]:
        raise DistillError(
            f"{where}: no prompt column (found: {', '.join(sorted(rows[0]))}); set eval.judged[].column"
        )
    prompts = []
    for index, row in enumerate(rows[: bench.limit] if bench.limit else rows):
        text = row.get(column)
        if not isinstance(text, str) or not text.strip():
            raise DistillError(f"{where}: row {index + 1}: {column} must be a non-empty string")
        prompts.append({"id": str(row.get("id", index)), "prompt": text})
    return prompts


def generate_answers(
    target: EvalTarget, cfg, bench, prompts: list[dict], out_dir: Path, on_gpu: bool
) -> dict[str, str]:
    """The row's answer to every prompt (prompt id -> text), reused from an earlier attempt when present."""
    done = out_dir / f"judged_{bench.name}.jsonl"
    if done.is_file():
        return {r["id"]: r["answer"] for r in map(json.loads, done.read_text().splitlines())}
    import lm_eval
    from lm_eval.tasks import TaskManager

    model, model_args = lm_eval_model(target, cfg, on_gpu)
    with tempfile.TemporaryDirectory(prefix="distill-judged-") as folder:
        task = _task_folder(Path(folder), bench, prompts)
        manager = TaskManager(include_path=folder, include_defaults=False)
        results = lm_eval.simple_evaluate(
            model=model,
            model_args=model_args,
            tasks=[task],
            task_manager=manager,
            **generation_settings(target, cfg, bench.max_tokens),
        )
    answers = {}
    for sample in results["samples"][task]:
        resps = sample.get("resps") or [[""]]
        answers[str(sample["doc"]["id"])] = str(resps[0][0] if resps and resps[0] else "")
    out_dir.mkdir(parents=True, exist_ok=True)
    done.write_text("".join(json.dumps({"id": i, "answer": a}) + "\n" for i, a in answers.items()))
    return answers


def _task_folder(folder: Path, bench, prompts: list[dict]) -> str:
    """An lm-eval generate_until task over the prompts (written beside it), returning its name."""
    name = f"distill_judged_{bench.name}"
    data = folder / "prompts.jsonl"
    data.write_text("".join(json.dumps({"id": p["id"], "prompt": p["prompt"]}) + "\n" for p in prompts))
    task = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "",
        "generation_kwargs": {"until": [], "max_gen_toks": bench.max_tokens},
        "metric_list": [{"metric": "exact_match"}],
        "metadata": {"version": 1},
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    return name


def baseline_label(bench, student: str, targets: list[EvalTarget], bases: dict[str, str]) -> str:
    if bench.baseline == "base":
        label = bases.get(student)
    elif bench.baseline == "teacher":
        label = next((t.label for t in targets if t.role == "teacher"), None)
    else:
        label = next((t.label for t in targets if t.label == bench.baseline), None)
    if label is None:
        raise DistillError(
            f"eval.judged {bench.name}: baseline {bench.baseline!r} is not a row of this eval (base needs "
            "eval.include_base: true, teacher needs eval.include_teacher, else an eval.models label)"
        )
    return label


def check_judged(recipe) -> str:
    """Preflight of eval.judged: the judge (endpoint, pairwise template, key), baselines that are rows of this
    eval, and local prompt files that load."""
    from distill.judge import check_judge

    note = check_judge(recipe, "eval.judged", ("pairwise",))
    cfg = recipe.eval
    for bench in cfg.judged:
        if bench.baseline == "base" and not cfg.include_base:
            raise DistillError(
                f"eval.judged {bench.name}: baseline base compares each student with its base model; set "
                "eval.include_base: true, or baseline: teacher / an eval.models label"
            )
        if bench.baseline == "teacher" and not (recipe.teacher and cfg.include_teacher):
            raise DistillError(f"eval.judged {bench.name}: baseline teacher, but the eval has no teacher row")
        labels = {m.label for m in cfg.models}
        if bench.baseline not in ("base", "teacher") and bench.baseline not in labels:
            raise DistillError(
                f"eval.judged {bench.name}: baseline {bench.baseline!r} is not an eval.models label "
                f"({', '.join(sorted(labels)) or 'none'}); or use base / teacher"
            )
        if Path(bench.prompts).exists() or "/" not in bench.prompts:
            load_prompts(bench)
    return note


def run_judged(recipe, targets: list[EvalTarget], bases: dict[str, str], out_dir: Path, on_gpu: bool, judge):
    """Every (benchmark, student) pair judged; returns their rows (for the metrics and comparison.*)."""
    cfg, rows = recipe.eval, []
    # Students against their baseline; a recipe without students compares its eval.models rows with it.
    students = [t for t in targets if t.role == "student"] or [t for t in targets if t.role == "model"]
    by_label = {t.label: t for t in targets}
    for bench in cfg.judged:
        prompts = load_prompts(bench)
        for student in students:
            base = baseline_label(bench, student.label, targets, bases)
            if base == student.label:
                continue
            answers = {
                label: generate_answers(by_label[label], cfg, bench, prompts, out_dir / _safe(label), on_gpu)
                for label in (student.label, base)
            }
            pairs = ask_both_orders(judge, prompts, answers[student.label], answers[base])
            _write_pairs(out_dir / f"judged_{bench.name}_{_safe(student.label)}.jsonl", pairs)
            rows.append(
                {
                    "benchmark": bench.name,
                    "student": student.label,
                    "baseline": base,
                    "judge": recipe.judge.model,
                    "summary": summarize(pairs),
                }
            )
    return rows


def _write_pairs(path: Path, pairs: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs))


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in label).strip("_")
