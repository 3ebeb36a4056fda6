"""The GRPO training process: TRL's GRPOTrainer on the prepared prompts, resumable, saving the policy.

The one GRPO training process of distill: the `grpo` stage (the teacher) and grpo students both run it.
Runs in the stage's own process (launch strategy ``single``) or in every process that ``accelerate launch``
starts (``python -m distill.grpo.trainer JOB.json``). The job file is the only input; what every trainer
shares (resume, checkpoint markers, the final save, the entry point) is distill/training.py. Rank 0 writes
``grpo_metrics.json``: what really ran (world size, steps, resume point), rewards per function over the
first and last steps, KL, entropy, completion lengths, and the whole log history.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from distill.grpo.curves import curves
from distill.grpo.rewards import build_reward_funcs
from distill.recipe import GRPOTeacherConfig
from distill.training import (
    Method,
    add_to_log,
    fit,
    main,
    on_cpu,
    run_loss,
    shared_trainer_args,
    what_ran,
)

METRICS_FILE = "grpo_metrics.json"
_WINDOW = 10  # steps averaged for the "first" and "last" figures


def build_args(cfg: GRPOTeacherConfig, out_dir: Path, cpu: bool):
    from trl import GRPOConfig

    vllm_mode = {"vllm-colocate": "colocate", "vllm-server": "server"}.get(cfg.generation)
    return GRPOConfig(
        **shared_trainer_args(cfg, out_dir, cpu),
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        epsilon_high=cfg.epsilon_high,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        num_iterations=cfg.num_iterations,
        mask_truncated_completions=cfg.mask_truncated_completions,
        reward_weights=cfg.reward_weights,
        use_vllm=vllm_mode is not None,
        vllm_mode=vllm_mode or "colocate",
        vllm_server_host=cfg.vllm_server_host,
        vllm_server_port=cfg.vllm_server_port,
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
    )


def load_policy(model_path: str, cfg: GRPOTeacherConfig, cpu: bool):
    import torch
    from transformers import AutoModelForCausalLM

    # As for students: fp32 master weights unless ZeRO/FSDP keep their own (then bf16 saves host memory).
    wide = cpu or not cfg.bf16 or cfg.launch.strategy in ("single", "ddp", "cpu")
    return AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32 if wide else torch.bfloat16)


def run_grpo(job: dict[str, Any]) -> dict[str, Any]:
    """Train as described by ``job`` (see distill/grpo/run.py); returns rank 0's metrics."""
    import datasets
    from transformers import AutoTokenizer

    from distill.grpo.sampling_trainer import DistillGRPOTrainer  # imports TRL: only in the training process

    cfg = GRPOTeacherConfig.model_validate(job["grpo"])
    out_dir = Path(job["out_dir"])
    cpu = on_cpu()
    tokenizer = AutoTokenizer.from_pretrained(job["model_path"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    trainer = DistillGRPOTrainer(
        dynamic_sampling=cfg.dynamic_sampling,
        max_extra_draws=cfg.max_extra_draws,
        reflection_phrases=cfg.reflection_phrases,
        model=load_policy(job["model_path"], cfg, cpu),
        reward_funcs=build_reward_funcs(cfg.rewards, {**cfg.reward_options(), **_judge_options(job, cfg)}),
        args=build_args(cfg, out_dir, cpu),
        train_dataset=datasets.load_dataset("parquet", data_files=job["prompts_file"], split="train"),
        processing_class=tokenizer,
    )
    trainer.callback_handler.callbacks.insert(0, TokenRate())  # first: report_to sees tokens_per_second
    return fit(trainer, tokenizer, job, METHOD, lambda trainer, result: _ran(trainer, result, cfg, job))


class TokenRate(TrainerCallback):
    """Adds ``tokens_per_second`` (prompt + completion tokens of every rank, from GRPOTrainer's cumulative
    ``num_tokens``) to each log entry, so the progress line, the tracker and the manifest show throughput."""

    def __init__(self):
        self._last: tuple[float, float] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = (time.perf_counter(), state.num_input_tokens_seen)  # a resumed run's count included
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or logs.get("num_tokens") is None or self._last is None:
            return control
        now, tokens = time.perf_counter(), logs["num_tokens"]
        rate = {"tokens_per_second": round((tokens - self._last[1]) / max(now - self._last[0], 1e-9), 1)}
        add_to_log(state, logs, rate)
        self._last = (now, tokens)
        return control


def _judge_options(job: dict[str, Any], cfg: GRPOTeacherConfig) -> dict[str, dict[str, Any]]:
    """The judge reward's options: the job's judge and the verifier's deadline per call."""
    return {"judge": {"judge": job["judge"], "timeout": cfg.verify_timeout}} if "judge" in job else {}


def _ran(trainer, result, cfg: GRPOTeacherConfig, job: dict[str, Any]) -> dict[str, Any]:
    metrics = {**summarise(trainer.state.log_history, cfg.rewards), **what_ran(trainer, result, job)}
    metrics["train_loss"] = run_loss(trainer.state.log_history)  # the whole run's, resumes included
    if "judge" in cfg.rewards:  # calls, cache hits, tokens, unparsed replies and timeouts (this process)
        from distill.grpo.rewards import judge_usage

        metrics["judge"] = judge_usage()
    resumed_step = int(metrics["resumed_from"].split("-")[-1]) if metrics["resumed_from"] else 0
    steps_now = max(trainer.state.global_step - resumed_step, 1)
    metrics["seconds_per_step"] = round(metrics["train_seconds"] / steps_now, 2)
    metrics["curves"] = curves(trainer.state.log_history)
    return {**metrics, "log_history": trainer.state.log_history}


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarise(history: list[dict[str, Any]], rewards: list[str]) -> dict[str, Any]:
    """First/last-window means of what R1-Zero runs watch: total and per-function reward, accuracy,
    completion length, KL, entropy, clipped (truncated) share."""
    steps = [entry for entry in history if "reward" in entry]
    keys = {
        "reward": "reward",
        "completion_length": "completions/mean_length",
        "truncated_share": "completions/clipped_ratio",
        "kl": "kl",
        "entropy": "entropy",
        "tokens_per_second": "tokens_per_second",
        "reflection_rate": "aha/reflection_rate",
        "zero_variance_share": "dynamic_sampling/zero_variance_share",
        "extra_prompts": "dynamic_sampling/extra_prompts",
        **{f"reward_{name}": f"rewards/{name}/mean" for name in rewards},
    }
    out: dict[str, Any] = {"logged_steps": len(steps)}
    for label, key in keys.items():
        values = [entry[key] for entry in steps if entry.get(key) is not None]
        out[f"{label}_first{_WINDOW}"] = _mean(values[:_WINDOW])
        out[f"{label}_last{_WINDOW}"] = _mean(values[-_WINDOW:])
    return out


METHOD = Method(module="distill.grpo.trainer", train=run_grpo, metrics_file=METRICS_FILE)

if __name__ == "__main__":
    sys.exit(main(run_grpo))
