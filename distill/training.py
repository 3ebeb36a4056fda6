"""One training-job mechanism for every trainer (the students' SFT, the teacher's GRPO, the methods to come).

A stage describes one training run as a job (a JSON-able dict: paths plus its recipe section, and
``out_dir``) and names the :class:`Method` that trains it; this module does the rest.

In the stage's process:
1. ``run_job``: resume from the last complete checkpoint (distill/checkpoints.py) when a killed attempt left
   one, write the job file, train in this process (strategy ``single``) or through `accelerate launch`
   (distill/launch.py), then ``check_result``: what really ran (world size, the model wrapper) against what
   the recipe asked for. accelerate falls back silently (FSDP2 on a CPU becomes DDP), and a model trained
   another way than stated must not be recorded as if it had not. ``single`` trains in a child process
   (distill/training_process.py), so an OS kill (out of memory) is reported in one line;
2. ``follow_job``: the other nodes of a multi-node run wait for node 0's job file and join its rendezvous.

In every training process:
3. ``shared_trainer_args``: how a run checkpoints, logs and uses the hardware, the same for every method;
4. ``fit``: train with complete-marker checkpoints and TensorBoard logs, save the final model, write rank
   0's metrics (``what_ran`` + the method's own); ``main``: the `python -m <trainer> JOB.json` entry point.

Adding a method: a trainer module (builds its TRL trainer, summarises its metrics, calls ``fit``; declares
its ``Method``) and a stage that writes its job and calls ``run_job``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.recipe import LaunchConfig
from distill.runs import atomic_write_json

JOB_FILE = "job.json"
FINAL = "final"
# Which wrapper each multi-process strategy must produce (checked when world size > 1 and the method
# records its wrapper).
_EXPECTED_WRAPPER = {
    "cpu": "DistributedDataParallel",
    "ddp": "DistributedDataParallel",
    "zero2": "DeepSpeedEngine",
    "zero3": "DeepSpeedEngine",
    "zero3-offload": "DeepSpeedEngine",
    "fsdp2": "FSDP2",
}


@dataclass(frozen=True)
class Method:
    """A training method as the job mechanism sees it."""

    module: str  # the training process that `accelerate launch` starts: python -m MODULE JOB.json
    train: Callable[[dict[str, Any]], dict[str, Any]]  # the same in this process (strategy single)
    metrics_file: str  # where rank 0 records what ran (train_metrics.json, grpo_metrics.json...)


# --- in the stage's process ---------------------------------------------------------------------------


def run_job(method: Method, job: dict[str, Any], launch: LaunchConfig, label: str) -> dict[str, Any]:
    """Train ``job`` (resumed where a killed attempt stopped) and return rank 0's checked metrics.

    ``label`` names the run in messages ("sft s1", "grpo"). The final model lands in out_dir/final.
    """
    from distill.checkpoints import last_complete_checkpoint

    out_dir = Path(job["out_dir"])
    resume = last_complete_checkpoint(out_dir / "checkpoints")
    job["resume_from"] = str(resume) if resume else None
    # Written once per attempt, resume point included: the other nodes of a multi-node run start from it.
    job["attempt"] = os.environ.get("SLURM_JOB_ID") or uuid.uuid4().hex[:12]
    job_file = out_dir / JOB_FILE
    atomic_write_json(job_file, job)
    if resume:
        print(f"[distill] {label}: resuming from {resume.name}", flush=True)
    (out_dir / method.metrics_file).unlink(missing_ok=True)
    if launch.strategy == "single" and os.environ.get("DISTILL_TRAIN_IN_PROCESS", "0") == "1":
        method.train(job)  # under a debugger, or a test that looks inside the trainer
    elif launch.strategy == "single":  # a child process all the same: an OS kill is reported, not fatal
        from distill.training_process import train_in_child

        train_in_child(method.module, job_file, label)
    else:
        from distill.launch import run_launched

        run_launched(launch, job_file, out_dir / "launch.log", method.module)
    return check_result(method, out_dir, launch, label)


def follow_job(
    method: Method, out_dir: Path, launch: LaunchConfig, label: str, timeout_s: float = 3600
) -> None:
    """Node rank > 0 of a multi-node run: wait for node 0's job file (this attempt's), then join it."""
    from distill.launch import run_launched

    job_file, attempt = out_dir / JOB_FILE, os.environ.get("SLURM_JOB_ID")
    deadline = time.time() + timeout_s
    print(f"[distill] {label}: node {launch.node_rank} waiting for {job_file}", flush=True)
    while True:
        if job_file.exists():
            job = json.loads(job_file.read_text())
            if attempt is None or job.get("attempt") == attempt:
                break
        if time.time() > deadline:
            raise DistillError(
                f"{job_file}: node 0 did not write it within {timeout_s:.0f}s; is node 0 running?"
            )
        time.sleep(2)
    run_launched(launch, job_file, out_dir / f"launch-node{launch.node_rank}.log", method.module)


def check_result(method: Method, out_dir: Path, launch: LaunchConfig, label: str) -> dict[str, Any]:
    """Read rank 0's metrics and refuse a run that did not train the way the recipe said."""
    metrics_path = out_dir / method.metrics_file
    if not metrics_path.exists() or not (out_dir / FINAL).is_dir():
        raise DistillError(f"{label}: training ended without {metrics_path.name} or a final model")
    metrics = json.loads(metrics_path.read_text())
    expected = launch.world_size
    if metrics["world_size"] != expected:
        raise DistillError(
            f"{label}: asked for {expected} processes ({launch.strategy}) but training ran with world size "
            f"{metrics['world_size']}; accelerate fell back silently - check the launch settings"
        )
    wanted = _EXPECTED_WRAPPER.get(launch.strategy)
    if expected > 1 and wanted and "wrapper" in metrics and metrics["wrapper"] != wanted:
        raise DistillError(
            f"{label}: strategy {launch.strategy} was not applied - the model was wrapped in "
            f"{metrics['wrapper']}, not {wanted} (FSDP2 and DeepSpeed need CUDA GPUs)"
        )
    metrics.pop("log_history", None)
    return {**metrics, "strategy": launch.strategy}


