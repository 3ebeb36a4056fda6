"""Decontamination throughput against MATH-500 + AIME 2024 + AIME 2025, side by side, printing ratios.

Candidates: distinct training-style problems - GSM8K train + test questions, each also in numbered
variants (a different number in the text) until ``--rows`` distinct problems, plus a few hundred planted
copies and light rewordings of benchmark problems so that the passes have something to find.

Alternatives, on the same candidates in one process:
  n-gram      teacher.filter.decontaminate word 8-gram pass (the default; one process)
  n-gram+fz   the n-gram pass, then the rapidfuzz pass over what it let through (rapidfuzz uses all cores)
  naive       set intersection of each candidate's 8-grams with each benchmark problem's (the obvious loop)

Run (2 cores; ~1 minute):
    HF_HUB_OFFLINE=1 python bench/bench_decontaminate.py
    HF_HUB_OFFLINE=1 python bench/bench_decontaminate.py --rows 50000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(os.environ.get("DISTILL_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))
SETS = ("math500", "aime24", "aime25")
_NAIVE_ROWS = 2000  # the naive loop is slow: time it on a slice and scale


def candidates(count: int) -> tuple[list[str], int]:
    """(distinct problems, how many of them are planted copies/rewordings of benchmark problems)."""
    from distill.records import read_rows

    base = [
        row["question"]
        for name in ("train", "test")
        for row in read_rows(BENCHMARKS / "gsm8k" / f"{name}.jsonl")
    ]
    planted = []
    for name in SETS:
        for row in read_rows(BENCHMARKS / name / "test.jsonl")[:100]:
            planted += [row["problem"], "Solve: " + row["problem"].replace("$", "")]
    rows, variant = list(planted), 0
    while len(rows) < count:
        rows += [
            f"{text} (Variant {variant}: use {variant + 3} instead where it fits.)" if variant else text
            for text in base[: count - len(rows)]
        ]
        variant += 1
    return rows, len(planted)


def benchmark_sets():
    from distill.recipe import BenchmarkSource
    from teacher.filter.decontaminate import load_benchmark

    return [load_benchmark(BenchmarkSource(source=str(BENCHMARKS / name / "test.jsonl"))) for name in SETS]


def naive(rows: list[str], sets, ngram: int = 8) -> int:
    from teacher.filter.decontaminate import words

    def grams(text: str) -> set[tuple[str, ...]]:
        tokens = words(text)
        return set(zip(*(tokens[i:] for i in range(ngram)), strict=False))

    problems = [grams(p) for bench in sets for p in bench.problems]
    return sum(any(not g.isdisjoint(p) for p in problems) for g in map(grams, rows))


def timed(fn, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fuzzy-threshold", type=float, default=90.0)
    args = parser.parse_args()
    if not (BENCHMARKS / "math500" / "test.jsonl").is_file():
        sys.exit(f"benchmark sets not found at {BENCHMARKS}; set DISTILL_BENCHMARKS")
    from teacher.filter.decontaminate import Decontaminator

    rows, planted = candidates(args.rows)
    assert len(set(rows)) == len(rows), "candidates must be distinct: match_many checks each text once"
    sets = benchmark_sets()
    build_s, plain = timed(Decontaminator, sets, 8)
    fuzzy = Decontaminator(sets, 8, fuzzy=True, fuzzy_threshold=args.fuzzy_threshold)
    best = {"n-gram": float("inf"), "n-gram+fz": float("inf"), "naive": float("inf")}
    found = {}
    for _ in range(args.rounds):
        for name, run in (
            ("n-gram", lambda: plain.match_many(rows)),
            ("n-gram+fz", lambda: fuzzy.match_many(rows)),
            ("naive", lambda: naive(rows[:_NAIVE_ROWS], sets)),
        ):
            seconds, result = timed(run)
            if name == "naive":
                seconds *= len(rows) / _NAIVE_ROWS
            best[name] = min(best[name], seconds)
            found[name] = result if name == "naive" else sum(m is not None for m in result)
    size = sum(len(s.problems) for s in sets)
    print(
        f"{len(rows)} distinct candidate problems ({planted} planted copies/rewordings) vs {size} benchmark "
        f"problems ({', '.join(SETS)}); index built in {build_s * 1000:.0f} ms; {os.cpu_count()} cores; "
        f"best of {args.rounds}"
    )
    print("| pass | seconds | rows/s | vs n-gram | flagged |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, seconds in best.items():
        flagged = f"{found[name]} (of first {_NAIVE_ROWS})" if name == "naive" else found[name]
        print(
            f"| {name} | {seconds:.2f} | {len(rows) / seconds:,.0f} | {best['n-gram'] / seconds:.2f}x | {flagged} |"
        )
    rate = len(rows) / best["n-gram"]
    print(
        f"\nn-gram pass: {rate:,.0f} rows/s in one process (target >= 20,000 rows/s on 2 cores): "
        f"{'met' if rate >= 20000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
