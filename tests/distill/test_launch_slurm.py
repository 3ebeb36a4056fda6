"""distill/launch.py: the `accelerate launch` command and the one Slurm writer (training and generation
scripts share its header)."""

import subprocess
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.launch import SbatchHeader, launch_command, sbatch_script, training_script, write_script
from distill.recipe import LaunchConfig


def test_launch_command_counts_processes_over_all_nodes():
    launch = LaunchConfig(strategy="zero3", nproc=8, nnodes=2, node_rank=1, main_ip="10.0.0.1")
    joined = " ".join(launch_command(launch, Path("j.json"), "student.trainer"))
    assert "--num_processes 16 --num_machines 2 --machine_rank 1 --main_process_ip 10.0.0.1" in joined
    assert joined.endswith("-m student.trainer j.json") and "accelerate/zero3.yaml" in joined


def test_a_single_node_job_takes_a_free_rendezvous_port_and_a_multi_node_one_keeps_it():
    import contextlib
    import socket

    def port_of(launch: LaunchConfig) -> int:
        command = launch_command(launch, Path("j.json"), "student.trainer")
        return int(command[command.index("--main_process_port") + 1])

    single = LaunchConfig(strategy="ddp", nproc=2)
    # Never the default 29500, which two jobs started together would both find free: one the kernel picks.
    assert single.main_port == 29500 and port_of(single) != 29500
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        with contextlib.suppress(OSError):  # already taken by another job: taken either way
            holder.bind(("127.0.0.1", 29500))
            holder.listen()
        port = port_of(single)
        assert port != 29500
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", port))  # free when picked
    # A port the recipe set, or the one every node of a multi-node job was given, is never changed.
    assert port_of(single.model_copy(update={"main_port": 29511})) == 29511
    assert port_of(LaunchConfig(strategy="ddp", nproc=2, nnodes=2, main_ip="10.0.0.1")) == 29500


def test_unknown_strategy_config_is_a_one_line_error():
    launch = LaunchConfig(strategy="ddp", nproc=2).model_copy(update={"strategy": "zero4"})
    with pytest.raises(DistillError, match="no accelerate config .*zero4.yaml; expected one of .*ddp"):
        launch_command(launch, Path("j.json"), "student.trainer")


def test_header_orders_options_and_adds_requeue_only_when_asked():
    plain = SbatchHeader("job", "%x-%j.log", nodes=2, gpus_per_node=4, exclusive=True).lines()
    assert plain == [
        "#SBATCH --job-name=job",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --exclusive",
        "#SBATCH --output=%x-%j.log",
    ]
    array = SbatchHeader("gen", "g-%A_%a.log", array=3, partition="gpu", requeue=True).lines()
    assert array[1:3] == ["#SBATCH --array=0-2", "#SBATCH --nodes=1"] and "#SBATCH --ntasks=1" in array
    assert not any("gpus-per-node" in line for line in array)  # 0 GPUs: no request at all
    assert array[-3:] == ["#SBATCH --open-mode=append", "#SBATCH --requeue", "#SBATCH --signal=B:TERM@120"]
    with pytest.raises(DistillError, match="--time '1:00; rm -rf /'"):
        SbatchHeader("j", "o", time_limit="1:00; rm -rf /").lines()


def test_training_script_is_valid_bash_with_one_launch_per_node(tmp_path):
    launch = LaunchConfig(strategy="ddp", nproc=8, nnodes=4, main_port=29777)
    text = training_script(launch, ["sft", "r.yaml", "--student", "s1"], "distill-sft-s1")
    path = write_script(tmp_path / "slurm" / "sft.sbatch", text)
    assert path.stat().st_mode & 0o111 and subprocess.run(["bash", "-n", str(path)]).returncode == 0
    assert text.startswith("#!/bin/bash\n#SBATCH --job-name=distill-sft-s1\n#SBATCH --nodes=4\n")
    assert "\n# Written by `distill sft --slurm`. Submit with: sbatch {this file}\n" in text
    assert "lines for your cluster above.\nset -euo pipefail\nMAIN_IP=" in text
    assert "srun --nodes=4 --ntasks-per-node=1 bash -c 'distill sft r.yaml --student s1 \\\n" in text
    assert "--main-port 29777 --nproc 8 --launch ddp'" in text


def test_sbatch_script_comments_every_note_line():
    text = sbatch_script(SbatchHeader("j", "o"), "first\n\nthird", "echo hi")
    assert text.endswith("#SBATCH --output=o\n# first\n#\n# third\nset -euo pipefail\necho hi\n")
