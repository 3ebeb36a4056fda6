"""Tokenization, label masking and packing on real TRL batches (tiny offline model)."""

import hashlib
import json

import pytest
import torch
from student_helpers import student_cfg, think_rows

from distill.errors import DistillError
from distill.models import resolve_model
from distill.records import write_parquet
from student.data import align_eos, end_of_turn_token, load_tokenized, tokenize_to_shards
from student.metrics import PackedRowsCollator
from student.sft import TOKENS_DIR, prepare_job


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoTokenizer

    path = resolve_model("tiny-random-llama")
    return path, AutoTokenizer.from_pretrained(path)


def packed_batch(tmp_path, tiny, rows, flat=True, **cfg_overrides):
    """The first training batch built from our token set with packing on: TRL's flat padding-free row
    (flash attention) or our packed rows (SDPA/eager)."""
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    from student.trainer import build_args

    path, _ = tiny
    cfg = student_cfg(**{"batch_size": 1, "max_length": 256, **cfg_overrides})
    prepare_job(path, write_parquet(rows, tmp_path / "train.parquet"), tmp_path, cfg)
    dataset = load_tokenized(tmp_path / TOKENS_DIR)
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


def golden_rows() -> list[dict]:
    """Rows the golden digests below were taken from with the previous, one-process tokenizer (lists)."""
    rows = think_rows(6)
    rows[1]["completion"][0]["content"] = "<think>" + "long " * 200 + "</think> \\boxed{1}"
    rows[2]["prompt"][1]["content"] = "Ünïcode ∑ 𝔸 — “quotes” and\ttabs\n\nnewlines"
    rows[3]["completion"][0]["content"] = "<think>" + "x" * 30 + "</think>  trailing spaces  "
    rows[4]["prompt"] = rows[4]["prompt"][1:]  # no system message
    return rows


def tokenized(tmp_path, tokenizer, rows, max_length, too_long, num_proc=None, name="tokens"):
    train = write_parquet(rows, tmp_path / f"{name}-train.parquet")
    stats = tokenize_to_shards(train, tokenizer, tmp_path / name, max_length, too_long, num_proc=num_proc)
    data = load_tokenized(tmp_path / name)
    return stats, list(data["input_ids"]), list(data["completion_mask"])


def digest(ids, masks) -> str:
    return hashlib.sha256(json.dumps([ids, masks]).encode()).hexdigest()


# sha256 of json.dumps([input_ids, completion_mask]) of golden_rows() from student/data.py's tokenize_rows
# at commit eb2ce5d (Python lists, one process), per (max_length, too_long).
GOLDEN = {
    (120, "truncate"): (
        "b3b4e871e667b41f34ca1d84fefd532a7a8b87bbee547c8263ad118fa997fcb8",
        6,
        2,
        2,
        561,
        179,
    ),
    (120, "drop"): ("b6ce333dc2550526ed4d4373c96fa9d46c5a0d5a116bb1e9c2f6e599d24c5ab5", 4, 2, 0, 321, 111),
    (4096, "drop"): ("980e71127a25e4381efad8cf7d9955a5d9c65974ca9b44d321a5db0d3613b55c", 6, 0, 0, 1524, 1142),
}


@pytest.mark.parametrize("max_length, too_long", list(GOLDEN), ids=["truncate", "drop", "whole"])
def test_shards_hold_the_previous_tokenizers_ids_and_masks_bit_for_bit(tmp_path, tiny, max_length, too_long):
    stats, ids, masks = tokenized(tmp_path, tiny[1], golden_rows(), max_length, too_long)
    sha, rows, too_long_n, truncated, tokens, completion = GOLDEN[(max_length, too_long)]
    assert digest(ids, masks) == sha
    assert (stats["train_rows"], stats["too_long"], stats["too_long_truncated"]) == (
        rows,
        too_long_n,
        truncated,
    )
    assert (stats["tokens"], stats["completion_tokens"], stats["longest_tokens"]) == (
        tokens,
        completion,
        1075,
    )
    assert stats["rows_in"] == 6


def test_two_tokenizing_processes_write_the_same_ids_in_order(tmp_path, tiny):
    _, ids, masks = tokenized(tmp_path, tiny[1], golden_rows() * 2, 120, "truncate", num_proc=2)
    assert len(list((tmp_path / "tokens").glob("part-*.arrow"))) == 2  # one shard per process
    assert digest(ids[:6], masks[:6]) == digest(ids[6:], masks[6:]) == GOLDEN[(120, "truncate")][0]
    schema = load_tokenized(tmp_path / "tokens").data.schema
    assert str(schema.field("input_ids").type) == "list<item: int32>"
    assert str(schema.field("completion_mask").type) == "list<item: int8>"


def test_too_long_rows_are_counted_then_dropped_truncated_or_rejected(tmp_path, tiny):
    _, tokenizer = tiny
    rows = think_rows(4)
    rows[1]["completion"][0]["content"] = "<think>" + "long " * 200 + "</think> \\boxed{1}"
    dropped, ids, _ = tokenized(tmp_path, tokenizer, rows, 120, "drop", name="drop")
    assert (dropped["too_long"], dropped["too_long_truncated"], len(ids)) == (1, 0, 3)
    cut, ids, _ = tokenized(tmp_path, tokenizer, rows, 120, "truncate", name="cut")
    assert (cut["too_long"], cut["too_long_truncated"], len(ids)) == (1, 1, 4)
    assert max(len(row) for row in ids) == 120
    with pytest.raises(DistillError, match=r"error-train.parquet: row 1 has \d+ tokens, over max_length 120"):
        tokenized(tmp_path, tokenizer, rows, 120, "error", name="error")
    assert not (tmp_path / "error").exists()
    with pytest.raises(DistillError, match=r"all 4 rows are longer than max_length 10 tokens"):
        tokenized(tmp_path, tokenizer, rows, 10, "drop", name="none")


def test_template_that_strips_reasoning_is_refused(tmp_path, tiny):
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
        tokenized(tmp_path, tokenizer, think_rows(2), 256, "drop")


def test_end_of_turn_becomes_the_eos_of_tokenizer_and_configs(tiny):
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny[0])
    tokenizer.eos_token = "<|endoftext|>"  # a base checkpoint whose eos is not its chat turn end
    config = AutoConfig.from_pretrained(tiny[0])
    config.eos_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert align_eos(tokenizer, config) == "<|im_end|>"
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.eos_token == "<|im_end|>" and config.eos_token_id[0] == im_end
