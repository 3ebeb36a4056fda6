"""Stage `generate`: prompts -> traces (k samples per prompt), streamed into shards, resumable.

The backend streams results as they finish; rows are written ``teacher.shard_size`` at a time (see
shards.py, the one resume mechanism), and a failing or interrupted run writes what it has before it stops.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from distill.errors import DistillError
from distill.models import resolve_model
from distill.recipe import Recipe, TeacherConfig
from distill.records import write_parquet
from distill.runs import Run
from teacher.backends import Backend, GenerationRequest, GenerationResult, SamplingSpec, make_backend
from teacher.generate.chunk_status import live_chunks
from teacher.generate.chunks import Chunk, select_chunk
from teacher.prompt_length import fit_prompts
from teacher.prompts import (
    assemble_completion,
    data_prompts,
    load_chat_template,
    prompt_messages,
    split_reasoning,
)
from teacher.shards import ShardWriter, finished_keys, remove_stale_temp_files, shard_summary

STAGE = "generate"


def generate(
    recipe: Recipe, run: Run, out_dir: Path, backend: Backend | None = None, chunk: Chunk | None = None
) -> dict[str, Any]:
    """Stage entry point: read the recipe's prompts, sample the teacher, write traces into ``out_dir``.

    ``backend`` lets a caller (benchmarks, tests) reuse an engine it already started; it is not closed here.
    ``chunk`` generates only that chunk's prompts into tagged shards (teacher.generate.chunks); the merge then writes
    prompts.parquet and checks the whole set.
    """
    if chunk is None and (live := live_chunks(out_dir)):
        raise DistillError(
            f"{out_dir}: chunk(s) {', '.join(live)} are generating into this folder; wait for them "
            "(distill generate RECIPE --status), then `--merge` or rerun this command for what is left"
        )
    prompts, too_long = load_prompts(recipe, chunk)
    if chunk is None:
        write_parquet(prompts, out_dir / "prompts.parquet")
    requests, sampling, provenance = plan_requests(recipe, prompts)
    metrics = generate_traces(
        requests,
        out_dir,
        shard_size=recipe.teacher.shard_size,
        sampling=sampling,
        provenance=provenance,
        backend=backend or (lambda: build_backend(recipe.teacher)),
        tag=chunk.tag if chunk else None,
    )
    return {**metrics, "prompts_too_long": too_long}  # dropped per data.too_long


def load_prompts(recipe: Recipe, chunk: Chunk | None = None) -> tuple[list[dict[str, Any]], int]:
    """(the prompts the teacher can take, how many were too long); only ``chunk``'s when given. The split
    comes before the length check, so a chunk tokenizes only its own prompts."""
    data, teacher = recipe.data, recipe.teacher
    prompts = data_prompts(data)
    if chunk is not None:
        prompts = select_chunk(prompts, chunk)
    model_dir = resolve_model(teacher.model) if teacher.backend != "openai" else ""
    return fit_prompts(prompts, model_dir, teacher, data, f"data.source {data.source}")


def plan_requests(
    recipe: Recipe, prompts: list[dict[str, Any]]
) -> tuple[list[GenerationRequest], SamplingSpec, dict[str, Any]]:
    """The requests for ``prompts``, the sampling parameters, and the provenance every row records."""
    data, teacher = recipe.data, recipe.teacher
    requests = build_requests(
        prompts, data.prompt_template, data.system_prompt, teacher.samples_per_prompt, teacher.sampling.seed
    )
    sampling = SamplingSpec(teacher.sampling.temperature, teacher.sampling.top_p, teacher.sampling.max_tokens)
    provenance = {
        "teacher": {"model": teacher.model, "backend": teacher.backend},
        "sampling": {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "engine_seed": teacher.sampling.seed,
        },
        "answers": {p["id"]: p["answer"] for p in prompts},
    }
    return requests, sampling, provenance


def build_backend(teacher: TeacherConfig) -> Backend:
    """The recipe's teacher section -> the backend's flat arguments (only this entry point sees the config)."""
    if teacher.backend == "openai":
        o = teacher.openai
        return make_backend(
            "openai",
            teacher.model,
            base_url=o.base_urls,
            api_key_env=o.api_key_env,
            concurrency=o.concurrency,
            max_retries=o.max_retries,
            retry_backoff=o.retry_backoff,
            request_timeout=o.request_timeout,
            bench_after=o.bench_after,
            bench_seconds=o.bench_seconds,
            seed_per_sample=teacher.seed_per_sample,
        )
    model, chat_template = resolve_model(teacher.model), load_chat_template(teacher.chat_template)
    if teacher.backend == "vllm":
        v = teacher.vllm
        return make_backend(
            "vllm",
            model,
            dtype=teacher.dtype,
            seed=teacher.sampling.seed,
            seed_per_sample=teacher.seed_per_sample,
            chat_template=chat_template,
            tensor_parallel_size=v.tensor_parallel_size,
            data_parallel_size=v.data_parallel_size,
            gpu_memory_utilization=v.gpu_memory_utilization,
            max_model_len=v.max_model_len,
            enforce_eager=v.enforce_eager,
        )
    return make_backend(
        teacher.backend,
        model,
        batch_size=teacher.batch_size,
        dtype=teacher.dtype,
        chat_template=chat_template,
    )


def sample_seed(run_seed: int, prompt_id: str, sample_idx: int) -> int:
    """A per-sample seed that depends only on the run seed and the sample's key: stable across resumes,
    `data.limit` changes and shard boundaries."""
    digest = hashlib.sha256(f"{run_seed}:{prompt_id}:{sample_idx}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def build_requests(
    prompts: list[dict[str, Any]], template: str, system_prompt: str | None, samples: int, seed: int
) -> list[GenerationRequest]:
    requests = []
    for prompt in prompts:
        messages = prompt_messages(prompt, template, system_prompt)
        # Samples of one prompt stay adjacent: engines with prefix caching then prefill the prompt once.
        requests.extend(
            GenerationRequest(prompt["id"], i, messages, sample_seed(seed, prompt["id"], i))
            for i in range(samples)
        )
    return requests


@dataclass
class RunStats:
    samples: int = 0
    tokens: int = 0
    seconds: float = 0.0
    ignored: int = 0  # results whose key was not pending (a backend bug): dropped, never written twice
    backend_stats: dict[str, int] | None = None  # e.g. the openai backend's retries by cause
    endpoints: dict[str, Any] | None = None  # the openai backend's requests and errors per endpoint


def generate_traces(
    requests: list[GenerationRequest],
    out_dir: Path,
    *,
    shard_size: int,
    sampling: SamplingSpec,
    provenance: dict[str, Any],
    backend: Backend | Callable[[], Backend],
    tag: str | None = None,
) -> dict[str, Any]:
    """Generate the requests not yet in ``out_dir``'s shards; ``backend`` is a backend or a factory for one
    (a backend built here is closed here; one passed in stays open for its owner). ``tag`` names this
    writer's shards when several write into one folder (chunks)."""
    remove_stale_temp_files(out_dir, tag)
    done = finished_keys(out_dir)
    todo = [r for r in requests if r.key not in done]
    stats, seed_scope = RunStats(), None
    if todo:
        owned = not hasattr(backend, "generate")
        engine = backend() if owned else backend
        try:
            seed_scope = engine.seed_scope
            writer = ShardWriter(out_dir, shard_size, tag)
            stats = _stream(engine, requests, todo, writer, sampling, provenance)
            stats.backend_stats = dict(getattr(engine, "stats", {}) or {})
            report = getattr(engine, "endpoint_report", None)
            stats.endpoints = report() if report else None
        finally:
            if owned:
                engine.close()
    return summarise(out_dir, requests, stats, seed_scope, tag)


