"""SFT rows -> token ids + completion mask, done once before training (and before any launch).

Tokenizing here rather than inside TRL lets the stage count every example longer than ``max_length`` and
drop, truncate or reject it *visibly* (TRL would cut it silently), and check two things that otherwise go
wrong without a sound: the chat template must keep the ``<think>`` reasoning of an assistant turn (some
reasoning-model templates strip it from history), and every example must end with the template's
end-of-turn token so the student learns to stop. The ids follow TRL's own rule for prompt/completion rows:
prompt = the chat template with a generation prompt, completion = what the full conversation adds to it.

At the sizes people distil from (1M traces, 1B+ tokens) the set is tokenized on every core by
``datasets.map`` into Arrow shards that every trainer maps from disk: nothing holds it in Python lists.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from distill.errors import DistillError


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


# Row states in the tokenizing pass; dropped rows leave the set when the shards are written.
_KEPT, _TRUNCATED, _DROPPED = 0, 1, 2
_BATCH_ROWS = 256
TOKEN_COLUMNS = ("input_ids", "completion_mask")


def tokenize_to_shards(
    train_file: Path,
    tokenizer,
    folder: Path,
    max_length: int,
    too_long: str,
    num_proc: int | None = None,
) -> dict[str, Any]:
    """Token ids (int32) and completion masks (int8) of TRL prompt/completion rows, written as Arrow shards
    into ``folder`` (read memory-mapped by ``load_tokenized``); returns the set's counts.

    Every core tokenizes (``datasets.map(batched=True, num_proc=...)`` over the memory-mapped rows), so
    neither the rows nor their ids are ever held as Python lists. The ids are TRL's for prompt/completion
    rows: prompt = the chat template with a generation prompt, completion = what the full conversation adds.
    Over-long rows per ``too_long`` (counted; dropped, truncated or refused)."""
    import shutil

    where = str(train_file)
    work = folder.parent / f".{folder.name}.work"
    shutil.rmtree(work, ignore_errors=True)
    rows = _rows_dataset(train_file, work / "rows")
    if len(rows) == 0:
        raise DistillError(f"{where}: no rows to train on; check the filter")
    eot = tokenizer.convert_tokens_to_ids(end_of_turn_token(tokenizer))
    first = rows[0]
    _check_completion(tokenizer, first["completion"], _row_ids(tokenizer, first)[1], eot, where)
    procs = num_proc or max(1, min(len(os.sched_getaffinity(0)), len(rows) // _BATCH_ROWS))
    tokenized = rows.map(
        _tokenize_batch,
        batched=True,
        batch_size=_BATCH_ROWS,
        with_indices=True,
        num_proc=procs if procs > 1 else None,
        remove_columns=rows.column_names,
        features=_features(),
        fn_kwargs={"tokenizer": tokenizer, "max_length": max_length, "too_long": too_long, "where": where},
        cache_file_name=str(work / "tokens.arrow"),
        writer_batch_size=_BATCH_ROWS,
        new_fingerprint="distill-tokenize",
        desc="tokenize",
    )
    stats = _write_shards(tokenized, folder, max_length)
    stats["rows_in"] = len(rows)
    del rows, tokenized
    shutil.rmtree(work, ignore_errors=True)
    if not stats["train_rows"]:
        shutil.rmtree(folder, ignore_errors=True)
        raise DistillError(
            f"{where}: all {stats['rows_in']} rows are longer than max_length {max_length} tokens "
            f"(longest {stats['longest_tokens']}); raise max_length"
        )
    return stats


def load_tokenized(folder: str | Path):
    """The tokenized set written by ``tokenize_to_shards``: one ``datasets.Dataset`` over its shards,
    memory-mapped (nothing of it is read into memory until a batch asks for it)."""
    import datasets

    parts = sorted(Path(folder).glob("part-*.arrow"))
    if not parts:
        raise DistillError(f"{folder}: no tokenized shards (part-*.arrow); delete the folder and rerun")
    return datasets.concatenate_datasets([datasets.Dataset.from_file(str(p)) for p in parts])


def _rows_dataset(train_file: Path, cache: Path):
    """The training rows as a memory-mapped Dataset (a parquet file or a folder of parquet parts is converted
    to Arrow batch by batch; other formats are small user files read whole)."""
    import datasets

    from distill.records import read_rows

    columns = ["prompt", "completion"]
    if train_file.is_dir():
        files = sorted(str(p) for p in train_file.glob("*.parquet"))
    else:
        files = [str(train_file)] if train_file.suffix.lower() == ".parquet" else []
    if not files:
        rows = read_rows(train_file)
        return datasets.Dataset.from_list([{c: r[c] for c in columns} for r in rows])
    return datasets.Dataset.from_parquet(files, cache_dir=str(cache), columns=columns, keep_in_memory=False)


def _features():
    import datasets

    return datasets.Features(
        {
            "input_ids": datasets.List(datasets.Value("int32")),
            "completion_mask": datasets.List(datasets.Value("int8")),
            "tokens": datasets.Value("int32"),  # before any truncation
            "state": datasets.Value("int8"),
        }
    )


def _row_ids(tokenizer, row: dict[str, Any]) -> tuple[int, list[int]]:
    """(where the completion starts, the full conversation's ids) of one row."""
    prompt_ids = _ids(tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True))
    full_ids = _ids(tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True))
    start = _common_prefix(prompt_ids, full_ids)
    return start, full_ids[start:]


