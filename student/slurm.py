"""`distill sft RECIPE --slurm`: one batch script per student (the one writer is distill/launch.py)."""

from __future__ import annotations

from pathlib import Path

from distill.launch import training_script, write_script


def write_slurm_scripts(recipe, recipe_path: str, overrides: list[str]) -> list[Path]:
    """One batch script per student under <run>/slurm/; prints how to submit each. Trains nothing."""
    written = []
    for student in recipe.students:
        args = ["sft", recipe_path, *overrides, "--student", student.name]
        text = training_script(student.launch, args, f"distill-sft-{student.name}")
        path = write_script(recipe.run_path() / "slurm" / f"sft-{student.name}.sbatch", text)
        written.append(path)
        print(
            f"[distill] wrote {path}: {student.launch.nnodes} node(s) x {student.launch.nproc} GPU(s), "
            f"{student.launch.strategy}; submit from this folder with: sbatch {path}",
            flush=True,
        )
    return written
