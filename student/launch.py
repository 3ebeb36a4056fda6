"""Builds and runs `accelerate launch` for a student (one node or many), and Slurm batch scripts.

Strategies map to the shipped configs in ``student/accelerate/<strategy>.yaml``; the process counts and the
rendezvous (node rank, main address and port) come from the student's ``launch:`` section or the CLI.
We never build our own launcher: every multi-process run is `accelerate launch`.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from distill.errors import DistillError
from distill.recipe import LaunchConfig

CONFIG_DIR = Path(__file__).parent / "accelerate"
TRAINER_MODULE = "student.trainer"


def config_file(strategy: str) -> Path:
    path = CONFIG_DIR / f"{strategy}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise DistillError(
            f"launch.strategy {strategy!r}: no accelerate config {path}; expected one of {known}"
        )
    return path


def accelerate_args(
    launch: LaunchConfig, node_rank: int | str | None = None, main_ip: str | None = None
) -> list[str]:
    """`accelerate launch` options; node rank / main address may be shell variables in a Slurm script."""
    return [
        "--config_file",
        str(config_file(launch.strategy)),
        "--num_processes",
        str(launch.world_size),  # accelerate counts processes over all machines
        "--num_machines",
        str(launch.nnodes),
        "--machine_rank",
        str(launch.node_rank if node_rank is None else node_rank),
        "--main_process_ip",
        main_ip or launch.main_ip,
        "--main_process_port",
        str(launch.main_port),
    ]


def launch_command(launch: LaunchConfig, job_file: Path, module: str = TRAINER_MODULE) -> list[str]:
    """``module`` is the training process: student.trainer, or teacher.grpo.trainer for the grpo stage."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *accelerate_args(launch),
        "-m",
        module,
        str(job_file),
    ]


def run_launched(launch: LaunchConfig, job_file: Path, log_file: Path, module: str = TRAINER_MODULE) -> None:
    """Run `accelerate launch` for this node; output goes to the terminal and to ``log_file``."""
    command = launch_command(launch, job_file, module)
    print(f"[distill] launching: {shlex.join(command)}", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    # A session of its own, so an interrupt can stop every process accelerate started.
    with log_file.open("a") as log:
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            start_new_session=True,
        )
        try:
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            code = proc.wait()
        except BaseException:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            raise
    if code != 0:
        tail = _last_error_line(log_file)
        raise DistillError(
            f"accelerate launch ({launch.strategy}, {launch.world_size} processes) exited with status {code}: "
            f"{tail}; full log: {log_file}"
        )


def _last_error_line(log_file: Path) -> str:
    lines = [line.strip() for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error:" in line:
            return line[:200]
    return lines[-1][:200] if lines else "no output"


def write_slurm_scripts(recipe, recipe_path: str, overrides: list[str]) -> list[Path]:
    """One batch script per student under <run>/slurm/; prints how to submit each. Trains nothing."""
    folder = recipe.run_path() / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for student in recipe.students:
        args = ["sft", recipe_path, *overrides, "--student", student.name]
        path = folder / f"sft-{student.name}.sbatch"
        path.write_text(slurm_script(student.launch, args, f"distill-sft-{student.name}"))
        path.chmod(0o755)
        written.append(path)
        print(
            f"[distill] wrote {path}: {student.launch.nnodes} node(s) x {student.launch.nproc} GPU(s), "
            f"{student.launch.strategy}; submit from this folder with: sbatch {path}",
            flush=True,
        )
    return written


def slurm_script(
    launch: LaunchConfig, distill_args: list[str], job_name: str, gpus_per_node: int | None = None
) -> str:
    """A batch script: one `distill sft` per node (srun), each starting `accelerate launch` for its rank.

    Node 0 records the run (manifest, final swap); the others join its rendezvous and train their shard.
    """
    gpus = gpus_per_node or launch.nproc
    command = shlex.join(["distill", *distill_args])
    return f"""#!/bin/bash
#SBATCH --job-name={job_name}
#SBATCH --nodes={launch.nnodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={gpus}
#SBATCH --exclusive
#SBATCH --output=%x-%j.log
# Written by `distill sft --slurm`. Submit with: sbatch {{this file}}
# Add --partition/--time/--account lines for your cluster above.
set -euo pipefail
MAIN_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MAIN_IP
srun --nodes={launch.nnodes} --ntasks-per-node=1 bash -c '{command} \\
  --nnodes "$SLURM_NNODES" --node-rank "$SLURM_NODEID" --main-ip "$MAIN_IP" \\
  --main-port {launch.main_port} --nproc {gpus} --launch {launch.strategy}'
"""
