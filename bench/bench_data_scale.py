"""Published-shape trace sets at the sizes people distil from: per stage rows/s, tokens/s and peak RSS, side by
side with another commit's code (the one before the streaming filter, by default) in one run.

Sets are built on the fly in OpenR1-Math-220k's schema (one row per problem, ``generations`` lists; 2 traces
per problem) by tests/teacher/trace_sets.py, written part by part, so building them holds one part: ``--sizes``
traces of ~1.3k tokens (~5.3k characters; tokens here are characters / 4), plus ``--long`` traces of ~8k
tokens. Each stage of each code version runs in a subprocess of its own (the version's checkout on
PYTHONPATH), its peak RSS taken from wait4: the largest process, verification workers included.

Stages (``--stages``, one function each in STAGES):
  read     the traces read as the filter reads them (old: every row into a list; new: batch by batch)
  filter   `distill filter` end to end (read, verify, filters, outputs); verify and filter seconds from its report
  tokenize the kept traces (prompt/completion rows) to token ids + completion masks with SmolLM2's tokenizer
           (old: tokenize_rows + save_tokenized, one process, Python lists; new: tokenize_to_shards on 2 cores)
  tokenize_1proc  the new code on one process;  trl_map  TRL's own path: datasets.map(num_proc=2), per row

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

# Tokenize and the first training step (student side). The rows are the filter's train.parquet shape
# (prompt/completion messages), built from the source part by part in the stage's subprocess before its
# clock starts; the tokenizer is SmolLM2's ($DISTILL_BENCH_TOKENIZER, the embedded model's files).
_TRAIN_ROWS = """
import os, sys, time
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq
source = Path(sys.argv[1])
train = source.with_name(source.stem + "-train.parquet")
if not train.exists():
    tmp, writer = train.with_suffix(".tmp"), None
    for batch in pq.ParquetFile(source).iter_batches(batch_size=2000, columns=["problem", "generations"]):
        rows = [
            {"prompt": [{"role": "system", "content": "Reason step by step, then give the answer in \\\\boxed{}."},
                        {"role": "user", "content": problem}],
             "completion": [{"role": "assistant", "content": text}]}
            for problem, texts in zip(batch.column("problem").to_pylist(), batch.column("generations").to_pylist())
            for text in texts
        ]
        table = pa.Table.from_pylist(rows)
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table)
    writer.close()
    tmp.rename(train)
out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
from transformers import AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(os.environ["DISTILL_BENCH_TOKENIZER"])
started = time.perf_counter()
"""
_TOKENIZE = (
    _TRAIN_ROWS
    + """
import json
try:
    from student.data import align_eos, tokenize_to_shards
    align_eos(tokenizer)
    stats = tokenize_to_shards(train, tokenizer, out / "tokens", 4096, "drop", num_proc=int(os.environ.get("PROCS", 2)))
except ImportError:  # the code before: one process, Python lists, one parquet file
    from distill.records import read_rows
    from student.data import align_eos, save_tokenized, tokenize_rows
    align_eos(tokenizer)
    data = tokenize_rows(read_rows(train), tokenizer, 4096, "drop", str(train))
    save_tokenized(data, out / "tokens.parquet")
    stats = data.stats(4096)
print(json.dumps({"rows": stats["train_rows"], "tokens": stats["tokens"], "seconds": time.perf_counter() - started}))
"""
)
_TRL_MAP = (
    _TRAIN_ROWS
    + """
import json
import datasets
def tokenize(row):  # what TRL's SFTTrainer does per prompt/completion row (two chat-template calls)
    prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True)
    full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True)
    prompt, full = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt), list(full["input_ids"] if hasattr(full, "keys") else full)
    return {"input_ids": full, "completion_mask": [0] * len(prompt) + [1] * (len(full) - len(prompt))}
rows = datasets.Dataset.from_parquet(str(train), cache_dir=str(out / "cache"))
done = rows.map(tokenize, num_proc=2, remove_columns=rows.column_names)
tokens = sum(len(ids) for batch in done.iter(batch_size=4096) for ids in batch["input_ids"])
print(json.dumps({"rows": len(done), "tokens": tokens, "seconds": time.perf_counter() - started}))
"""
)
STAGES = {
    "read": _READ,
    "filter": _FILTER,
    "tokenize": _TOKENIZE,  # new: every core (PROCS=2); old: tokenize_rows + save_tokenized
    "tokenize_1proc": _TOKENIZE,  # new code, PROCS=1 (the ratio the target is about)
    "trl_map": _TRL_MAP,  # TRL's own path, code-independent
}
NEW_ONLY = {"tokenize_1proc", "trl_map"}


def run_stage(code: Path, stage: str, source: Path, out: Path) -> dict:
    """One stage in a subprocess of its own, with ``code`` (a checkout) first on the path; + peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1"}
    if stage == "tokenize_1proc":
        env["PROCS"] = "1"
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


def same_tokens(old: Path, new: Path) -> bool:
    """The old code's tokens.parquet against the new code's Arrow shards, column by column, in order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    before = pq.read_table(old / "tokens.parquet")
    parts = []
    for part in sorted((new / "tokens").glob("part-*.arrow")):
        with pa.memory_map(str(part)) as source:
            parts.append(pa.ipc.open_stream(source).read_all())
    after = pa.concat_tables(parts)
    return all(
        before.column(c).combine_chunks().equals(after.column(c).combine_chunks())
        for c in ("input_ids", "completion_mask")
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
    if "tokens" in result:  # counted by the tokenizer, not estimated from characters
        tokens_per_row = result["tokens"] / result["rows"]
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
    parser.add_argument("--no-base", action="store_true", help="run only the new code")
    parser.add_argument("--new", default=None, help="the commit measured as new (default: this working tree)")
    parser.add_argument("--base-up-to", type=int, default=10**9, help="run the base code only up to N traces")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "distill-data-scale")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    if {"tokenize", "tokenize_1proc", "trl_map"} & set(args.stages.split(",")):
        from distill.models import EMBEDDED_MODEL, builtin_files

        os.environ["DISTILL_BENCH_TOKENIZER"] = str(builtin_files(EMBEDDED_MODEL))
    sets = [(n, "short") for n in args.sizes] + [(n, "long") for n in args.long]
    new = base_checkout(args.new) if args.new else REPO
    codes = {"new": new} if args.no_base else {"old": base_checkout(args.base), "new": new}
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
                if code == "old" and stage in NEW_ONLY:
                    continue
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
        old, new = (args.data / f"out-{c}-{traces}-{kind}-tokenize" for c in ("old", "new"))
        if "tokenize" in args.stages and (old / "tokens.parquet").exists() and (new / "tokens").is_dir():
            print(
                f"{size}: token ids and masks identical to the old code's: {same_tokens(old, new)}",
                flush=True,
            )
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"|".join(map(str, k)): v for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
