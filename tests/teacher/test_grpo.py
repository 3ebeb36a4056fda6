"""The grpo stage: a tiny model trained through the CLI, kill -9 and resume, `teacher.model: grpo` feeding
generate, the stage graph, and the metrics summary."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from suite import kill_at_first_checkpoint

from distill.cli import main
from distill.grpo.trainer import summarise
from distill.grpo_teacher import with_trained_teacher
from distill.pipeline import plan
from distill.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
GRPO = {
    "model": "tiny-random-llama",
    "rewards": ["accuracy", "format", "cosine", "repetition"],
    "reward_weights": [1.0, 0.5, 0.5, 0.2],
    "answer_fallback": "last_number",
    "num_generations": 2,
    "batch_size": 4,
    "max_steps": 4,
    "save_steps": 2,
    "max_completion_length": 8,
    "max_prompt_length": 128,
    "learning_rate": 0.01,  # a random 2-layer model: large steps so the weights visibly move
    "report_to": [],
}


@pytest.fixture
def grpo_recipe(tmp_path, tiny_recipe_dict) -> Path:
    tiny_recipe_dict["grpo"] = dict(GRPO)
    tiny_recipe_dict["teacher"]["model"] = "grpo"
    path = tmp_path / "grpo.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict, sort_keys=False))
    return path


def distill(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "distill.cli", *args]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


def manifest(recipe_path: Path) -> dict:
    run_dir = Path(yaml.safe_load(recipe_path.read_text())["run_dir"])
    return json.loads((run_dir / "manifest.json").read_text())


def test_stage_graph_puts_grpo_before_generate_and_eval(grpo_recipe, tiny_model_dir):
    recipe = load_recipe(grpo_recipe)
    specs = {spec.name: spec for spec in plan(recipe)}
    assert list(specs)[:2] == ["grpo", "generate"]
    assert specs["grpo"].folder == "teacher" and specs["generate"].upstream == ["grpo"]
    assert "grpo" in specs["eval"].upstream
    # runtime knobs do not retrain: the fingerprinted config leaves them out
    assert "save_steps" not in specs["grpo"].config and "verify_workers" not in specs["grpo"].config
    trained = with_trained_teacher(recipe, Path("/runs/x"))
    assert trained.teacher.model == "/runs/x/teacher/final"
    assert [m.label for m in trained.eval.models] == ["grpo start (tiny-random-llama)"]


def test_summary_windows_per_reward():
    history = [{"reward": float(i), "rewards/accuracy/mean": i / 20, "kl": 0.1} for i in range(20)]
    history.append({"train_runtime": 3.0})
    summary = summarise(history, ["accuracy"])
    assert summary["logged_steps"] == 20
    assert summary["reward_first10"] == 4.5 and summary["reward_last10"] == 14.5
    assert summary["reward_accuracy_last10"] == pytest.approx(0.725)
    assert summary["entropy_first10"] is None


def test_grpo_stage_on_a_recipe_without_the_section(tiny_recipe, capsys):
    assert main(["grpo", str(tiny_recipe)]) == 2
    assert "this recipe has no grpo stage (it has no grpo section)" in capsys.readouterr().err


@pytest.mark.integration
def test_cli_grpo_trains_then_the_recipe_distils_from_the_trained_teacher(grpo_recipe, tiny_model_dir):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    result = distill("grpo", str(grpo_recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = manifest(grpo_recipe)["stages"]["grpo"]["metrics"]
    assert metrics["steps"] == 4 and metrics["world_size"] == 1 and metrics["logged_steps"] == 4
    for name in GRPO["rewards"]:  # every reward function was logged
        assert metrics[f"reward_{name}_first10"] is not None, name
    assert metrics["entropy_first10"] is not None and metrics["completion_length_first10"] > 0
    assert metrics["tokens_per_second_first10"] > 0 and metrics["tokens_per_second_last10"] > 0
    run_dir = Path(yaml.safe_load(grpo_recipe.read_text())["run_dir"])
    final = run_dir / "teacher" / "final"
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(final / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before), "GRPO left every weight unchanged"
    AutoModelForCausalLM.from_pretrained(final)  # the checkpoint loads
    assert not list(run_dir.glob("teacher.partial-*"))

    # The rest of the recipe: generate samples from the trained checkpoint, students, eval, publish.
    rest = distill("run", str(grpo_recipe))
    assert rest.returncode == 0, rest.stderr[-3000:]
    assert "[distill] grpo: up to date, skipped" in rest.stdout
    shard = next((run_dir / "generate").glob("shard-*.parquet"))
    import pyarrow.parquet as pq

    teacher = pq.read_table(shard).to_pylist()[0]["teacher"]
    assert teacher["resolved"] == str(final.absolute()) or teacher["resolved"] == str(final.resolve())
    assert "grpo" in manifest(grpo_recipe)["stages"]["generate"]["inputs"]
    labels = [row["model"] for row in json.loads((run_dir / "eval" / "comparison.json").read_text())["rows"]]
    assert f"teacher ({final.absolute()})" in labels and "grpo start (tiny-random-llama)" in labels


@pytest.mark.integration
def test_kill_after_checkpoint_then_rerun_resumes(grpo_recipe):
    knobs = ["grpo.max_steps=40", "grpo.save_steps=5"]
    run_dir = Path(yaml.safe_load(grpo_recipe.read_text())["run_dir"])
    kill_at_first_checkpoint(["grpo", str(grpo_recipe), *knobs], run_dir / "teacher.partial-*")
    assert not (run_dir / "teacher" / "final").exists()
    assert manifest(grpo_recipe)["stages"]["grpo"]["status"] == "running"
    done = distill("grpo", str(grpo_recipe), *knobs)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "[distill] grpo: resuming from checkpoint-" in done.stdout
    metrics = manifest(grpo_recipe)["stages"]["grpo"]["metrics"]
    assert metrics["steps"] == 40 and metrics["resumed_from"].startswith("checkpoint-")
    assert int(metrics["resumed_from"].split("-")[1]) % 5 == 0
    assert (run_dir / "teacher" / "final" / "model.safetensors").exists()


def test_prompt_plus_completion_over_the_context_is_refused_before_anything_runs(grpo_recipe, capsys):
    run_dir = Path(yaml.safe_load(grpo_recipe.read_text())["run_dir"])
    assert main(["grpo", str(grpo_recipe), "grpo.max_prompt_length=600"]) == 2
    err = capsys.readouterr().err
    assert (
        "grpo.max_prompt_length + max_completion_length = 608 exceeds the context of tiny-random-llama" in err
    )
    assert not run_dir.exists()


def test_pass_rate_filter_keeps_only_prompts_inside_the_band(tmp_path, tiny_model_dir):
    from distill.errors import DistillError
    from distill.grpo.prompts import prepare_prompts
    from distill.recipe import DataConfig, GRPOTeacherConfig

    data = DataConfig(source=str(REPO / "recipes" / "data" / "addition_train.jsonl"), limit=3)
    base = {**GRPO, "max_prompt_length": 128, "max_completion_length": 4}
    # A random model never answers a sum: every pass rate is 0, inside [0, 0] and outside [0.5, 1].
    cfg = GRPOTeacherConfig(**base, pass_rate_filter={"band": [0.0, 0.0], "samples": 2})
    meta = prepare_prompts(str(tiny_model_dir), cfg, data, tmp_path / "kept")
    assert meta["prompts"] == 3 and meta["pass_rate_filter"]["prompts_kept"] == 3
    assert meta["pass_rate_filter"]["mean_pass_rate"] == 0.0
    cfg = GRPOTeacherConfig(**base, pass_rate_filter={"band": [0.5, 1.0], "samples": 2})
    with pytest.raises(DistillError, match="no training prompts left .* outside grpo.pass_rate_filter.band"):
        prepare_prompts(str(tiny_model_dir), cfg, data, tmp_path / "none")


@pytest.mark.integration
def test_two_process_launch_through_the_shared_launcher(grpo_recipe):
    # grpo.launch goes through distill/launch.py's `accelerate launch`, as the students' does (gloo on CPU):
    # world size 2 must be what really ran, and each step's batch of 4 completions is split over the two
    # processes.
    knobs = ["grpo.launch.strategy=cpu", "grpo.launch.nproc=2", "grpo.batch_size=2", "grpo.max_steps=2"]
    result = distill("grpo", str(grpo_recipe), *knobs)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "-m distill.grpo.trainer" in result.stdout
    metrics = manifest(grpo_recipe)["stages"]["grpo"]["metrics"]
    assert metrics["world_size"] == 2 and metrics["steps"] == 2 and metrics["strategy"] == "cpu"
    run_dir = Path(yaml.safe_load(grpo_recipe.read_text())["run_dir"])
    assert (run_dir / "teacher" / "launch.log").exists() and (run_dir / "teacher" / "final").is_dir()
