"""Where external traces come from: `datasets` folders (save_to_disk, or data files read by load_dataset as a
Hub id is, streamed under --limit), Hub ids offline, the revision read, and `distill filter --dry-run`."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from test_trace_formats import THINK, assistant, byo_recipe, filter_cli, openr1_rows, sft, user, write_jsonl

from distill.cli import main
from distill.recipe import FilterConfig
from teacher.filter.trace_source import read_source, resolve_revision, source_kind

B = "\\boxed"


def sharegpt_rows(count: int) -> list[dict]:
    return [
        {
            "system": "Reason, then answer.",
            "conversations": [
                {"from": "human", "value": f"What is {n} + 1?"},
                {"from": "gpt", "value": f"<think>\nplus one\n</think>\n\n{B}{{{n + 1}}}"},
            ],
        }
        for n in range(count)
    ]


def test_save_to_disk_folder_with_split_and_limit(tmp_path, tiny_recipe_dict):
    import datasets

    folder = tmp_path / "openr1"
    test_rows = [{**openr1_rows()[0], "problem": "What is 9 + 9?", "uuid": "t1"}]
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(openr1_rows()), "test": datasets.Dataset.from_list(test_rows)}
    ).save_to_disk(str(folder))
    recipe = byo_recipe(tmp_path, tiny_recipe_dict, correctness=True)
    rows, report = filter_cli(recipe, folder, "--split", "train", "--limit", "1")
    assert rows == [sft([user("What is 1 + 1?")], THINK[2], "u1", 0)]
    assert report["source"]["source_rows"] == 1 and report["source"]["split"] == "train"
    rows, _ = filter_cli(recipe, folder, "--split", "test", "--force")
    assert [r["prompt_id"] for r in rows] == ["t1"]


def test_data_files_folder_is_read_by_datasets_and_streamed_under_a_limit(tmp_path, tiny_recipe_dict):
    # A folder of parquet files goes through datasets.load_dataset, the same call a Hub id takes.
    folder = tmp_path / "openthoughts"
    (folder / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(sharegpt_rows(6)), folder / "data" / "train-00000-of-00001.parquet")
    recipe = byo_recipe(tmp_path, tiny_recipe_dict)
    rows, report = filter_cli(recipe, folder, "--limit", "2")
    system = {"role": "system", "content": "Reason, then answer."}
    assert [(r["prompt"], r["completion"]) for r in rows] == [
        ([system, user(f"What is {n} + 1?")], [assistant(f"<think>\nplus one\n</think>\n\n{B}{{{n + 1}}}")])
        for n in range(2)
    ]
    assert report["source"]["streamed"] and report["source"]["format"] == "conversations"
    rows, report = filter_cli(recipe, folder, "--force")
    assert len(rows) == 6 and not report["source"]["streamed"]


def test_hub_id_offline_is_one_line_before_anything_is_written(tmp_path, tiny_recipe_dict, capsys):
    recipe = byo_recipe(tmp_path, tiny_recipe_dict)
    assert source_kind("some-org/some-traces") == "hub" and source_kind(str(tmp_path)) == "folder"
    capsys.readouterr()
    assert main(["filter", str(recipe), "--traces", "some-org/some-traces", "--limit", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "filter.traces 'some-org/some-traces' (split 'train')" in err[0]
    assert "HF_HUB_OFFLINE=1" in err[0] and not Path(tiny_recipe_dict["run_dir"]).exists()


def test_revision_is_pinned_or_read_from_the_hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    assert resolve_revision("org/name", commit) == commit
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert resolve_revision("org/name", None) is None
    refs = tmp_path / "datasets--org--name" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(commit)
    assert resolve_revision("org/name", None) == commit  # offline: the cached main


def test_hub_source_records_the_dataset_and_commit(tmp_path, monkeypatch):
    import teacher.filter.trace_source as trace_source

    commit = "89abcdef0123456789abcdef0123456789abcdef"
    seen = {}

    def fake_load(source, split, **options):
        seen.update(options, source=source, split=split)
        return openr1_rows()[: options["limit"]]

    monkeypatch.setattr(trace_source, "load_prompt_rows", fake_load)
    monkeypatch.setattr(trace_source, "resolve_revision", lambda repo, revision: commit)
    rows, info = read_source("open-r1/OpenR1-Math-220k", FilterConfig(split="default", limit=1))
    assert seen == {"source": "open-r1/OpenR1-Math-220k", "split": "default", "name": None, "revision": commit,
                    "limit": 1, "label": "filter.traces"}  # fmt: skip
    assert info["dataset"] == "open-r1/OpenR1-Math-220k" and info["revision"] == commit and info["streamed"]
    assert info["summary"].startswith(f"open-r1/OpenR1-Math-220k@{commit[:12]} [default]: format generations")
    assert len(rows) == 2


def test_dry_run_prints_the_format_and_first_rows_and_writes_nothing(tmp_path, tiny_recipe_dict, capsys):
    traces = write_jsonl(tmp_path / "openr1.jsonl", openr1_rows())
    recipe = byo_recipe(tmp_path, tiny_recipe_dict)
    capsys.readouterr()
    assert main(["filter", str(recipe), "--traces", str(traces), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "format generations (detected): problem=problem, generations=generations" in out
    assert "2 rows -> 4 traces; not used: 1 empty generation in generations" in out
    assert "row 1 -> 2 trace(s), prompt_id u1" in out and "  user: What is 1 + 1?" in out
    assert "columns not read: messages, source" in out
    assert not Path(tiny_recipe_dict["run_dir"]).exists()


def test_validate_summarises_the_traces(tmp_path, tiny_recipe_dict, capsys):
    traces = write_jsonl(tmp_path / "chat.jsonl", [json.loads(json.dumps(r)) for r in sharegpt_rows(3)])
    recipe = byo_recipe(tmp_path, tiny_recipe_dict)
    capsys.readouterr()
    assert main(["validate", str(recipe), f"filter.traces={traces}"]) == 0
    out = capsys.readouterr().out
    assert "teacher none" in out and "format conversations (detected)" in out and "3 rows -> 3 traces" in out
