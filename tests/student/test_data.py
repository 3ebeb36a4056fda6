"""Tokenization, label masking and packing on real TRL batches (tiny offline model)."""

import pytest
import torch
from student_helpers import student_cfg, think_rows

from distill.errors import DistillError
from distill.models import resolve_model
from distill.records import write_parquet
from student.data import align_eos, end_of_turn_token, tokenize_rows
from student.metrics import PackedRowsCollator
from student.sft import TOKENS_FILE, prepare_job


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoTokenizer

    path = resolve_model("tiny-random-llama")
    return path, AutoTokenizer.from_pretrained(path)


def packed_batch(tmp_path, tiny, rows, flat=True, **cfg_overrides):
    """The first training batch built from our token set with packing on: TRL's flat padding-free row
    (flash attention) or our packed rows (SDPA/eager)."""
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    from student.trainer import build_args

    path, _ = tiny
    cfg = student_cfg(**{"batch_size": 1, "max_length": 256, **cfg_overrides})
    prepare_job(path, write_parquet(rows, tmp_path / "train.parquet"), tmp_path, cfg)
    dataset = datasets.load_dataset("parquet", data_files=str(tmp_path / TOKENS_FILE), split="train")
    args = build_args(cfg, tmp_path, cpu=True, packing=True)
    args.shuffle_dataset = False
    model = AutoModelForCausalLM.from_pretrained(path)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tiny[1])
    if not flat:  # what student.trainer does for attention without a varlen kernel
        trainer.data_collator = PackedRowsCollator(tiny[1].pad_token_id)
    return trainer.model, next(iter(trainer.get_train_dataloader()))


def test_packed_batch_trains_completions_only_with_restarting_positions(tmp_path, tiny):
    _, tokenizer = tiny
    rows = think_rows(3)
    model, batch = packed_batch(tmp_path, tiny, rows)
    ids, labels, positions = batch["input_ids"][0], batch["labels"][0], batch["position_ids"][0]
    assert "attention_mask" not in batch  # padding-free: one flat row, no pad tokens
    starts = (positions == 0).nonzero().flatten().tolist()
    assert len(starts) == 3 and starts[0] == 0  # three examples packed, positions restart at each
    bounds = [*starts, len(ids)]
    eot = tokenizer.convert_tokens_to_ids(end_of_turn_token(tokenizer))
    for start, end in zip(bounds, bounds[1:], strict=False):
        example_ids, example_labels = ids[start:end], labels[start:end]
        assert torch.equal(positions[start:end], torch.arange(end - start))
        trained = example_labels[example_labels != -100]
        text = tokenizer.decode(trained)
        assert text.startswith("<think>") and "</think>" in text  # reasoning is trained, kept whole
        assert "What is" not in text and "careful" not in text  # prompt and system tokens never trained
        assert eot in trained.tolist()  # the student learns to stop
        first = (example_labels != -100).nonzero().flatten()[0]
        assert torch.equal(trained, example_ids[first:][example_labels[first:] != -100])


@pytest.mark.parametrize("flat", [True, False], ids=["flat-padding-free", "packed-rows"])
def test_packed_examples_do_not_attend_to_each_other(tmp_path, tiny, flat):
    # 5 examples of 80 tokens in rows of at most 170: several rows, several examples per row.
    model, batch = packed_batch(tmp_path, tiny, think_rows(5), flat=flat, batch_size=3, max_length=170)
    model.eval()
    ids, positions, labels = batch["input_ids"], batch["position_ids"], batch["labels"]
    assert "attention_mask" not in batch and ids.shape[0] == (1 if flat else 3)
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=positions).logits
    checked = 0
    for row in range(ids.shape[0]):
        real = int((labels[row] != -100).nonzero().max()) + 1  # pads (rows layout) come after this
        starts = [*(positions[row, :real] == 0).nonzero().flatten().tolist(), real]
        assert flat or len(starts) - 1 <= 2  # at most two examples fit a row of 170
        for start, end in zip(starts, starts[1:], strict=False):
            with torch.no_grad():
                alone = model(input_ids=ids[row : row + 1, start:end]).logits[0]
            assert torch.allclose(packed[row, start:end], alone, atol=1e-5)
            checked += 1
    assert checked == 5


def test_too_long_rows_are_counted_then_dropped_truncated_or_rejected(tiny):
    _, tokenizer = tiny
    rows = think_rows(4)
    rows[1]["completion"][0]["content"] = "<think>" + "long " * 200 + "</think> \\boxed{1}"
    dropped = tokenize_rows(rows, tokenizer, 120, "drop", "t.parquet")
    assert (dropped.too_long, dropped.truncated, len(dropped.input_ids)) == (1, 0, 3)
    cut = tokenize_rows(rows, tokenizer, 120, "truncate", "t.parquet")
    assert (cut.too_long, cut.truncated, len(cut.input_ids)) == (1, 1, 4)
    assert max(len(ids) for ids in cut.input_ids) == 120
    with pytest.raises(DistillError, match=r"t.parquet: row 1 has \d+ tokens, over max_length 120"):
        tokenize_rows(rows, tokenizer, 120, "error", "t.parquet")


def test_template_that_strips_reasoning_is_refused(tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny[0])
    # DeepSeek-R1-Distill-style: history keeps only what follows </think>.
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['role'] == 'assistant' %}{{ m['content'].split('</think>')[-1] }}"
        "{% else %}{{ m['content'] }}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(DistillError, match="drops the <think> reasoning"):
        tokenize_rows(think_rows(2), tokenizer, 256, "drop", "t.parquet")


def test_end_of_turn_becomes_the_eos_of_tokenizer_and_configs(tiny):
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny[0])
    tokenizer.eos_token = "<|endoftext|>"  # a base checkpoint whose eos is not its chat turn end
    config = AutoConfig.from_pretrained(tiny[0])
    config.eos_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert align_eos(tokenizer, config) == "<|im_end|>"
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.eos_token == "<|im_end|>" and config.eos_token_id[0] == im_end
