"""Student methods side by side on the quickstart task: sft, kd, on_policy and sft -> on_policy, from the same
base (SmolLM2-135M-Instruct) and the same teacher, at matched training compute; held-out pass@1 with 95% CIs
and paired differences.

    HF_HUB_OFFLINE=1 python bench/bench_student_methods.py --dry-run    # build + validate both recipes (~1 min)
    HF_HUB_OFFLINE=1 python bench/bench_student_methods.py              # ~60-90 min on 2 free cores

Two runs of the real pipeline (`distill run`), in runs/bench-methods-*:

1. **teacher**: recipes/onpolicy-quickstart.yaml, whose first student is the quickstart's (self-distillation:
   6.7% -> ~45% held-out pass@1); that SFT student is the teacher of step 2, stronger than the base and with
   its tokenizer, so its logits can be matched. (The run also gives that recipe's own on-policy student.)
2. **methods**: that teacher samples the kept traces (rejection sampling, as the quickstart), and four
   students start from the base: `sft` (the kept traces), `kd` (the teacher's logits on them, forward KL),
   `on_policy` (the student's own samples of the same prompts, reverse KL) and `sft-on-policy` (half the
   budget as SFT, then on-policy from there with `init`).

**Matched compute** is counted in FLOPs, 2 x params x tokens per forward pass and 6 x params x tokens per
training pass (teacher and student both have P = 135M parameters): an SFT step over T tokens costs 6PT, a kd
step 6PT + 2PT (the teacher's pass), an on-policy step 2PT (sampling: prefill + decode) + 6PT + 2PT. The SFT
student's budget B = 6P x (tokens of the kept traces) x epochs sets the others' steps: kd gets B / 8PT_kd
steps, on_policy B / 10PT_op steps with T_op = prompt + max_completion_length tokens per sample, and
sft-on-policy one epoch of SFT (B/2) plus half of on_policy's steps. The FLOPs each student really used are
recomputed from its manifest afterwards and printed with its pass@1 (accuracy per unit of compute).
Wall time on this shared machine is printed too but is not what is matched (it moves with the load).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
PARAMS_NOTE = "FLOPs = 2P x tokens per forward, 6P x tokens per training pass"
BATCH = 8
COMPLETION = 32  # on-policy samples' token budget (the quickstart's answers need ~10-30 tokens)


def _quickstart(run_dir: Path, file: str = "quickstart.yaml") -> dict:
    recipe = yaml.safe_load((REPO / "recipes" / file).read_text())
    recipe["run_dir"] = str(run_dir)
    for student in recipe["students"]:
        student["report_to"] = []
    return recipe


def teacher_recipe(root: Path) -> dict:
    """Step 1 is recipes/onpolicy-quickstart.yaml as shipped: its first student is the quickstart's (same
    traces, same settings), and the run also times and scores that recipe's own on-policy student."""
    recipe = _quickstart(root / "teacher", "onpolicy-quickstart.yaml")
    recipe["name"] = "bench-methods-teacher"
    return recipe


