"""Published-shape trace sets at the sizes people distil from: per stage rows/s, tokens/s and peak RSS, side by
side with another commit's code (the one before the streaming filter, by default) in one run.

Sets are built on the fly in OpenR1-Math-220k's schema (one row per problem, ``generations`` lists; 2 traces
per problem) by tests/teacher/trace_sets.py, written part by part, so building them holds one part: ``--sizes``
traces of ~1.3k tokens (~5.3k characters; tokens here are characters / 4), plus ``--long`` traces of ~8k
tokens. Each stage of each code version runs in a subprocess of its own (the version's checkout on
PYTHONPATH), its peak RSS taken from wait4: the largest process, verification workers included.

Stages (``--stages``, one function each in STAGES; helper C adds tokenize and the first training step):
  read     the traces read as the filter reads them (old: every row into a list; new: batch by batch)
  filter   `distill filter` end to end (read, verify, filters, outputs); verify and filter seconds from its report

Run (2 cores; the 100k old-code filter peaks near 4 GB):
    python bench/bench_data_scale.py --sizes 20000 100000 --long 10000 --base 1680eeb
    python bench/bench_data_scale.py --sizes 400000 --no-base      # the old code is not run at this size
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "teacher"))
WORDS = {"short": 1000, "long": 6000}  # ~1.3k and ~8k tokens
CHARS_PER_TOKEN = 4
_PART = 2000  # problems written at once


def build_set(folder: Path, traces: int, words: int) -> Path:
    """An OpenR1-Math-220k-shaped parquet of ``traces`` traces (2 per problem); reused when present."""
    import pyarrow.parquet as pq
    from trace_sets import openr1_table

    path = folder / f"openr1-{traces}-{words}w.parquet"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    writer, chars = None, 0
    for first in range(0, traces // 2, _PART):
        table = openr1_table(min(_PART, traces // 2 - first), 2, words, seed=first, first=first)
        chars += sum(len(text) for texts in table.column("generations").to_pylist() for text in texts)
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table.cast(writer.schema))
    writer.close()
    path.with_suffix(".json").write_text(json.dumps({"traces": traces, "chars": chars}))
    tmp.rename(path)
    return path


def tokens_per_trace(source: Path) -> float:
    facts = json.loads(source.with_suffix(".json").read_text())
    return facts["chars"] / facts["traces"] / CHARS_PER_TOKEN


# Each stage runs as `python -c SCRIPT SOURCE OUT` in a code version's checkout and prints one JSON line.
_READ = """
import json, sys, time
from distill.recipe import FilterConfig
started = time.perf_counter()
try:
    from teacher.filter.batches import TraceBatches
    rows = chars = 0
    for batch in TraceBatches(sys.argv[1], FilterConfig()):
        rows, chars = rows + len(batch), chars + sum(len(r["completion"]) for r in batch)
except ImportError:  # the code before streaming
    from teacher.filter.stage import read_traces
    traces = read_traces(sys.argv[1], FilterConfig())[0]
    rows, chars = len(traces), sum(len(r["completion"]) for r in traces)
print(json.dumps({"rows": rows, "chars": chars, "seconds": time.perf_counter() - started}))
"""
_FILTER = """
import json, sys, time
from pathlib import Path
from distill.recipe import FilterConfig
from teacher.filter.stage import run_filter
started = time.perf_counter()
report = run_filter(Path(sys.argv[1]), Path(sys.argv[2]), FilterConfig(workers=2))
print(json.dumps({
    "rows": report["rows_in"], "kept": report["rows_out"], "seconds": time.perf_counter() - started,
    "verify_seconds": report["verification"]["seconds"],
    "filters_seconds": sum(step["seconds"] for step in report["funnel"]),
}))
"""
STAGES = {"read": _READ, "filter": _FILTER}


def run_stage(code: Path, stage: str, source: Path, out: Path) -> dict:
    """One stage in a subprocess of its own, with ``code`` (a checkout) first on the path; + peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryFile("w+") as stdout:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", STAGES[stage], str(source), str(out)],
            cwd=code,
            env=env,
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        stdout.seek(0)
        lines = [line for line in stdout.read().splitlines() if line.startswith("{")]
    if status != 0 or not lines:
        return {"failed": f"exit status {status}", "seconds": wall, "peak_rss_mb": usage.ru_maxrss // 1024}
    return {**json.loads(lines[-1]), "wall_seconds": wall, "peak_rss_mb": usage.ru_maxrss // 1024}


def same_outputs(one: Path, other: Path) -> bool:
    import pyarrow.parquet as pq

    return all(
        pq.read_table(one / name).equals(pq.read_table(other / name))
        for name in ("verified.parquet", "train.parquet")
    )


def base_checkout(commit: str) -> Path:
    path = Path(tempfile.gettempdir()) / f"distill-base-{commit}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], cwd=REPO, check=True)
    return path


def row_line(size: str, code: str, stage: str, result: dict, tokens_per_row: float) -> str:
    if "failed" in result:
        return f"| {size} | {code} | {stage} | failed ({result['failed']}) | | | {result['peak_rss_mb']:,} |"
    seconds = result["seconds"]
    rows_s = result["rows"] / seconds
    extra = ""
    if stage == "filter":
        extra = f" (verify {result['verify_seconds']:.0f} s, filters {result['filters_seconds']:.0f} s)"
    return (
        f"| {size} | {code} | {stage} | {seconds:.1f}{extra} | {rows_s:,.0f} | {rows_s * tokens_per_row:,.0f} "
        f"| {result['peak_rss_mb']:,} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[20000], help="traces of ~1.3k tokens")
    parser.add_argument("--long", type=int, nargs="*", default=[], help="traces of ~8k tokens")
    parser.add_argument("--stages", default="read,filter", help=f"comma-separated, of {', '.join(STAGES)}")
    parser.add_argument("--base", default="1680eeb", help="the commit to compare with (a git worktree)")
    parser.add_argument("--no-base", action="store_true", help="run only this checkout's code")
    parser.add_argument("--base-up-to", type=int, default=10**9, help="run the base code only up to N traces")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "distill-data-scale")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    sets = [(n, "short") for n in args.sizes] + [(n, "long") for n in args.long]
    codes = {"new": REPO} if args.no_base else {"old": base_checkout(args.base), "new": REPO}
    lines = [
        "| traces | code | stage | seconds | rows/s | tokens/s | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    results: dict = {}
    for traces, kind in sets:
        source = build_set(args.data, traces, WORDS[kind])
        size = f"{traces:,} x ~{tokens_per_trace(source) / 1000:.1f}k tok"
        for code, root in codes.items():
            if code == "old" and traces > args.base_up_to:
                continue
            for stage in args.stages.split(","):
                out = args.data / f"out-{code}-{traces}-{kind}-{stage}"
                subprocess.run(["rm", "-rf", str(out)], check=True)
                result = run_stage(root, stage, source, out)
                results[(traces, kind, code, stage)] = result
                lines.append(row_line(size, code, stage, result, tokens_per_trace(source)))
                print(lines[-1], flush=True)
        if "filter" in args.stages and len(codes) == 2 and traces <= args.base_up_to:
            old = args.data / f"out-old-{traces}-{kind}-filter"
            new = args.data / f"out-new-{traces}-{kind}-filter"
            if (old / "train.parquet").exists() and (new / "train.parquet").exists():
                print(f"{size}: outputs identical to the old code's: {same_outputs(old, new)}", flush=True)
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"|".join(map(str, k)): v for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
