"""The memory planner: parameter counts against published sizes, sharding, checkpointing, LoRA, GPU counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.recipe import StudentConfig
from student import plan

REPO = Path(__file__).resolve().parents[2]


def student(model: str, **kw) -> StudentConfig:
    base = {"name": "s", "model": model, "bf16": True, "gradient_checkpointing": True}
    return StudentConfig.model_validate({**base, **kw})


def changed(cfg: StudentConfig, **kw) -> StudentConfig:
    return StudentConfig.model_validate({**cfg.model_dump(), **kw})


def total_gib(cfg: StudentConfig, strategy: str, world: int) -> float:
    shape, _ = plan.model_shape(cfg.model)
    return plan.estimate(shape, cfg, strategy, world).total / plan.GIB


# Sizes the model cards publish (Qwen2.5 cards: "Number of Parameters"; Meta: 8.03B and 70.6B).
@pytest.mark.parametrize(
    "model, published",
    [
        ("Qwen/Qwen2.5-Math-1.5B", 1.54e9),
        ("Qwen/Qwen2.5-1.5B-Instruct", 1.54e9),
        ("Qwen/Qwen2.5-Math-7B", 7.61e9),
        ("Qwen/Qwen2.5-7B-Instruct", 7.61e9),
        ("Qwen/Qwen2.5-14B", 14.7e9),
        ("Qwen/Qwen2.5-32B-Instruct", 32.5e9),
        ("meta-llama/Llama-3.1-8B", 8.03e9),
        ("meta-llama/Llama-3.3-70B-Instruct", 70.6e9),
    ],
)
def test_parameter_counts_match_published_sizes(model, published):
    shape, _ = plan.model_shape(model)  # the table here; a cached config.json gives the same shape
    assert plan.parameter_count(shape) == pytest.approx(published, rel=0.02)


def test_exact_count_for_qwen_7b_includes_qkv_bias_and_untied_head():
    shape, _ = plan.model_shape("Qwen/Qwen2.5-7B")
    assert plan.parameter_count(shape) == 7_615_616_512  # what safetensors metadata reports


def test_local_config_json_wins_over_the_table(tmp_path):
    config = {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "tie_word_embeddings": True,
        "max_position_embeddings": 2048,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    shape, source = plan.model_shape(str(tmp_path))
    assert source.endswith("config.json") and shape.num_key_value_heads == 2 and not shape.attention_bias
    # embed 64k + 3 x (q 4096 + k,v 2 x 2048 + o 4096 + mlp 3 x 8192 + norms 128) + final norm 64
    assert plan.parameter_count(shape) == 64_000 + 3 * (4096 + 4096 + 4096 + 24576 + 128) + 64


def test_hub_cache_config_is_read_without_downloading(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    snapshot = tmp_path / "models--acme--tiny" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (tmp_path / "models--acme--tiny" / "refs").mkdir()
    (tmp_path / "models--acme--tiny" / "refs" / "main").write_text("abc123")
    config = {"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    config.update(num_attention_heads=4, vocab_size=100)
    (snapshot / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    shape, source = plan.model_shape("acme/tiny")
    assert "Hugging Face cache" in source and shape.attention_bias and shape.num_key_value_heads == 4


def test_unknown_model_and_moe_configs_fail_with_a_fix():
    with pytest.raises(DistillError, match="hf download nobody/nothing config.json"):
        plan.model_shape("nobody/nothing")
    with pytest.raises(DistillError, match="mixture-of-experts"):
        plan.shape_from_config({"hidden_size": 8, "num_experts": 64})


def test_model_states_follow_the_zero_paper():
    # Rajbhandari et al. 2020, Fig. 1: 7.5B parameters on 64 GPUs -> 120 / 16.6 / 1.9 GB of model states.
    cfg = student("Qwen/Qwen2.5-7B")
    shape, _ = plan.model_shape(cfg.model)
    params = plan.parameter_count(shape)

    def states_gb_for_7_5b(strategy, world):
        est = plan.estimate(shape, cfg, strategy, world)
        return (est.weights + est.grads + est.optimizer) / params * 7.5e9 / 1e9

    assert states_gb_for_7_5b("zero3", 1) == pytest.approx(120.0)
    assert states_gb_for_7_5b("zero2", 64) == pytest.approx(16.6, abs=0.05)
    assert states_gb_for_7_5b("zero3", 64) == pytest.approx(1.9, abs=0.05)


def test_more_sharding_never_needs_more_memory():
    cfg = student("Qwen/Qwen2.5-32B-Instruct", batch_size=1, max_length=16384, liger=True)
    per_gpu = [total_gib(cfg, s, 16) for s in ("ddp", "zero2", "zero3", "zero3-offload")]
    assert per_gpu == sorted(per_gpu, reverse=True)
    by_world = [total_gib(cfg, "zero3", n) for n in (2, 4, 8, 16, 32)]
    assert by_world == sorted(by_world, reverse=True)
    assert total_gib(cfg, "ddp", 2) == total_gib(cfg, "ddp", 64)  # nothing sharded


def test_checkpointing_and_liger_lower_activation_memory():
    on = student("Qwen/Qwen2.5-7B", batch_size=2, max_length=32768)
    off = changed(on, gradient_checkpointing=False)
    shape, _ = plan.model_shape(on.model)
    with_ckpt, without = plan.estimate(shape, on, "zero3", 8), plan.estimate(shape, off, "zero3", 8)
    assert with_ckpt.activations < without.activations / 5
    liger = plan.estimate(shape, changed(on, liger=True), "zero3", 8)
    assert liger.logits < with_ckpt.logits / 20  # 152k-vocab logits vs a hidden-size buffer
    # 65,536 tokens x 152,064 vocab x 12 bytes: the loss buffers a 32k context brings without Liger
    assert with_ckpt.logits == 65536 * 152064 * 12


def test_lora_and_qlora_lower_memory():
    full = student("meta-llama/Llama-3.1-8B", batch_size=1, max_length=4096)
    lora = changed(full, lora={"r": 16})
    qlora = changed(full, lora={"r": 16, "quantize_4bit": True})
    sizes = [total_gib(c, "single", 1) for c in (full, lora, qlora)]
    assert sizes[0] > sizes[1] > sizes[2]
    shape, _ = plan.model_shape(full.model)
    adapters = plan.lora_params(shape, 16, "all-linear")
    assert adapters == 41_943_040  # peft's count for Llama-3.1-8B, r=16, all linear layers


def test_min_gpus_small_vs_large_models():
    small = student("Qwen/Qwen2.5-Math-1.5B", batch_size=2, max_length=8192, liger=True)
    shape, _ = plan.model_shape(small.model)
    assert plan.min_gpus(shape, small, "single") == 1
    big = student("meta-llama/Llama-3.3-70B-Instruct", batch_size=1, max_length=16384, liger=True)
    shape, _ = plan.model_shape(big.model)
    assert plan.min_gpus(shape, big, "zero3") > 8
    assert plan.min_gpus(shape, big, "zero3") % 8 == 0  # whole nodes
    assert plan.min_gpus(shape, big, "ddp") is None and plan.min_gpus(shape, big, "single") is None


@pytest.mark.parametrize(
    "what, model, kw, strategy, world, fits",
    [
        # open-r1 OpenR1-Distill-7B: 8 x H100, ZeRO-3, 2 x 32k per GPU, checkpointing, Liger
        (
            "open-r1",
            "open-r1/Qwen2.5-Math-7B-RoPE-300k",
            {"batch_size": 2, "max_length": 32768, "liger": True},
            "zero3",
            8,
            True,
        ),
        # s1.1: 32B on 16 H100 with FSDP at a 20k block (here with Liger)
        (
            "s1.1",
            "Qwen/Qwen2.5-32B-Instruct",
            {"batch_size": 1, "max_length": 20000, "liger": True},
            "fsdp2",
            16,
            True,
        ),
        # Sky-T1 / Bespoke-Stratos: 32B on 8 H100 with ZeRO-3 offload at 16k, no Liger
        (
            "Sky-T1",
            "Qwen/Qwen2.5-32B-Instruct",
            {"batch_size": 1, "max_length": 16384},
            "zero3-offload",
            8,
            True,
        ),
        # ... and without offload one node is not enough
        (
            "no offload",
            "Qwen/Qwen2.5-32B-Instruct",
            {"batch_size": 1, "max_length": 16384},
            "zero3",
            8,
            False,
        ),
    ],
)
def test_published_runs(what, model, kw, strategy, world, fits):
    assert (total_gib(student(model, **kw), strategy, world) <= 80) is fits, what


def test_check_fits_warns_in_one_line():
    cfg = student(
        "meta-llama/Llama-3.3-70B-Instruct",
        batch_size=1,
        max_length=16384,
        liger=True,
        launch={"strategy": "zero3", "nproc": 8, "nnodes": 4},
    )
    assert plan.check_fits(cfg) is None
    small = changed(cfg, launch={**cfg.launch.model_dump(), "nnodes": 1})
    warning = plan.check_fits(small)
    assert warning and "\n" not in warning
    assert "zero3 on 8 GPU(s) needs" in warning and "zero3 on 32 GPUs" in warning
    assert plan.check_fits(changed(cfg, model="nobody/nothing")) is None  # unknown: no guess
    assert plan.check_fits(changed(cfg, launch={"strategy": "cpu"})) is None


def test_render_plan_has_a_row_per_strategy_and_notes_short_rope():
    cfg = student(
        "Qwen/Qwen2.5-Math-7B", batch_size=1, max_length=8192, launch={"strategy": "zero3", "nproc": 8}
    )
    text = plan.render_plan(cfg)
    for strategy in plan.PLANNED_STRATEGIES:
        assert f"| {strategy}" in text
    assert "| zero3 * | 8 |" in text
    assert "exceeds the 4096 positions" in text


def test_plan_never_imports_torch():
    code = (
        "import sys; from distill.cli import main; "
        "rc = main(['plan', 'recipes/r1-llama3.3-70b.yaml']); "
        "assert rc == 0 and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
