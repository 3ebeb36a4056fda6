"""How much host memory (RAM) a student's training needs where it trains on the CPU: strategy ``single`` on a
machine without CUDA, and strategy ``cpu`` (one process per core group, each a whole copy).

The same shapes as the GPU planner (student/plan.py), with what a CPU run really keeps:

- **model states**: fp32 weights, fp32 gradients and AdamW's two fp32 moments, 16 bytes per trainable
  parameter (student/trainer.py loads fp32 on a CPU; there is no bf16 autocast there). LoRA: the frozen
  base in fp32 plus 16 bytes per adapter parameter.
- **activations** for ``batch_size x`` the longest (packed) row: packing fills rows to ``max_length``,
  without packing a batch is padded to its longest row, which is ``max_length`` at worst. Per layer and
  token the tensors autograd keeps, in fp32 (``layer_activation_bytes``: 8h + 2h_kv + 4i elements, SDPA
  keeping no s^2 scores); gradient checkpointing keeps each layer's input and one recomputed layer.
- **logits**: tokens x vocabulary x 12 bytes (fp32 logits, their log-softmax and its gradient).
- **the tokenized set**: 0, it is memory-mapped Arrow (student/data.py); the page cache holds what is read.
- **other**: the interpreter with torch/transformers/TRL imported, 1 GiB per process.

Calibrated on the peak RSS of one real SFT step of SmolLM2-135M-Instruct (fp32, no checkpointing, full rows;
bench/bench_host_memory.py, bench/RESULTS.md): 2.77 GiB at 1 x 512 tokens, 6.46 GiB at 2 x 1,024 and 6.49
GiB at 1 x 2,048 (no s^2 attention term: SDPA keeps no scores), i.e. 2.40 MiB per token and 1.57 GiB fixed.
The tensors counted above give 1.84 MiB per token (1.34 MB of activations, 0.59 MB of logits), so the
per-token terms are scaled by 1.3 (TRL's loss and metrics keep further fp32 copies of the logits); the fixed
part is the measured 1.57 GiB (fp32 weights + the interpreter) plus what a first step has not allocated yet
(gradients, AdamW's moments), which a long run keeps.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from distill.recipe import StudentConfig
from student.plan import GIB, layer_activation_bytes, lora_params, parameter_count
from student.shapes import ModelShape, model_shape

PROCESS_OVERHEAD = 1.0 * GIB
FP32_LOGIT_BYTES = 12
TOKEN_CALIBRATION = 1.3  # measured / counted bytes per token (module docstring)


@dataclass
class HostEstimate:
    processes: int
    states: float  # per process: weights, gradients, AdamW moments
    activations: float
    logits: float
    other: float
    tokens: int  # per micro-batch: batch_size x the longest (packed) row

    @property
    def per_process(self) -> float:
        return self.states + self.activations + self.logits + self.other

    @property
    def total(self) -> float:
        return self.per_process * self.processes


def trains_on_host(cfg: StudentConfig, cuda: bool | None = None) -> bool:
    """``cpu``, or ``single`` where no CUDA GPU is visible (``cuda``: known already, else looked up)."""
    if cfg.launch.strategy == "cpu":
        return True
    return cfg.launch.strategy == "single" and not (cuda_visible() if cuda is None else cuda)


def cuda_visible() -> bool:
    """Whether an NVIDIA GPU is visible to this process, without importing torch (seconds the preflight and
    `distill plan` do not spend): a driver with at least one GPU, not hidden by CUDA_VISIBLE_DEVICES."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "x").strip() in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return (gpus.is_dir() and any(gpus.iterdir())) or Path("/dev/nvidia0").exists()


def packed(cfg: StudentConfig) -> bool:
    """Whether every micro-batch row is filled to max_length (sft packs unless told not to)."""
    return cfg.method == "sft" and cfg.packing is not False


def row_length(cfg: StudentConfig, longest: int | None = None) -> int:
    """The longest row of a micro-batch: max_length when packed (or the set's longest row is not known
    yet), else the tokenized set's longest row (a batch is padded to its longest)."""
    return cfg.max_length if packed(cfg) or longest is None else min(cfg.max_length, longest)


