"""SFT rows -> token ids + completion mask, done once before training (and before any launch).

Tokenizing here rather than inside TRL lets the stage count every example longer than ``max_length`` and
drop, truncate or reject it *visibly* (TRL would cut it silently), and check two things that otherwise go
wrong without a sound: the chat template must keep the ``<think>`` reasoning of an assistant turn (some
reasoning-model templates strip it from history), and every example must end with the template's
end-of-turn token so the student learns to stop. The ids follow TRL's own rule for prompt/completion rows:
prompt = the chat template with a generation prompt, completion = what the full conversation adds to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import DistillError


@dataclass
class TokenizedSet:
    input_ids: list[list[int]] = field(default_factory=list)
    completion_mask: list[list[int]] = field(default_factory=list)
    rows_in: int = 0
    too_long: int = 0
    truncated: int = 0
    longest: int = 0

    def stats(self, max_length: int) -> dict[str, Any]:
        lengths = [len(ids) for ids in self.input_ids]
        trained = sum(sum(mask) for mask in self.completion_mask)
        return {
            "train_rows": len(self.input_ids),
            "rows_in": self.rows_in,
            "too_long": self.too_long,
            "too_long_truncated": self.truncated,
            "max_length": max_length,
            "longest_tokens": self.longest,
            "tokens": sum(lengths),
            "completion_tokens": trained,
        }


def end_of_turn_token(tokenizer) -> str:
    """The special token the chat template closes an assistant turn with (``<|im_end|>``, ``<|eot_id|>``...)."""
    probe = "distill-probe"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": probe}], tokenize=False
    )
    tail = text[text.rfind(probe) + len(probe) :]
    # Named specials (eos, pad...) plus added special tokens such as <|im_end|>, which have no name;
    # the first one after the content closes the turn.
    added = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    found = [(tail.find(token), -len(token), token) for token in set(tokenizer.all_special_tokens) | added]
    found = sorted(f for f in found if f[0] >= 0 and f[2])
    if found:
        return found[0][2]
    if tokenizer.eos_token:
        return tokenizer.eos_token
    raise DistillError(
        "the student's chat template ends an assistant turn with no special token and has no eos"
    )


def load_student_tokenizer(model_path: str):
    """The student's tokenizer, which must have a chat template, with its end-of-turn token as eos; returns
    (tokenizer, eos, model config with that eos). Every training method starts here, so all of them train on
    the same turns."""
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if not tokenizer.chat_template:
        raise DistillError(
            f"student model {model_path}: its tokenizer has no chat template; give one that has"
        )
    model_config = AutoConfig.from_pretrained(model_path)
    return tokenizer, align_eos(tokenizer, model_config), model_config


def align_eos(tokenizer, model_config=None, generation_config=None) -> str:
    """Make the end-of-turn token the tokenizer's eos (and a stop token of the saved generation config).

    Base checkpoints such as Qwen2.5-Math-1.5B declare ``<|endoftext|>`` as eos while their chat template
    closes turns with ``<|im_end|>``: a student trained on chats would then never stop at inference.
    """
    token = end_of_turn_token(tokenizer)
    if tokenizer.eos_token != token:
        tokenizer.eos_token = token
    token_id = tokenizer.convert_tokens_to_ids(token)
    for config in (model_config, generation_config):
        if config is None:
            continue
        current = getattr(config, "eos_token_id", None)
        ids = current if isinstance(current, list) else ([current] if current is not None else [])
        if token_id not in ids:
            config.eos_token_id = [token_id, *ids] if ids else token_id
    return token


def tokenize_rows(
    rows: list[dict[str, Any]], tokenizer, max_length: int, too_long: str, where: str
) -> TokenizedSet:
    """Token ids and completion masks for TRL prompt/completion rows; over-long rows per ``too_long``."""
    eot = tokenizer.convert_tokens_to_ids(end_of_turn_token(tokenizer))
    out = TokenizedSet(rows_in=len(rows))
    for index, row in enumerate(rows):
        prompt, completion = row["prompt"], row["completion"]
        prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        full_ids = tokenizer.apply_chat_template(prompt + completion, tokenize=True)
        prompt_ids, full_ids = _ids(prompt_ids), _ids(full_ids)
        start = _common_prefix(prompt_ids, full_ids)
        if index == 0:
            _check_completion(tokenizer, completion, full_ids[start:], eot, where)
        out.longest = max(out.longest, len(full_ids))
        if len(full_ids) > max_length:
            out.too_long += 1
            if too_long == "error":
                raise DistillError(
                    f"{where}: row {index} has {len(full_ids)} tokens, over max_length {max_length}; raise "
                    "max_length, or set too_long: drop (or truncate)"
                )
            if too_long == "drop" or start >= max_length:
                continue
            out.truncated += 1
            full_ids = full_ids[:max_length]
        out.input_ids.append(full_ids)
        out.completion_mask.append([0] * start + [1] * (len(full_ids) - start))
    if not out.input_ids:
        raise DistillError(
            f"{where}: all {out.rows_in} rows are longer than max_length {max_length} tokens "
            f"(longest {out.longest}); raise max_length"
        )
    return out


def _ids(encoded) -> list[int]:
    # transformers 5 returns a BatchEncoding from apply_chat_template(tokenize=True); 4.x a plain list.
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _check_completion(tokenizer, completion: list[dict], ids: list[int], eot: int, where: str) -> None:
    text = tokenizer.decode(ids)
    content = completion[-1]["content"]
    if "</think>" in content and content.split("</think>")[0].strip()[-40:] not in text:
        raise DistillError(
            f"{where}: the student's chat template drops the <think> reasoning from assistant turns, so it "
            "would learn answers without reasoning; give the student a template that keeps it"
        )
    if eot not in ids:
        raise DistillError(
            f"{where}: the chat template does not end an assistant turn with "
            f"{tokenizer.convert_ids_to_tokens(eot)!r}; the student would never learn to stop"
        )


def save_tokenized(data: TokenizedSet, path: Path) -> Path:
    import pyarrow as pa

    from distill.records import write_parquet

    schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("completion_mask", pa.list_(pa.int8()))])
    rows = [
        {"input_ids": i, "completion_mask": m}
        for i, m in zip(data.input_ids, data.completion_mask, strict=True)
    ]
    return write_parquet(rows, path, schema=schema)
