"""Model shapes for `distill plan` (student/plan.py): read from a config.json already on this machine, else
from a small table of public architectures; nothing is downloaded and torch is never imported."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from distill.errors import DistillError


@dataclass(frozen=True)
class ModelShape:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    attention_bias: bool = False  # Qwen2 has q/k/v biases
    head_dim: int | None = None

    @property
    def q_dim(self) -> int:
        return (self.head_dim or self.hidden_size // self.num_attention_heads) * self.num_attention_heads

    @property
    def kv_dim(self) -> int:
        return (self.head_dim or self.hidden_size // self.num_attention_heads) * self.num_key_value_heads


def _qwen(h, i, layers, heads, kv, vocab, tie, positions=32768) -> ModelShape:
    return ModelShape(h, i, layers, heads, kv, vocab, tie, positions, attention_bias=True)


# Public architectures, checked against their config.json files. Qwen2.5-Math declares 4,096 positions
# (rope_theta 10,000); open-r1's RoPE-300k copy of the 7B is the same weights with 32,768. The base 7B-32B
# Qwen2.5 configs declare 131,072 positions, the Instruct ones 32,768.
_Q15, _Q7 = _qwen(1536, 8960, 28, 12, 2, 151936, True), _qwen(3584, 18944, 28, 28, 4, 152064, False)
_Q14, _Q32 = _qwen(5120, 13824, 48, 40, 8, 152064, False), _qwen(5120, 27648, 64, 40, 8, 152064, False)
_L8 = ModelShape(4096, 14336, 32, 32, 8, 128256, False, 131072)
_L70 = ModelShape(8192, 28672, 80, 64, 8, 128256, False, 131072)


KNOWN_SHAPES: dict[str, ModelShape] = {
    "Qwen/Qwen2.5-Math-1.5B": replace(_Q15, max_position_embeddings=4096),
    "Qwen/Qwen2.5-Math-7B": replace(_Q7, max_position_embeddings=4096),
    "open-r1/Qwen2.5-Math-7B-RoPE-300k": _Q7,
    "open-r1/OpenR1-Distill-7B": _Q7,  # Qwen2.5-Math-7B-RoPE-300k SFT'd on R1 traces (on-policy teacher)
    "Qwen/Qwen2.5-1.5B": _Q15,
    # Qwen2.5-Math-1.5B fine-tuned on R1 traces; its config: untied embeddings, 131,072 positions (DeepScaleR)
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": replace(
        _Q15, tie_word_embeddings=False, max_position_embeddings=131072
    ),
    "Qwen/Qwen2.5-1.5B-Instruct": _Q15,
    "Qwen/Qwen2.5-7B": replace(_Q7, max_position_embeddings=131072),
    "Qwen/Qwen2.5-7B-Instruct": _Q7,
    "Qwen/Qwen2.5-14B": replace(_Q14, max_position_embeddings=131072),
    "Qwen/Qwen2.5-14B-Instruct": _Q14,
    "Qwen/Qwen2.5-32B": replace(_Q32, max_position_embeddings=131072),
    "Qwen/Qwen2.5-32B-Instruct": _Q32,
    "meta-llama/Llama-3.1-8B": _L8,
    "meta-llama/Llama-3.1-8B-Instruct": _L8,
    "meta-llama/Llama-3.1-70B-Instruct": _L70,
    "meta-llama/Llama-3.3-70B-Instruct": _L70,
    "smollm2-135m-instruct": ModelShape(576, 1536, 30, 9, 3, 49152, True, 8192),
    "tiny-random-llama": ModelShape(32, 64, 2, 4, 2, 320, True, 512),
}


def shape_from_config(data: dict, where: str = "config.json") -> ModelShape:
    """The shape fields of a transformers config.json (dense decoder-only models)."""
    data = {**data, **data.get("text_config", {})}
    if data.get("num_experts") or data.get("n_routed_experts") or data.get("num_local_experts"):
        raise DistillError(f"{where}: mixture-of-experts models are not modelled by `distill plan`")
    try:
        heads = int(data["num_attention_heads"])
        return ModelShape(
            hidden_size=int(data["hidden_size"]),
            intermediate_size=int(data["intermediate_size"]),
            num_hidden_layers=int(data["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(data.get("num_key_value_heads") or heads),
            vocab_size=int(data["vocab_size"]),
            tie_word_embeddings=bool(data.get("tie_word_embeddings", False)),
            max_position_embeddings=int(data.get("max_position_embeddings") or 0),
            attention_bias=bool(data.get("attention_bias", data.get("model_type") == "qwen2")),
            head_dim=data.get("head_dim"),
        )
    except KeyError as exc:
        raise DistillError(f"{where}: no {exc.args[0]!r}; `distill plan` needs a decoder config") from None


def _cached_config(ref: str) -> tuple[Path | None, str]:
    """A config.json already on this machine: a folder, a built-in model's cache, or the Hub cache."""
    from distill.models import _HUB_ID, BUILTIN_MODELS, cache_dir

    folder = Path(ref).expanduser()
    if (folder / "config.json").is_file():
        return folder / "config.json", f"{folder}/config.json"
    if ref in BUILTIN_MODELS:
        built = cache_dir() / "models" / ref / "config.json"
        return (built, "built-in model's config.json") if built.is_file() else (None, "")
    if _HUB_ID.match(ref):
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(ref, "config.json")  # a cache look-up only, never a download
        if isinstance(found, str):
            return Path(found), "config.json in the Hugging Face cache"
    return None, ""


def model_shape(ref: str) -> tuple[ModelShape, str]:
    """The model's shape and where it came from (its config.json, else distill's table)."""
    path, source = _cached_config(ref)
    if path is not None:
        return shape_from_config(json.loads(path.read_text()), str(path)), source
    for name, shape in KNOWN_SHAPES.items():
        if name.lower() == ref.lower():
            return shape, "distill's table of public shapes"
    if ref.startswith((".", "/", "~")):
        raise DistillError(f"model folder {ref} has no config.json yet; create it (see the recipe's header)")
    raise DistillError(
        f"model {ref!r}: no config.json on this machine and not in distill's table of public shapes; "
        f"download its config (hf download {ref} config.json) or point at a local folder"
    )
