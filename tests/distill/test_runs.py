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
    work = run.begin("generate", fp, run.root / "generate")
    (work / "out.txt").write_text("x")
    assert not run.is_done("generate", fp)
    run.finish("generate", [work / "out.txt"], {"samples": 3})
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    stage = manifest["stages"]["generate"]
    assert manifest["recipe_hash"] == "abc" and "torch" in manifest["versions"]
    assert (
        stage["status"] == "done"
        and stage["outputs"] == ["generate/out.txt"]
        and stage["metrics"]["samples"] == 3
    )
    assert Run(tmp_path / "run").is_done("generate", fp)


def test_changed_config_or_missing_output_means_not_done(tmp_path):
    run = Run(tmp_path)
    fp = fingerprint({"k": 1})
    work = run.begin("filter", fp, tmp_path / "filter")
    (work / "train.parquet").write_text("x")
    run.finish("filter", [work / "train.parquet"])
    assert not run.is_done("filter", fingerprint({"k": 2}))
    (tmp_path / "filter" / "train.parquet").unlink()
    assert not run.is_done("filter", fp)


def test_upstream_change_changes_fingerprint():
    assert fingerprint({"k": 1}, ["run-a"]) != fingerprint({"k": 1}, ["run-b"])


def test_failed_rerun_leaves_finished_outputs_untouched(tmp_path):
    run = Run(tmp_path)
    work = run.begin("generate", "fp1", tmp_path / "generate")
    (work / "shard-00000.parquet").write_text("precious")
    run.finish("generate", [work / "shard-00000.parquet"])
    assert (tmp_path / "generate" / "shard-00000.parquet").read_text() == "precious"
    retry = run.begin("generate", "fp2", tmp_path / "generate")
    (retry / "shard-00000.parquet").write_text("half-written")
    run.fail("generate", "killed")
    assert (tmp_path / "generate" / "shard-00000.parquet").read_text() == "precious"


def test_restart_with_same_fingerprint_resumes_partial_work(tmp_path):
    run = Run(tmp_path)
    work = run.begin("generate", "fp1", tmp_path / "generate")
    (work / "shard-00000.parquet").write_text("partial")
    run.fail("generate", "killed")
    again = run.begin("generate", "fp1", tmp_path / "generate")
    assert again == work and (again / "shard-00000.parquet").read_text() == "partial"


def test_successful_rerun_replaces_the_finished_folder(tmp_path):
    run = Run(tmp_path)
    for fp, text in (("fp1", "old"), ("fp2", "new")):
        work = run.begin("filter", fp, tmp_path / "filter")
        (work / "train.parquet").write_text(text)
        run.finish("filter", [work / "train.parquet"])
    assert (tmp_path / "filter" / "train.parquet").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["filter", "manifest.json"]
