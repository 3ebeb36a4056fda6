"""Step 4: a short FSDP2 training of the tiny model on the GPU through `distill sft --launch fsdp2`,
asserting what really ran: the model wrapped by FSDP2 (not DDP, which accelerate falls back to silently
on a CPU), accelerate's distributed type FSDP, and a falling loss.

One GPU means one process (NCCL refuses two ranks on one device): the stage's own world-size check then
has nothing to compare, so the wrapper is checked here from the metrics the training process recorded.

    python bench/gpu_check/fsdp_check.py --work /tmp/w --json fsdp.json --budget 60
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import steps


def addition_rows(count: int, seed: int = 0) -> list[dict]:
    """Short, regular rows the tiny model can learn in tens of steps (so the loss has to fall)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.randint(0, 39), rng.randint(0, 8)
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
                "completion": [
                    {"role": "assistant", "content": f"<think>{a} plus {b}</think> \\boxed{{{a + b}}}"}
                ],
            }
        )
    return rows


def recipe_for(work: Path, rows: int) -> Path:
    traces = steps.write_messages_traces(work / "traces.jsonl", addition_rows(rows))
    student = {
        "name": "fsdp",
        "model": "tiny-random-llama",
        "learning_rate": 1e-3,
        "max_steps": 30,
        "batch_size": 8,
        "max_length": 256,
        "packing": False,
        "bf16": True,
        "lr_scheduler": "constant",
    }
    return steps.write_recipe(work / "recipe.yaml", steps.byo_recipe(work / "run", traces, student))


LAUNCH = ["--launch", "fsdp2", "--nproc", "1", "--main-port", "29541"]


def verdict(metrics: dict, history: list[dict]) -> tuple[bool, str, dict]:
    losses = [e["loss"] for e in history if "loss" in e]
    head, tail = losses[:3], losses[-3:]
    figures = {
        "wrapper": metrics.get("wrapper"),
        "distributed_type": metrics.get("distributed_type"),
        "world_size": metrics.get("world_size"),
        "steps": metrics.get("steps"),
        "loss_first3": round(sum(head) / len(head), 4) if head else None,
        "loss_last3": round(sum(tail) / len(tail), 4) if tail else None,
        "train_seconds": metrics.get("train_seconds"),
    }
    problems = []
    if figures["wrapper"] != "FSDP2":
        problems.append(f"model wrapped in {figures['wrapper']}, not FSDP2")
    if figures["distributed_type"] != "FSDP":
        problems.append(f"accelerate ran {figures['distributed_type']}, not FSDP")
    if not head or not figures["loss_last3"] < figures["loss_first3"]:
        problems.append(f"loss did not fall ({figures['loss_first3']} -> {figures['loss_last3']})")
    return not problems, "; ".join(problems), figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--budget", type=float, default=float(os.environ.get("STEP_BUDGET", 60.0)))
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    recipe = recipe_for(args.work, args.rows)
    command = ["sft", str(recipe), *LAUNCH]
    if args.dry_run:
        code, error = steps.run_distill(["validate", str(recipe)], args.work / "validate.log", 300)
        print(f"[fsdp] recipe {recipe}: distill validate -> {'ok' if code == 0 else error}")
        print(f"[fsdp] would run: {' '.join(steps.distill_command(*command))}")
        return code
    result = steps.StepResult(args.json, "fsdp2")
    deadline = time.time() + args.budget
    run_dir = args.work / "run"
    code, error = steps.run_distill(["filter", str(recipe)], args.work / "filter.log", args.budget)
    if code == 0:
        code, error = steps.run_distill(command, args.work / "sft.log", steps.deadline_left(deadline))
    if code != 0:
        result.finish("timeout" if code == 124 else "failed", error)
        return 1
    ok, problems, figures = verdict(
        steps.stage_metrics(run_dir, "sft:fsdp"), steps.log_history(run_dir, "train_metrics.json")
    )
    result.update(**figures)
    result.finish("ok" if ok else "failed", problems or None)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
