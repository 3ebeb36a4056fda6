"""GRPO with and without DAPO's dynamic sampling (distill/grpo/sampling_trainer.py), side by side on CPU, from
the same SFT student and the same prompts, at an equal number of generated tokens.

  python bench/bench_dynamic_sampling.py --student runs/quickstart/students/smollm2-135m-addition/final \
      --steps 12 --json /tmp/bench_ds.json

1. ``plain``: GRPO for ``--steps`` steps; the tokens its generation processed (TRL's ``num_input_tokens_seen``:
   prompt + completion tokens of every generated batch) become the budget;
2. ``dynamic``: GRPO with dynamic sampling, stopped once its generation has processed as many tokens (extra
   draws included);
3. ``heldout``: the start model and both arms sample the held-out sums (``--samples`` each, the quickstart's
   sampling), the shared verifier scores them: pass@1 with 95% CIs and the paired difference dynamic - plain
   (eval/stats.py, as the eval stage computes them).
Per arm: the reward curve, the share of zero-variance groups per step (TRL's frac_reward_zero_std: of every
draw of the step), extra prompts drawn, seconds and peak RSS of this process.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from common import REPO, run_parts

SYSTEM = "You are a careful calculator. Answer with the final number in \\boxed{N}."


def _options(args, dynamic: bool):
    from distill.config.grpo import GRPOTeacherConfig

    return GRPOTeacherConfig(
        model=args.student, rewards=["accuracy"], answer_fallback=args.fallback, num_generations=8,
        batch_size=16, learning_rate=2e-5, beta=0.0, loss_type="dapo", epsilon_high=0.28,
        max_prompt_length=128, max_completion_length=48, temperature=0.8, top_p=0.95, report_to=[],
        dynamic_sampling=dynamic, max_extra_draws=args.max_extra_draws, seed=0,
    )  # fmt: skip


def _train(args, dynamic: bool, budget: int | None) -> dict:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig

    from distill.config.data import DataConfig
    from distill.grpo.prompts import PROMPTS_FILE, prepare_prompts
    from distill.grpo.rewards import build_reward_funcs
    from distill.grpo.sampling_trainer import DistillGRPOTrainer

    cfg = _options(args, dynamic)
    out = args.out / ("dynamic" if dynamic else "plain")
    out.mkdir(parents=True, exist_ok=True)
    data = DataConfig(source=str(REPO / "recipes/data/addition_train.jsonl"), system_prompt=SYSTEM, limit=400)
    prepare_prompts(args.student, cfg, data, out)

    class Budget(TrainerCallback):
        def on_step_end(self, targs, state, control, **kwargs):
            if budget is not None and state.num_input_tokens_seen >= budget:  # never unset max_steps' stop
                control.should_training_stop = True

    tokenizer = AutoTokenizer.from_pretrained(args.student)
    config = GRPOConfig(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=16, num_generations=8,
        max_completion_length=48, temperature=0.8, top_p=0.95, learning_rate=2e-5, beta=0.0, loss_type="dapo",
        epsilon_high=0.28, max_steps=args.steps if budget is None else args.steps * 4, use_cpu=True,
        report_to="none", logging_steps=1, save_strategy="no", seed=0, disable_tqdm=True,
    )  # fmt: skip
    trainer = DistillGRPOTrainer(
        dynamic_sampling=dynamic, max_extra_draws=args.max_extra_draws, reflection_phrases=[],
        model=AutoModelForCausalLM.from_pretrained(args.student),
        reward_funcs=build_reward_funcs(cfg.rewards, cfg.reward_options()), args=config,
        train_dataset=datasets.load_dataset("parquet", data_files=str(out / PROMPTS_FILE), split="train"),
        processing_class=tokenizer, callbacks=[Budget()],
    )  # fmt: skip
    started = time.perf_counter()
    trainer.train()
    trainer.save_model(str(out / "final"))
    tokenizer.save_pretrained(str(out / "final"))
    steps = [e for e in trainer.state.log_history if "reward" in e]
    return {
        "steps": trainer.state.global_step,
        "tokens": trainer.state.num_input_tokens_seen,
        "seconds": round(time.perf_counter() - started, 1),
        "reward": [round(e["reward"], 3) for e in steps],
        "frac_reward_zero_std": [round(e.get("frac_reward_zero_std", 0.0), 3) for e in steps],
        "zero_variance_share": [e.get("dynamic_sampling/zero_variance_share") for e in steps],
        "extra_prompts": [e.get("dynamic_sampling/extra_prompts") for e in steps],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def plain(args) -> dict:
    result = _train(args, dynamic=False, budget=None)
    args.budget = result["tokens"]
    return result


def dynamic(args) -> dict:
    return _train(args, dynamic=True, budget=args.budget)


def _solved(model: str, problems: list[dict], samples: int) -> dict[str, float]:
    """Per problem: the share of ``samples`` answers the verifier accepts (last \\boxed{} else last number)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.verify import verify_many

    tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left")
    lm = AutoModelForCausalLM.from_pretrained(model).eval()
    asked = [p for p in problems for _ in range(samples)]
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p["problem"]}],
            add_generation_prompt=True,
            tokenize=False,
        )  # fmt: skip
        for p in asked
    ]
    torch.manual_seed(0)
    completions = []
    for start in range(0, len(texts), 64):
        enc = tokenizer(
            texts[start : start + 64], return_tensors="pt", padding=True, add_special_tokens=False
        )
        with torch.no_grad():
            out = lm.generate(**enc, do_sample=True, temperature=0.8, top_p=0.95, top_k=0, max_new_tokens=48)
        completions += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    verdicts = verify_many(
        [(str(p["answer"]), c) for p, c in zip(asked, completions, strict=True)], "last_number"
    )
    solved: dict[str, float] = {}
    for p, v in zip(asked, verdicts, strict=True):
        solved[p["id"]] = solved.get(p["id"], 0.0) + v.correct / samples
    boxed = sum("\\boxed{" in c for c in completions) / len(completions)
    return {"per_problem": solved, "boxed_share": round(boxed, 3)}


