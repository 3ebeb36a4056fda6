"""`distill generate --slurm` (fast): the array script is valid bash with one task per chunk, each passing
its own --chunk; a fake `sbatch` on PATH records the submission; bad values are one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from teacher_helpers import save_recipe

from distill.cli import main


def _slurm(recipe: Path, *flags: str) -> int:
    return main(["generate", str(recipe), "teacher.sampling.max_tokens=5", "--slurm", *flags])


def test_array_script_has_one_task_per_chunk_and_submits(gen_recipe_dict, tmp_path, monkeypatch, capsys):
    gen_recipe_dict["teacher"].update(
        backend="vllm", vllm={"tensor_parallel_size": 2, "data_parallel_size": 2}
    )
    path = save_recipe(tmp_path, gen_recipe_dict)
    bin_dir, log = tmp_path / "bin", tmp_path / "sbatch.log"
    bin_dir.mkdir()
    fake = bin_dir / "sbatch"
    fake.write_text(f'#!/bin/bash\necho "$@" >> {log}\necho "Submitted batch job 4242"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    flags = ("--chunks", "3", "--partition", "gpu", "--time", "04:00:00", "--submit")
    assert _slurm(path, *flags) == 0
    script = Path(gen_recipe_dict["run_dir"]) / "slurm" / "generate.sbatch"
    out = capsys.readouterr().out
    assert f"sbatch {script}" in out and "Submitted batch job 4242" in out
    assert log.read_text().split() == [str(script)]
    text = script.read_text()
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "#SBATCH --array=0-2\n" in text and "#SBATCH --gpus-per-node=4\n" in text  # tp 2 x dp 2
    assert "#SBATCH --partition=gpu\n" in text and "#SBATCH --time=04:00:00\n" in text
    command = re.search(r"^exec (.*)$", text, re.M).group(1)
    assert command.startswith(f"{sys.executable} -m distill.cli generate {path.resolve()} ")
    assert "teacher.sampling.max_tokens=5" in command
    # What each array task runs: its own chunk of three.
    for task in range(3):
        echoed = subprocess.run(
            ["bash", "-c", f"echo {command}"],
            env={**os.environ, "SLURM_ARRAY_TASK_ID": str(task)},
            capture_output=True,
            text=True,
        ).stdout
        assert echoed.strip().endswith(f"--chunk {task}/3")


def test_bad_slurm_values_are_one_line_errors(gen_recipe_dict, tmp_path, capsys):
    gen_recipe_dict["teacher"].update(backend="vllm", vllm={"tensor_parallel_size": 2})
    path = save_recipe(tmp_path, gen_recipe_dict)
    cases = [
        ((), "--slurm needs --chunks N"),
        (("--chunks", "7"), "more chunks than the recipe's 6 prompts"),
        (("--chunks", "2", "--gpus-per-node", "1"), "needs 2 GPUs per task"),
        (("--chunks", "2", "--time", "1:00; rm -rf ~"), "--time '1:00; rm -rf ~': expected a Slurm value"),
    ]
    for flags, message in cases:
        assert _slurm(path, *flags) == 2
        assert message in capsys.readouterr().err
    assert not (Path(gen_recipe_dict["run_dir"]) / "slurm" / "generate.sbatch").exists()


def test_submit_without_sbatch_says_so(gen_recipe_dict, tmp_path, monkeypatch, capsys):
    path = save_recipe(tmp_path, gen_recipe_dict)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    assert _slurm(path, "--chunks", "2", "--submit") == 2
    assert "no sbatch on PATH" in capsys.readouterr().err