# --- in every training process ------------------------------------------------------------------------


def on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def shared_trainer_args(cfg: Any, out_dir: Path, cpu: bool) -> dict[str, Any]:
    """Keyword arguments for an SFTConfig / GRPOConfig from a section with the common training keys
    (learning_rate, lr_scheduler, warmup_ratio, epochs, max_steps, batch_size, gradient_accumulation_steps,
    seed, bf16, gradient_checkpointing, logging_steps, save_steps, save_total_limit, report_to)."""
    checkpointing = cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else not cpu
    return {
        "output_dir": str(out_dir / "checkpoints"),
        "learning_rate": cfg.learning_rate,
        "lr_scheduler_type": cfg.lr_scheduler,
        "warmup_steps": cfg.warmup_ratio,  # transformers>=5: a float in [0, 1) is a ratio of total steps
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps or -1,
        "per_device_train_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "seed": cfg.seed,
        "bf16": cfg.bf16 and not cpu,
        "gradient_checkpointing": checkpointing,
        "gradient_checkpointing_kwargs": {"use_reentrant": False} if checkpointing else None,
        "use_cpu": cpu,
        "logging_steps": cfg.logging_steps,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "save_only_model": False,  # optimizer + scheduler + RNG states: resume continues the same run
        "report_to": cfg.report_to or "none",
        "ddp_find_unused_parameters": False,
        "disable_tqdm": False,
    }


Summary = Callable[[Any, Any], dict[str, Any]]  # (trainer, TrainOutput) -> the method's metrics


def fit(
    trainer,
    tokenizer,
    job: dict[str, Any],
    method: Method,
    summarise: Summary,
    before_final: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Train a built TRL trainer as ``job`` says (resuming from ``job["resume_from"]``), save out_dir/final
    and write rank 0's metrics (``summarise(trainer, result)``) to the method's file; returns them.

    ``before_final(folder)`` runs on rank 0 on the saved weights before the tokenizer joins them (merging a
    LoRA adapter)."""
    from transformers.trainer_callback import ProgressCallback

    from distill.checkpoints import CompleteMarker, SkipEndCheckpoint
    from distill.training_progress import job_label, training_progress

    out_dir = Path(job["out_dir"])
    trainer.add_callback(CompleteMarker())
    trainer.add_callback(SkipEndCheckpoint())
    trainer.remove_callback(ProgressCallback)  # its raw dict per logging step, in the middle of the bar
    trainer.add_callback(training_progress(job_label(job)))
    quiet_tied_keys(trainer)
    log_tensorboard_to(trainer, out_dir / "tensorboard")
    result = trainer.train(resume_from_checkpoint=job.get("resume_from"))
    save_final(trainer, tokenizer, out_dir, before_final)
    metrics = summarise(trainer, result)
    if trainer.is_world_process_zero():
        atomic_write_json(out_dir / method.metrics_file, metrics)
    return metrics


def log_tensorboard_to(trainer, folder: Path) -> None:
    """TensorBoard logs of this run go to ``folder``. transformers' callback fixed its folder when the
    trainer was built (TENSORBOARD_LOGGING_DIR then, else checkpoints/runs/<date>), so it is set on the
    callback itself: `distill run` trains the GRPO teacher and every student in one process, and a process-wide
    setting would leak from one run into the next."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            callback.logging_dir = str(folder)


def add_to_log(state, logs: dict[str, Any], added: dict[str, Any]) -> None:
    """From a callback's ``on_log``: ``added`` joins the step's log entry, both ``logs`` (the report_to
    callbacks that run after this one see it) and the copy the Trainer stored in ``state.log_history`` before
    calling back (the manifest's history and the metrics are read from there)."""
    logs.update(added)
    if state.log_history:
        state.log_history[-1].update(added)


def save_final(trainer, tokenizer, out_dir: Path, before_final: Callable[[Path], None] | None = None) -> None:
    """safetensors + tokenizer (chat template) + generation config into out_dir/final via a temp folder."""
    tmp = out_dir / f".{FINAL}.tmp"
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))  # every rank: ZeRO-3/FSDP gather their shards here
    if not trainer.is_world_process_zero():
        return
    if before_final is not None:
        before_final(tmp)
    tokenizer.save_pretrained(str(tmp))
    final = out_dir / FINAL
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def what_ran(trainer, result, job: dict[str, Any]) -> dict[str, Any]:
    """The facts every method records: world size, optimizer steps, the resume point, training time."""
    return {
        "world_size": trainer.args.world_size,
        "steps": trainer.state.global_step,
        "resumed_from": Path(job["resume_from"]).name if job.get("resume_from") else None,
        "resumed_from_step": _checkpoint_step(job.get("resume_from")),
        "train_seconds": round(result.metrics.get("train_runtime", 0.0), 1),
    }


