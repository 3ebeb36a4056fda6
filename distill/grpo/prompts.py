"""GRPO's prompt pool: the data section rendered as the generate stage renders it, over-long prompts dropped,
and the pass-rate filter (before training, and before each context stage by the current policy).

Written once per folder (prompts.parquet + prompts.json), so a resumed attempt trains on the same set.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from distill.config.data import DataConfig
from distill.config.grpo_options import GRPOOptions, PassRateFilter
from distill.errors import DistillError
from distill.prompts import CODE_FIELDS, data_prompts, prompt_messages
from distill.records import read_rows, write_parquet
from distill.runs import atomic_write_json
from distill.verify import verify_many

PROMPTS_FILE = "prompts.parquet"
PROMPTS_META = "prompts.json"


def prepare_prompts(
    model_path: str, cfg: GRPOOptions, data: DataConfig, out_dir: Path, where: str = "grpo"
) -> dict[str, Any]:
    """Write the training prompts (TRL conversational ``prompt`` + ``answer``) once; reused on resume."""
    meta_file, prompts_file = out_dir / PROMPTS_META, out_dir / PROMPTS_FILE
    if meta_file.exists() and prompts_file.exists():
        return json.loads(meta_file.read_text())
    from transformers import AutoTokenizer

    label, where = where, f"{where} data.source {data.source}"
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
        rows, meta["pass_rate_filter"] = filter_by_pass_rate(model_path, cfg, cfg.pass_rate_filter, rows)
    if not rows:
        raise DistillError(
            f"{where}: no training prompts left ({too_long} over {label}.max_prompt_length "
            f"{cfg.max_prompt_length}"
            + (f", the rest outside {label}.pass_rate_filter.band" if cfg.pass_rate_filter else "")
            + "); widen the limits"
        )
    meta["prompts"] = len(rows)
    write_parquet(rows, prompts_file)
    atomic_write_json(meta_file, meta)
    return meta


def refilter_prompts(
    policy: str, cfg: GRPOOptions, band: PassRateFilter, pool: Path, out_dir: Path, label: str
) -> tuple[Path, dict[str, Any]]:
    """Before a context stage: the pool re-filtered by the current ``policy`` at this stage's completion
    budget (Skywork-OR1). Written once into the stage's folder; an empty result is an error naming the stage."""
    meta_file, prompts_file = out_dir / PROMPTS_META, out_dir / PROMPTS_FILE
    if meta_file.exists() and prompts_file.exists():
        return prompts_file, json.loads(meta_file.read_text())
    rows = read_rows(pool)
    kept, stats = filter_by_pass_rate(policy, cfg, band, rows)
    if not kept:
        raise DistillError(
            f"{label}: the pass-rate re-filter kept none of {len(rows)} prompts (band {list(band.band)}); "
            "widen its band"
        )
    write_parquet(kept, prompts_file)
    atomic_write_json(meta_file, {"prompts_in": len(rows), "prompts": len(kept), "pass_rate_filter": stats})
    return prompts_file, json.loads(meta_file.read_text())


def sample_policy(
    model_path: str, messages: list[list[dict[str, str]]], cfg: GRPOOptions, band: PassRateFilter
) -> list[str]:
    """One completion per entry of ``messages`` from the policy at ``model_path`` (transformers generate on
    the host, float32; batches of ``band.batch_size``, seeded from the recipe's seed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    texts = [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in messages]
    completions: list[str] = []
    for start in range(0, len(texts), band.batch_size):
        torch.manual_seed(cfg.seed * 1000 + start)
        enc = tokenizer(texts[start : start + band.batch_size], return_tensors="pt", padding=True,
                        add_special_tokens=False)  # fmt: skip
        with torch.no_grad():
            out = model.generate(
                **enc, do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
                max_new_tokens=cfg.max_completion_length, pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        new = out[:, enc["input_ids"].shape[1] :]
        completions += tokenizer.batch_decode(new, skip_special_tokens=True)
    return completions


def filter_by_pass_rate(
    model_path: str, cfg: GRPOOptions, band: PassRateFilter, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Sample each prompt ``band.samples`` times with ``model_path``, verify, keep those inside the band."""
    started = time.perf_counter()
    asked = [row for row in rows for _ in range(band.samples)]
    completions = sample_policy(model_path, [row["prompt"] for row in asked], cfg, band)
    correct: dict[str, list[bool]] = defaultdict(list)
    for row, ok in zip(asked, samples_correct(cfg, asked, completions), strict=True):
        correct[row["prompt_id"]].append(ok)
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


def samples_correct(cfg: GRPOOptions, rows: list[dict[str, Any]], completions: list[str]) -> list[bool]:
    """Each sample's verdict as the rewards would give it: a prompt with tests by the code checker (every
    test passed, with the `code` reward's deadlines), any other by the answer verifier."""
    from distill.grpo.rewards import code_reward

    columns = {key: [row.get(key) for row in rows] for key in CODE_FIELDS}
    options = {**cfg.reward_options()["code"], "all_or_nothing": True}
    # The code reward scores the samples of prompts with tests and leaves the rest None (its own rule).
    scores = code_reward(completions, **columns, **options)
    correct = {i: score == 1.0 for i, score in enumerate(scores) if score is not None}
    plain = [i for i, score in enumerate(scores) if score is None]
    verdicts = verify_many(
        [(rows[i]["answer"], completions[i]) for i in plain],
        cfg.answer_fallback,
        workers=cfg.verify_workers,
        timeout=cfg.verify_timeout,
        progress=False,
    )
    correct.update(zip(plain, (v.correct for v in verdicts), strict=True))
    return [correct[i] for i in range(len(completions))]
