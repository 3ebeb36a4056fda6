"""Stage `eval`: lm-eval's `simple_evaluate` on every row of the comparison, n samples per problem.

Rows: the teacher, each student, optionally each student's base model and any `eval.models`. Each row runs
through lm-eval with the recipe's backend (eval/backends.py); our tasks score every sample with the shared
verifier and hand back per-problem (n, correct, majority-correct), from which eval/stats.py computes pass@1
with its standard error and 95% CI, pass@k, maj@n and the paired differences in the comparison.

Resume: a row's results are written (atomically) as ``<label>/rows.json`` the moment it finishes; a rerun
after a crash or kill reuses them, because the stage's work folder is tied to the eval config and inputs.
"""

from __future__ import annotations

import json
import logging
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from distill.config import eval_presets as presets
from distill.errors import DistillError
from distill.runs import atomic_write_json
from eval import stats
from eval.backends import EvalTarget, lm_eval_model

TASKS_DIR = Path(__file__).parent / "tasks"


class _DropMetadataHint(logging.Filter):
    """lm-eval warns on every task with a custom loader that kwargs "can be passed to --metadata in
    console": advice for its own CLI, which distill already follows (data_dir and seed go in that way)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed" not in record.getMessage()


logging.getLogger("lm_eval.api.task").addFilter(_DropMetadataHint())


def local_task_names() -> set[str]:
    import yaml

    names = set()
    for path in TASKS_DIR.glob("*.yaml"):
        for line in path.read_text().splitlines():
            if line.startswith("task:"):
                names.add(yaml.safe_load(line)["task"])
    return names


@lru_cache(maxsize=8)
def task_manager(builtin: bool, data_dir: str | None, seed: int):
    """lm-eval's task index, built once per process and reused by every row: indexing its ~10k built-in
    tasks costs ~12 s (skipped when every task is one of ours). The Task objects themselves are built per
    row (`manager.load`): simple_evaluate keeps each row's requests and results on them."""
    from lm_eval.tasks import TaskManager

    return TaskManager(
        include_path=str(TASKS_DIR),
        include_defaults=builtin,
        metadata={"data_dir": data_dir, "seed": seed},
    )


def load_tasks(
    names: list[str],
    repeats: dict[str, int] | int,
    data_dir: str | None = None,
    seed: int = 0,
    prompt: str | None = None,
    generation_prefix: str | None = None,
):
    """lm-eval Task objects (ours take precedence over built-ins of the same name), each with its n; with
    ``prompt`` our text-prompt tasks ask it instead (multiple choice keeps its own), and every task's
    assistant turn starts with ``generation_prefix`` (lm-eval's gen_prefix)."""
    local = local_task_names()
    needs_builtin = any(name not in local for name in names)
    manager = task_manager(needs_builtin, data_dir, seed)
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        raise DistillError(
            f"eval.tasks: unknown task(s) {', '.join(unknown)}; ours are {', '.join(sorted(local))} "
            "(eval/tasks/*.yaml), or any lm-eval task name"
        )
    loaded = manager.load(names)["tasks"]
    for name, task in loaded.items():
        task.config.repeats = repeats if isinstance(repeats, int) else repeats[name]
        if prompt is not None and name in local and isinstance(task.config.doc_to_text, str):
            task.config.doc_to_text = prompt
        if generation_prefix:
            task.config.gen_prefix = generation_prefix
    return list(loaded.values())


def run_lm_eval(target: EvalTarget, cfg, tasks: list[str], on_gpu: bool) -> dict[str, Any]:
    """One simple_evaluate call for one row, with the recipe's sampling settings and seeds."""
    import lm_eval

    model, model_args = lm_eval_model(target, cfg, on_gpu)
    return lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=load_tasks(
            tasks, {t: cfg.n_for(t) for t in tasks}, cfg.data_dir, cfg.seed, cfg.prompt, cfg.generation_prefix
        ),
        limit=cfg.limit,
        **generation_settings(target, cfg, cfg.max_tokens),
    )


def generation_settings(target: EvalTarget, cfg, max_tokens: int) -> dict[str, Any]:
    """The ``simple_evaluate`` arguments every row's run shares: sampling, chat template, seeds, samples."""
    seeds = ("random_seed", "numpy_random_seed", "torch_random_seed", "fewshot_random_seed")
    return {
        "batch_size": "auto" if target.backend == "vllm" else cfg.batch_size,
        "gen_kwargs": {
            "do_sample": cfg.temperature > 0,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "max_gen_toks": max_tokens,
        },
        "apply_chat_template": True,
        "system_instruction": cfg.system_prompt,
        "log_samples": True,
        **dict.fromkeys(seeds, cfg.seed),
        "bootstrap_iters": 0,  # intervals come from eval/stats.py over problems
    }


