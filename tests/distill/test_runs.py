import json

from distill.runs import Run, atomic_write_json, fingerprint


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "b.json"
    atomic_write_json(target, {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}
    assert [p.name for p in target.parent.iterdir()] == ["b.json"]


def test_manifest_records_recipe_versions_and_stage_lifecycle(tmp_path):
    run = Run(tmp_path / "run", recipe={"name": "r"}, recipe_digest="abc")
    fp = fingerprint({"k": 1})
    folder = run.begin("generate", fp, run.root / "generate")
    (folder / "out.txt").write_text("x")
    assert not run.is_done("generate", fp)
    run.finish("generate", [folder / "out.txt"], {"samples": 3})
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    stage = manifest["stages"]["generate"]
    assert manifest["recipe_hash"] == "abc" and "torch" in manifest["versions"]
    assert stage["status"] == "done" and stage["outputs"] == ["generate/out.txt"] and stage["metrics"]["samples"] == 3
    assert Run(tmp_path / "run").is_done("generate", fp)


def test_changed_config_or_missing_output_means_not_done(tmp_path):
    run = Run(tmp_path)
    fp = fingerprint({"k": 1})
    folder = run.begin("filter", fp, tmp_path / "filter")
    (folder / "train.parquet").write_text("x")
    run.finish("filter", [folder / "train.parquet"])
    assert not run.is_done("filter", fingerprint({"k": 2}))
    (folder / "train.parquet").unlink()
    assert not run.is_done("filter", fp)


def test_upstream_change_changes_fingerprint():
    assert fingerprint({"k": 1}, ["run-a"]) != fingerprint({"k": 1}, ["run-b"])


def test_restart_with_new_fingerprint_moves_old_outputs_aside(tmp_path):
    run = Run(tmp_path)
    folder = run.begin("generate", "fp1", tmp_path / "generate")
    (folder / "shard-00000.parquet").write_text("precious")
    run.begin("generate", "fp2", tmp_path / "generate")
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("generate.old-")]
    assert len(aside) == 1 and (aside[0] / "shard-00000.parquet").read_text() == "precious"


def test_restart_with_same_fingerprint_keeps_partial_work(tmp_path):
    run = Run(tmp_path)
    folder = run.begin("generate", "fp1", tmp_path / "generate")
    (folder / "shard-00000.parquet").write_text("partial")
    run.fail("generate", "killed")
    run.begin("generate", "fp1", tmp_path / "generate")
    assert (folder / "shard-00000.parquet").read_text() == "partial"
