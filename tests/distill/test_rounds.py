"""Trace rounds (recipe section `rounds`): a later generate -> filter round sampled from a model the recipe
makes, training later students. A three-round graph on the tiny model: the GRPO-free part of R1's pipeline
(student A from the first round's traces -> traces sampled from A -> student B)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from suite import REPO, kill_at_first_checkpoint, run_distill, tiny_recipe_data

from distill.errors import DistillError
from distill.pipeline import pending_nodes, plan, run_stage
from distill.recipe import load_recipe
from distill.runs import Run, fingerprint
from teacher.shards import shard_paths

TRAINING = ("generate", "filter", "sft")


def rounds_recipe(tmp_path: Path, **student_b) -> dict:
    """First round -> student a -> round `from-a` sampled from a -> student b trained on it."""
    data = tiny_recipe_data(tmp_path / "run")
    data["students"] = [
        {**data["students"][0], "name": "a", "report_to": "none"},
        {**data["students"][0], "name": "b", "report_to": "none", "traces": "from-a", **student_b},
    ]
    data["rounds"] = [
        {"name": "from-a", "teacher": {**data["teacher"], "model": "student:a", "samples_per_prompt": 1}}
    ]
    return data


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "rounds.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_training_nodes(recipe) -> Run:
    """Every generate, filter and sft node in graph order, skipping finished ones (no eval, no publish)."""
    run = Run(recipe.run_path(), recipe.model_dump(mode="json"), recipe.digest())
    for spec in plan(recipe):
        fp = fingerprint(spec.config, [run.completion_id(u) for u in spec.upstream])
        if spec.family in TRAINING and not run.is_done(spec.name, fp):
            run_stage(run, spec, fp, recipe)
    return run


def test_nodes_follow_the_models_they_sample_from(tmp_path):
    recipe = load_recipe(write(tmp_path, rounds_recipe(tmp_path)))
    names = [spec.name for spec in plan(recipe)]
    assert names[: names.index("eval")] == [
        "generate",
        "filter",
        "sft:a",
        "generate:from-a",
        "filter:from-a",
        "sft:b",
    ]
    by_name = {spec.name: spec for spec in plan(recipe)}
    assert by_name["generate:from-a"].upstream == ["sft:a"]
    assert by_name["sft:b"].upstream == ["filter:from-a"]
    assert by_name["filter:from-a"].folder == "rounds/from-a/filter"


def test_a_circle_and_a_missing_node_are_one_line_before_any_stage(tmp_path):
    circle = rounds_recipe(tmp_path)
    circle["rounds"][0]["teacher"]["model"] = "student:b"  # b learns from traces sampled from b
    with pytest.raises(
        DistillError, match=r"circle: generate:from-a -> filter:from-a -> sft:b -> generate:from-a"
    ):
        plan(load_recipe(write(tmp_path, circle)))
    done = run_distill("run", write(tmp_path, circle), env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2 and not Path(circle["run_dir"]).exists()
    assert len(done.stderr.strip().splitlines()) == 1 and "circle" in done.stderr
    missing = rounds_recipe(tmp_path)
    missing["rounds"][0]["teacher"]["model"] = "student:nobody"
    with pytest.raises(DistillError, match=r"rounds\.0\.teacher\.model: 'student:nobody' names no student"):
        load_recipe(write(tmp_path, missing))
    unknown = rounds_recipe(tmp_path, traces="nowhere")
    with pytest.raises(DistillError, match=r"students\.1\.traces: 'nowhere' is not a round"):
        load_recipe(write(tmp_path, unknown))


@pytest.mark.integration
def test_a_change_to_the_sampling_student_reruns_its_round_and_what_follows(tmp_path):
    data = rounds_recipe(tmp_path)
    run = run_training_nodes(load_recipe(write(tmp_path, data)))
    shards = shard_paths(Path(data["run_dir"]) / "rounds" / "from-a" / "generate")
    teachers = {str(t) for f in shards for t in pq.read_table(f)["teacher"].to_pylist()}
    assert teachers and all("students/a/final" in t for t in teachers), teachers  # sampled from a
    assert run.record("sft:b")["metrics"]["rows_in"] > 0
    recipe = load_recipe(write(tmp_path, data))
    assert {n for n in pending_nodes(recipe) if n.split(":")[0] in TRAINING} == set()
    data["students"][0]["learning_rate"] = 5e-4
    changed = pending_nodes(load_recipe(write(tmp_path, data)))
    assert {n for n in changed if n.split(":")[0] in TRAINING} == {
        "sft:a",
        "generate:from-a",
        "filter:from-a",
        "sft:b",
    }


@pytest.mark.integration
def test_kill_in_the_second_round_then_rerun_resumes_there(tmp_path):
    knobs = {"max_steps": 30, "save_steps": 10, "batch_size": 1}
    data = rounds_recipe(tmp_path, **knobs)
    path = write(tmp_path, data)
    recipe = load_recipe(path)
    run = Run(recipe.run_path(), recipe.model_dump(mode="json"), recipe.digest())
    for spec in plan(recipe):  # everything up to student b's training
        if spec.name in ("sft:b", "eval") or spec.family == "publish":
            break
        run_stage(run, spec, fingerprint(spec.config, [run.completion_id(u) for u in spec.upstream]), recipe)
    finished = {name: run.completion_id(name) for name in run.manifest["stages"]}
    students = Path(data["run_dir"]) / "students"
    kill_at_first_checkpoint(["sft", str(path)], students / "b.partial-*", timeout_s=180)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "distill.cli", "sft", str(path)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sft:a: up to date, skipped" in done.stdout
    after = Run(recipe.run_path(), write=False)
    assert {name: after.completion_id(name) for name in finished} == finished  # none reran
    assert after.record("sft:b")["metrics"]["resumed_from"].startswith("checkpoint-")