def heldout(args) -> dict:
    from distill.records import read_rows
    from eval.stats import mean_estimate, paired_difference, rounded

    problems = read_rows(REPO / "eval/tasks/data/addition_heldout.jsonl")[: args.limit]
    for number, p in enumerate(problems):
        p.setdefault("id", str(number))
    rows = {}
    models = {"start": args.student, "plain": str(args.out / "plain" / "final"),
              "dynamic": str(args.out / "dynamic" / "final")}  # fmt: skip
    for label, model in models.items():
        rows[label] = _solved(model, problems, args.samples)
    out = {}
    for label, row in rows.items():
        estimate = mean_estimate(list(row["per_problem"].values()))
        out[label] = {"pass@1": round(estimate.mean, 4), "ci95": rounded(estimate.ci95),
                      "boxed_share": row["boxed_share"]}  # fmt: skip
    diff = paired_difference(rows["dynamic"]["per_problem"], rows["plain"]["per_problem"])
    out["dynamic_minus_plain"] = (
        None if diff is None else {"mean": round(diff.mean, 4), "ci95": rounded(diff.ci95)}
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--student", default=str(REPO / "runs/quickstart/students/smollm2-135m-addition/final")
    )
    parser.add_argument(
        "--steps", type=int, default=12, help="steps of the plain arm (its tokens: the budget)"
    )
    parser.add_argument("--max-extra-draws", type=int, default=2)
    parser.add_argument("--fallback", default="last_number", help="accuracy reward's answer rule")
    parser.add_argument("--limit", type=int, default=60, help="held-out sums")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_dynamic_sampling"))
    parser.add_argument("--parts", default="plain,dynamic,heldout")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.budget = None
    return run_parts({"plain": plain, "dynamic": dynamic, "heldout": heldout}, args)


if __name__ == "__main__":
    raise SystemExit(main())
