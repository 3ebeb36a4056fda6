"""`method: on_policy`: TRL's DistillationTrainer. The student samples completions of the kept traces'
prompts (their system prompt, through the student's chat template), the teacher scores every token of them,
and the loss is the generalised JSD (``on_policy.beta``; 1 = reverse KL) per completion token.

Runs in the stage's process (strategy ``single``) or in every process ``accelerate launch`` starts
(``python -m student.methods.on_policy JOB.json``); job file, resume, launch, the what-ran check and the
final save are distill/training.py's."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.recipe import StudentConfig
from distill.records import iter_row_batches
from distill.runs import atomic_write_json
from distill.training import Method, fit, main, on_cpu, shared_trainer_args
from student.methods.common import StepMetrics, counting, load_teacher, summarise

METRICS_FILE = "distill_metrics.json"
PROMPTS_FILE = "prompts.arrow"  # read memory-mapped by the trainer
DATA_FILE = "data.json"


def prepare_prompts(
    model_path: str,
    train_file: Path,
    out_dir: Path,
    cfg: StudentConfig,
    prompts: dict[str, list] | None = None,
) -> dict[str, Any]:
    """The prompts (``prompts``: id -> messages, else the kept traces' distinct ones), each repeated
    completions_per_prompt times, and the student's tokenizer with its end-of-turn token as eos, written
    once; returns the job."""
    data_file = out_dir / DATA_FILE
    if data_file.exists() and (out_dir / PROMPTS_FILE).exists():
        return json.loads(data_file.read_text())
    from student.data import load_student_tokenizer

    started = time.time()
    tokenizer, eos, _ = load_student_tokenizer(model_path)
    tokenizer.padding_side = "left"  # DistillationTrainer generates from left-padded prompts
    if tokenizer.pad_token is None:
        tokenizer.pad_token = eos
    if prompts is None:  # the kept traces' distinct prompts, read a batch at a time (never every trace)
        prompts = {}
        for batch in iter_row_batches(train_file):
            for row in batch:
                prompts.setdefault(str(row.get("prompt_id", len(prompts))), row["prompt"])
    if not prompts:
        raise DistillError(f"{train_file}: no kept traces, so no prompts to distil on; check the filter")
    k = cfg.on_policy.completions_per_prompt
    rows = [{"prompt": prompt} for prompt in prompts.values() for _ in range(k)]
    _write_prompts(rows, out_dir / PROMPTS_FILE)
    tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    job = {
        "student": cfg.model_dump(mode="json"),
        "model_path": model_path,
        "tokenizer": str(out_dir / "tokenizer"),
        "train_file": str(out_dir / PROMPTS_FILE),
        "out_dir": str(out_dir),
        "eos_token_id": tokenizer.convert_tokens_to_ids(eos),
        "data": {
            "prompts": len(prompts),
            "train_rows": len(rows),
            "prepare_seconds": round(time.time() - started, 1),
        },
    }
    atomic_write_json(data_file, job)
    return job


def _write_prompts(rows: list[dict[str, Any]], path: Path) -> None:
    """The prompt rows as one Arrow file (what ``datasets.Dataset.from_file`` maps), written atomically."""
    import pyarrow as pa

    table = pa.Table.from_pylist(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    tmp.rename(path)


def build_args(cfg: StudentConfig, out_dir: Path, cpu: bool):
    from trl import DistillationConfig

    knobs = cfg.on_policy
    return DistillationConfig(
        **shared_trainer_args(cfg, out_dir, cpu),
        max_grad_norm=cfg.max_grad_norm,
        weight_decay=cfg.weight_decay,
        beta=knobs.beta,
        temperature=knobs.temperature,
        top_p=knobs.top_p,
        max_completion_length=knobs.max_completion_length,
        use_vllm=knobs.use_vllm,
        vllm_mode=knobs.vllm_mode,
        dataloader_num_workers=0,
    )


def _count(inputs) -> tuple[int, int, int]:
    scored = int(inputs["completion_mask"].sum())
    return scored, scored + int(inputs["prompt_mask"].sum()), int(inputs["completion_mask"].shape[0])


def run_training(job: dict[str, Any]) -> dict[str, Any]:
    """Train as ``job`` says (see ``prepare_prompts``); returns rank 0's metrics."""
    import datasets
    from transformers import AutoTokenizer
    from trl import DistillationTrainer

    from student.trainer import load_model

    cfg = StudentConfig.model_validate(job["student"])
    out_dir, cpu = Path(job["out_dir"]), on_cpu()
    tokenizer = AutoTokenizer.from_pretrained(job["tokenizer"])
    model = load_model(job["model_path"], cfg, cpu)
    model.config.eos_token_id = job["eos_token_id"]
    model.generation_config.eos_token_id = job["eos_token_id"]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    teacher = load_teacher(job["teacher_path"], model, cpu)
    trainer = counting(DistillationTrainer, _count)(
        model=model,
        teacher_model=teacher,
        args=build_args(cfg, out_dir, cpu),
        train_dataset=datasets.Dataset.from_file(job["train_file"]),  # memory-mapped
        processing_class=tokenizer,
    )
    trainer.callback_handler.callbacks.insert(0, StepMetrics(trainer))
    knobs = cfg.on_policy.model_dump()
    return fit(trainer, tokenizer, job, METHOD, lambda t, r: summarise(t, r, job, {"on_policy": knobs}))


METHOD = Method(module="student.methods.on_policy", train=run_training, metrics_file=METRICS_FILE)

if __name__ == "__main__":
    sys.exit(main(run_training))
