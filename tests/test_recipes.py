"""Every shipped recipe validates, explains itself, and `distill plan` agrees with the hardware it states."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

from distill.cli import main
from distill.recipe import load_recipe
from student import plan

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
# The GPU-scale recipes; r1-pipeline-quickstart is R1's pipeline at toy scale on the CPU.
GPU_RECIPES = [p for p in RECIPES if p.name.startswith("r1-") and "quickstart" not in p.name]
BENCHMARKS = Path(os.environ.get("DISTILL_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))


def test_the_scale_recipes_are_shipped():
    names = {p.name for p in RECIPES}
    for name in (
        "tiny.yaml",
        "r1-qwen2.5-math-1.5b.yaml",
        "r1-qwen2.5-math-7b.yaml",
        "r1-qwen2.5-14b.yaml",
        "r1-qwen2.5-32b.yaml",
        "r1-llama3.3-70b.yaml",
    ):
        assert name in names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_validates_and_starts_with_its_command(path):
    recipe = load_recipe(path)
    header = path.read_text().split("\nname:")[0]
    assert f"distill run recipes/{path.name}" in header or f"recipes/{path.name}" in header
    assert "Hardware" in header
    assert recipe.students or recipe.eval.models  # trains students, or is an eval-only recipe


def made_by_hand(path: Path, tmp_path: Path) -> list[str]:
    """Overrides for student folders a recipe's header makes (download + config edit): stand-in folders with
    the config.json those commands produce, so the plan is checked before anyone downloads weights."""
    header = path.read_text().split("\nname:")[0]
    overrides = []
    for index, student in enumerate(load_recipe(path).students):
        folder = student.model.removeprefix("./")
        made = re.search(rf"hf download (\S+) --local-dir {re.escape(folder)}\n", header)
        if not student.model.startswith("./") or (REPO / folder).exists() or not made:
            continue
        config = dataclasses.asdict(plan.KNOWN_SHAPES[made.group(1)])
        edit = re.search(r"c\.update\(([^)]*)\)", header).group(
            1
        )  # e.g. rope_theta=300000.0, max_pos...=32768
        config.update({key: float(value) for key, value in re.findall(r"(\w+)=([\d.]+)", edit)})
        config["max_position_embeddings"] = int(config["max_position_embeddings"])
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)  # two students may start from one folder
        (tmp_path / folder / "config.json").write_text(json.dumps(config))
        overrides.append(f"students.{index}.model={tmp_path / folder}")
    return overrides


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_plan_prints_a_fitting_row_for_each_student(path, capsys, tmp_path):
    assert main(["plan", str(path), *made_by_hand(path, tmp_path)]) == 0
    out = capsys.readouterr().out
    recipe = load_recipe(path)
    for student in recipe.students:
        assert f"student {student.name}:" in out
        row = re.search(
            rf"^\| {re.escape(student.launch.strategy)} \* \| (\d+) \|.*\| (yes|no) \| \S+ \|$", out, re.M
        )
        assert row, out
        assert int(row.group(1)) == (1 if student.launch.strategy == "single" else student.launch.world_size)
        assert row.group(2) == "yes", f"{path.name}: {student.name} does not fit what the recipe asks for"
    assert "warning:" not in out


@pytest.mark.parametrize("path", GPU_RECIPES, ids=lambda p: p.name)
def test_gpu_recipes_state_their_sources_and_global_batch(path):
    text = path.read_text()
    recipe = load_recipe(path)
    assert "Sources:" in text and "distill plan" in text
    for student in recipe.students:
        trains = student.grpo_options() if student.method == "grpo" else student  # grpo: its own options
        assert trains.bf16 and student.launch.strategy not in ("single", "cpu")
        global_batch = trains.batch_size * trains.gradient_accumulation_steps * student.launch.world_size
        assert f"{global_batch}" in text  # the comment names the published global batch
        assert str(student.launch.world_size) in text


@pytest.mark.parametrize("path", GPU_RECIPES, ids=lambda p: p.name)
def test_decontamination_files_exist(path):
    if not BENCHMARKS.is_dir():
        pytest.skip(f"{BENCHMARKS} is absent")
    from teacher.filter.decontaminate import benchmark_files

    recipe = load_recipe(path)
    if not recipe.teacher and not recipe.filter.traces:
        pytest.skip("no filter stage: its students are reinforced (method grpo), not trained on traces")
    assert recipe.filter.decontaminate.benchmarks
    # A path as written (relative to the checkout), a benchmark name as the local copy it resolves to.
    for source in benchmark_files(recipe.filter.decontaminate, recipe.eval.data_dir):
        assert (REPO / source).is_file(), source


def test_tiny_recipe_is_offline():
    recipe = load_recipe(REPO / "recipes" / "tiny.yaml")
    assert recipe.teacher.model == "tiny-random-llama"
    assert all(s.model == "tiny-random-llama" for s in recipe.students)
    assert (REPO / recipe.data.source).is_file()
    assert recipe.filter.correctness is False  # a random model is never right
