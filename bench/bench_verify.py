"""Verification throughput, side by side on the same 5,000 mixed answers, printing ratios.

Alternatives (each timed in a fresh process, so math-verify's parse caches never carry over):
  math-verify   extract_answer + math_verify parse/verify per item, one process (the plain approach)
  in-process    distill.verify.verify_many(workers=0): fast path for plain numbers, math-verify for the rest
  pool          distill.verify.verify_many(workers=N): fast path + N worker processes with hard deadlines

The mix (needs the shared benchmark sets): GSM8K test answers (integers) boxed right and wrong, and
MATH-500 answers (LaTeX) boxed as-is, rewritten (\\dfrac -> \\frac, spaces), after a think block, wrong
(another problem's answer) and missing - what a filter stage sees from a math teacher.

Run (2 cores; ~2 minutes):
    HF_HUB_OFFLINE=1 python bench/bench_verify.py
    HF_HUB_OFFLINE=1 python bench/bench_verify.py --items 5000 --workers 2 --rounds 2
Alternatives run in turn for ``--rounds`` rounds; the best time of each is compared, so that a burst of
other work on the shared machine does not decide the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(os.environ.get("DISTILL_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))


def mixed_items(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """(gold, completion) pairs: ~40% GSM8K integers, ~60% MATH-500 LaTeX answers in six variants."""
    from distill.records import read_rows

    rng = random.Random(seed)
    gsm = [
        row["answer"].split("####")[-1].strip().replace(",", "")
        for row in read_rows(BENCHMARKS / "gsm8k" / "test.jsonl")
    ]
    math = [row["answer"] for row in read_rows(BENCHMARKS / "math500" / "test.jsonl")]
    items = []
    for index in range(count):
        if index % 5 < 2:
            gold = gsm[index % len(gsm)]
            shown = gold if rng.random() < 0.5 else str(int(gold) + rng.randint(1, 9))
            items.append((gold, f"Adding up, the total is \\boxed{{{shown}}}."))
            continue
        gold = math[index % len(math)]
        variant = rng.randrange(6)
        completion = [
            f"So the answer is $\\boxed{{{gold}}}$.",
            f"Hence \\boxed{{{gold.replace(chr(92) + 'dfrac', chr(92) + 'frac').replace(' ', '')}}}",
            f"<think>Try \\boxed{{0}} first... no.</think>The answer is \\boxed{{{gold}}}.",
            f"The answer is \\boxed{{{rng.choice(math)}}}.",
            f"I think the answer is \\boxed{{{gold}}} or maybe \\boxed{{{rng.choice(math)}}}.",
            "I could not finish this one.",
        ][variant]
        items.append((gold, completion))
    return items


def run_mode(mode: str, count: int, workers: int) -> dict:
    import math_verify  # noqa: F401  imported before the clock starts: its ~1 s import is not throughput

    from distill.verify import extract_answer, math_verify_match, verify_many

    items = mixed_items(count)
    started = time.perf_counter()
    if mode == "math-verify":
        correct = 0
        for gold, completion in items:
            extracted = extract_answer(completion)
            if extracted is not None:
                correct += math_verify_match(gold, extracted)[0]
        reasons: Counter[str] = Counter()
    else:
        verdicts = verify_many(
            items, workers=0 if mode == "in-process" else workers, timeout=10, progress=False
        )
        correct = sum(v.correct for v in verdicts)
        reasons = Counter(v.reason for v in verdicts)
    seconds = time.perf_counter() - started
    return {"mode": mode, "seconds": seconds, "correct": correct, "reasons": dict(reasons)}


def measure(mode: str, args) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--items",
            str(args.items),
            "--workers",
            str(args.workers),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_mode(args.child, args.items, args.workers)))
        return
    if not (BENCHMARKS / "math500" / "test.jsonl").is_file():
        sys.exit(f"benchmark sets not found at {BENCHMARKS}; set DISTILL_BENCHMARKS")
    modes = ["math-verify", "in-process", "pool"]
    best: dict[str, dict] = {}
    for round_ in range(args.rounds):
        for mode in modes if round_ % 2 == 0 else modes[::-1]:
            result = measure(mode, args)
            print(f"round {round_ + 1} {mode:12} {result['seconds']:7.2f} s", flush=True)
            if mode not in best or result["seconds"] < best[mode]["seconds"]:
                best[mode] = result
    reasons = Counter(best["pool"]["reasons"])
    fast = reasons["fast-path"] + reasons["wrong (fast-path)"]
    print(
        f"\n{args.items} mixed answers, {os.cpu_count()} cores; best of {args.rounds} round(s), fresh process each"
    )
    print("| alternative | seconds | answers/s | vs math-verify | correct |")
    print("| --- | ---: | ---: | ---: | ---: |")
    base = best["math-verify"]["seconds"]
    for mode in modes:
        r = best[mode]
        label = f"pool (workers={args.workers})" if mode == "pool" else mode
        print(
            f"| {label} | {r['seconds']:.2f} | {args.items / r['seconds']:.0f} | {base / r['seconds']:.2f}x "
            f"| {r['correct']} |"
        )
    print(f"\nfast path decided {fast / args.items:.1%} of the answers; no answer: {reasons['no-answer']}")
    print(
        f"pool vs in-process (the workers' own gain): {best['in-process']['seconds'] / best['pool']['seconds']:.2f}x"
    )
    print(f"verdicts: {dict(reasons.most_common())}")


if __name__ == "__main__":
    main()
