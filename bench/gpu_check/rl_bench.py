"""Step 5: a few GRPO steps (`distill grpo`) and, where the checkout has it, on-policy distillation steps
(`students[].method: on_policy` through `distill sft`) on a random-initialised Qwen2.5-0.5B-shaped model
in bf16 (generation with transformers: vLLM is not carried). Reports seconds per step.

GRPO's s/step is TRL's own ``step_time`` (generation + scoring + the optimizer step) averaged after the
first step; on-policy's is the Trainer's train_runtime / steps (first step included). A random model
never answers correctly, so the rewards say nothing here: this measures speed and that the paths run.

    python bench/gpu_check/rl_bench.py --work /tmp/w --json rl.json --budget 90
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import shapes
import steps
from fsdp_check import addition_rows

PROMPTS = steps.REPO / "recipes" / "data" / "addition_train.jsonl"
SYSTEM = "You are a careful calculator. Answer with the final number in \\boxed{N}."


def grpo_recipe(work: Path, model: str, max_steps: int) -> Path:
    grpo = {
        "model": model,
        "data": {"source": str(PROMPTS), "system_prompt": SYSTEM, "limit": 64},
        "rewards": ["accuracy"],
        "answer_fallback": "last_number",
        "num_generations": 8,
        "batch_size": 16,
        "learning_rate": 1e-6,
        "max_steps": max_steps,
        "beta": 0.0,
        "max_prompt_length": 128,
        "max_completion_length": 128,
        "temperature": 1.0,
        "bf16": True,
        "generation": "transformers",
        "save_steps": 100_000,
        "logging_steps": 1,
        "report_to": "none",
    }
    recipe = {
        "name": "gpu-check-grpo",
        "run_dir": str(work / "grpo-run"),
        "grpo": grpo,
        "eval": {"tasks": ["addition_heldout"], "limit": 2, "samples_per_problem": 1, "max_tokens": 8},
        "release": {"dry_run": True},
    }
    return steps.write_recipe(work / "grpo.yaml", recipe)


def on_policy_recipe(work: Path, model: str, max_steps: int, teacher: str | None = None) -> Path:
    """The student distils from ``teacher`` (default itself) through ``distill_from``: same tokenizer, no
    teacher section. The check's teacher is the same shape initialised with another seed, so the
    divergence is not zero from the start."""
    traces = steps.write_messages_traces(work / "on-policy-traces.jsonl", addition_rows(64))
    student = {"name": "on-policy", "model": model, "method": "on_policy", "distill_from": teacher or model}
    student.update(bf16=True, max_steps=max_steps, batch_size=8, max_length=512, learning_rate=1e-6)
    student["on_policy"] = {"max_completion_length": 128}
    recipe = steps.byo_recipe(work / "on-policy-run", traces, student)
    return steps.write_recipe(work / "on-policy.yaml", recipe)


ON_POLICY_KEYS = ("method", "distill_from", "on_policy")


def schema_lacks_on_policy(error: str) -> bool:
    """The CLI's one-line error for a recipe key this checkout's schema does not have."""
    return "unknown key 'students.0." in error and any(f".{key}'" in error for key in ON_POLICY_KEYS)


def has_on_policy(recipe: Path, log: Path) -> tuple[bool, str]:
    """Does this checkout's recipe schema know ``students[].method: on_policy``? (asked through the CLI)"""
    code, error = steps.run_distill(["validate", str(recipe), "--schema-only"], log, 120)
    if code == 0:
        return True, ""
    if schema_lacks_on_policy(error):
        return (
            False,
            f"students[].method: on_policy is not in this checkout ({error.split(' (valid keys')[0]})",
        )
    return True, error  # the method exists; the recipe has another problem


def grpo(work: Path, model: str, args, timeout: float) -> dict:
    recipe = grpo_recipe(work, model, args.grpo_steps)
    code, error = steps.run_distill(["grpo", str(recipe)], work / "grpo.log", timeout)
    if code != 0:
        return {"status": "timeout" if code == 124 else "failed", "reason": error}
    history = steps.log_history(work / "grpo-run", "grpo_metrics.json")
    times = [e["step_time"] for e in history if "step_time" in e]
    timed = times[1:] or times
    return {
        "status": "ok",
        "steps": len(times),
        "seconds_per_step": round(sum(timed) / len(timed), 2) if timed else None,
        "first_step_seconds": round(times[0], 2) if times else None,
        "completion_length": next(
            (e["completions/mean_length"] for e in reversed(history) if "completions/mean_length" in e), None
        ),
    }


