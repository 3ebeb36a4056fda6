"""Checkpoints inside a training stage's partial folder (sft students, the grpo teacher): which one is
complete, and resuming from it.

The Trainer writes ``checkpoint-<step>/`` file by file, so a kill -9 mid-save leaves a torn folder that
looks like a checkpoint. A callback drops a ``.complete`` marker after the Trainer has finished saving (and
every rank has written its shard); only marked checkpoints are resumed from, torn ones are removed.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

COMPLETE = ".complete"
_STEP = re.compile(r"^checkpoint-(\d+)$")


class CompleteMarker(TrainerCallback):
    """Marks a checkpoint complete once the Trainer has saved all of it (called after every save)."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                (folder / COMPLETE).write_text(f"{state.global_step}\n")
        return control


class SkipEndCheckpoint(TrainerCallback):
    """The Trainer also checkpoints the last step (weights + optimizer: ~12 bytes/parameter) even off the
    ``save_steps`` grid; the final model is saved right after anyway, so that write is only cost."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps and state.global_step % args.save_steps:
            control.should_save = False
        return control


def checkpoint_steps(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP.match(p.name)) and p.is_dir()]
    return sorted(found)


def last_complete_checkpoint(folder: Path, sweep: bool = True) -> Path | None:
    """The newest checkpoint with its marker; with ``sweep``, torn ones are deleted so no one loads them."""
    last = None
    for _, path in checkpoint_steps(folder):
        if (path / COMPLETE).exists():
            last = path
        elif sweep:
            print(
                f"[distill] skipping torn checkpoint {path.name} (no {COMPLETE} marker); removing it",
                flush=True,
            )
            shutil.rmtree(path, ignore_errors=True)
    return last
