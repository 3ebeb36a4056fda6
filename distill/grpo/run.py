"""One GRPO run, for the `grpo` stage (the teacher) and for grpo students: the prompt pool, then training
through the one training-job mechanism (distill/training.py), in context stages when the options list them.

Without ``stages``: one job in ``out_dir`` (checkpoints/, final/), as the grpo stage always trained.
With ``stages`` (DeepScaleR's 8k -> 16k -> 24k): stage N trains in ``out_dir/stages/<N>-<name>/`` from stage
N-1's final weights, with its own max_completion_length and steps (or epochs), on the pool re-filtered by
the current policy when the stage has a pass_rate_filter. A finished stage (its final/ and metrics) is not
run again; a killed one resumes from its last complete checkpoint: resumable between and within stages. The
last stage's weights become ``out_dir/final`` (hard links: no second copy on disk).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from distill import training
from distill.config.data import DataConfig
from distill.config.grpo import GRPOTeacherConfig
from distill.config.grpo_options import GRPOStage, stage_label
from distill.grpo.prompts import PROMPTS_FILE, prepare_prompts, refilter_prompts
from distill.grpo.trainer import METHOD, METRICS_FILE
from distill.runs import atomic_write_json

STAGES_DIR = "stages"


def train_grpo(
    model_path: str,
    cfg: GRPOTeacherConfig,
    data: DataConfig,
    out_dir: Path,
    label: str = "grpo",
    judge: dict | None = None,
) -> dict[str, Any]:
    """GRPO-train ``model_path`` on ``data``'s prompts; the policy lands in out_dir/final. ``judge``
    (distill.judge.judge_job) is the judge the ``judge`` reward asks."""
    prepared = prepare_prompts(model_path, cfg, data, out_dir, where=label)
    if not cfg.stages:
        job = grpo_job(cfg, model_path, out_dir / PROMPTS_FILE, out_dir, judge)
        return {**prepared, **training.run_job(METHOD, job, cfg.launch, label)}
    policy, pool, ran = model_path, out_dir / PROMPTS_FILE, []
    for number, stage in enumerate(cfg.stages, 1):
        name = stage_label(cfg.stages, stage)
        folder = out_dir / STAGES_DIR / f"{number}-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        metrics, pool = run_stage(policy, cfg, stage, pool, folder, f"{label} {name}", judge)
        ran.append({"stage": name, "max_completion_length": stage.max_completion_length, **metrics})
        policy = str(folder / training.FINAL)
    link_tree(Path(policy), out_dir / training.FINAL)
    metrics = staged_metrics(ran)
    atomic_write_json(out_dir / METRICS_FILE, metrics)
    return {**prepared, **metrics}


def stage_options(cfg: GRPOTeacherConfig, stage: GRPOStage) -> GRPOTeacherConfig:
    """The options one stage trains with: its completion budget and length, no further stages."""
    update = {
        "max_completion_length": stage.max_completion_length,
        "max_steps": stage.max_steps,
        "epochs": stage.epochs if stage.epochs is not None else cfg.epochs,
        "stages": None,
        "pass_rate_filter": None,
    }
    return cfg.model_copy(update=update)


def run_stage(
    policy: str,
    cfg: GRPOTeacherConfig,
    stage: GRPOStage,
    pool: Path,
    folder: Path,
    label: str,
    judge: dict | None,
) -> tuple[dict[str, Any], Path]:
    """Train one stage (or read what a finished one recorded); returns its metrics and its prompt pool."""
    options = stage_options(cfg, stage)
    if stage.pass_rate_filter:
        pool, refiltered = refilter_prompts(policy, options, stage.pass_rate_filter, pool, folder, label)
    else:
        refiltered = None
    done = folder / METRICS_FILE
    if done.exists() and (folder / training.FINAL).is_dir():
        print(f"[distill] {label}: done in an earlier attempt, continuing after it", flush=True)
        metrics = json.loads(done.read_text())
        metrics.pop("log_history", None)
    else:
        job = grpo_job(options, policy, pool, folder, judge)
        metrics = training.run_job(METHOD, job, cfg.launch, label)
    return ({**metrics, **({"refilter": refiltered} if refiltered else {})}, pool)


def grpo_job(
    cfg: GRPOTeacherConfig, model_path: str, prompts_file: Path, out_dir: Path, judge: dict | None
) -> dict[str, Any]:
    return {
        "grpo": cfg.model_dump(mode="json"),
        "model_path": model_path,
        "prompts_file": str(prompts_file),
        "out_dir": str(out_dir),
        **({"judge": judge} if judge else {}),
    }


def staged_metrics(ran: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's metrics: the last stage's facts (world size, strategy), steps summed over the stages, each
    stage's own summary, and the per-step curves of the whole run (steps counted on across stages)."""
    last = ran[-1]
    steps = sum(stage["steps"] for stage in ran)
    curves: dict[str, list] = {}
    offset = 0
    for stage in ran:
        for key, values in (stage.get("curves") or {}).items():
            shifted = [step + offset for step in values] if key == "step" else values
            curves.setdefault(key, []).extend(shifted)
        offset += stage["steps"]
    return {
        "world_size": last["world_size"],
        "strategy": last.get("strategy"),
        "steps": steps,
        "train_seconds": round(sum(stage.get("train_seconds", 0.0) for stage in ran), 1),
        "stages": [{k: v for k, v in stage.items() if k != "curves"} for stage in ran],
        "curves": curves,
        **{k: last[k] for k in last if k.endswith("_last10")},
        **{k: ran[0][k] for k in ran[0] if k.endswith("_first10")},
    }


def link_tree(source: Path, target: Path) -> None:
    """``target`` as a copy of ``source`` made of hard links (a full copy where links are not possible)."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, tmp, copy_function=link)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
