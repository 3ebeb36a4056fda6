"""distill/training.py without a model: the job mechanism every trainer goes through (resume point, job
file, in-process run, the what-really-ran check). The real trainers run it in tests/student and
tests/teacher/test_grpo.py."""

import json
from pathlib import Path

import pytest

from distill.checkpoints import COMPLETE
from distill.errors import DistillError
from distill.recipe import LaunchConfig
from distill.training import FINAL, JOB_FILE, Method, check_result, run_job


def fake_method(ran: dict) -> tuple[Method, list[dict]]:
    """A method whose 'training' records the job it got and writes what ``ran`` says plus a final folder."""
    seen: list[dict] = []

    def train(job: dict) -> dict:
        seen.append(dict(job))
        out_dir = Path(job["out_dir"])
        (out_dir / FINAL).mkdir(exist_ok=True)
        (out_dir / "m.json").write_text(json.dumps({**ran, "log_history": [{"loss": 1.0}]}))
        return ran

    return Method(module="tests.fake_trainer", train=train, metrics_file="m.json"), seen


def test_run_job_resumes_from_the_last_complete_checkpoint_and_writes_the_job(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    for step, complete in ((2, True), (4, True), (6, False)):
        (checkpoints / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (checkpoints / f"checkpoint-{step}" / COMPLETE).write_text(str(step))
    method, seen = fake_method({"world_size": 1, "steps": 8})
    metrics = run_job(method, {"out_dir": str(tmp_path), "x": 1}, LaunchConfig(), "fake")
    assert metrics == {"world_size": 1, "steps": 8, "strategy": "single"}  # log_history stays in the file
    assert seen[0]["resume_from"] == str(checkpoints / "checkpoint-4") and seen[0]["x"] == 1
    written = json.loads((tmp_path / JOB_FILE).read_text())
    assert written == seen[0] and written["attempt"]
    assert not (checkpoints / "checkpoint-6").exists()  # torn: removed, never loaded


def test_check_result_refuses_what_did_not_run_as_asked(tmp_path):
    method, _ = fake_method({})
    ddp = LaunchConfig(strategy="ddp", nproc=2)
    with pytest.raises(DistillError, match="fake: training ended without m.json or a final model"):
        check_result(method, tmp_path, ddp, "fake")
    (tmp_path / FINAL).mkdir()
    (tmp_path / "m.json").write_text('{"world_size": 1}')
    with pytest.raises(DistillError, match="asked for 2 processes .ddp. but training ran with world size 1"):
        check_result(method, tmp_path, ddp, "fake")
    (tmp_path / "m.json").write_text('{"world_size": 2, "wrapper": "none"}')
    with pytest.raises(DistillError, match="strategy ddp was not applied.*wrapped in none, not Distributed"):
        check_result(method, tmp_path, ddp, "fake")
    # A method that does not record its wrapper is checked on world size only.
    (tmp_path / "m.json").write_text('{"world_size": 2}')
    assert check_result(method, tmp_path, ddp, "fake") == {"world_size": 2, "strategy": "ddp"}


def test_a_previous_attempts_record_is_not_taken_for_this_one(tmp_path):
    (tmp_path / FINAL).mkdir()
    (tmp_path / "m.json").write_text('{"world_size": 1}')
    silent = Method(module="tests.fake_trainer", train=lambda job: {}, metrics_file="m.json")
    with pytest.raises(DistillError, match="training ended without m.json"):
        run_job(silent, {"out_dir": str(tmp_path)}, LaunchConfig(), "fake")
