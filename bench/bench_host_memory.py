"""Host memory of one training step on the CPU, measured against student/plan_host.py's estimate.

One optimizer step of the embedded SmolLM2-135M-Instruct (fp32 on the CPU, no gradient checkpointing, packed
rows of max_length) through the real SFT path (student/sft.py prepare_job, then student.trainer's
run_training) per ``--sizes`` BATCHxMAX_LENGTH, each in a subprocess of its own; its peak RSS from wait4
next to the plan's estimate. The rows are ~1.3k-token traces (bench/bench_data_scale.py's published-shape
set's length, built here).

    python bench/bench_host_memory.py --sizes 1x512 2x1024
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
sys.path.insert(0, str(REPO / "tests" / "student"))

_STEP = """
import json, sys
from pathlib import Path
from distill.recipe import StudentConfig
from student.sft import prepare_job
from student.trainer import run_training
batch, length, model, train, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5])
cfg = StudentConfig.model_validate({"name": "m", "model": model, "batch_size": batch, "max_length": length,
    "max_steps": 1, "gradient_checkpointing": False, "too_long": "truncate", "save_steps": 1000})
job = prepare_job(model, train, out, cfg)
job["student"], job["resume_from"] = cfg.model_dump(mode="json"), None
metrics = run_training(job)
print(json.dumps({"steps": metrics["steps"], "tokens_per_second": metrics["tokens_per_second"]}))
"""


def train_rows(folder: Path, rows: int = 64) -> Path:
    """64 prompt/completion rows of ~1.3k tokens (written once)."""

    path = folder / "host-memory-train.parquet"
    if path.exists():
        return path
    from student_helpers import think_rows

    table_rows = think_rows(rows)
    for i, row in enumerate(table_rows):
        words = " ".join(f"step {j}: {i} plus {j} is {i + j}." for j in range(260))
        row["completion"][0]["content"] = f"<think>{words}</think> \\boxed{{{i}}}"
    from distill.records import write_parquet

    write_parquet(table_rows, path)
    return path


def measure(batch: int, length: int, model: str, train: Path, out: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DISTILL_TRAIN_IN_PROCESS": "1"}
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout:
        child = subprocess.Popen(
            [sys.executable, "-c", _STEP, str(batch), str(length), model, str(train), str(out)],
            cwd=REPO,
            env=env,
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(child.pid, 0)
        stdout.seek(0)
        lines = [line for line in stdout.read().splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if status == 0 and lines else {"failed": status}
    return {
        **result,
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_gib": usage.ru_maxrss / 2**20,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["1x512", "2x1024"], help="BATCHxMAX_LENGTH")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "distill-host-memory")
    args = parser.parse_args()
    from distill.models import EMBEDDED_MODEL, resolve_model
    from distill.recipe import StudentConfig
    from student.plan_host import host_estimate
    from student.shapes import model_shape

    args.data.mkdir(parents=True, exist_ok=True)
    model, train = resolve_model(EMBEDDED_MODEL), train_rows(args.data)
    shape, _ = model_shape(EMBEDDED_MODEL)
    lines = [
        "| batch x max_length | tokens | estimate GiB | measured peak RSS GiB | ratio |",
        "|---|---|---|---|---|",
    ]
    for size in args.sizes:
        batch, length = (int(x) for x in size.split("x"))
        cfg = StudentConfig.model_validate(
            {"name": "m", "model": EMBEDDED_MODEL, "batch_size": batch, "max_length": length}
        )
        estimate = host_estimate(shape, cfg).total / 2**30
        out = args.data / f"out-{size}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        result = measure(batch, length, model, train, out)
        print(f"[bench] {size}: {json.dumps(result)}", flush=True)
        measured = result["peak_rss_gib"]
        lines.append(
            f"| {batch} x {length} | {batch * length:,} | {estimate:.2f} | {measured:.2f} | {estimate / measured:.2f} |"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
