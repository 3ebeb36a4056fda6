import json

import pytest

from distill.errors import DistillError
from distill.models import resolve_model
from distill.recipe import StudentConfig
from distill.records import write_parquet
from student.sft import train_student


def sft_rows(n: int = 8) -> list[dict]:
    rows = []
    for i in range(n):
        prompt = [{"role": "user", "content": f"What is {i} + 1?"}]
        rows.append(
            {
                "prompt": prompt,
                "completion": [{"role": "assistant", "content": f"\\boxed{{{i + 1}}}"}],
                "prompt_id": str(i),
                "sample_idx": 0,
            }
        )
    return rows


def train_tiny(tmp_path, rows=None, **overrides):
    train = write_parquet(rows or sft_rows(), tmp_path / "train.parquet")
    cfg = StudentConfig(
        name="tiny",
        model="tiny-random-llama",
        epochs=2,
        batch_size=4,
        learning_rate=1e-3,
        max_length=64,
        **overrides,
    )
    return train_student(resolve_model("tiny-random-llama"), train, tmp_path / "out", cfg)


def test_sft_trains_and_saves_a_loadable_model(tmp_path):
    metrics = train_tiny(tmp_path, packing=False)
    assert metrics["steps"] == 4 and metrics["train_rows"] == 8 and metrics["world_size"] == 1
    assert metrics["last_loss"] < metrics["first_loss"]
    final = tmp_path / "out" / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["num_hidden_layers"] == 2
    assert (final / "model.safetensors").exists() and (final / "tokenizer.json").exists()
    assert not list((tmp_path / "out").glob(".final.tmp"))


def test_tensorboard_logs_land_in_each_runs_own_folder(tmp_path):
    # `distill run` trains the GRPO teacher and every student in one process: each run's events belong in
    # its own <out>/tensorboard (what README points tensorboard --logdir at), none under checkpoints/.
    for name in ("first", "second"):
        train_tiny(tmp_path / name, packing=False, report_to=["tensorboard"])
        out = tmp_path / name / "out"
        assert list((out / "tensorboard").glob("events.out.tfevents.*")), name
        assert not list(out.rglob("runs/**/events.out.tfevents.*")), name


def test_missing_training_set_is_a_clear_error(tmp_path):
    cfg = StudentConfig(name="s", model="tiny-random-llama")
    with pytest.raises(DistillError, match="run `distill filter` first"):
        train_student(resolve_model("tiny-random-llama"), tmp_path / "nope.parquet", tmp_path / "out", cfg)


@pytest.mark.gpu
def test_sft_bf16_on_cuda(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    metrics = train_tiny(tmp_path, bf16=True)
    assert metrics["last_loss"] < metrics["first_loss"]


@pytest.mark.parametrize("save", ["merged", "adapter"])
def test_lora_saves_merged_weights_or_adapter_only(tmp_path, save):
    from distill.recipe import LoraConfig

    metrics = train_tiny(tmp_path, lora=LoraConfig(r=4, alpha=8, save=save))
    final = tmp_path / "out" / "final"
    assert metrics["steps"] > 0
    if save == "merged":
        from transformers import AutoModelForCausalLM

        assert (final / "model.safetensors").exists() and not (final / "adapter_config.json").exists()
        assert AutoModelForCausalLM.from_pretrained(final).config.num_hidden_layers == 2
    else:
        assert (final / "adapter_config.json").exists() and not (final / "model.safetensors").exists()


def test_metrics_record_throughput_and_real_token_share(tmp_path):
    rows = sft_rows()
    for i, row in enumerate(rows):  # lengths that differ within a batch, so padding shows
        row["completion"][0]["content"] += " ok" * i
    padded = train_tiny(tmp_path / "padded", rows, packing=False)
    packed = train_tiny(tmp_path / "packed", rows, packing=True)
    assert packed["real_token_share"] > padded["real_token_share"] and packed["tokens_per_second"] > 0
    assert 0 < padded["real_token_share"] < 1.0
    assert packed["packing"] is True and padded["too_long"] == 0 and packed["train_rows"] == 8