def methods_recipe(root: Path, teacher_dir: Path | str, budget: dict | None) -> dict:
    """Step 2: the teacher's traces, four students from the base at the budget's step counts."""
    recipe = _quickstart(root / "methods")
    recipe["name"] = "bench-methods"
    recipe["teacher"]["model"] = str(teacher_dir)
    sft = recipe["students"][0]
    sft.update(name="sft", epochs=2, batch_size=BATCH)
    steps = budget or {"kd": 10, "on_policy": 10, "sft_half_epochs": 1}
    common = {"model": sft["model"], "max_length": sft["max_length"], "batch_size": BATCH, "report_to": []}
    on_policy = {"max_completion_length": COMPLETION, "beta": 1.0, "temperature": 1.0}
    recipe["students"] = [
        sft,
        {
            **common,
            "name": "kd",
            "method": "kd",
            "learning_rate": sft["learning_rate"],
            "max_steps": steps["kd"],
            "packing": False,
        },
        {
            **common,
            "name": "on-policy",
            "method": "on_policy",
            "learning_rate": sft["learning_rate"],
            "max_steps": steps["on_policy"],
            "lr_scheduler": "constant",
            "on_policy": on_policy,
        },
        {**copy.deepcopy(sft), "name": "sft-half", "epochs": steps["sft_half_epochs"]},
        {
            **common,
            "name": "sft-on-policy",
            "method": "on_policy",
            "init": "sft-half",
            "learning_rate": sft["learning_rate"],
            "max_steps": max(1, steps["on_policy"] // 2),
            "lr_scheduler": "constant",
            "on_policy": on_policy,
        },
    ]
    recipe["eval"].update(include_teacher=True, include_base=True)
    recipe["release"]["gate"]["require_beats_teacher"] = False
    return recipe


def _write(recipe: dict, root: Path) -> Path:
    path = root / f"{recipe['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _distill(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "distill.cli", *args], check=True, cwd=REPO)


def _manifest(recipe: dict) -> dict:
    return json.loads((Path(recipe["run_dir"]) / "manifest.json").read_text())


def _params() -> int:
    from student import plan

    return plan.parameter_count(plan.KNOWN_SHAPES["smollm2-135m-instruct"])


def budget_from(manifest: dict) -> dict:
    """The other students' steps from the SFT student's FLOPs (module docstring)."""
    sft = manifest["stages"]["sft:sft"]["metrics"]
    tokens_per_epoch, rows = sft["tokens"], sft["train_rows"]
    budget = 6 * tokens_per_epoch * 2  # x P: 2 epochs
    kd_tokens = tokens_per_epoch / rows * BATCH  # the same rows, BATCH per step
    prompt = (tokens_per_epoch - sft["completion_tokens"]) / rows
    op_tokens = (prompt + COMPLETION) * BATCH
    return {
        "kd": max(1, round(budget / (8 * kd_tokens))),
        "on_policy": max(1, round(budget / (10 * op_tokens))),
        "sft_half_epochs": 1,
        "budget_flops": budget * _params(),
    }


def used_flops(metrics: dict) -> float:
    """The FLOPs a student really used, from what its stage recorded (tokens_total: prompt + completion
    tokens of every training micro-batch, summed over ranks)."""
    p = _params()
    if metrics.get("method", "sft") == "sft":
        epochs = metrics["steps"] / max(1, -(-metrics["train_rows"] // BATCH))
        return 6 * p * metrics["tokens"] * epochs
    per_token = 8 if metrics["method"] == "kd" else 10  # + the teacher's pass (+ sampling for on_policy)
    return per_token * p * metrics["tokens_total"]


def report(recipe: dict) -> dict:
    from eval import stats

    manifest, run = _manifest(recipe), Path(recipe["run_dir"])
    per_problem = {}
    for folder in (run / "eval").iterdir():
        rows = folder / "rows.json"
        if rows.exists():
            result = json.loads(rows.read_text())
            label = result["rows"][0]["model"]
            per_problem[label] = {
                k: c / n for k, (n, c, _) in result["per_problem"]["addition_heldout"].items()
            }
    out = {}
    for name, scores in per_problem.items():
        estimate = stats.mean_estimate(list(scores.values()))
        stage = manifest["stages"].get(f"sft:{name}", {}).get("metrics", {})
        flops = used_flops(stage) if stage else None
        if name == "sft-on-policy":
            flops += used_flops(manifest["stages"]["sft:sft-half"]["metrics"])
        out[name] = {
            "pass_at_1": round(estimate.mean, 4),
            "ci95": stats.rounded(estimate.ci95),
            "train_pflops": round(flops / 1e15, 3) if flops else None,
            "train_seconds": stage.get("train_seconds"),
        }
    for name in ("kd", "on-policy", "sft-on-policy"):
        if name in per_problem and "sft" in per_problem:
            diff = stats.paired_difference(per_problem[name], per_problem["sft"])
            out[name]["minus_sft"] = {"mean": round(diff.mean, 4), "ci95": stats.rounded(diff.ci95)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "bench-methods")
    parser.add_argument("--dry-run", action="store_true", help="build and validate the recipes only")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    os.chdir(REPO)
    first = teacher_recipe(args.root)
    teacher_dir = Path(first["run_dir"]) / "students" / first["students"][0]["name"] / "final"
    if args.dry_run:  # the teacher folder does not exist yet: the base model stands in for it
        _distill("validate", str(_write(first, args.root)))
        _distill("validate", str(_write(methods_recipe(args.root, "smollm2-135m-instruct", None), args.root)))
        return 0
    _distill("run", str(_write(first, args.root)))
    # Pass 1 of step 2 trains only the SFT student, whose recorded tokens set everyone's budget.
    second = methods_recipe(args.root, teacher_dir, None)
    only_sft = _write({**second, "students": second["students"][:1]}, args.root)
    for stage in ("generate", "filter", "sft"):  # the full run below skips all three (same fingerprints)
        _distill(stage, str(only_sft))
    budget = budget_from(_manifest(second))
    print(f"[bench] budget: {json.dumps(budget)} ({PARAMS_NOTE})", flush=True)
    second = methods_recipe(args.root, teacher_dir, budget)
    _distill("run", str(_write(second, args.root)))
    results = {"budget": budget, "students": report(second)}
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
