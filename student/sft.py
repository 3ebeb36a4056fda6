"""Stage `sft`: fine-tune a student on the filtered traces with TRL's SFTTrainer, in-process or launched.

1. tokenize once (student/data.py): count over-long examples, check the template keeps <think> and ends
   every turn with its end-of-turn token; write the token set and a job file into the partial folder;
2. train: strategy ``single`` in this process, anything else through `accelerate launch` (student/launch.py),
   resuming from the last complete checkpoint (distill/checkpoints.py) when a killed attempt left one;
3. check what really ran (world size, the model wrapper) against what the recipe asked for: accelerate
   falls back silently (e.g. FSDP2 on a CPU becomes DDP), and a student trained another way than stated
   must not be recorded as if it had not.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from distill.checkpoints import last_complete_checkpoint
from distill.errors import DistillError
from distill.recipe import StudentConfig
from distill.records import read_rows
from distill.runs import atomic_write_json
from student.trainer import FINAL, METRICS_FILE, run_training

JOB_FILE = "job.json"
DATA_FILE = "data.json"
TOKENS_FILE = "train-tokens.parquet"
# Which wrapper each multi-process strategy must produce (checked when world size > 1).
_EXPECTED_WRAPPER = {
    "cpu": "DistributedDataParallel",
    "ddp": "DistributedDataParallel",
    "zero2": "DeepSpeedEngine",
    "zero3": "DeepSpeedEngine",
    "zero3-offload": "DeepSpeedEngine",
    "fsdp2": "FSDP2",
}


def train_student(model_path: str, train_file: Path, out_dir: Path, cfg: StudentConfig) -> dict[str, Any]:
    """Train ``model_path`` on ``train_file`` (prompt/completion rows); the final model lands in out_dir/final."""
    if not train_file.exists():
        raise DistillError(f"{train_file}: training set missing; run `distill filter` first")
    job = prepare_job(model_path, train_file, out_dir, cfg)
    job["student"] = cfg.model_dump(
        mode="json"
    )  # knobs left out of the fingerprint (save_steps...) may differ
    resume = last_complete_checkpoint(out_dir / "checkpoints")
    job["resume_from"] = str(resume) if resume else None
    # Written once per attempt, resume point included: the other nodes of a multi-node run start from it.
    job["attempt"] = os.environ.get("SLURM_JOB_ID") or uuid.uuid4().hex[:12]
    job_file = out_dir / JOB_FILE
    atomic_write_json(job_file, job)
    if resume:
        print(f"[distill] sft {cfg.name}: resuming from {resume.name}", flush=True)
    (out_dir / METRICS_FILE).unlink(missing_ok=True)
    if cfg.launch.strategy == "single":
        run_training(job)
    else:
        from student.launch import run_launched

        run_launched(cfg.launch, job_file, out_dir / "launch.log")
    return check_result(out_dir, cfg, job)


def follow_job(out_dir: Path, cfg: StudentConfig, timeout_s: float = 3600) -> None:
    """Node rank > 0 of a multi-node run: wait for node 0's job file, then join its rendezvous."""
    from student.launch import run_launched

    job_file, attempt = out_dir / JOB_FILE, os.environ.get("SLURM_JOB_ID")
    deadline = time.time() + timeout_s
    print(f"[distill] sft {cfg.name}: node {cfg.launch.node_rank} waiting for {job_file}", flush=True)
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
    run_launched(cfg.launch, job_file, out_dir / f"launch-node{cfg.launch.node_rank}.log")


def prepare_job(model_path: str, train_file: Path, out_dir: Path, cfg: StudentConfig) -> dict[str, Any]:
    """Tokenize the training set once (reused when a killed attempt left it) and describe the job."""
    data_file = out_dir / DATA_FILE
    if data_file.exists() and (out_dir / TOKENS_FILE).exists():
        return json.loads(data_file.read_text())
    from transformers import AutoConfig, AutoTokenizer

    from student.data import align_eos, save_tokenized, tokenize_rows

    started = time.time()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if not tokenizer.chat_template:
        raise DistillError(
            f"student model {model_path}: its tokenizer has no chat template; give one that has"
        )
    model_config = AutoConfig.from_pretrained(model_path)
    eos = align_eos(tokenizer, model_config)
    rows = read_rows(train_file)
    data = tokenize_rows(rows, tokenizer, cfg.max_length, cfg.too_long, where=str(train_file))
    stats = data.stats(cfg.max_length)
    _report_too_long(cfg, stats)
    save_tokenized(data, out_dir / TOKENS_FILE)
    tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    job = {
        "student": cfg.model_dump(mode="json"),
        "model_path": model_path,
        "tokenizer": str(out_dir / "tokenizer"),
        "train_file": str(out_dir / TOKENS_FILE),
        "out_dir": str(out_dir),
        "packing": cfg.packing if cfg.packing is not None else True,
        "eos_token": eos,
        "eos_token_id": model_config.eos_token_id,
        "data": {**stats, "tokenize_seconds": round(time.time() - started, 1)},
    }
    atomic_write_json(data_file, job)
    return job


def _report_too_long(cfg: StudentConfig, stats: dict[str, Any]) -> None:
    if not stats["too_long"]:
        return
    action = "truncated (their answers are cut)" if cfg.too_long == "truncate" else "dropped"
    print(
        f"[distill] sft {cfg.name}: {stats['too_long']} of {stats['rows_in']} examples are longer than "
        f"max_length {cfg.max_length} (longest {stats['longest_tokens']} tokens): {action}",
        flush=True,
    )


def check_result(out_dir: Path, cfg: StudentConfig, job: dict[str, Any]) -> dict[str, Any]:
    """Read rank 0's metrics and refuse a run that did not train the way the recipe said."""
    metrics_path = out_dir / METRICS_FILE
    if not metrics_path.exists() or not (out_dir / FINAL).is_dir():
        raise DistillError(f"sft {cfg.name}: training ended without {metrics_path.name} or a final model")
    metrics = json.loads(metrics_path.read_text())
    expected = cfg.launch.world_size
    if metrics["world_size"] != expected:
        raise DistillError(
            f"sft {cfg.name}: asked for {expected} processes ({cfg.launch.strategy}) but training ran with world "
            f"size {metrics['world_size']}; accelerate fell back silently - check the launch settings"
        )
    wanted = _EXPECTED_WRAPPER.get(cfg.launch.strategy)
    if expected > 1 and wanted and metrics["wrapper"] != wanted:
        raise DistillError(
            f"sft {cfg.name}: strategy {cfg.launch.strategy} was not applied - the model was wrapped in "
            f"{metrics['wrapper']}, not {wanted} (FSDP2 and DeepSpeed need CUDA GPUs)"
        )
    metrics.pop("log_history", None)
    return {**job["data"], **metrics, "packing": job["packing"], "strategy": cfg.launch.strategy}
