"""distill/training.py without a model: the job mechanism every trainer goes through (resume point, job
file, the training child (strategy single), the what-really-ran check). The real trainers run it in tests/student and
tests/teacher/test_grpo.py."""

import json

import pytest
from fake_trainers import METHOD

from distill.checkpoints import COMPLETE
from distill.errors import DistillError
from distill.recipe import LaunchConfig
from distill.training import FINAL, JOB_FILE, check_result, run_job


def test_run_job_resumes_from_the_last_complete_checkpoint_and_writes_the_job(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    for step, complete in ((2, True), (4, True), (6, False)):
        (checkpoints / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (checkpoints / f"checkpoint-{step}" / COMPLETE).write_text(str(step))
    job = {"out_dir": str(tmp_path), "x": 1, "fake": "train", "ran": {"world_size": 1, "steps": 8}}
    metrics = run_job(METHOD, job, LaunchConfig(), "fake")  # trains in a child process (strategy single)
    assert metrics == {"world_size": 1, "steps": 8, "strategy": "single"}  # log_history stays in the file
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["resume_from"] == str(checkpoints / "checkpoint-4") and seen["x"] == 1
    written = json.loads((tmp_path / JOB_FILE).read_text())
    assert written == seen and written["attempt"]
    assert not (checkpoints / "checkpoint-6").exists()  # torn: removed, never loaded


def test_check_result_refuses_what_did_not_run_as_asked(tmp_path):
    method = METHOD
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
    with pytest.raises(DistillError, match="training ended without m.json"):
        run_job(METHOD, {"out_dir": str(tmp_path), "fake": "silent"}, LaunchConfig(), "fake")


def test_a_distill_error_in_the_training_child_keeps_its_message(tmp_path):
    with pytest.raises(DistillError, match=r"^fake: the rows are wrong; fix them$"):
        run_job(METHOD, {"out_dir": str(tmp_path), "fake": "refuse"}, LaunchConfig(), "fake")


def test_a_training_child_killed_by_the_os_is_reported_in_one_line(tmp_path):
    with pytest.raises(DistillError) as error:
        run_job(METHOD, {"out_dir": str(tmp_path), "fake": "kill"}, LaunchConfig(), "sft s1")
    message = str(error.value)
    assert "\n" not in message and message.startswith("sft s1: the training process was killed by SIGKILL")
    assert "out of memory?" in message and f"the partial run is in {tmp_path}" in message
