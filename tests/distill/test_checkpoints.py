"""Training-run helpers shared by the sft and grpo stages."""

import os

from distill.checkpoints import tensorboard_dir


def test_tensorboard_dir_is_per_run_and_restored(tmp_path, monkeypatch):
    # One `distill run` trains the GRPO teacher and then students in one process: each run's logs must land
    # in its own folder, not in the folder of whichever run set the variable first.
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    with tensorboard_dir(tmp_path / "teacher"):
        assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "teacher")
    with tensorboard_dir(tmp_path / "student"):
        assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "student")
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", "/elsewhere")
    with tensorboard_dir(tmp_path / "x"):
        pass
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == "/elsewhere"
