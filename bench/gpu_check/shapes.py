"""Model shapes the GPU check trains (random weights, real sizes), and the FLOPs a training token costs.

FLOPs per trained token (PaLM, Chowdhery et al. 2022, appendix B; no credit for recomputation, so
gradient checkpointing does not raise it):

    6 * N  +  12 * L * d * s

- N: parameters that take part in a matrix product per token: every decoder layer's projections
  (q, k, v, o, gate, up, down) plus the LM head (vocab x d, counted even when tied to the embedding,
  whose lookup costs nothing). Forward 2N, backward 4N.
- 12 * L * d * s: attention scores and the weighted sum (QK^T and AV, forward + backward) for a token
  attending over s positions, d = heads x head_dim, full square (no causal halving, as in PaLM).
- s for packed rows: each example attends only within itself, so a token of an example of n tokens
  sees n positions; averaged over tokens, s = sum(n^2) / sum(n) over the trained examples.

MFU = real (non-pad) trained tokens/s x FLOPs per token / the card's dense bf16 peak (hardware.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

FLOPS_FORMULA = (
    "FLOPs/token = 6*N + 12*L*d*s (PaLM appendix B): N = parameters in matrix products (layer projections + "
    "LM head), L layers, d = heads*head_dim, s = sum(n^2)/sum(n) over the trained examples (packed examples "
    "attend only within themselves); recomputation (gradient checkpointing) not counted"
)


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tie_embeddings: bool
    context: int = 32768

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


# Qwen/Qwen2.5-1.5B and -0.5B config.json (1.54B and 0.49B parameters as published).
QWEN25_15B = Shape(1536, 28, 12, 2, 8960, 151936, True)
QWEN25_05B = Shape(896, 24, 14, 2, 4864, 151936, True)
# The dry run builds the same code path at a size a CPU handles in a second.
SMOKE = Shape(64, 2, 4, 2, 128, 512, True, context=8192)
SHAPES = {"qwen2.5-1.5b": QWEN25_15B, "qwen2.5-0.5b": QWEN25_05B, "smoke": SMOKE}


def layer_matmul_params(shape: Shape) -> int:
    """Weights of one decoder layer's projections (Qwen2 has q/k/v biases: d + 2 kv, counted too)."""
    kv = shape.kv_heads * shape.head_dim
    attention = shape.hidden * shape.hidden * 2 + shape.hidden * kv * 2 + shape.hidden + 2 * kv
    return attention + 3 * shape.hidden * shape.intermediate


def matmul_params(shape: Shape) -> int:
    """N in 6N: all layers' projections plus the LM head."""
    return shape.layers * layer_matmul_params(shape) + shape.vocab * shape.hidden


def total_params(shape: Shape) -> int:
    """Parameter count as the model reports it (norms included; a tied head counted once)."""
    norms = shape.layers * 2 * shape.hidden + shape.hidden
    embedding = shape.vocab * shape.hidden
    head = 0 if shape.tie_embeddings else embedding
    return shape.layers * layer_matmul_params(shape) + norms + embedding + head


def attention_context(lengths: list[int]) -> float:
    """s: positions a trained token attends over, averaged over tokens (each example on its own)."""
    return sum(n * n for n in lengths) / max(sum(lengths), 1)


def flops_per_token(shape: Shape, context: float) -> float:
    attention = 12 * shape.layers * shape.heads * shape.head_dim * context
    return 6 * matmul_params(shape) + attention


def mfu(tokens_per_second: float, shape: Shape, context: float, peak_tflops: float | None) -> float | None:
    if not peak_tflops:
        return None
    return tokens_per_second * flops_per_token(shape, context) / (peak_tflops * 1e12)


def build_model(
    folder: Path, shape: Shape, tokenizer_dir: str, vocab: int | None = None, seed: int = 0
) -> Path:
    """A random-initialised Qwen2 of ``shape`` (bf16 safetensors) with the tokenizer from ``tokenizer_dir``.

    ``vocab`` overrides the shape's vocabulary: models that generate text (GRPO) need the tokenizer's own,
    models only trained on (the SFT bench) keep the real one so the LM head costs what it really costs.
    """
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    size = vocab or shape.vocab
    if size < len(tokenizer):
        raise ValueError(f"vocab {size} is smaller than the tokenizer's {len(tokenizer)} tokens")
    config = Qwen2Config(
        vocab_size=size,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.context,
        tie_word_embeddings=shape.tie_embeddings,
        rope_theta=1_000_000.0,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        dtype="bfloat16",
    )
    torch.manual_seed(seed)
    with torch.device(
        "cuda" if torch.cuda.is_available() else "cpu"
    ):  # init on the GPU: seconds, not a minute
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.rename(folder)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the training runs in child processes: leave them the whole card
    return folder


def describe(shape: Shape) -> dict:
    return {**asdict(shape), "params": total_params(shape), "matmul_params": matmul_params(shape)}
