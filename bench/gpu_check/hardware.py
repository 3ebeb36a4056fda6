"""The machine the check ran on: GPU name, memory, driver, CUDA, torch; the card's dense bf16 peak.

    python bench/gpu_check/hardware.py --json env.json [--matmul]

Peaks are NVIDIA's datasheet dense (no 2:4 sparsity) bf16 tensor-core figures. H200 is the H100's chip
(GH100) with more and faster memory: the same 989 TFLOP/s in its SXM form. ``--matmul`` also times an
8192^3 bf16 matrix product, the ceiling a real kernel reaches on this card (~790 TFLOP/s on an H200 here).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

# Longest match first: "H100 PCIe" before "H100".
PEAK_BF16_TFLOPS = {
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,  # SXM5 (reported as "NVIDIA H100 80GB HBM3")
    "H200 NVL": 835.0,
    "H200": 989.0,
    "H800": 989.0,
    "GH200": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
}


def peak_tflops(gpu_name: str) -> tuple[float | None, str | None]:
    """(peak, the table key that matched) for a torch/nvidia-smi device name; (None, None) if unknown."""
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key.lower() in gpu_name.lower():
            return PEAK_BF16_TFLOPS[key], key
    return None, None


def nvidia_smi() -> dict:
    fields = "name,driver_version,memory.total,clocks.max.sm,power.limit"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)}
    if out.returncode != 0:
        return {"error": out.stderr.strip()[:200]}
    values = [v.strip() for v in out.stdout.strip().splitlines()[0].split(",")]
    return dict(
        zip(["name", "driver", "memory_mib", "max_sm_clock_mhz", "power_limit_w"], values, strict=False)
    )


def torch_info() -> dict:
    import torch

    info = {"torch": torch.__version__, "cuda_runtime": torch.version.cuda, "cuda_available": False}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            cuda_available=True,
            gpu_count=torch.cuda.device_count(),
            gpu_name=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            capability=f"{props.major}.{props.minor}",
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    return info


def matmul_tflops(size: int = 8192, repeats: int = 10) -> float:
    """Mean bf16 TFLOP/s of ``repeats`` size^3 products after three warm-ups (random data)."""
    import torch

    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return round(2 * size**3 * repeats / (time.perf_counter() - started) / 1e12, 1)


def library_versions() -> dict:
    from importlib import metadata

    names = ("transformers", "trl", "accelerate", "peft", "datasets", "liger-kernel", "vllm", "lm-eval")
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def environment(matmul: bool) -> dict:
    import platform

    info = {"python": platform.python_version(), **torch_info(), "nvidia_smi": nvidia_smi()}
    info["libraries"] = library_versions()
    name = info.get("gpu_name") or info["nvidia_smi"].get("name") or ""
    info["peak_bf16_tflops"], info["peak_matched"] = peak_tflops(name)
    if matmul and info["cuda_available"]:
        info["matmul_bf16_tflops"] = matmul_tflops()
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--matmul", action="store_true")
    args = parser.parse_args()
    info = environment(args.matmul)
    args.json.write_text(json.dumps({"status": "ok", **info}, indent=2) + "\n")
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
