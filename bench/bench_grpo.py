"""GRPO teacher on CPU (issue 12): does the accuracy reward rise, how long a step takes, and what the GRPO
teacher scores on held-out problems against the model it started from (and the student distilled from it).

Runs recipes/grpo-quickstart.yaml stage by stage (grpo -> generate -> filter -> sft -> eval; publish is left
out) in its own run dir, timing each stage, then prints:
- the mean accuracy reward over the first and last ``--window`` GRPO steps, with a bootstrap 95% interval of
  their difference (over steps), seconds per step, completion length and truncated share;
- held-out pass@1 of the starting model, the GRPO teacher and the student with 95% CIs, and the paired
  difference GRPO teacher - starting model over problems (eval.stats, the eval stage's own statistics).

    HF_HUB_OFFLINE=1 python bench/bench_grpo.py                              # the recipe as shipped
    HF_HUB_OFFLINE=1 python bench/bench_grpo.py grpo.max_steps=10            # overrides as for `distill`
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STAGES = ("grpo", "generate", "filter", "sft", "eval")


def run_stages(recipe_path: str, run_dir: str, overrides: list[str]) -> dict[str, float]:
    from distill.pipeline import run_pipeline
    from distill.recipe import load_recipe

    recipe = load_recipe(recipe_path, [*overrides, f"run_dir={run_dir}"])
    seconds = {}
    for stage in STAGES:
        started = time.perf_counter()
        run_pipeline(recipe, only=stage)
        seconds[stage] = round(time.perf_counter() - started, 1)
        print(f"[bench] {stage}: {seconds[stage]:.0f} s", flush=True)
    return seconds


def reward_windows(history: list[dict], window: int, seed: int = 0) -> dict[str, float]:
    steps = [e for e in history if "rewards/accuracy/mean" in e]
    first = [e["rewards/accuracy/mean"] for e in steps[:window]]
    last = [e["rewards/accuracy/mean"] for e in steps[-window:]]
    rng = random.Random(seed)
    deltas = sorted(
        sum(rng.choices(last, k=len(last))) / len(last) - sum(rng.choices(first, k=len(first))) / len(first)
        for _ in range(10_000)
    )
    return {
        "steps": len(steps),
        "first": sum(first) / len(first),
        "last": sum(last) / len(last),
        "ci95": (deltas[250], deltas[9750]),
        "seconds_per_step": sum(e["step_time"] for e in steps) / len(steps),
        "length_first": sum(e["completions/mean_length"] for e in steps[:window]) / len(first),
        "length_last": sum(e["completions/mean_length"] for e in steps[-window:]) / len(last),
        "clipped_first": sum(e["completions/clipped_ratio"] for e in steps[:window]) / len(first),
        "clipped_last": sum(e["completions/clipped_ratio"] for e in steps[-window:]) / len(last),
    }


def teacher_vs_start(eval_dir: Path, task: str):
    """Paired difference (GRPO teacher - starting model) over held-out problems, from each row's rows.json."""
    from eval import stats

    rows = {p.parent.name: json.loads(p.read_text()) for p in eval_dir.glob("*/rows.json")}
    teacher = next(v for k, v in rows.items() if k.startswith("teacher"))
    start = next(v for k, v in rows.items() if k.startswith("grpo_start"))

    def scores(result):
        return {key: c / n for key, (n, c, _) in result["per_problem"][task].items()}

    return stats.paired_difference(scores(teacher), scores(start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/grpo-quickstart.yaml")
    parser.add_argument("--run-dir", default="runs/bench-grpo")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    seconds = run_stages(args.recipe, args.run_dir, args.overrides)
    run = Path(args.run_dir)
    history = json.loads((run / "teacher" / "grpo_metrics.json").read_text())["log_history"]
    w = reward_windows(history, args.window)
    print(f"\nstage seconds: {json.dumps(seconds)}")
    print(
        f"GRPO: {w['steps']} steps, {w['seconds_per_step']:.1f} s/step; accuracy reward first {args.window} "
        f"steps {w['first']:.3f} -> last {args.window} {w['last']:.3f} (difference 95% CI "
        f"[{w['ci95'][0]:+.3f}, {w['ci95'][1]:+.3f}], bootstrap over steps); completion length "
        f"{w['length_first']:.1f} -> {w['length_last']:.1f} tokens; truncated {w['clipped_first']:.0%} -> "
        f"{w['clipped_last']:.0%}"
    )
    print((run / "eval" / "comparison.md").read_text())
    diff = teacher_vs_start(run / "eval", "addition_heldout")
    low, high = diff.ci95
    print(
        f"GRPO teacher - starting model, pass@1 on held-out problems (paired over {diff.problems} problems): "
        f"{100 * diff.mean:+.1f} points, 95% CI [{100 * low:+.1f}, {100 * high:+.1f}]"
    )


if __name__ == "__main__":
    main()
