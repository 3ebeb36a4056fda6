"""Chunked generation (fast, in-process, tiny model): the split, tagged shards, the merge's exactly-once
proof (duplicates set aside, missing keys listed), --status, traces imported with --merge --from."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from teacher_helpers import as_recipe, key_counts, read_traces, save_recipe

from distill.cli import main
from distill.errors import DistillError
from distill.pipeline import generate_target
from teacher.generate.chunk_status import _stall_limit
from teacher.generate.chunks import Chunk, chunk_of, parse_chunk, write_status
from teacher.shards import ShardWriter, remove_stale_temp_files, shard_paths


def test_split_is_stable_disjoint_covering_and_balanced():
    ids = [f"q{i}" for i in range(103)]
    for count in (1, 2, 4, 7):
        owner = chunk_of(ids, count)
        assert owner == chunk_of(list(reversed(ids)), count)  # depends on the ids, not their order
        assert set(owner) == set(ids) and set(owner.values()) == set(range(count))
        sizes = [list(owner.values()).count(c) for c in range(count)]
        assert max(sizes) - min(sizes) <= 1
    # Not contiguous runs of the file: a source sorted by difficulty is spread over every chunk.
    assert {chunk_of(ids, 4)[f"q{i}"] for i in range(8)} != {0}


def test_chunk_flag_is_checked():
    assert parse_chunk("3/4") == Chunk(3, 4) and Chunk(3, 4).tag == "chunk0003of0004"
    for bad in ("4/4", "1", "a/4", "-1/4", "0/0"):
        with pytest.raises(DistillError, match="expected I/N with 0 <= I < N"):
            parse_chunk(bad)


def test_tagged_writers_share_a_folder_without_clobbering(tmp_path):
    row = {"prompt_id": "p", "sample_idx": 0, "completion": "x"}
    plain, first, second = (
        ShardWriter(tmp_path, 1, tag) for tag in (None, "chunk0000of0002", "chunk0001of0002")
    )
    for writer, n in ((plain, 2), (first, 1), (second, 3)):
        for i in range(n):
            writer.add({**row, "sample_idx": i})
    (tmp_path / ".shard-chunk0001of0002-00009.parquet.1.tmp").write_text("")
    (tmp_path / ".shard-00009.parquet.1.tmp").write_text("")
    assert (
        ShardWriter(tmp_path, 1, "chunk0000of0002").next_index == 1
        and ShardWriter(tmp_path, 1).next_index == 2
    )
    remove_stale_temp_files(tmp_path, "chunk0000of0002")  # another chunk's temp file stays
    assert len(list(tmp_path.glob(".shard-*.tmp"))) == 2
    remove_stale_temp_files(tmp_path)
    assert [p.name for p in tmp_path.glob(".shard-*.tmp")] == [".shard-chunk0001of0002-00009.parquet.1.tmp"]
    assert len(shard_paths(tmp_path)) == 6 and len(shard_paths(tmp_path, "chunk0001of0002")) == 3


def _generate(recipe: Path, *flags: str) -> int:
    return main(["generate", str(recipe), *flags])


def test_chunks_then_merge_prove_every_key_exactly_once(gen_recipe_dict, tmp_path, capsys):
    path, run_dir = save_recipe(tmp_path, gen_recipe_dict), Path(gen_recipe_dict["run_dir"])
    assert _generate(path, "--chunk", "1/3") == 0
    assert not (run_dir / "manifest.json").exists()  # chunks never write the manifest
    assert _generate(path, "--merge") == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # one line, after the model-loading bar
    assert (
        last.startswith("distill: error: ") and "8 of 12 samples missing (chunk 0/3: 4, chunk 2/3: 4)" in last
    )
    _, fp, folder = generate_target(as_recipe(gen_recipe_dict))
    work = folder.with_name(f"generate.partial-{fp}")
    assert len((work / "missing.jsonl").read_text().splitlines()) == 8

    assert _generate(path, "--chunk", "0/3") == 0
    assert _generate(path, "--status") == 0
    status = capsys.readouterr().out
    assert "| 0/3 | 2/2 | 4 |" in status and "| 2/3 | 0/2 | 0 |" in status and "not started" in status
    assert "--chunk I/3 for each I in 2" in status

    assert _generate(path, "--chunk", "2/3") == 0  # the last chunk merges
    assert "merged 12 samples of 6 prompts, each exactly once" in capsys.readouterr().out
    counts = key_counts(run_dir / "generate")
    assert len(counts) == 12 and set(counts.values()) == {1}
    record = json.loads((run_dir / "manifest.json").read_text())["stages"]["generate"]
    assert record["status"] == "done" and record["fingerprint"] == fp
    assert set(record["metrics"]["chunks"]) == {"0/3", "1/3", "2/3"}
    assert _generate(path, "--chunk", "0/3") == 0  # already merged: nothing to do
    assert "up to date" in capsys.readouterr().out


def test_merge_sets_duplicates_aside_and_imports_traces_from_elsewhere(gen_recipe_dict, tmp_path, capsys):
    path, run_dir = save_recipe(tmp_path, gen_recipe_dict), Path(gen_recipe_dict["run_dir"])
    assert _generate(path, "--chunk", "0/2") == 0
    _, fp, folder = generate_target(as_recipe(gen_recipe_dict))
    work = folder.with_name(f"generate.partial-{fp}")
    # Another chunking ran at the same time and wrote one of chunk 0's rows again.
    shard = shard_paths(work)[0]
    pq.write_table(pq.read_table(shard).slice(0, 1), work / "shard-chunk0000of0005-00000.parquet")
    # Chunk 1's rows come from another tool: a jsonl with the essential columns, plus a stray row.
    owner = chunk_of([f"p{i:03d}" for i in range(6)], 2)
    mine = [p for p, c in owner.items() if c == 1]
    rows = [
        {"prompt_id": p, "sample_idx": i, "completion": f"<think>t</think> {p}"} for p in mine for i in (0, 1)
    ]
    rows.append({"prompt_id": "nope", "sample_idx": 0, "completion": "x"})
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in rows))

    assert _generate(path, "--merge", "--from", str(other)) == 0
    metrics = json.loads((run_dir / "manifest.json").read_text())["stages"]["generate"]["metrics"]
    assert metrics["duplicates_dropped"] == 1 and metrics["imported"] == {
        "imported": 6,
        "duplicates": 0,
        "unexpected": 1,
    }
    counts = key_counts(run_dir / "generate")
    assert len(counts) == 12 and set(counts.values()) == {1}
    dropped = list((run_dir / "generate" / "dropped").glob("*.parquet"))
    assert sum(pq.read_table(p).num_rows for p in dropped) == 1  # set aside, not deleted
    imported = [r for r in read_traces(run_dir / "generate") if r["prompt_id"] in mine]
    assert {r["reasoning"] for r in imported} == {"t"} and imported[0]["messages"][-1]["role"] == "assistant"
    assert imported[0]["teacher"]["resolved"].startswith("imported from")


def test_status_names_stalled_and_dead_chunks(gen_recipe_dict, tmp_path, capsys):
    path = save_recipe(tmp_path, gen_recipe_dict)
    _, fp, folder = generate_target(as_recipe(gen_recipe_dict))
    work = folder.with_name(f"generate.partial-{fp}")
    write_status(work, Chunk(0, 2), state="running", started=time.time() - 3600)
    status = json.loads((work / "chunks" / "chunk0000of0002.json").read_text())
    status.update(host="elsewhere")  # another node: its pid cannot be checked, only its progress
    (work / "chunks" / "chunk0000of0002.json").write_text(json.dumps(status))
    write_status(work, Chunk(1, 2), state="running", started=time.time())
    dead = json.loads((work / "chunks" / "chunk0001of0002.json").read_text())
    dead.update(host=socket.gethostname(), pid=_a_dead_pid())
    (work / "chunks" / "chunk0001of0002.json").write_text(json.dumps(dead))
    assert _generate(path, "--status") == 0
    out = capsys.readouterr().out
    assert "| 0/2 | 0/3 | 0 | 0 | - | stalled (60 min without a shard) | elsewhere |" in out
    assert "dead (process gone)" in out and "merged: not yet" in out


def test_plain_generate_refuses_to_run_beside_live_chunks(gen_recipe_dict, tmp_path, capsys):
    path = save_recipe(tmp_path, gen_recipe_dict)
    _, fp, folder = generate_target(as_recipe(gen_recipe_dict))
    work = folder.with_name(f"generate.partial-{fp}")
    write_status(work, Chunk(1, 2), state="running", started=time.time())  # this process: alive
    assert _generate(path) == 2
    assert "chunk(s) 1/2 are generating into this folder" in capsys.readouterr().err
    assert not shard_paths(work)
    write_status(work, Chunk(1, 2), state="failed")
    assert _generate(path) == 0  # a failed chunk is no reason to wait: generate the rest here


def test_stall_limit_follows_the_chunks_own_pace():
    status = {"started": 1000.0}
    assert _stall_limit(status, None, 0) == 1800  # before the first shard: the engine may still load
    assert _stall_limit(status, 1100.0, 10) == 600  # shards every 10 s: the 10-minute floor
    assert _stall_limit(status, 1000.0 + 3 * 3600, 3) == 3 * 3600  # one shard an hour: three hours


def _a_dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_flags_belong_together(gen_recipe_dict, tmp_path, capsys):
    path = save_recipe(tmp_path, gen_recipe_dict)
    assert _generate(path, "--chunks", "4") == 2
    assert "--chunks goes with --slurm" in capsys.readouterr().err
    assert _generate(path, "--from", "x") == 2
    assert "--from goes with --merge" in capsys.readouterr().err
    assert _generate(path, "--chunk", "5/4") == 2
    assert _generate(path, "--merge") == 2
    assert "nothing to merge" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _generate(path, "--chunk", "0/2", "--merge")  # argparse: not allowed together


def test_endpoints_do_not_change_the_generate_fingerprint(gen_recipe_dict):
    recipe = gen_recipe_dict
    recipe["teacher"].update(backend="openai", model="served", chat_template=None)
    recipe["teacher"]["openai"] = {"base_url": "http://a:8000/v1"}
    first = generate_target(as_recipe(recipe))[1]
    recipe["teacher"]["openai"] = {"base_url": ["http://b:8000/v1", "http://c:8000/v1"], "concurrency": 64}
    assert generate_target(as_recipe(recipe))[1] == first  # a new allocation's endpoints resume the run
    recipe["teacher"]["sampling"]["temperature"] = 0.1
    assert generate_target(as_recipe(recipe))[1] != first
