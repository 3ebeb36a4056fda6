"""Stage `sft`: fine-tune a student on the filtered traces with TRL's SFTTrainer, in-process or launched.

1. tokenize once (student/data.py): count over-long examples, check the template keeps <think> and ends
   every turn with its end-of-turn token; write the token set and a job file into the partial folder;
2. train through the one training-job mechanism (distill/training.py): strategy ``single`` in this process,
   anything else through `accelerate launch`, resuming from the last complete checkpoint when a killed
   attempt left one;
3. check what really ran (world size, the model wrapper) against what the recipe asked for: accelerate
   falls back silently (e.g. FSDP2 on a CPU becomes DDP), and a student trained another way than stated
   must not be recorded as if it had not.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from distill import training
from distill.errors import DistillError
from distill.recipe import StudentConfig
from distill.runs import atomic_write_json
from student.trainer import METHOD

DATA_FILE = "data.json"
TOKENS_DIR = "train-tokens"  # Arrow shards of ids and completion masks (student/data.py)


def method_of(cfg: StudentConfig) -> training.Method:
    """The training process of the student's method (the dispatch; each is a thin trainer module)."""
    if cfg.method == "on_policy":
        from student.methods.on_policy import METHOD as ON_POLICY

        return ON_POLICY
    if cfg.method == "kd":
        from student.methods.kd import METHOD as KD

        return KD
    if cfg.method == "grpo":  # the one GRPO training process, shared with the grpo stage
        from distill.grpo.trainer import METHOD as GRPO

        return GRPO
    return METHOD


def train_student(
    model_path: str,
    train_file: Path,
    out_dir: Path,
    cfg: StudentConfig,
    teacher: str | None = None,
    prompts: dict[str, list] | None = None,
) -> dict[str, Any]:
    """Train ``model_path`` on ``train_file`` (prompt/completion rows) by the student's method; the model
    lands in out_dir/final. ``teacher``: the local weights whose logits on_policy and kd match; ``prompts``:
    on_policy's prompts when not the kept traces' (id -> messages)."""
    if not train_file.exists():
        raise DistillError(f"{train_file}: training set missing; run `distill filter` first")
    if cfg.method != "sft" and teacher is None:
        raise DistillError(f"students.{cfg.name}: method {cfg.method} needs the teacher's weights")
    if cfg.method == "on_policy":
        from student.methods.on_policy import prepare_prompts

        job = prepare_prompts(model_path, train_file, out_dir, cfg, prompts)
    else:
        job = prepare_job(model_path, train_file, out_dir, cfg)
    # Knobs left out of the fingerprint (save_steps...) may differ from the attempt that tokenized.
    job["student"] = cfg.model_dump(mode="json")
    if teacher is not None:
        job["teacher_path"] = teacher
    label = f"{cfg.method.replace('_', '-')} {cfg.name}" if cfg.method != "sft" else f"sft {cfg.name}"
    ran = training.run_job(method_of(cfg), job, cfg.launch, label)
    extra = {"packing": job["packing"]} if cfg.method == "sft" else {}
    return {**job["data"], **ran, **extra, "method": cfg.method}


def follow_job(out_dir: Path, cfg: StudentConfig, timeout_s: float = 3600) -> None:
    """Node rank > 0 of a multi-node run: wait for node 0's job file, then join its rendezvous."""
    training.follow_job(method_of(cfg), out_dir, cfg.launch, f"sft {cfg.name}", timeout_s)


def prepare_job(model_path: str, train_file: Path, out_dir: Path, cfg: StudentConfig) -> dict[str, Any]:
    """Tokenize the training set once (reused when a killed attempt left it) and describe the job."""
    data_file = out_dir / DATA_FILE
    if data_file.exists() and (out_dir / TOKENS_DIR).is_dir():
        job = json.loads(data_file.read_text())
        _check_host_memory(model_path, cfg, job["data"]["longest_tokens"])
        return job
    from student.data import load_student_tokenizer, tokenize_to_shards

    started = time.time()
    tokenizer, eos, model_config = load_student_tokenizer(model_path)
    stats = tokenize_to_shards(train_file, tokenizer, out_dir / TOKENS_DIR, cfg.max_length, cfg.too_long)
    _report_too_long(cfg, stats)
    _check_host_memory(model_path, cfg, stats["longest_tokens"])
    tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    job = {
        "student": cfg.model_dump(mode="json"),
        "model_path": model_path,
        "tokenizer": str(out_dir / "tokenizer"),
        "train_file": str(out_dir / TOKENS_DIR),
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


def _check_host_memory(model_path: str, cfg: StudentConfig, longest: int) -> None:
    """Training on the CPU: refuse, before any step, a batch of the set's longest rows that cannot fit in
    the RAM available now (the preflight checked packed students already; unpacked ones need the set)."""
    from student.plan_host import check_host_fits, trains_on_host
    from student.shapes import shape_from_config

    config = Path(model_path) / "config.json"
    if not trains_on_host(cfg) or not config.exists():
        return
    problem = check_host_fits(
        cfg, shape_from_config(json.loads(config.read_text()), str(config)), longest=longest
    )
    if problem:
        raise DistillError(problem)
