"""`distill generate RECIPE --slurm`: a Slurm array batch script, one task per chunk of the prompts.

Each array task runs `distill generate RECIPE --chunk $SLURM_ARRAY_TASK_ID/N` on one node: it starts its own
engine with the recipe's settings (vLLM tensor x data parallel GPUs, or the endpoints of the openai
backend), resumes from its own shards when requeued, and the chunk that finishes last merges. The script is
plain bash, written into the run dir to be read before it is submitted; distill never schedules anything.
"""

from __future__ import annotations

from pathlib import Path

from distill.errors import DistillError
from distill.launch import chunk_array_script, write_script
from distill.recipe import Recipe


def gpus_per_task(recipe: Recipe, requested: int | None) -> int:
    """GPUs one array task needs: the vLLM engine's tensor x data parallel size (1 for transformers, 0 for
    a teacher behind endpoints); a smaller ``requested`` is refused."""
    teacher = recipe.teacher
    if teacher.backend == "vllm":
        needed = teacher.vllm.tensor_parallel_size * teacher.vllm.data_parallel_size
    else:
        needed = 1 if teacher.backend == "transformers" else 0
    if requested is not None and requested < needed:
        raise DistillError(
            f"--gpus-per-node {requested}: the recipe's vLLM engine needs {needed} GPUs per task "
            f"(teacher.vllm.tensor_parallel_size x data_parallel_size); raise it or lower those"
        )
    return needed if requested is None else requested


def slurm_script(
    recipe: Recipe,
    distill_args: list[str],
    chunks: int,
    gpus: int,
    partition: str | None = None,
    time_limit: str | None = None,
) -> str:
    logs = recipe.run_path().resolve() / "slurm"
    notes = (  # the lines as they read in the script
        f"Written by `distill generate --slurm`: {chunks} array tasks, one chunk of the prompts each, "
        "every task\n"
        f"with its own engine ({gpus} GPU(s)). Each chunk resumes from its own shards when rerun; "
        "the chunk that\n"
        "finishes last merges them and marks the stage done. Progress: distill generate RECIPE --status.\n"
        "Rerun chosen chunks: sbatch --array=3,7 {this file}. Uses the Python environment that wrote it."
    )
    return chunk_array_script(
        "generate", recipe.name, logs, distill_args, chunks, notes, gpus, partition, time_limit
    )


def write_slurm_script(
    recipe: Recipe,
    recipe_path: str,
    overrides: list[str],
    chunks: int,
    prompts: int,
    gpus: int | None = None,
    partition: str | None = None,
    time_limit: str | None = None,
) -> Path:
    """Write <run>/slurm/generate.sbatch and print how to submit it."""
    if chunks > prompts:
        raise DistillError(
            f"--chunks {chunks}: more chunks than the recipe's {prompts} prompts; use at most {prompts}"
        )
    gpus = gpus_per_task(recipe, gpus)
    args = [str(Path(recipe_path).resolve()), *overrides]
    text = slurm_script(recipe, args, chunks, gpus, partition, time_limit)
    path = write_script(recipe.run_path() / "slurm" / "generate.sbatch", text)
    print(
        f"[distill] wrote {path}: {chunks} array tasks of ~{-(-prompts // chunks)} prompts, {gpus} GPU(s) "
        f"each; submit with:\nsbatch {path}",
        flush=True,
    )
    return path
