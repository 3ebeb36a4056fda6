"""Step 6: fold every step's result into one results.json and a short summary.md; print the summary.

    python bench/gpu_check/report.py WORK OUT                  # after (or during) a check
    python bench/gpu_check/report.py --fill bench/RESULTS.md OUT/results.json   # paste the table in

Each step writes WORK/steps/<step>.json as it goes; the shell adds WORK/steps/<step>.status (exit code,
seconds, budget). A step that ran out of time keeps the figures it had written, marked ``timeout``.
"""

from __future__ import annotations

import argparse
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

STEPS = ["install", "env", "gpu_tests", "sft_throughput", "fsdp2", "rl"]
BEGIN, END = "<!-- gpu-check:begin -->", "<!-- gpu-check:end -->"


def load_step(folder: Path, name: str) -> dict:
    result_file, status_file = folder / f"{name}.json", folder / f"{name}.status"
    data = json.loads(result_file.read_text()) if result_file.exists() else {"step": name}
    if status_file.exists():
        shell = json.loads(status_file.read_text())
        data.update(exit_code=shell["rc"], seconds=shell["seconds"], budget_s=shell["budget"])
        if shell["rc"] == 124:
            data["status"], data["reason"] = (
                "timeout",
                f"over its {shell['budget']} s budget; figures so far kept",
            )
        elif shell.get("skipped"):
            data["status"], data["reason"] = "skipped", shell["skipped"]
        elif data.get("status") in (None, "running"):
            data["status"] = "ok" if shell["rc"] == 0 else "failed"
            data.setdefault(
                "reason", None if shell["rc"] == 0 else f"exit code {shell['rc']}; see gpu_check.log"
            )
    data.setdefault("status", "not run")
    return data


def junit_tests(path: Path) -> dict:
    """Per-test outcome from pytest's junit xml: passed / failed / error / skipped (with the message)."""
    if not path.exists():
        return {"tests": [], "counts": {}}
    tests = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", None
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = (node.get("message") or "")[:200]
        tests.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                      "seconds": float(case.get("time") or 0), "message": message})  # fmt: skip
    counts: dict[str, int] = {}
    for test in tests:
        counts[test["outcome"]] = counts.get(test["outcome"], 0) + 1
    return {"tests": tests, "counts": counts}


def collect(work: Path, out: Path) -> dict:
    folder = work / "steps"
    results = {
        "written": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "steps": {n: load_step(folder, n) for n in STEPS},
    }
    results["steps"]["gpu_tests"].update(junit_tests(out / "junit.xml"))
    wheels = work / "wheels-manifest.json"
    if wheels.exists():
        manifest = json.loads(wheels.read_text())
        results["wheels"] = {k: manifest[k] for k in ("total_mb", "did_not_fit", "not_carried")}
    return results


def _fmt(value, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def sft_table(sft: dict) -> list[str]:
    rows = ["| variant | micro-batch x max_length | grad. ckpt | Liger | real tokens/s | MFU | GPU mem peak (GiB) | status |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for v in sft.get("variants", []):
        batch = v.get("batch_size", "?")
        mfu = f"{v['mfu']:.1%}" if v.get("mfu") is not None else "-"
        note = v["status"] if v["status"] == "ok" else f"{v['status']}: {v.get('reason') or ''}"[:80]
        rows.append(f"| {v['name']} | {batch} x {v['max_length']} | {'on' if v['gradient_checkpointing'] else 'off'} "
                    f"| {'on' if v['liger'] else 'off'} | {_fmt(v.get('tokens_per_second'), ',.0f')} | {mfu} "
                    f"| {_fmt(v.get('gpu_memory_peak_gib'))} | {note} |")  # fmt: skip
    return rows


def results_table(results: dict) -> list[str]:
    """The table bench/RESULTS.md keeps (``--fill``): environment line, SFT rows, FSDP2 and RL lines."""
    steps, env = results["steps"], results["steps"]["env"]
    fsdp, rl = steps["fsdp2"], steps["rl"]
    grpo, onp = rl.get("grpo", {}), rl.get("on_policy", {})
    lines = [
        f"Measured {results['written']} on {env.get('gpu_name', '?')} ({_fmt(env.get('gpu_memory_gib'))} GiB), driver "
        f"{env.get('nvidia_smi', {}).get('driver', '?')}, CUDA {env.get('cuda_runtime', '?')}, torch {env.get('torch', '?')}; "
        f"MFU against {_fmt(env.get('peak_bf16_tflops'))} TFLOP/s dense bf16 (an 8192^3 matmul reached "
        f"{_fmt(env.get('matmul_bf16_tflops'))}).",
        "",
        *sft_table(steps["sft_throughput"]),
        "",
        f"- FSDP2 (tiny model, 1 GPU): {fsdp['status']}; wrapper {fsdp.get('wrapper', '-')}, distributed type "
        f"{fsdp.get('distributed_type', '-')}, loss {_fmt(fsdp.get('loss_first3'))} -> {_fmt(fsdp.get('loss_last3'))}"
        + (f" ({fsdp['reason']})" if fsdp.get("reason") else ""),
        f"- GRPO (Qwen2.5-0.5B-shaped, bf16, 16 completions x 128 tokens/step): {grpo.get('status', rl['status'])}; "
        f"{_fmt(grpo.get('seconds_per_step'))} s/step"
        + (f" ({grpo['reason']})" if grpo.get("reason") else ""),
        f"- On-policy distillation: {onp.get('status', 'not run')}; {_fmt(onp.get('seconds_per_step'))} s/step"
        + (f" ({onp['reason']})" if onp.get("reason") else ""),
    ]
    counts = steps["gpu_tests"].get("counts", {})
    lines.append(f"- `gpu` tests: {', '.join(f'{n} {k}' for k, n in sorted(counts.items())) or 'not run'}")
    return lines


def summary(results: dict) -> str:
    lines = ["# GPU check", "", "| step | status | seconds | budget (s) | note |", "|---|---|---|---|---|"]
    for name, step in results["steps"].items():
        note = (step.get("reason") or "").replace("|", "/")[:120]
        lines.append(
            f"| {name} | {step['status']} | {_fmt(step.get('seconds'))} | {_fmt(step.get('budget_s'))} | {note} |"
        )
    lines += ["", *results_table(results)]
    failed = [
        t for t in results["steps"]["gpu_tests"].get("tests", []) if t["outcome"] in ("failed", "error")
    ]
    lines += [f"  - {t['outcome']}: {t['test']} - {t['message']}" for t in failed[:15]]
    wheels = results.get("wheels")
    if wheels:
        lines.append(f"- wheels: {wheels['total_mb']} MB carried; did not fit: "
                     f"{', '.join(d['root'] for d in wheels['did_not_fit']) or 'none'}; not carried: "
                     f"{', '.join(wheels['not_carried'])}")  # fmt: skip
    return "\n".join(lines) + "\n"


def fill(results_md: Path, results_json: Path) -> None:
    text, results = results_md.read_text(), json.loads(results_json.read_text())
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{results_md}: no {BEGIN} ... {END} section to fill")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    results_md.write_text(head + BEGIN + "\n" + "\n".join(results_table(results)) + "\n" + END + tail)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs=2, type=Path, help="WORK OUT, or with --fill: RESULTS.md results.json")
    parser.add_argument("--fill", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="write the files, print nothing")
    args = parser.parse_args()
    if args.fill:
        fill(*args.paths)
        return 0
    work, out = args.paths
    out.mkdir(parents=True, exist_ok=True)
    results = collect(work, out)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = summary(results)
    (out / "summary.md").write_text(text)
    if not args.quiet:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
