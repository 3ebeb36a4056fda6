"""How much GPU memory a student's training needs, per strategy, and how many GPUs make it fit.

Pure arithmetic on the model's shape (read from its config.json when one is on this machine, else from a
small table of public architectures); nothing is downloaded and torch is never imported.

What is counted, per GPU (GiB = 2**30 bytes; ``launch.gpu_memory_gb`` is read as GiB):

- **model states**, the 16 bytes/parameter of mixed-precision Adam (Rajbhandari et al. 2020, "ZeRO",
  Sec. 3.1: 2 bf16 weights + 2 bf16 gradients + 12 fp32 master weights, m and v). DeepSpeed keeps that split;
  FSDP2 under accelerate's bf16 policy upcasts the trainable weights to fp32 (4 + 4 + 8, same total);
  ddp/single load fp32 weights and train under bf16 autocast (4 + 4 + 8: the fp32 weights are the master
  copy; student/trainer.py) and DDP adds a 2-byte/parameter gradient bucket. ``bf16: false`` is fp32 everywhere (4 + 4 + 8).
  Sharding: ddp none; zero2 gradients + optimizer; zero3 and fsdp2 all three; zero3-offload keeps weights
  and optimizer in CPU RAM (reported per node) and a bf16 gradient partition on the GPU.
  LoRA: frozen base in bf16 (QLoRA: NF4 at 4.127 bits, Dettmers et al. 2023) + fp32 adapters at 16 bytes.
- **activations** for ``batch_size x max_length`` tokens (the worst case: every sequence full, which packing
  makes the usual case). Per layer we count the tensors autograd keeps, the method of Korthikanti et al.
  2022 ("Reducing Activation Recomputation", Sec. 4.1), adapted to these models: flash/SDPA attention keeps
  q, k, v and the output but never the s^2 scores (their 5as^2b term), SwiGLU keeps gate, up, act and
  product, RMSNorm keeps an fp32 copy, no dropout: 16h + 4h_kv + 8i bytes per token per layer in bf16.
  Gradient checkpointing keeps only each layer's input (2h bytes) plus one recomputed layer at a time.
- **logits**: tokens x vocab x 12 bytes (bf16 logits + the fp32 log-softmax kept for backward + its fp32
  gradient); 150k-token vocabularies make this the largest single tensor at long context. Liger's fused
  linear cross-entropy never materialises them (~6 bytes x tokens x hidden). With checkpointing the loss
  buffers and the recomputed layer are never alive together, so the total counts the larger of the two.
- **other**: 4 GiB for the CUDA context, NCCL and allocator slack, plus ZeRO-3/FSDP gather buffers (the
  largest module's bf16 weights twice, current + prefetch, and its unsharded gradient) or ZeRO-2 buckets.

How it compares with published runs (``student/plan.py`` figures; the README has the table):

- ZeRO paper, Fig. 1 (7.5B parameters, 64 GPUs): 120 / 31.4 / 16.6 / 1.9 GB of model states for DDP /
  P_os / P_os+g / P_os+g+p; our DeepSpeed state terms (zero3 on 1 GPU, zero2 and zero3 on 64) give 120,
  16.6 and 1.9 GB.
- open-r1 OpenR1-Distill-7B (Qwen2.5-Math-7B, 8 x H100, ZeRO-3, micro-batch 2 x 32,768, checkpointing,
  Liger): ~52 GiB/GPU, fits (zero3 would fit from 4 GPUs).
- s1.1 (Qwen2.5-32B-Instruct, FSDP, 16 x H100, block 20,000 "to avoid OOM"): ~61 GiB with Liger; without
  Liger ~86 GiB, i.e. we are ~8% conservative there (worst case: the longest trace fills the block).
- Sky-T1-32B-Preview (8 x H100, ZeRO-3 offload, cutoff 16,384): ~54 GiB, fits; zero3 without offload would
  need 16 GPUs, matching their choice of offload.
- OpenThinker-32B (ZeRO-3 offload, 1 x 3 x 32 GPUs = global batch 96): fits; LIMO (ZeRO-3, 16,384) needs
  16 GPUs without offload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from distill.errors import DistillError
from distill.recipe import StudentConfig
from student.shapes import KNOWN_SHAPES, ModelShape, model_shape, shape_from_config  # noqa: F401

GIB = 2**30
PLANNED_STRATEGIES = ("single", "ddp", "zero2", "zero3", "zero3-offload", "fsdp2")
GPU_COUNTS = (1, 2, 4, 8, *range(16, 513, 8))  # one node, then whole 8-GPU nodes
FIXED_OVERHEAD = 4 * GIB
LOGIT_BYTES = 12
NF4_BYTES = 4.127 / 8
_LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def layer_params(shape: ModelShape) -> int:
    h, q, kv = shape.hidden_size, shape.q_dim, shape.kv_dim
    attention = h * (q + 2 * kv) + q * h + ((q + 2 * kv) if shape.attention_bias else 0)
    return attention + 3 * h * shape.intermediate_size + 2 * h  # + two RMSNorm weights


def embedding_params(shape: ModelShape) -> int:
    """Input embedding plus the output head unless tied."""
    return shape.vocab_size * shape.hidden_size * (1 if shape.tie_word_embeddings else 2)


def parameter_count(shape: ModelShape) -> int:
    return shape.num_hidden_layers * layer_params(shape) + embedding_params(shape) + shape.hidden_size


def lora_params(shape: ModelShape, r: int, targets: list[str] | str) -> int:
    """Trainable adapter parameters: r x (in + out) per adapted linear layer (all-linear: all seven)."""
    h, q, kv, i = shape.hidden_size, shape.q_dim, shape.kv_dim, shape.intermediate_size
    sizes = {"q_proj": h + q, "k_proj": h + kv, "v_proj": h + kv, "o_proj": q + h}
    sizes.update(gate_proj=h + i, up_proj=h + i, down_proj=i + h)
    names = _LINEAR_NAMES if targets == "all-linear" else [t for t in targets if t in sizes]
    return shape.num_hidden_layers * r * sum(sizes[n] for n in names)


@dataclass
class Estimate:
    """Per-GPU memory in bytes; ``total`` counts logits and the recomputed layer as alternatives."""

    weights: float
    grads: float
    optimizer: float
    activations: float
    logits: float
    other: float
    overlap: float = 0.0  # min(recomputed layer, logits) with checkpointing: never alive together
    cpu_per_node: float = 0.0
    teacher: float = (
        0.0  # on_policy / kd: the teacher's weights + the sampling cache (student/plan_teacher.py)
    )

    @property
    def total(self) -> float:
        parts = (
            self.weights,
            self.grads,
            self.optimizer,
            self.activations,
            self.logits,
            self.other,
            self.teacher,
        )
        return sum(parts) - self.overlap


def _state_bytes(strategy: str, bf16: bool) -> tuple[float, float, float]:
    """Bytes per trainable parameter: weights, gradients, optimizer (see the module docstring)."""
    if not bf16:
        return 4, 4, 8
    if strategy in ("zero2", "zero3", "zero3-offload"):
        return 2, 2, 12
    return 4, 4, 8  # fsdp2 upcasts; single/ddp load fp32 weights and train under bf16 autocast


def _model_states(shape: ModelShape, cfg: StudentConfig, strategy: str, world: int) -> tuple[float, ...]:
    """Weights, gradients, optimizer bytes on one GPU, and CPU bytes per rank (offload)."""
    w, g, o = _state_bytes(strategy, cfg.bf16)
    total = parameter_count(shape)
    if cfg.lora is None:
        frozen, trainable = 0.0, float(total)
    else:
        trainable = float(lora_params(shape, cfg.lora.r, cfg.lora.target_modules))
        linear = shape.num_hidden_layers * (layer_params(shape) - 2 * shape.hidden_size)
        frozen = (linear * NF4_BYTES + (total - linear) * 2) if cfg.lora.quantize_4bit else total * 2.0
        w, g, o = 4, 4, 8  # peft keeps adapters in fp32
    if strategy == "ddp" and world > 1:
        g += 2  # DDP's gradient buckets are a second copy
    shard_w = world if strategy in ("zero3", "fsdp2") else 1
    shard_go = world if strategy in ("zero2", "zero3", "fsdp2", "zero3-offload") else 1
    weights = (frozen + trainable * w) / shard_w
    grads, optimizer = trainable * g / shard_go, trainable * o / shard_go
    if strategy != "zero3-offload":
        return weights, grads, optimizer, 0.0
    # ZeRO-Offload: fp32 master weights + Adam + fp32 gradients and the bf16 weights live in CPU RAM.
    cpu = (frozen + trainable * (o + 4 + w)) / world
    return 0.0, grads, 0.0, cpu


def layer_activation_bytes(shape: ModelShape, bf16: bool = True) -> float:
    """Bytes kept per token by one decoder layer (module docstring): 16h + 4h_kv + 8i in bf16."""
    h, kv, i = shape.hidden_size, shape.kv_dim, shape.intermediate_size
    # two RMSNorms (fp32 copy + output: 3h each), q, attention output, k, v, four SwiGLU tensors
    elements = 8 * h + 2 * kv + 4 * i
    return elements * (2 if bf16 else 4)


def _activations(shape: ModelShape, tokens: int, checkpointing: bool, bf16: bool) -> tuple[float, float]:
    """Kept activations, and the part of them that is one recomputed layer (0 without checkpointing)."""
    per_layer = layer_activation_bytes(shape, bf16) * tokens
    if not checkpointing:
        return shape.num_hidden_layers * per_layer, 0.0
    unit = 2 if bf16 else 4
    recompute = per_layer + tokens * unit * 2 * (shape.hidden_size + shape.intermediate_size)  # + its grads
    return shape.num_hidden_layers * tokens * unit * shape.hidden_size + recompute, recompute


def _buffers(shape: ModelShape, strategy: str, world: int) -> float:
    largest = max(layer_params(shape), shape.vocab_size * shape.hidden_size)
    if strategy in ("zero3", "zero3-offload", "fsdp2") and world > 1:
        return 2 * 2 * largest + largest * (4 if strategy == "fsdp2" else 2)
    return 2 * 0.5e9 * 2 if strategy == "zero2" and world > 1 else 0.0  # reduce + allgather buckets


def estimate(
    shape: ModelShape,
    cfg: StudentConfig,
    strategy: str,
    world: int,
    nproc: int = 8,
    teacher: ModelShape | None = None,
) -> Estimate:
    """Per-GPU memory of training ``cfg`` with ``strategy`` on ``world`` GPUs (``nproc`` per node);
    ``teacher``: the shape of the model whose logits on_policy / kd match."""
    from student.plan_teacher import sampling_cache_bytes, teacher_bytes

    tokens = cfg.batch_size * cfg.max_length
    checkpointing = True if cfg.gradient_checkpointing is None else cfg.gradient_checkpointing
    weights, grads, optimizer, cpu_rank = _model_states(shape, cfg, strategy, world)
    activations, recompute = _activations(shape, tokens, checkpointing, cfg.bf16)
    # Liger's fused linear cross-entropy works in chunks: ~an fp32 hidden-size buffer per token.
    # TRL's DistillationTrainer (on_policy) projects to the vocabulary chunk by chunk, like Liger.
    chunked = cfg.liger or cfg.method == "on_policy"
    logits = tokens * shape.hidden_size * 6.0 if chunked else float(tokens) * shape.vocab_size * LOGIT_BYTES
    other = FIXED_OVERHEAD + _buffers(shape, strategy, world)
    overlap, cpu = min(recompute, logits), cpu_rank * min(world, nproc)
    extra = 0.0
    if teacher is not None:
        extra = teacher_bytes(parameter_count(teacher), strategy, world)
        extra += sampling_cache_bytes(
            cfg, shape.num_hidden_layers, shape.kv_dim, cfg.launch.gpu_memory_gb * GIB
        )
        if cfg.method == "kd":  # GKD keeps the teacher's full bf16 logits and their fp32 log-softmax too
            extra += float(tokens) * shape.vocab_size * 6
    return Estimate(weights, grads, optimizer, activations, logits, other, overlap, cpu, extra)


def min_gpus(
    shape: ModelShape, cfg: StudentConfig, strategy: str, teacher: ModelShape | None = None
) -> int | None:
    """The fewest GPUs (1, 2, 4, 8, then whole 8-GPU nodes up to 512) on which ``strategy`` fits."""
    limit = cfg.launch.gpu_memory_gb * GIB
    counts = (1,) if strategy == "single" else GPU_COUNTS
    for count in counts:
        if estimate(shape, cfg, strategy, count, min(count, 8), teacher).total <= limit:
            return count
        if strategy in ("single", "ddp"):
            return None  # nothing is sharded: more GPUs never help
    return None


@dataclass
class PlanRow:
    strategy: str
    world: int
    estimate: Estimate
    fits: bool
    min_gpus: int | None


def plan_rows(shape: ModelShape, cfg: StudentConfig, teacher: ModelShape | None = None) -> list[PlanRow]:
    """One row per GPU strategy, each at the recipe's world size (single: one GPU)."""
    rows = []
    for strategy in PLANNED_STRATEGIES:
        world = 1 if strategy == "single" else cfg.launch.world_size
        est = estimate(shape, cfg, strategy, world, cfg.launch.nproc, teacher)
        fits = est.total <= cfg.launch.gpu_memory_gb * GIB
        rows.append(PlanRow(strategy, world, est, fits, min_gpus(shape, cfg, strategy, teacher)))
    return rows