def evaluate_target(target: EvalTarget, cfg, out_dir: Path, on_gpu: bool) -> dict[str, Any]:
    """Evaluate one row on every task (or reuse an earlier attempt's finished result)."""
    done = out_dir / "rows.json"
    if done.exists():
        print(f"[distill] eval: {target.label}: finished in an earlier attempt, reused", flush=True)
        return with_current_intervals(json.loads(done.read_text()))
    print(f"[distill] eval: {target.label} ({target.backend}) on {', '.join(cfg.tasks)}", flush=True)
    started = time.perf_counter()
    results = run_lm_eval(target, cfg, cfg.tasks, on_gpu)
    seconds = time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    samples_log = results.pop("samples", {})
    for task, samples in samples_log.items():
        write_samples(samples, out_dir / f"samples_{task}.parquet")
    atomic_write_json(out_dir / "results.json", results)
    counter = TokenCounter(target.tokenizer)
    per_problem, votes, rows = {}, {}, []
    for task in cfg.tasks:
        samples, metric = samples_log.get(task, []), task_metric(results, task)
        per_problem[task] = problem_results(samples, cfg.n_for(task), metric)
        votes[task] = problem_votes(samples)
        truncated = counter.share_at_limit(samples, cfg.max_tokens)
        row = summary_row(target, task, per_problem[task], results, cfg, truncated, on_gpu, votes[task])
        rows.append(row if metric == "pass_at_1" else {**row, "metric": f"lm-eval {metric}"})
    result = {"rows": rows, "per_problem": per_problem, "votes": votes, "seconds": round(seconds, 1)}
    atomic_write_json(done, result)
    return result


# Per-sample logs: parquet, zstd-compressed, one row per problem with lm-eval's fields. Scalars keep their
# type; nested fields (doc, arguments, resps, filtered_resps, answer_votes...) are JSON text, so rows of any
# shape share one schema and `datasets.load_dataset("parquet", data_files=...)` reads the file as is.
def write_samples(samples: list[dict[str, Any]], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distill.runs import atomic_path

    fields = list(dict.fromkeys(key for sample in samples for key in sample))
    columns, nested = {}, []
    for key in fields:
        array, is_json = _column([sample.get(key) for sample in samples])
        columns[key] = array
        if is_json:
            nested.append(key)
    table = pa.table(columns) if columns else pa.table({"doc_id": pa.array([], pa.int64())})
    table = table.replace_schema_metadata({"distill": json.dumps({"json_columns": nested})})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", compression_level=9)
    return path


def _column(values: list):
    """(arrow array, is JSON text): numbers, bools and strings keep their type; anything nested is JSON."""
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, pa.bool_()), False
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        kind = pa.float64() if any(isinstance(v, float) for v in present) else pa.int64()
        return pa.array(values, kind), False
    if all(isinstance(v, str) for v in present):
        return pa.array(values, pa.string()), False
    return pa.array([None if v is None else json.dumps(v, default=str) for v in values], pa.string()), True


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The per-sample log as lm-eval gave it (after a JSON round trip: tuples read back as lists)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(b"distill", b"{}"))
    nested = set(meta.get("json_columns", []))
    return [
        {
            key: json.loads(value) if key in nested and value is not None else value
            for key, value in row.items()
        }
        for row in table.to_pylist()
    ]


def with_current_intervals(result: dict[str, Any]) -> dict[str, Any]:
    """A row finished by older code (normal-approximation CI) gets its Wilson interval from its per-problem
    results, so one comparison never mixes two interval methods."""
    for row in result["rows"]:
        per_problem = result.get("per_problem", {}).get(row["task"])
        if "interval_method" in row or not per_problem or row.get("metric"):
            continue
        estimate = stats.mean_estimate([c / count for count, c, _ in per_problem.values()])
        row["ci95"] = stats.rounded(estimate.ci95)
        row["interval_method"] = "wilson" if estimate.problems > 1 else "none (1 problem)"
    return result


def problem_results(samples: list[dict[str, Any]], n: int, metric: str = "pass_at_1") -> dict[str, list]:
    """doc id -> [n, correct, majority correct] from lm-eval's per-sample log. Our tasks log pass_at_1
    (c/n) and maj_at_n; an lm-eval task of its own is read through its first metric, as one sample."""
    out = {}
    for sample in samples:
        # Pair problems across rows by their benchmark id (same data, same order: doc_id would match too).
        doc = sample.get("doc") if isinstance(sample.get("doc"), dict) else {}
        key = str(doc.get("id", sample["doc_id"]))
        if metric == "pass_at_1":
            out[key] = [n, round(float(sample["pass_at_1"]) * n), float(sample.get("maj_at_n", 0.0))]
        else:
            value = float(sample[metric])
            out[key] = [1, value, value]
    return out


