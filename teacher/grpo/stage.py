"""Stage `grpo`: train the teacher with TRL's GRPOTrainer on verifiable rewards (R1-Zero style).

1. prompts: the same sources and rendering as the generate stage (teacher/prompts.py); prompts longer than
   ``grpo.max_prompt_length`` tokens are dropped and counted; optionally only prompts whose pass rate under
   the starting model lies in ``grpo.pass_rate_filter.band`` are kept (all-right or all-wrong groups give
   GRPO no signal). Written once into the partial folder, so a resumed attempt trains on the same set;
2. train through the one training-job mechanism (distill/training.py), as the students do: strategy
   ``single`` in this process, anything else through `accelerate launch`, resuming from the last complete
   checkpoint when a killed attempt left one;
3. check that training ran with the world size the recipe asked for; the teacher lands in out_dir/final.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from distill import training
from distill.errors import DistillError
from distill.recipe import DataConfig, GRPOTeacherConfig
from distill.records import write_parquet
from distill.runs import atomic_write_json
from distill.verify import verify_many
from teacher.grpo.trainer import METHOD
from teacher.prompts import CODE_FIELDS, data_prompts, prompt_messages

PROMPTS_FILE = "prompts.parquet"
PROMPTS_META = "prompts.json"


def train_teacher(
    model_path: str, cfg: GRPOTeacherConfig, data: DataConfig, out_dir: Path, judge: dict | None = None
) -> dict[str, Any]:
    """GRPO-train ``model_path`` on ``data``'s prompts; the trained teacher lands in out_dir/final. ``judge``
    (distill.judge.judge_job) is the judge the ``judge`` reward asks."""
    prepared = prepare_prompts(model_path, cfg, data, out_dir)
    job = {
        "grpo": cfg.model_dump(mode="json"),
        "model_path": model_path,
        "prompts_file": str(out_dir / PROMPTS_FILE),
        "out_dir": str(out_dir),
        **({"judge": judge} if judge else {}),
    }
    return {**prepared, **training.run_job(METHOD, job, cfg.launch, "grpo")}


def prepare_prompts(
    model_path: str, cfg: GRPOTeacherConfig, data: DataConfig, out_dir: Path
) -> dict[str, Any]:
    """Write the training prompts (TRL conversational ``prompt`` + ``answer``) once; reused on resume."""
    meta_file, prompts_file = out_dir / PROMPTS_META, out_dir / PROMPTS_FILE
    if meta_file.exists() and prompts_file.exists():
        return json.loads(meta_file.read_text())
    from transformers import AutoTokenizer

    where = f"grpo data.source {data.source}"
    prompts = data_prompts(data, where)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    rows, too_long = [], 0
    for prompt in prompts:
        messages = prompt_messages(prompt, data.prompt_template, data.system_prompt)
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) > cfg.max_prompt_length:
            too_long += 1
            continue
        code = {key: prompt[key] for key in CODE_FIELDS if key in prompt}  # the `code` reward's tests
        rows.append(
            {"prompt": messages, "answer": str(prompt["answer"]), "prompt_id": str(prompt["id"]), **code}
        )
    meta: dict[str, Any] = {"prompts_in": len(prompts), "prompts_too_long": too_long}
    if cfg.pass_rate_filter and rows:
        rows, meta["pass_rate_filter"] = filter_by_pass_rate(model_path, cfg, rows)
    if not rows:
        raise DistillError(
            f"{where}: no training prompts left ({too_long} over grpo.max_prompt_length "
            f"{cfg.max_prompt_length}"
            + (", the rest outside grpo.pass_rate_filter.band" if cfg.pass_rate_filter else "")
            + "); widen the limits"
        )
    meta["prompts"] = len(rows)
    write_parquet(rows, prompts_file)
    atomic_write_json(meta_file, meta)
    return meta


def filter_by_pass_rate(
    model_path: str, cfg: GRPOTeacherConfig, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Sample each prompt ``samples`` times with the starting model, verify, keep those inside the band."""
    from teacher.backends import GenerationRequest, SamplingSpec, make_backend

    band = cfg.pass_rate_filter
    requests = [
        GenerationRequest(row["prompt_id"], i, row["prompt"], cfg.seed * 1000 + i)
        for row in rows
        for i in range(band.samples)
    ]
    started = time.perf_counter()
    backend = make_backend("transformers", model_path, batch_size=band.batch_size, dtype="float32")
    try:
        sampling = SamplingSpec(cfg.temperature, cfg.top_p, cfg.max_completion_length)
        results = list(backend.generate(requests, sampling))
    finally:
        backend.close()
    by_id = {row["prompt_id"]: row for row in rows}
    correct: dict[str, list[bool]] = defaultdict(list)
    for result, ok in zip(results, samples_correct(cfg, by_id, results), strict=True):
        correct[result.prompt_id].append(ok)
    rates = {pid: sum(v) / len(v) for pid, v in correct.items()}
    low, high = band.band
    kept = [row for row in rows if low <= rates.get(row["prompt_id"], 0.0) <= high]
    stats = {
        "band": [low, high],
        "samples": band.samples,
        "prompts_measured": len(rows),
        "prompts_kept": len(kept),
        "mean_pass_rate": round(sum(rates.values()) / max(len(rates), 1), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(
        f"[distill] grpo: pass-rate filter kept {len(kept)} of {len(rows)} prompts "
        f"(band [{low}, {high}], mean pass rate {stats['mean_pass_rate']:.2f})",
        flush=True,
    )
    return kept, stats


def samples_correct(cfg: GRPOTeacherConfig, by_id: dict[str, dict[str, Any]], results) -> list[bool]:
    """Each sample's verdict as the rewards would give it: a prompt with tests by the code checker (every
    test passed, with the `code` reward's deadlines), any other by the answer verifier."""
    from teacher.grpo.rewards import code_reward

    rows = [by_id[r.prompt_id] for r in results]
    columns = {key: [row.get(key) for row in rows] for key in CODE_FIELDS}
    options = {**cfg.reward_options()["code"], "all_or_nothing": True}
    # The code reward scores the samples of prompts with tests and leaves the rest None (its own rule).
    scores = code_reward([r.completion for r in results], **columns, **options)
    correct = {i: score == 1.0 for i, score in enumerate(scores) if score is not None}
    plain = [i for i, score in enumerate(scores) if score is None]
    verdicts = verify_many(
        [(rows[i]["answer"], results[i].completion) for i in plain],
        cfg.answer_fallback,
        workers=cfg.verify_workers,
        timeout=cfg.verify_timeout,
        progress=False,
    )
    correct.update(zip(plain, (v.correct for v in verdicts), strict=True))
    return [correct[i] for i in range(len(results))]
