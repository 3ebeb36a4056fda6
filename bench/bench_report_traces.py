"""The report's traces section on a large verified.parquet: time and peak memory, side by side.

A synthetic filter output of ``--rows`` traces (about ``--chars`` characters of reasoning each, six filter
steps removing a share each) is written once in row groups; each alternative then runs in a fresh process
so that its peak RSS is its own:
  traces      distill.report.traces.collect_traces: two small columns batch by batch for the draw, then
              only the drawn rows' text columns (what the report does)
  read-all    the obvious way: read the whole table, to Python rows, draw from them

Run (2 cores; ~1 minute):
    python bench/bench_report_traces.py
    python bench/bench_report_traces.py --rows 100000 --chars 6000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = ["contaminated", "truncated", "format", "repetition", "incorrect", "over_per_prompt_cap"]


def write_verified(path: Path, rows: int, chars: int, group: int = 5000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for start in range(0, rows, group):
        count = min(group, rows - start)
        ids = range(start, start + count)
        removed = [STEPS[i % 9] if i % 9 < len(STEPS) else None for i in ids]
        body = {
            "prompt_id": [f"p{i // 4:07d}" for i in ids],
            "sample_idx": [i % 4 for i in ids],
            "messages": [[{"role": "user", "content": f"What is {i} + {i + 1}?"}] for i in ids],
            "completion": [f"<think>{'step ' * (chars // 5)}{i}</think> \\boxed{{{2 * i + 1}}}" for i in ids],
            "reasoning": [f"{'step ' * (chars // 5)}{i}" for i in ids],
            "final": [f"\\boxed{{{2 * i + 1}}}" for i in ids],
            "answer": [str(2 * i + 1) for i in ids],
            "extracted": [str(2 * i + 1) for i in ids],
            "correct": [i % 9 != 4 for i in ids],
            "verify_reason": ["fast-path"] * count,
            "kept": [r is None for r in removed],
            "removed_by": removed,
            "removed_detail": [r and f"{r} detail" for r in removed],
        }
        table = pa.table(body)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def part_traces(folder: Path) -> int:
    from distill.report.traces import collect_traces

    found = collect_traces(folder, STEPS, [])
    return sum(len(g["removed"]) + len(g["passed"]) for g in found)


def part_read_all(folder: Path) -> int:
    import random

    import pyarrow.parquet as pq

    rows = pq.read_table(folder / "verified.parquet").to_pylist()
    rng, shown = random.Random(0), 0
    for step in STEPS:
        removed = [r for r in rows if r["removed_by"] == step]
        shown += len(rng.sample(removed, min(3, len(removed))))
    return shown


def child(name: str, folder: Path) -> None:
    started = time.perf_counter()
    shown = {"traces": part_traces, "read-all": part_read_all}[name](folder)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mb": round(peak_mb), "shown": shown}))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=40000)
    parser.add_argument("--chars", type=int, default=4000)
    parser.add_argument("--parts", default="traces,read-all")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-traces-") as tmp:
        folder = Path(tmp)
        write_verified(folder / "verified.parquet", args.rows, args.chars)
        size = (folder / "verified.parquet").stat().st_size
        print(f"[bench] verified.parquet: {args.rows:,} rows, {size / 2**20:.0f} MiB on disk", flush=True)
        results = {}
        for name in args.parts.split(","):
            command = [sys.executable, __file__, "--child", name, "--folder", str(folder)]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            results[name] = json.loads(out.strip().splitlines()[-1])
            print(f"[bench] {name}: {json.dumps(results[name])}", flush=True)
    if {"traces", "read-all"} <= set(results):
        a, b = results["traces"], results["read-all"]
        print(
            f"[bench] read-all / traces: {b['peak_rss_mb'] / a['peak_rss_mb']:.1f}x the peak memory, "
            f"{b['seconds'] / max(a['seconds'], 1e-9):.1f}x the time"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
