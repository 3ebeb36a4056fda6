"""Step 3: SFT throughput of a random-initialised Qwen2.5-1.5B-shaped student in bf16 with packing at
4,096 and 8,192 tokens, with and without gradient checkpointing and Liger: real tokens/s and MFU.

Every variant is one `distill sft` of the same BYO-traces recipe with overrides (the product's own
tokenization, packing collator, Trainer and throughput counter), in its own process with its own share of
the step's time; the first ``--warmup`` logged steps are left out of tokens/s. Each variant trains the same
number of tokens per optimizer step (``--tokens-per-step``: micro-batch = tokens / max_length).

    python bench/gpu_check/sft_bench.py --work /tmp/w --json sft.json --budget 200
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import hardware
import shapes
import steps

# In order of importance: whatever the budget leaves out is reported as not run.
VARIANTS = [
    {"max_length": 4096, "gradient_checkpointing": False, "liger": False},
    {"max_length": 8192, "gradient_checkpointing": False, "liger": False},
    {"max_length": 8192, "gradient_checkpointing": True, "liger": False},
    {"max_length": 4096, "gradient_checkpointing": True, "liger": False},
    {"max_length": 8192, "gradient_checkpointing": False, "liger": True},
    {"max_length": 8192, "gradient_checkpointing": True, "liger": True},
    {"max_length": 4096, "gradient_checkpointing": False, "liger": True},
]


def variant_name(v: dict) -> str:
    return f"{v['max_length']}{'-gc' if v['gradient_checkpointing'] else ''}{'-liger' if v['liger'] else ''}"


def liger_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("liger_kernel") is not None


def card_peak() -> float | None:
    """The dense bf16 peak of GPU 0 by its name (when the env step did not pass one)."""
    import torch

    return hardware.peak_tflops(torch.cuda.get_device_name(0))[0] if torch.cuda.is_available() else None


def prepare(work: Path, shape: shapes.Shape, rows: int) -> tuple[Path, Path, dict]:
    """Model, traces and the example lengths the attention term needs (tokenized like the stage does)."""
    from bench_sft_packing import traces
    from transformers import AutoTokenizer

    model = shapes.build_model(work / "model", shape, steps.tiny_tokenizer())
    data = traces(rows, seed=0)
    trace_file = steps.write_messages_traces(work / "traces.jsonl", data)
    tokenizer = AutoTokenizer.from_pretrained(model)
    texts = [tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=False) for r in data]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    return model, trace_file, {"rows": rows, "tokens": sum(lengths), "lengths": lengths}


def overrides(v: dict, tokens_per_step: int, max_steps: int) -> list[str]:
    batch = max(tokens_per_step // v["max_length"], 1)
    knobs = {**v, "batch_size": batch, "max_steps": max_steps, "bf16": True, "packing": True}
    return [
        f"students.0.{k}={str(val).lower() if isinstance(val, bool) else val}" for k, val in knobs.items()
    ]


def measure(run_dir: Path, v: dict, lengths: list[int], shape, peak, warmup: int) -> dict:
    history = steps.log_history(run_dir, "train_metrics.json")
    timed = [e["tokens_per_second"] for e in history if "tokens_per_second" in e][warmup:]
    metrics = steps.stage_metrics(run_dir, "sft:bench")
    kept = [n for n in lengths if n <= v["max_length"]]
    context = shapes.attention_context(kept)
    tps = sum(timed) / len(timed) if timed else None
    return {
        "tokens_per_second": round(tps, 1) if tps else None,
        "timed_steps": len(timed),
        "steps": metrics.get("steps"),
        "real_token_share": metrics.get("real_token_share"),
        "attention_context": round(context, 1),
        "flops_per_token": shapes.flops_per_token(shape, context),
        "mfu": float(f"{shapes.mfu(tps, shape, context, peak):.4g}") if tps and peak else None,
        "first_loss": metrics.get("first_loss"),
        "last_loss": metrics.get("last_loss"),
    }


def run_variant(args, recipe: Path, run_dir: Path, v: dict, timeout: float) -> dict:
    log = args.work / f"sft-{variant_name(v)}.log"
    started = time.time()
    with steps.GpuMemory() as memory:
        code, error = steps.run_distill(
            ["sft", str(recipe), *overrides(v, args.tokens_per_step, args.steps)], log, timeout
        )
    entry = {**v, "name": variant_name(v), "seconds": round(time.time() - started, 1)}
    entry["batch_size"] = max(args.tokens_per_step // v["max_length"], 1)
    entry["gpu_memory_peak_gib"] = memory.peak_gib
    if code != 0:
        return {**entry, "status": "timeout" if code == 124 else "failed", "reason": error, "log": str(log)}
    for final in run_dir.glob("students/*/final"):
        shutil.rmtree(final, ignore_errors=True)  # 6 GB of fp32 weights per variant: keep the disk free
    return {**entry, "status": "ok", **measure(run_dir, v, args.lengths, args.shape, args.peak, args.warmup)}


def run(args, result: steps.StepResult) -> None:
    deadline = time.time() + args.budget
    args.work.mkdir(parents=True, exist_ok=True)
    model, trace_file, data = prepare(args.work, args.shape, args.rows)
    args.lengths = data.pop("lengths")
    run_dir = args.work / "run"
    student = {"name": "bench", "model": str(model), "learning_rate": 1e-5, "max_length": 8192}
    recipe = steps.write_recipe(args.work / "recipe.yaml", steps.byo_recipe(run_dir, trace_file, student))
    result.update(model=shapes.describe(args.shape), data=data, flops_formula=shapes.FLOPS_FORMULA)
    code, error = steps.run_distill(
        ["filter", str(recipe)], args.work / "filter.log", steps.deadline_left(deadline)
    )
    if code != 0:
        return result.finish("failed", f"filter: {error}")
    runs, liger = [], liger_installed()
    for v in VARIANTS:
        left = steps.deadline_left(deadline)
        base = {**v, "name": variant_name(v), "batch_size": max(args.tokens_per_step // v["max_length"], 1)}
        if v["liger"] and not liger:
            runs.append({**base, "status": "skipped", "reason": "liger-kernel not installed"})
        elif left < args.min_variant_seconds:
            runs.append({**base, "status": "skipped", "reason": f"step budget spent ({left:.0f} s left)"})
        else:
            runs.append(run_variant(args, recipe, run_dir, v, min(left, args.variant_timeout)))
        result.update(variants=runs)
    ok = [r for r in runs if r["status"] == "ok"]
    result.finish("ok" if ok else "failed", None if ok else "no variant finished")


def dry_run(args) -> int:
    """Build the smoke-size model and recipe, validate it through the CLI, print the variants' commands."""
    args.shape = shapes.SMOKE
    model, trace_file, data = prepare(args.work, args.shape, 16)
    student = {"name": "bench", "model": str(model), "learning_rate": 1e-5, "max_length": 8192}
    recipe = steps.write_recipe(
        args.work / "recipe.yaml", steps.byo_recipe(args.work / "run", trace_file, student)
    )
    code, error = steps.run_distill(["validate", str(recipe)], args.work / "validate.log", 300)
    print(f"[sft-bench] recipe {recipe}: distill validate -> {'ok' if code == 0 else error}")
    print(f"[sft-bench] example tokens: {data['tokens']} in {data['rows']} rows (tiny tokenizer)")
    for v in VARIANTS:
        command = steps.distill_command("sft", str(recipe), *overrides(v, args.tokens_per_step, args.steps))
        print(f"[sft-bench] would run {variant_name(v)}: {' '.join(command)}")
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--budget",
        type=float,
        default=float(os.environ.get("STEP_BUDGET", 200.0)),
        help="seconds for the whole step",
    )
    parser.add_argument("--variant-timeout", type=float, default=75.0)
    parser.add_argument("--min-variant-seconds", type=float, default=30.0)
    parser.add_argument("--shape", default="qwen2.5-1.5b", choices=sorted(shapes.SHAPES))
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="first logged steps left out of tokens/s")
    parser.add_argument("--tokens-per-step", type=int, default=8192)
    parser.add_argument("--peak", type=float, help="dense bf16 TFLOP/s of the card (hardware.py)")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    if args.dry_run:
        return dry_run(args)
    args.shape = shapes.SHAPES[args.shape]
    args.peak = args.peak or card_peak()
    result = steps.StepResult(args.json, "sft_throughput")
    result.update(peak_bf16_tflops=args.peak)
    try:
        run(args, result)
    except Exception as exc:  # the check goes on to the next step with the reason recorded
        result.finish("failed", f"{type(exc).__name__}: {exc}"[:300])
    return 0 if result.data["status"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
