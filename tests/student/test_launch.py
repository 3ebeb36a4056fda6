"""Launching students: a real 2-process `accelerate launch` (gloo on CPU) through the CLI, kill -9 and
resume, strategies that accelerate would silently not apply, Slurm scripts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from student_helpers import student_cfg, think_rows
from suite import kill_at_first_checkpoint

from distill.checkpoints import COMPLETE, last_complete_checkpoint
from distill.cli import main
from distill.models import resolve_model
from distill.records import write_parquet

REPO = Path(__file__).resolve().parents[2]


def filtered_run(tiny_recipe: Path, capsys) -> dict:
    """Generate + filter the tiny recipe so that `distill sft` has a training set."""
    assert main(["generate", str(tiny_recipe)]) == 0
    assert main(["filter", str(tiny_recipe)]) == 0
    capsys.readouterr()
    return yaml.safe_load(tiny_recipe.read_text())


def sft_metrics(recipe: dict) -> dict:
    manifest = json.loads((Path(recipe["run_dir"]) / "manifest.json").read_text())
    return manifest["stages"][f"sft:{recipe['students'][0]['name']}"]["metrics"]


@pytest.mark.integration
def test_two_process_ddp_launch_matches_single_process(tiny_recipe, capsys):
    recipe = filtered_run(tiny_recipe, capsys)
    common = ["students.0.epochs=3", "students.0.max_length=256", "students.0.report_to=[]"]
    assert main(["sft", str(tiny_recipe), *common, "students.0.batch_size=4"]) == 0
    single = sft_metrics(recipe)
    args = ["sft", str(tiny_recipe), *common, "students.0.batch_size=2", "--launch", "cpu", "--nproc", "2"]
    assert main([*args, "--main-port", "29651"]) == 0
    launched = sft_metrics(recipe)
    # What really ran: two processes over gloo, the model inside DDP, the same optimizer steps per epoch.
    assert (launched["world_size"], launched["wrapper"]) == (2, "DistributedDataParallel")
    assert (single["world_size"], single["wrapper"]) == (1, "none")
    assert launched["steps"] == single["steps"] > 0
    assert launched["first_loss"] == pytest.approx(single["first_loss"], rel=0.05)
    assert launched["train_loss"] == pytest.approx(single["train_loss"], rel=0.05)
    final = Path(recipe["run_dir"]) / "students" / recipe["students"][0]["name"] / "final"
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(final).config.num_hidden_layers == 2


@pytest.mark.integration
def test_fsdp2_on_cpu_is_reported_as_not_applied(tmp_path):
    from distill.errors import DistillError
    from distill.recipe import LaunchConfig
    from student.sft import train_student

    train = write_parquet(think_rows(8), tmp_path / "train.parquet")
    cfg = student_cfg(max_length=128, launch=LaunchConfig(strategy="fsdp2", nproc=2, main_port=29652))
    # accelerate wraps the model in DDP instead of FSDP2 on a CPU; the stage must refuse, not record it.
    with pytest.raises(DistillError, match="strategy fsdp2 was not applied.*DistributedDataParallel"):
        train_student(resolve_model("tiny-random-llama"), train, tmp_path / "out", cfg)


def _sft_command(recipe_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "distill.cli", "sft", str(recipe_path), *extra]


@pytest.mark.integration
def test_kill_after_checkpoint_then_resume_reaches_the_same_step_count(tiny_recipe, capsys, tmp_path):
    recipe = filtered_run(tiny_recipe, capsys)
    knobs = [
        "students.0.max_steps=60",
        "students.0.save_steps=10",
        "students.0.batch_size=1",
        "students.0.report_to=[]",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    student = Path(recipe["run_dir"]) / "students"
    kill_at_first_checkpoint(["sft", str(tiny_recipe), *knobs], student / "*.partial-*", timeout_s=120)
    partial = next(student.glob("*.partial-*"))
    assert not (partial / "final").exists()
    # A torn checkpoint (no completion marker) newer than the complete one must be skipped, not loaded.
    torn = partial / "checkpoints" / "checkpoint-55"
    torn.mkdir()
    (torn / "trainer_state.json").write_text("{")
    done = subprocess.run(
        _sft_command(tiny_recipe, *knobs), env=env, cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipping torn checkpoint checkpoint-55" in done.stdout
    metrics = sft_metrics(recipe)
    assert metrics["steps"] == 60 and metrics["resumed_from"].startswith("checkpoint-")
    assert int(metrics["resumed_from"].split("-")[1]) % 10 == 0
    assert (student / recipe["students"][0]["name"] / "final" / "model.safetensors").exists()


def test_last_complete_checkpoint_ignores_and_removes_torn_ones(tmp_path):
    for step, complete in ((10, True), (20, True), (30, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / COMPLETE).write_text(str(step))
    assert last_complete_checkpoint(tmp_path).name == "checkpoint-20"
    assert not (tmp_path / "checkpoint-30").exists()


def test_slurm_script_has_one_launch_per_node_with_rank_and_rendezvous(tiny_recipe, capsys):
    code = main(["sft", str(tiny_recipe), "--launch", "ddp", "--nproc", "8", "--nnodes", "4", "--slurm"])
    assert code == 0
    out = capsys.readouterr().out
    recipe = yaml.safe_load(tiny_recipe.read_text())
    script = Path(recipe["run_dir"]) / "slurm" / f"sft-{recipe['students'][0]['name']}.sbatch"
    assert f"sbatch {script}" in out
    text = script.read_text()
    assert "#SBATCH --nodes=4" in text and "#SBATCH --gpus-per-node=8" in text
    assert '--node-rank "$SLURM_NODEID"' in text and '--main-ip "$MAIN_IP"' in text
    assert "--launch ddp" in text and "--student" in text
    assert not (Path(recipe["run_dir"]) / "manifest.json").exists()  # nothing trained, no run started


def test_unknown_strategy_and_bad_rank_are_one_line_errors(tiny_recipe, capsys):
    assert main(["validate", str(tiny_recipe), "students.0.launch.strategy=zero4"]) == 2
    assert "students.0.launch.strategy" in capsys.readouterr().err
    assert (
        main(["sft", str(tiny_recipe), "--launch", "ddp", "--nnodes", "2", "--node-rank", "2", "--slurm"])
        == 2
    )
    assert "node_rank 2 must be below nnodes 2" in capsys.readouterr().err


def test_every_node_computes_node_zeros_partial_folder(tiny_recipe_dict):
    from distill.config.base import runtime_free as _sft_config
    from distill.recipe import Recipe

    node0 = Recipe.model_validate(tiny_recipe_dict).students[0]
    node1 = node0.model_copy(deep=True)
    node1.launch = node1.launch.model_copy(
        update={"strategy": "ddp", "node_rank": 1, "nnodes": 2, "main_ip": "10.0.0.1"}
    )
    node0.launch = node0.launch.model_copy(update={"strategy": "ddp", "nnodes": 2})
    assert _sft_config(node0) == _sft_config(node1)
    node1.launch = node1.launch.model_copy(update={"nproc": 4})  # a different world size is another run
    assert _sft_config(node0) != _sft_config(node1)


def test_other_nodes_need_node_zeros_manifest(tiny_recipe, capsys):
    args = ["sft", str(tiny_recipe), "--launch", "ddp", "--nnodes", "2", "--node-rank", "1"]
    assert main(args) == 2
    assert "start node 0 (node_rank 0) first" in capsys.readouterr().err