def _tokenize_batch(
    batch: dict[str, list], indices: list[int], tokenizer, max_length: int, too_long: str, where: str
) -> dict[str, list]:
    """One batch of rows -> ids, masks, untruncated lengths and states (datasets.map's batched function).

    The texts are rendered by the chat template and tokenized in one call per batch; apply_chat_template's
    own tokenizing is the same call on one text (no special tokens added), so the ids are the same."""
    prompts, completions = batch["prompt"], batch["completion"]
    prompt_texts = [
        tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts
    ]
    full_texts = [
        tokenizer.apply_chat_template(p + c, tokenize=False)
        for p, c in zip(prompts, completions, strict=True)
    ]
    prompt_ids = tokenizer(prompt_texts, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full_texts, add_special_tokens=False)["input_ids"]
    out: dict[str, list] = {"input_ids": [], "completion_mask": [], "tokens": [], "state": []}
    for index, prompt, full in zip(indices, prompt_ids, full_ids, strict=True):
        start, state, n = _common_prefix(prompt, full), _KEPT, len(full)
        if n > max_length:
            if too_long == "error":
                raise DistillError(
                    f"{where}: row {index} has {n} tokens, over max_length {max_length}; raise "
                    "max_length, or set too_long: drop (or truncate)"
                )
            state = _DROPPED if too_long == "drop" or start >= max_length else _TRUNCATED
            full = [] if state == _DROPPED else full[:max_length]
        out["input_ids"].append(full)
        out["completion_mask"].append([0] * start + [1] * (len(full) - start) if full else [])
        out["tokens"].append(n)
        out["state"].append(state)
    return out


def _write_shards(tokenized, folder: Path, max_length: int) -> dict[str, Any]:
    """The kept rows' ids and masks, one Arrow shard per tokenizing process (written to a temporary folder,
    then renamed: a killed attempt never leaves a half-written set), and the set's counts."""
    import shutil

    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    counts = {"train_rows": 0, "too_long": 0, "too_long_truncated": 0, "tokens": 0, "completion_tokens": 0}
    longest = 0
    for number, cache in enumerate(tokenized.cache_files):
        shard = _write_shard(Path(cache["filename"]), tmp / f"part-{number:05d}.arrow", counts)
        longest = max(longest, shard)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return {**counts, "max_length": max_length, "longest_tokens": longest}


def _write_shard(source: Path, target: Path, counts: dict[str, int]) -> int:
    """Copy one tokenizing process's kept rows, batch by batch (memory-mapped), adding to ``counts``; returns
    the longest row's untruncated length."""
    import pyarrow as pa
    import pyarrow.compute as pc

    longest = 0
    with pa.memory_map(str(source)) as mapped, pa.OSFile(str(target), "wb") as sink:
        reader = pa.ipc.open_stream(mapped)
        fields = [reader.schema.field(c) for c in TOKEN_COLUMNS]
        with pa.ipc.new_stream(sink, pa.schema(fields, metadata=reader.schema.metadata)) as writer:
            for batch in reader:
                state, tokens = batch.column("state"), batch.column("tokens")
                longest = max(longest, pc.max(tokens).as_py() or 0)
                counts["too_long"] += pc.sum(pc.not_equal(state, _KEPT)).as_py() or 0
                counts["too_long_truncated"] += pc.sum(pc.equal(state, _TRUNCATED)).as_py() or 0
                kept = batch.filter(pc.not_equal(state, _DROPPED)).select(list(TOKEN_COLUMNS))
                counts["train_rows"] += kept.num_rows
                counts["tokens"] += pc.sum(pc.list_value_length(kept.column("input_ids"))).as_py() or 0
                mask = pc.list_flatten(kept.column("completion_mask")).cast(pa.int64())
                counts["completion_tokens"] += pc.sum(mask).as_py() or 0
                writer.write_batch(kept)
    return longest


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