def _gib(value: float) -> str:
    return f"{value / GIB:.1f}"


def render_plan(
    cfg: StudentConfig, shape: ModelShape | None = None, source: str = "", teacher_ref: str | None = None
) -> str:
    """A markdown table for one student: per-GPU GiB by strategy, whether it fits, the minimum GPU count;
    ``teacher_ref``: the teacher of on_policy / kd, whose weights (and the sampling cache) join the total."""
    if shape is None:
        shape, source = model_shape(cfg.model)
    teacher, teacher_source = model_shape(teacher_ref) if teacher_ref else (None, "")
    launch, tokens = cfg.launch, cfg.batch_size * cfg.max_length
    checkpointing = "on" if cfg.gradient_checkpointing in (None, True) else "off"
    lora = "" if cfg.lora is None else f", {'QLoRA' if cfg.lora.quantize_4bit else 'LoRA'} r={cfg.lora.r}"
    lines = [
        f"student {cfg.name}: {cfg.model} ({parameter_count(shape) / 1e9:.2f}B parameters; shape from {source})",
        f"  {cfg.batch_size} x {cfg.max_length} = {tokens:,} tokens per micro-batch, checkpointing "
        f"{checkpointing}, liger {'on' if cfg.liger else 'off'}, {'bf16' if cfg.bf16 else 'fp32'}{lora}; "
        f"recipe: {launch.strategy}, {launch.nnodes} node(s) x {launch.nproc} GPU(s) of {launch.gpu_memory_gb:g} GiB",
        "",
        f"| strategy | GPUs | weights | grads | optimizer | activations | logits | other | total GiB/GPU "
        f"| CPU GiB/node | fits on {launch.world_size} | min GPUs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    if teacher is not None:
        lines.insert(
            2,
            f"  method {cfg.method}: teacher {_teacher_label(cfg, teacher_ref)} "
            f"({parameter_count(teacher) / 1e9:.2f}B, bf16, "
            f"inference only; shape from {teacher_source}) and the sampling cache are in `other`",
        )
    for row in plan_rows(shape, cfg, teacher):
        est, mark = row.estimate, " *" if row.strategy == launch.strategy else ""
        cells = [
            est.weights,
            est.grads,
            est.optimizer,
            est.activations,
            est.logits,
            est.other + est.teacher,
            est.total,
        ]
        cpu = _gib(est.cpu_per_node) if est.cpu_per_node else "-"
        lines.append(
            f"| {row.strategy}{mark} | {row.world} | {' | '.join(_gib(c) for c in cells)} | {cpu} "
            f"| {'yes' if row.fits else 'no'} | {row.min_gpus or 'none'} |"
        )
    lines.append("(* the recipe's strategy; total counts the loss buffers and the recomputed layer once)")
    if shape.max_position_embeddings and cfg.max_length > shape.max_position_embeddings:
        lines.append(
            f"note: max_length {cfg.max_length} exceeds the {shape.max_position_embeddings} positions "
            "in the model's config; extend its RoPE (e.g. rope_theta / max_position_embeddings) first"
        )
    warning = check_fits(cfg, shape, teacher)
    return "\n".join(lines + _host_lines(cfg, shape) + ([f"warning: {warning}"] if warning else []))


def _host_lines(cfg: StudentConfig, shape: ModelShape) -> list[str]:
    """Where the student trains on the CPU (``cpu``, ``single`` without CUDA): its RAM, and the refusal."""
    from student.plan_host import available_memory, check_host_fits, describe, host_estimate, trains_on_host

    if not trains_on_host(cfg):
        return []
    available = available_memory()
    line = f"host memory ({cfg.launch.strategy} on this machine's CPU): {describe(cfg, host_estimate(shape, cfg), shape)}"
    problem = check_host_fits(cfg, shape, available)
    return [line + f"; {available / GIB:.1f} GiB available"] + ([f"refused: {problem}"] if problem else [])


def _teacher_label(cfg: StudentConfig, teacher_ref: str) -> str:
    named = cfg.distill_from
    return f"{named} (shaped as {teacher_ref})" if named and named != teacher_ref else teacher_ref


def check_fits(
    cfg: StudentConfig, shape: ModelShape | None = None, teacher: ModelShape | None = None
) -> str | None:
    """One line when the recipe's strategy on its world size needs more than ``gpu_memory_gb`` per GPU."""
    launch = cfg.launch
    if launch.strategy == "cpu":
        return None  # trains in CPU RAM, not on GPUs
    if shape is None:
        try:
            shape, _ = model_shape(cfg.model)
        except DistillError:
            return None
    world = 1 if launch.strategy == "single" else launch.world_size
    need = estimate(shape, cfg, launch.strategy, world, launch.nproc, teacher).total
    if need <= launch.gpu_memory_gb * GIB:
        return None
    fitting = [(r.min_gpus, r.strategy) for r in plan_rows(shape, cfg, teacher) if r.min_gpus]
    hint = ", ".join(f"{s} on {n} GPUs" for n, s in sorted(fitting)[:3]) or "no strategy up to 512 GPUs"
    knobs = {"liger": cfg.liger, "gradient_checkpointing": cfg.gradient_checkpointing is not False}
    off = "".join(f", set {knob}" for knob, on in knobs.items() if not on)
    return (
        f"student {cfg.name}: {launch.strategy} on {world} GPU(s) needs ~{math.ceil(need / GIB)} GiB per GPU, "
        f"more than {launch.gpu_memory_gb:g} GiB; fits: {hint}; or lower batch_size/max_length{off} "
        "(see `distill plan`)"
    )