def _stream(
    engine: Backend, requests, todo, writer: ShardWriter, sampling: SamplingSpec, provenance
) -> RunStats:
    stats, pending = RunStats(), {r.key: r for r in todo}
    bar = _Progress(requests, todo)
    started = time.perf_counter()
    try:
        for result in engine.generate(todo, sampling):
            request = pending.pop(result.key, None)
            if request is None:
                stats.ignored += 1
                continue
            writer.add(trace_row(result, request, provenance, engine))
            stats.samples += 1
            stats.tokens += result.completion_tokens or 0
            bar.update(result.prompt_id, stats.tokens)
    finally:
        writer.flush()  # an error or Ctrl-C still keeps every finished row
        bar.close()
        stats.seconds = time.perf_counter() - started
    return stats


class _Progress:
    """Samples done (tqdm's own rate = samples/s), prompts fully done, output tokens/s.

    ``smoothing=0`` gives whole-run averages: results arrive in bursts (a batch finishes at once), and
    tqdm's default moving average swings between zero and huge numbers.
    """

    def __init__(self, requests: list[GenerationRequest], todo: list[GenerationRequest]):
        self.left = Counter(r.prompt_id for r in todo)
        self.prompts = len({r.prompt_id for r in requests})
        self.prompts_done = self.prompts - len(self.left)
        self.started = time.perf_counter()
        self.bar = tqdm(
            total=len(requests),
            initial=len(requests) - len(todo),
            desc="generate",
            unit="sample",
            smoothing=0,
            dynamic_ncols=True,
        )

    def update(self, prompt_id: str, tokens: int) -> None:
        self.left[prompt_id] -= 1
        if self.left[prompt_id] == 0:
            self.prompts_done += 1
        rate = tokens / max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(
            f"prompts {self.prompts_done}/{self.prompts}, {rate:.1f} tok/s", refresh=False
        )
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def trace_row(
    result: GenerationResult, request: GenerationRequest, provenance: dict[str, Any], engine: Backend
) -> dict[str, Any]:
    completion = assemble_completion(result.completion, result.reasoning)
    reasoning, final = split_reasoning(result.completion, result.reasoning)
    return {
        "prompt_id": result.prompt_id,
        "sample_idx": result.sample_idx,
        "messages": [*request.messages, {"role": "assistant", "content": completion}],
        "completion": completion,
        "reasoning": reasoning,
        "final": final,
        "finish_reason": result.finish_reason,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "teacher": {**provenance["teacher"], "resolved": engine.model_id},
        "sampling": {**provenance["sampling"], "seed": request.seed, "seed_scope": engine.seed_scope},
        "answer": provenance["answers"][result.prompt_id],
    }


