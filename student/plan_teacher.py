"""What on_policy and kd add to a student's GPU memory (``distill plan``, student/plan.py): the teacher's
weights, loaded for inference only, and the student's sampling cache.

- **teacher**: bf16 weights, 2 bytes/parameter, no gradients or optimizer state (student/methods/common.py
  loads it with requires_grad off). ZeRO-3 and FSDP2 shard it like the student (TRL prepares it with the
  same DeepSpeed/accelerate plugin); single, ddp and zero2 hold a full copy on every GPU. Its forward runs
  under no_grad, one layer's activations at a time, and TRL's chunked loss projects to the vocabulary a
  chunk at a time, so neither is counted beyond the student's own terms.
- **sampling cache** (on_policy with transformers generate): the student's KV cache for ``batch_size``
  sequences of ``max_length`` tokens, 2 (k, v) x layers x kv_dim x 2 bytes per token. With ``use_vllm``
  (colocate) TRL's vLLM engine takes ``vllm_gpu_memory_utilization`` (TRL default 0.3) of each GPU instead.
"""

from __future__ import annotations

from distill.recipe import Recipe, StudentConfig

VLLM_SHARE = 0.3  # TRL DistillationConfig.vllm_gpu_memory_utilization default


def teacher_model(recipe: Recipe, student: StudentConfig) -> str | None:
    """A model reference with the shape of the teacher whose logits ``student`` matches (None for sft and
    grpo, which match no teacher)."""
    if student.method in ("sft", "grpo"):
        return None
    ref = student.distill_from or (recipe.teacher.model if recipe.teacher else None)
    if ref == "grpo":
        return recipe.grpo.model if recipe.grpo else None
    if ref and ref.startswith("student:"):
        other = next((s for s in recipe.students if s.name == ref[len("student:") :]), None)
        return other.model if other else None
    return ref


def teacher_bytes(teacher_params: int, strategy: str, world: int) -> float:
    """The teacher's bf16 weights on one GPU (sharded by zero3 / fsdp2)."""
    shards = world if strategy in ("zero3", "zero3-offload", "fsdp2") else 1
    return 2.0 * teacher_params / shards


def sampling_cache_bytes(cfg: StudentConfig, layers: int, kv_dim: int, gpu_bytes: float) -> float:
    """The student's generation cache on one GPU (on_policy only)."""
    if cfg.method != "on_policy":
        return 0.0
    if cfg.on_policy.use_vllm and cfg.on_policy.vllm_mode == "colocate":
        return VLLM_SHARE * gpu_bytes
    if cfg.on_policy.use_vllm:
        return 0.0  # a vLLM server on its own GPUs
    return 2.0 * layers * kv_dim * 2 * cfg.batch_size * cfg.max_length


def teacher_shape(recipe: Recipe, student: StudentConfig):
    """The teacher's shape for check_fits, or None (sft, or a model with no config here and not in the
    table)."""
    from distill.errors import DistillError
    from student.shapes import model_shape

    ref = teacher_model(recipe, student)
    try:
        return model_shape(ref)[0] if ref else None
    except DistillError:
        return None
