"""Host memory of a student that trains on the CPU (student/plan_host.py): refused before any stage with the
numbers and the fixes; an unpacked student checked again on its tokenized set's longest row; and a training
process killed by the OS reported in one line, the stage recorded as failed."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.errors import DistillError
from distill.recipe import StudentConfig
from student import plan_host
from student.plan import GIB, render_plan
from student.shapes import model_shape

# The issue's measurement: SmolLM2-135M, batch_size 8, rows of ~1.36k tokens (max_length 1536, packed), no
# gradient checkpointing, killed by the kernel at 20 GB on a 24 GB machine.
ISSUE = {"name": "s", "model": "smollm2-135m-instruct", "batch_size": 8, "max_length": 1536}


def cpu_student(**kw) -> StudentConfig:
    return StudentConfig.model_validate({**ISSUE, **kw})


def test_the_issues_cpu_student_is_refused_with_the_numbers_and_the_fixes():
    shape, _ = model_shape("smollm2-135m-instruct")
    problem = plan_host.check_host_fits(cpu_student(), shape, available=24 * GIB)
    assert problem is not None and "\n" not in problem
    assert problem.startswith(
        "student s: training smollm2-135m-instruct on this machine's CPU (single) needs ~"
    )
    needed = float(problem.split("needs ~")[1].split(" GiB")[0])
    assert 20 < needed < 40  # the process was killed past 20 GB
    assert "8 x 1536 tokens x 30 layers x hidden 576, gradient checkpointing off" in problem
    assert "only 24.0 GiB is available" in problem
    assert "set gradient_checkpointing: true (~" in problem and "or batch_size: 1 (~" in problem
    assert "max_length" in problem
    # Each fix named fits where the recipe did not; one process per core group (cpu) multiplies it.
    for fixed in (cpu_student(gradient_checkpointing=True), cpu_student(batch_size=1)):
        assert plan_host.check_host_fits(fixed, shape, available=24 * GIB) is None
    two = cpu_student(batch_size=1, launch={"strategy": "cpu", "nproc": 2})
    assert plan_host.host_estimate(shape, two).total == 2 * plan_host.host_estimate(shape, two).per_process


def test_the_preflight_refuses_it_before_any_stage_and_plan_shows_it(
    tiny_recipe_dict, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(plan_host, "cuda_visible", lambda: False)
    monkeypatch.setattr(plan_host, "available_memory", lambda: 24.0 * GIB)
    tiny_recipe_dict["students"][0].update(ISSUE, packing=True)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict))
    assert main(["sft", str(path)]) == 2  # generate, filter, sft: refused before generate starts
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "students.0: student s: training smollm2-135m-instruct" in lines[0]
    assert "[distill]" not in captured.out and not Path(tiny_recipe_dict["run_dir"]).exists()
    table = render_plan(cpu_student())
    assert "host memory (single on this machine's CPU): ~" in table and "\nrefused: student s:" in table


def test_an_unpacked_student_is_checked_on_its_longest_row_once_tokenized(tmp_path, monkeypatch):
    from student_helpers import student_cfg, think_rows

    from distill.models import resolve_model
    from distill.records import write_parquet
    from student.sft import prepare_job

    monkeypatch.setattr(plan_host, "cuda_visible", lambda: False)
    monkeypatch.setattr(plan_host, "available_memory", lambda: 0.5 * GIB)  # less than any process needs
    cfg = student_cfg(batch_size=2, max_length=512, packing=False)
    train = write_parquet(think_rows(3), tmp_path / "train.parquet")
    with pytest.raises(DistillError, match=r"needs ~\d+\.\d GiB .* \(2 x (\d\d) tokens x 2 layers") as error:
        prepare_job(resolve_model("tiny-random-llama"), train, tmp_path / "out", cfg)
    longest = int(str(error.value).split("(2 x ")[1].split(" tokens")[0])
    assert longest < 512  # the set's longest row, not max_length


def test_a_training_process_killed_by_the_os_is_one_line_and_the_stage_failed(tiny_recipe, capsys):
    """SIGKILL the real training child of `distill sft` (strategy single) as the OOM killer would."""

    assert main(["generate", str(tiny_recipe)]) == 0 and main(["filter", str(tiny_recipe)]) == 0
    capsys.readouterr()
    stop = threading.Event()

    def kill_training_child():
        while not stop.is_set():
            for child in multiprocessing.active_children():
                if child.name.startswith("distill sft"):
                    os.kill(child.pid, signal.SIGKILL)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_training_child, daemon=True)
    killer.start()
    try:
        assert main(["sft", str(tiny_recipe)]) == 2
    finally:
        stop.set()
        killer.join()
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("distill: error")]
    assert len(err) == 1, err  # above it: the tokenizing progress bars
    assert "sft smollm2-135m-addition: the training process was killed by SIGKILL (out of memory?" in err[0]
    partial = err[0].split("the partial run is in ")[1].split(" and a rerun")[0]
    assert Path(partial).is_dir() and ".partial-" in partial
    assert main(["status", str(tiny_recipe)]) == 1  # failed
    status = capsys.readouterr().out
    assert "failed" in next(line for line in status.splitlines() if "sft" in line)