def on_policy(work: Path, model: str, args, timeout: float, teacher: str | None = None) -> dict:
    recipe = on_policy_recipe(work, model, args.on_policy_steps, teacher)
    exists, why = has_on_policy(recipe, work / "on-policy-validate.log")
    if not exists:
        return {"status": "skipped", "reason": why}
    if why:  # the method exists but this step's recipe does not validate: say why, train nothing
        return {"status": "failed", "reason": f"on-policy recipe {recipe}: {why}"}
    code, error = steps.run_distill(["filter", str(recipe)], work / "on-policy.log", timeout)
    if code == 0:
        code, error = steps.run_distill(["sft", str(recipe)], work / "on-policy.log", timeout)
    if code != 0:
        return {"status": "timeout" if code == 124 else "failed", "reason": error}
    metrics = steps.stage_metrics(work / "on-policy-run", "sft:on-policy")
    count, seconds = metrics.get("steps") or 0, metrics.get("train_seconds")
    per_step = round(seconds / count, 2) if count and seconds else None
    return {
        "status": "ok",
        "steps": count,
        "seconds_per_step": per_step,
        "first_loss": metrics.get("first_loss"),
        "last_loss": metrics.get("last_loss"),
    }


def build_teacher(work: Path, shape: shapes.Shape, tokenizer: str, vocab: int) -> str:
    return str(shapes.build_model(work / f"teacher-{shape.hidden}", shape, tokenizer, vocab=vocab, seed=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--budget", type=float, default=float(os.environ.get("STEP_BUDGET", 90.0)))
    parser.add_argument("--shape", default="qwen2.5-0.5b", choices=sorted(shapes.SHAPES))
    parser.add_argument("--grpo-steps", type=int, default=4)
    parser.add_argument("--on-policy-steps", type=int, default=3)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    tokenizer = steps.tiny_tokenizer()
    shape = shapes.SMOKE if args.dry_run else shapes.SHAPES[args.shape]
    vocab = -(-len(__import__("transformers").AutoTokenizer.from_pretrained(tokenizer)) // 64) * 64
    model = str(shapes.build_model(args.work / f"model-{shape.hidden}", shape, tokenizer, vocab=vocab))
    if args.dry_run:
        return dry_run(args, model)
    result = steps.StepResult(args.json, "rl")
    result.update(model=shapes.describe(dataclasses.replace(shape, vocab=vocab)))
    deadline = time.time() + args.budget
    try:
        result.update(grpo=grpo(args.work, model, args, steps.deadline_left(deadline) * 0.6))
        left = steps.deadline_left(deadline)
        if left > 20:
            teacher = build_teacher(args.work, shape, tokenizer, vocab)
            result.update(on_policy=on_policy(args.work, model, args, steps.deadline_left(deadline), teacher))
        else:
            result.update(on_policy={"status": "skipped", "reason": "step budget spent"})
    except Exception as exc:
        result.finish("failed", f"{type(exc).__name__}: {exc}"[:300])
        return 1
    bad = [f"{name}: {result.data[name]['reason']}" for name in ("grpo", "on_policy")
           if result.data[name]["status"] in ("failed", "timeout")]  # fmt: skip
    status = "failed" if bad else "ok"
    result.finish(status, "; ".join(bad) or None)
    return 0 if status == "ok" else 1


def dry_run(args, model: str) -> int:
    code = 0
    for name, recipe in (
        ("grpo", grpo_recipe(args.work, model, 2)),
        ("on-policy", on_policy_recipe(args.work, model, 2)),
    ):
        rc, error = steps.run_distill(
            ["validate", str(recipe), "--schema-only"], args.work / f"{name}-validate.log", 300
        )
        verdict = "ok" if rc == 0 else error
        if name == "on-policy" and rc != 0 and schema_lacks_on_policy(error):
            verdict, rc = f"would skip: {error}", 0
        code = code or rc
        command = "grpo" if name == "grpo" else "sft"
        print(f"[rl] {name} recipe {recipe}: distill validate -> {verdict}")
        print(f"[rl] would run: {' '.join(steps.distill_command(command, str(recipe)))}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