def summarise(
    out_dir: Path,
    requests: list[GenerationRequest],
    stats: RunStats,
    seed_scope: str | None,
    tag: str | None = None,
) -> dict[str, Any]:
    """Check the shards hold every requested sample exactly once, then report totals + this run's speed.

    A tagged writer (a chunk) checks only that its own samples are there and totals only its own shards:
    other chunks are still writing, and exactly-once over the whole folder is the merge's proof."""
    keys = finished_keys(out_dir)
    missing = [r.key for r in requests if r.key not in keys]
    if missing:
        raise DistillError(
            f"{out_dir}: {len(missing)} of {len(requests)} samples missing after generation "
            f"(e.g. {missing[0]}); rerun the same command to resume"
        )
    totals = shard_summary(out_dir, tag)
    if tag is None and totals["samples"] != len(keys):
        raise DistillError(
            f"{out_dir}: {totals['samples'] - len(keys)} duplicated rows across shards; run "
            "`distill generate RECIPE --merge` to keep one of each (the others are moved to dropped/)"
        )
    seconds = stats.seconds
    return {
        **totals,
        "requested_prompts": len({r.prompt_id for r in requests}),
        "requested_samples": len(requests),
        "new_samples": stats.samples,
        "new_output_tokens": stats.tokens,
        "seconds_this_run": round(seconds, 2),
        "samples_per_s": round(stats.samples / seconds, 2) if seconds else None,
        "output_tokens_per_s": round(stats.tokens / seconds, 1) if seconds else None,
        "seed_scope": seed_scope,
        "ignored_results": stats.ignored,
        "backend_stats": stats.backend_stats or {},
        **({"endpoints": stats.endpoints} if stats.endpoints else {}),
    }