def host_estimate(
    shape: ModelShape,
    cfg: StudentConfig,
    checkpointing: bool | None = None,
    batch_size: int | None = None,
    longest: int | None = None,
) -> HostEstimate:
    """RAM of training ``cfg`` on the CPU; ``longest``: the tokenized set's longest row, when known
    (``checkpointing``/``batch_size``: what-ifs for the advice)."""
    checkpointing = bool(cfg.gradient_checkpointing) if checkpointing is None else checkpointing
    tokens = (batch_size or cfg.batch_size) * row_length(cfg, longest)
    total = parameter_count(shape)
    if cfg.lora is None:
        states = 16.0 * total
    else:
        states = 4.0 * total + 16.0 * lora_params(shape, cfg.lora.r, cfg.lora.target_modules)
    per_layer = layer_activation_bytes(shape, bf16=False) * tokens
    if checkpointing:
        recompute = per_layer + tokens * 4 * 2 * (shape.hidden_size + shape.intermediate_size)
        activations = shape.num_hidden_layers * tokens * 4 * shape.hidden_size + recompute
    else:
        activations = shape.num_hidden_layers * per_layer
    logits = float(tokens) * shape.vocab_size * FP32_LOGIT_BYTES
    processes = cfg.launch.nproc if cfg.launch.strategy == "cpu" else 1
    activations, logits = activations * TOKEN_CALIBRATION, logits * TOKEN_CALIBRATION
    return HostEstimate(processes, states, activations, logits, PROCESS_OVERHEAD, tokens)


def available_memory() -> float:
    """Bytes this process may still use: MemAvailable, or a smaller cgroup limit (containers, Slurm)."""
    available = math.inf
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    for limit_file, used_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit.isdigit() and int(limit) < 1 << 60:
                available = min(available, int(limit) - int(Path(used_file).read_text()))
        except (OSError, ValueError):
            continue
    if available == math.inf:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return float(available)


def _gib(value: float) -> str:
    return f"{value / GIB:.1f}"


def describe(cfg: StudentConfig, est: HostEstimate, shape: ModelShape) -> str:
    checkpointing = "on" if cfg.gradient_checkpointing else "off"
    each = f" ({_gib(est.per_process)} per process x {est.processes})" if est.processes > 1 else ""
    row = est.tokens // cfg.batch_size
    return (
        f"~{_gib(est.total)} GiB of RAM{each}: weights+gradients+AdamW {_gib(est.states)}, activations "
        f"{_gib(est.activations)} ({cfg.batch_size} x {row} tokens x {shape.num_hidden_layers} "
        f"layers x hidden {shape.hidden_size}, gradient checkpointing {checkpointing}), logits "
        f"{_gib(est.logits)}, other {_gib(est.other)}; the tokenized set is memory-mapped"
    )


def check_host_fits(
    cfg: StudentConfig,
    shape: ModelShape | None = None,
    available: float | None = None,
    longest: int | None = None,
) -> str | None:
    """One line with the numbers and the fixes when training on the CPU needs more RAM than is available
    (``longest``: the tokenized set's longest row, for a student that does not pack)."""
    if shape is None:
        shape, _ = model_shape(cfg.model)
    est = host_estimate(shape, cfg, longest=longest)
    available = available_memory() if available is None else available
    if est.total <= available:
        return None
    fixes = []
    if not cfg.gradient_checkpointing:
        with_checkpointing = host_estimate(shape, cfg, True, longest=longest).total
        fixes.append(f"gradient_checkpointing: true (~{_gib(with_checkpointing)} GiB)")
    if cfg.batch_size > 1:
        fixes.append(
            f"batch_size: 1 (~{_gib(host_estimate(shape, cfg, batch_size=1, longest=longest).total)} GiB)"
        )
    fixes.append("a smaller max_length")
    return (
        f"student {cfg.name}: training {cfg.model} on this machine's CPU ({cfg.launch.strategy}) needs "
        f"{describe(cfg, est, shape)}; only {_gib(available)} GiB is available, so the kernel would kill it; "
        f"set {', or '.join(fixes)}"
    )
