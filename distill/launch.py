"""`accelerate launch` for every trainer (one node or many), and the one Slurm batch-script writer.

Strategies map to the shipped configs in ``student/accelerate/<strategy>.yaml`` (shared by every trainer:
students and the GRPO teacher); the process counts and the rendezvous (node rank, main address and port)
come from a ``launch:`` section or the CLI. We never build our own launcher: every multi-process run is
`accelerate launch`. Slurm scripts (training on one or many nodes, generation arrays) share one header
writer (``sbatch_script``); distill never schedules anything itself beyond `sbatch` on request.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from distill.errors import DistillError
from distill.recipe import LaunchConfig

# Kept beside the students, where users look for them; the GRPO teacher launches with the same files.
CONFIG_DIR = Path(__file__).resolve().parent.parent / "student" / "accelerate"
_SLURM_VALUE = re.compile(r"^[\w.,:+-]+$")  # partition names and time limits: nothing a shell would expand


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


def free_port() -> int:
    """A TCP port the kernel reports free here (from its ephemeral range)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", 0))
        except OSError:
            raise DistillError("launch: no free TCP port on this machine for the rendezvous") from None
        return sock.getsockname()[1]


def launch_command(launch: LaunchConfig, job_file: Path, module: str) -> list[str]:
    """``module`` is the training process (student.trainer, distill.grpo.trainer...), given the job file.
    A single-node job left at the default rendezvous port takes one the kernel picks: two jobs started
    together on one machine (two runs, a test suite's workers) would both find 29500 free and the second
    fail at its rendezvous. A port the recipe set, and a multi-node job's (every node was given it), is kept."""
    if launch.nnodes == 1 and launch.main_port == LaunchConfig.model_fields["main_port"].default:
        launch = launch.model_copy(update={"main_port": free_port()})
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *accelerate_args(launch),
        "-m",
        module,
        str(job_file),
    ]


def run_launched(launch: LaunchConfig, job_file: Path, log_file: Path, module: str) -> None:
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
            f"accelerate launch ({launch.strategy}, {launch.world_size} processes) exited with status "
            f"{code}: {tail}; full log: {log_file}"
        )


def _last_error_line(log_file: Path) -> str:
    lines = [line.strip() for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error:" in line:
            return line[:200]
    return lines[-1][:200] if lines else "no output"


@dataclass(frozen=True)
class SbatchHeader:
    """The ``#SBATCH`` lines of a batch script, in one order for every script distill writes."""

    job_name: str
    output: str  # the log file pattern (%x job name, %j job id, %A_%a array job and task)
    nodes: int = 1
    gpus_per_node: int = 0  # 0: no GPU request (a teacher behind endpoints)
    array: int | None = None  # tasks 0..array-1, one process each
    exclusive: bool = False
    partition: str | None = None
    time_limit: str | None = None
    requeue: bool = False  # append to the log, requeue on preemption, TERM two minutes before the limit

    def lines(self) -> list[str]:
        for flag, value in (("--partition", self.partition), ("--time", self.time_limit)):
            if value is not None and not _SLURM_VALUE.match(value):
                raise DistillError(f"{flag} {value!r}: expected a Slurm value such as gpu or 04:00:00")
        options = [
            f"--job-name={self.job_name}",
            *([f"--array=0-{self.array - 1}"] if self.array else []),
            f"--nodes={self.nodes}",
            # An array task is one process; a training job runs one `distill` per node (srun).
            "--ntasks=1" if self.array else "--ntasks-per-node=1",
            *([f"--gpus-per-node={self.gpus_per_node}"] if self.gpus_per_node else []),
            *(["--exclusive"] if self.exclusive else []),
            *([f"--partition={self.partition}"] if self.partition else []),
            *([f"--time={self.time_limit}"] if self.time_limit else []),
            f"--output={self.output}",
        ]
        if self.requeue:
            # Before the time limit the batch shell gets TERM: distill writes what it holds, then stops.
            options += ["--open-mode=append", "--requeue", "--signal=B:TERM@120"]
        return [f"#SBATCH {option}" for option in options]


def sbatch_script(header: SbatchHeader, notes: str, body: str) -> str:
    """A whole batch script: the header, comment lines saying what it does (``notes``), strict bash, body."""
    comments = "\n".join(f"# {line}" if line else "#" for line in notes.splitlines())
    return "\n".join(["#!/bin/bash", *header.lines(), comments, "set -euo pipefail", body]) + "\n"


def chunk_array_script(
    stage: str,
    recipe_name: str,
    logs: Path,
    distill_args: list[str],
    chunks: int,
    notes: str,
    gpus: int = 0,
    partition: str | None = None,
    time_limit: str | None = None,
) -> str:
    """A Slurm array script: task I runs `distill STAGE ARGS --chunk I/N` (generate, filter), requeued
    tasks resuming from what their chunk already wrote."""
    header = SbatchHeader(
        f"distill-{stage}-{recipe_name}",
        f"{logs}/{stage}-%A_%a.log",
        gpus_per_node=gpus,
        array=chunks,
        partition=partition,
        time_limit=time_limit,
        requeue=True,
    )
    command = shlex.join([sys.executable, "-m", "distill.cli", stage, *distill_args])
    body = f'cd {shlex.quote(str(Path.cwd()))}\nexec {command} --chunk "$SLURM_ARRAY_TASK_ID/{chunks}"'
    return sbatch_script(header, notes, body)


def training_script(
    launch: LaunchConfig, distill_args: list[str], job_name: str, gpus_per_node: int | None = None
) -> str:
    """A batch script: one `distill ...` per node (srun), each starting `accelerate launch` for its rank.

    Node 0 records the run (manifest, final swap); the others join its rendezvous and train their shard.
    """
    gpus = gpus_per_node or launch.nproc
    command = shlex.join(["distill", *distill_args])
    header = SbatchHeader(job_name, "%x-%j.log", launch.nnodes, gpus, exclusive=True)
    notes = (
        f"Written by `distill {distill_args[0]} --slurm`. Submit with: sbatch {{this file}}\n"
        "Add --partition/--time/--account lines for your cluster above."
    )
    body = f"""MAIN_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MAIN_IP
srun --nodes={launch.nnodes} --ntasks-per-node=1 bash -c '{command} \\
  --nnodes "$SLURM_NNODES" --node-rank "$SLURM_NODEID" --main-ip "$MAIN_IP" \\
  --main-port {launch.main_port} --nproc {gpus} --launch {launch.strategy}'"""
    return sbatch_script(header, notes, body)


def write_script(path: Path, text: str) -> Path:
    """Write an executable batch script (its folder created), to be read before it is submitted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def submit(script: Path) -> str:
    """Run `sbatch script` (the cluster's own submission); returns what sbatch printed."""
    try:
        done = subprocess.run(["sbatch", str(script)], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise DistillError(
            f"--submit: no sbatch on PATH (not a Slurm login node?); submit {script} where Slurm runs"
        ) from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise DistillError(f"sbatch {script} failed (exit {done.returncode}): {last}")
    return done.stdout.strip()