def _checkpoint_step(path: str | None) -> int | None:
    tail = Path(path).name.rsplit("-", 1)[-1] if path else ""
    return int(tail) if tail.isdigit() else None


def run_loss(history: list[dict[str, Any]]) -> float | None:
    """The mean training loss over every logged optimizer step of the whole run, resumes included: each
    logged loss (the mean over its logging interval) weighted by the steps in that interval, from the log
    history the checkpoints carry. The Trainer's own ``training_loss`` averages only the steps of the last
    process, so a resumed run would not compare with an uninterrupted one."""
    total, steps, last = 0.0, 0, 0
    for entry in history:
        if "loss" in entry and "step" in entry and entry["step"] > last:
            total += entry["loss"] * (entry["step"] - last)
            steps += entry["step"] - last
            last = entry["step"]
    return round(total / steps, 4) if steps else None


def quiet_tied_keys(trainer) -> None:
    """Resuming a tied-embedding model: its checkpoint holds the embedding once, so ``lm_head.weight`` is
    "missing" and the Trainer warns as if the checkpoint were corrupt. Leave out the missing keys whose
    parameter is shared with one that was loaded (then tie again); warn about every other one as before."""
    issue = trainer._issue_warnings_after_load

    def without_tied(load_result):
        tied = tied_parameter_names(trainer.model)
        missing = [key for key in load_result.missing_keys if key not in tied]
        if len(missing) < len(load_result.missing_keys):
            trainer.model.tie_weights()
            load_result = load_result._replace(missing_keys=missing)
        return issue(load_result)

    trainer._issue_warnings_after_load = without_tied


def tied_parameter_names(model) -> set[str]:
    """Names of parameters that are one tensor under several names (``lm_head.weight`` = the embedding)."""
    names: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(parameter), []).append(name)
    return {name for group in names.values() if len(group) > 1 for name in group}


def wrapper_ran(trainer) -> dict[str, str]:
    """The class that really wraps the model (DistributedDataParallel, FSDP2, DeepSpeedEngine...) and
    accelerate's distributed type; ``check_result`` compares the wrapper with the strategy."""
    wrapped = trainer.model_wrapped
    name = type(wrapped).__name__
    if name == type(trainer.model).__name__:
        # FSDP2 swaps the module's class in place (FSDP<Model>) instead of wrapping it.
        name = "FSDP2" if name.startswith("FSDP") else "none"
    return {"wrapper": name, "distributed_type": str(trainer.accelerator.distributed_type).split(".")[-1]}


def main(train: Callable[[dict[str, Any]], Any], argv: list[str] | None = None) -> int:
    """`python -m <trainer module> JOB.json`: what `accelerate launch` starts in every process."""
    argv = sys.argv[1:] if argv is None else argv
    train(json.loads(Path(argv[0]).read_text()))
    end_process_group()
    return 0


def end_process_group() -> None:
    """Tear the process group down before the interpreter does.

    Left to interpreter exit, gloo's worker threads can be destroyed while still joinable and one rank aborts
    ("terminate called without an active exception", exit -6) after training and saving succeeded.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
