"""Stage `generate`: prompts -> traces, written shard by shard so a crash loses at most one shard.

Resume: every finished shard holds complete rows; on restart the (prompt_id, sample_idx) pairs already in
shards are skipped, so the output has no duplicates and no gaps however the previous process died.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from distill.errors import DistillError
from distill.models import resolve_model
from distill.recipe import Recipe
from distill.records import read_rows, split_think, write_parquet
from distill.runs import Run
from teacher.backends import GenerationRequest, GenerationResult, SamplingSpec, make_backend
from teacher.prompts import build_prompts, load_prompt_rows, render_messages

STAGE = "generate"


def generate(recipe: Recipe, run: Run, out_dir: Path) -> dict[str, Any]:
    """Stage entry point: read the recipe's prompts, sample the teacher, write traces into ``out_dir``."""
    data, teacher = recipe.data, recipe.teacher
    prompts = build_prompts(
        load_prompt_rows(data.source, data.split),
        where=f"data.source {data.source}",
        id_column=data.id_column,
        problem_column=data.problem_column,
        answer_column=data.answer_column,
        limit=data.limit,
    )
    write_parquet(prompts, out_dir / "prompts.parquet")
    requests = build_requests(prompts, data.prompt_template, data.system_prompt, teacher.samples_per_prompt,
                              teacher.sampling.seed)
    model_path = resolve_model(teacher.model)
    sampling = SamplingSpec(teacher.sampling.temperature, teacher.sampling.top_p, teacher.sampling.max_tokens)
    provenance = {
        "teacher": {"model": teacher.model, "backend": teacher.backend},
        "sampling": teacher.sampling.model_dump(),
        "answers": {p["id"]: p["answer"] for p in prompts},
    }
    return generate_traces(
        requests, out_dir, shard_size=teacher.shard_size, sampling=sampling, provenance=provenance,
        backend_factory=lambda: make_backend(teacher.backend, model_path, batch_size=teacher.batch_size,
                                             dtype=teacher.dtype),
    )


def build_requests(prompts, template: str, system_prompt: str | None, samples: int, seed: int):
    requests = []
    for prompt in prompts:
        messages = render_messages(prompt["problem"], template, system_prompt)
        for sample_idx in range(samples):
            # A per-sample seed derived from the run seed: stable across resumes and shard boundaries.
            sample_seed = seed * 1_000_003 + len(requests)
            requests.append(GenerationRequest(prompt["id"], sample_idx, messages, sample_seed))
    return requests


def finished_keys(out_dir: Path) -> set[tuple[str, int]]:
    keys = set()
    for shard in sorted(out_dir.glob("shard-*.parquet")):
        keys.update((row["prompt_id"], row["sample_idx"]) for row in read_rows(shard))
    return keys


def generate_traces(requests, out_dir: Path, *, shard_size: int, sampling: SamplingSpec, provenance,
                    backend_factory) -> dict[str, Any]:
    done = finished_keys(out_dir)
    todo = [r for r in requests if (r.prompt_id, r.sample_idx) not in done]
    next_shard = len(list(out_dir.glob("shard-*.parquet")))
    stats = {"tokens": 0, "finish": Counter(), "seconds": 0.0}
    if todo:
        backend = backend_factory()
        bar = tqdm(total=len(requests), initial=len(requests) - len(todo), desc="generate", unit="sample")
        started = time.time()
        try:
            for start in range(0, len(todo), shard_size):
                chunk = todo[start : start + shard_size]
                by_key = {(r.prompt_id, r.sample_idx): r for r in chunk}
                rows = []
                for result in backend.generate(chunk, sampling):
                    request = by_key[(result.prompt_id, result.sample_idx)]
                    rows.append(trace_row(result, request, provenance, backend.model_id))
                    stats["tokens"] += result.completion_tokens
                    stats["finish"][result.finish_reason] += 1
                    bar.update(1)
                    bar.set_postfix(tok_s=f"{stats['tokens'] / max(time.time() - started, 1e-9):.1f}")
                write_parquet(rows, out_dir / f"shard-{next_shard:05d}.parquet")
                next_shard += 1
        finally:
            bar.close()
            backend.close()
        stats["seconds"] = time.time() - started
    return summarise(out_dir, len(requests), stats)


def trace_row(result: GenerationResult, request: GenerationRequest, provenance, model_id: str) -> dict[str, Any]:
    reasoning, final = split_think(result.completion)
    if result.reasoning:
        reasoning, final = result.reasoning, result.completion.strip()
    return {
        "prompt_id": result.prompt_id,
        "sample_idx": result.sample_idx,
        "messages": [*request.messages, {"role": "assistant", "content": result.completion}],
        "completion": result.completion,
        "reasoning": reasoning,
        "final": final,
        "finish_reason": result.finish_reason,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "teacher": {**provenance["teacher"], "resolved": model_id},
        "sampling": {**provenance["sampling"], "seed": request.seed},
        "answer": provenance["answers"][result.prompt_id],
    }


def summarise(out_dir: Path, expected: int, stats) -> dict[str, Any]:
    keys = finished_keys(out_dir)
    if len(keys) != expected:
        raise DistillError(f"{out_dir}: {len(keys)} of {expected} samples present after generation; rerun to resume")
    return {
        "samples": expected,
        "new_output_tokens": stats["tokens"],
        "seconds_this_run": round(stats["seconds"], 1),
        "output_tokens_per_s": round(stats["tokens"] / stats["seconds"], 1) if stats["seconds"] else None,
        "finish_reasons": dict(stats["finish"]),
    }
