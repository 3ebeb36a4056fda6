"""A training process without a model, for tests/distill/test_training_job.py: what it does is the job's
``fake`` key (``train``: record the job and write the metrics and a final folder; ``silent``: nothing;
``refuse``: a DistillError; ``kill``: SIGKILL itself, as the kernel's OOM killer would)."""

import json
import os
import signal
from pathlib import Path

from distill.errors import DistillError
from distill.training import FINAL, Method


def train(job: dict) -> dict:
    out_dir, ran = Path(job["out_dir"]), job.get("ran", {})
    (out_dir / "seen.json").write_text(json.dumps(job))
    if job["fake"] == "refuse":
        raise DistillError("fake: the rows are wrong; fix them")
    if job["fake"] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if job["fake"] == "train":
        (out_dir / FINAL).mkdir(exist_ok=True)
        (out_dir / "m.json").write_text(json.dumps({**ran, "log_history": [{"loss": 1.0}]}))
    return ran


METHOD = Method(module="fake_trainers", train=train, metrics_file="m.json")