def problem_votes(samples: list[dict[str, Any]]) -> dict[str, list]:
    """doc id -> [[answer, correct], ...] per sample, as our tasks log them (answer_votes); {} otherwise."""
    out = {}
    for sample in samples:
        if isinstance(sample.get("answer_votes"), list):
            doc = sample.get("doc") if isinstance(sample.get("doc"), dict) else {}
            out[str(doc.get("id", sample["doc_id"]))] = sample["answer_votes"]
    return out


def majority_at_k(votes: dict[str, list], n: int) -> dict[str, float]:
    """maj@k for the same k as pass@k (exact over subsets, eval/stats.py); {} without every problem's votes."""
    if not votes or any(len(v) != n for v in votes.values()):
        return {}
    problems = [[(answer, bool(correct)) for answer, correct in v] for v in votes.values()]
    return {str(k): round(stats.maj_at_k_mean(problems, k), 4) for k in stats.k_values(n)}


def task_metric(results: dict[str, Any], task: str) -> str:
    """pass_at_1 for our tasks; else the first metric lm-eval reports for the task (e.g. exact_match)."""
    names = [key.split(",")[0] for key in results["results"].get(task, {}) if "," in key]
    names = [name for name in names if not name.endswith("_stderr")]
    return "pass_at_1" if "pass_at_1" in names or not names else names[0]


class TokenCounter:
    """Counts answers that used the whole token budget (re-tokenized with the model's tokenizer, so an
    answer cut at exactly max_tokens may count as one token shorter: a lower bound, within a token)."""

    def __init__(self, tokenizer_ref: str | None):
        self.tokenizer = None
        if tokenizer_ref:
            from transformers import AutoTokenizer

            try:
                self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_ref)
            except Exception:  # a served model without a local tokenizer: report "unknown"
                self.tokenizer = None

    def share_at_limit(self, samples: list[dict[str, Any]], max_tokens: int) -> float | None:
        if self.tokenizer is None or not samples:
            return None
        texts = [text for sample in samples for text in _flat(sample.get("resps", []))]
        if not texts:
            return None
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        return round(sum(length >= max_tokens - 1 for length in lengths) / len(lengths), 4)


def _flat(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [text for item in value for text in _flat(item)]


def summary_row(target, task, per_problem, results, cfg, truncated, on_gpu, votes=None) -> dict[str, Any]:
    scores = [c / count for count, c, _ in per_problem.values()]
    if not scores:
        raise DistillError(f"eval: {target.label} produced no results on {task}")
    n = int(next(iter(per_problem.values()))[0])
    estimate = stats.mean_estimate(scores)
    exact = all(float(c).is_integer() for _, c, _ in per_problem.values())
    counts = [(int(count), int(c)) for count, c, _ in per_problem.values()] if exact else []
    pass_at_k = (
        {str(k): round(stats.pass_at_k_mean(counts, k), 4) for k in stats.k_values(n)} if exact else {}
    )
    maj_at_k = majority_at_k(votes or {}, n) if len(votes or {}) == len(per_problem) else {}
    maj_at_n = maj_at_k.get(str(n), round(sum(m for *_, m in per_problem.values()) / len(per_problem), 4))
    return {
        "model": target.label,
        "role": target.role,
        "path": target.ref,
        "backend": target.backend,
        "task": task,
        "pass_at_1": round(estimate.mean, 4),
        "stderr": None if estimate.stderr is None else round(estimate.stderr, 4),
        "ci95": stats.rounded(estimate.ci95),
        "pass_at_k": pass_at_k or {"1": round(estimate.mean, 4)},
        "maj_at_k": maj_at_k or {str(n): maj_at_n},
        "maj_at_n": maj_at_n,
        "interval_method": "wilson" if len(per_problem) > 1 else "none (1 problem)",
        "problems": len(per_problem),
        "samples_per_problem": n,
        "truncated_share": truncated,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_tokens": cfg.max_tokens,
        "dtype": cfg.dtype if cfg.dtype != "auto" else ("auto" if on_gpu else "float32"),
        "seed": cfg.seed,
        "generation_prefix": cfg.generation_prefix,
        "preset": cfg.preset,
        "preset_deviations": presets.deviations(cfg),
        "lm_eval_version": _version("lm_eval"),
        "task_version": results.get("versions", {}).get(task),
    }


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
