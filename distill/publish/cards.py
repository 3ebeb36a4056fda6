"""Model and dataset cards for the publish stage, built with huggingface_hub's own card classes.

A model card's front matter carries every eval row of its student as a ``model-index`` entry (benchmark,
metric, value, n and sampling settings); its body states the lineage (teacher, trace data, training), the
comparison table and chart, the recipe snapshot, the exact command and the package versions. A dataset card
describes the filtered traces: prompt source, teacher and sampling, the filter report (decontamination
included) and the columns. Cards are built only from the recipe, the manifest and the eval rows -- never from
the environment -- and the publish stage redacts secret values from them once more before writing.
"""

from __future__ import annotations

from typing import Any

import yaml
from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, ModelCard, ModelCardData

_SETTINGS = (
    "samples_per_problem",
    "problems",
    "temperature",
    "top_p",
    "max_tokens",
    "backend",
    "dtype",
    "seed",
)


def eval_results(rows: list[dict[str, Any]], benchmarks: dict[str, dict[str, Any]]) -> list[EvalResult]:
    """One model-index result per (benchmark, metric): pass@1 and, where known, maj@n; settings as args."""
    results = []
    for row in rows:
        spec = benchmarks.get(row["task"], {})
        common = {
            "task_type": "text-generation",
            "dataset_type": spec.get("hub_id") or row["task"],
            "dataset_name": row["task"],
            "dataset_config": spec.get("config"),
            "dataset_split": spec.get("split"),
            "metric_args": {k: row[k] for k in _SETTINGS if row.get(k) is not None},
        }
        if row.get("ci95") is not None:  # Wilson score interval over problems (eval/stats.py)
            common["metric_args"]["ci95"] = row["ci95"]
        if row.get("reference"):  # the model's own published figure and whether our CI holds it
            ref = row["reference"]
            common["metric_args"]["published"] = {k: ref[k] for k in ("score", "source", "inside_ci95")}
        n = row["samples_per_problem"]
        metric = row.get("metric", "pass@1")
        results.append(
            EvalResult(
                metric_type=metric, metric_value=row["pass_at_1"], metric_name=f"{metric} (n={n})", **common
            )
        )
        if row.get("maj_at_n") is not None and "metric" not in row:
            results.append(
                EvalResult(
                    metric_type=f"maj@{n}", metric_value=row["maj_at_n"], metric_name=f"maj@{n}", **common
                )
            )
    return results


def model_card(
    repo_id: str,
    *,
    base_model: str | None,
    teacher: str,
    rows: list[dict[str, Any]],
    benchmarks: dict[str, dict[str, Any]],
    lineage: dict[str, Any],
    comparison_md: str,
    license: str,
    datasets: list[str] | None = None,
    gate: dict[str, Any] | None = None,
    reproduce: dict[str, Any] | None = None,
    method: dict[str, Any] | None = None,
) -> str:
    """The README.md of a student's model repo. ``gate`` is the release gate's decision for this student;
    a card pushed past a failed gate (``--force``) says so at the top, with the reasons."""
    name = repo_id.split("/")[-1]
    data = ModelCardData(
        license=license,
        # The Hub checks base_model against its repositories: only a real Hub id goes there.
        base_model=base_model,
        datasets=datasets or None,  # Hub ids of the trace sets trained on
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["distill", "reasoning", "distillation", *_METHOD_TAGS[(method or {}).get("method", "sft")]],
        model_name=name,
        eval_results=eval_results(rows, benchmarks) or None,
    )
    parts = [f"---\n{data.to_yaml()}\n---\n", f"# {name}\n"]
    if gate is not None and not gate.get("ship"):
        reasons = "; ".join(gate.get("reasons") or ["no eval results"])
        parts.append(
            f"> **Warning: this model did not pass its release gate** ({reasons}). It was published anyway (`--force`).\n"
        )
    parts.append(_method_intro(teacher, method or {}))
    # comparison.md already states n, sampling, extraction and how the intervals are computed.
    parts.append(f"## Evaluation\n\n{comparison_md.strip()}\n\n![comparison](comparison.png)\n")
    parts.append(
        "## Lineage\n\n" + "\n".join(f"- **{key}**: {value}" for key, value in lineage.items()) + "\n"
    )
    if reproduce:
        parts.append(_reproduce_section(reproduce))
    return "\n".join(parts)


_METHOD_TAGS = {
    "sft": ["sft"],
    "on_policy": ["on-policy-distillation"],
    "kd": ["knowledge-distillation"],
    "grpo": ["grpo", "reinforcement-learning"],
}


def method_facts(student, metrics: dict[str, Any]) -> dict[str, Any]:
    """The card's method lines for one student: the method, the teacher whose logits were used, the
    divergence (first-10 -> last-10 step means), the steps and the init, as the sft stage recorded them."""
    facts: dict[str, Any] = {"method": student.method}
    if student.init:
        facts["init"] = f"the final weights of student {student.init} (same recipe)"
    if student.method == "sft":
        return facts
    if student.method == "grpo":
        return {**facts, **grpo_facts(student, metrics)}
    knobs = student.on_policy if student.method == "on_policy" else student.kd
    kind = {0.0: "forward KL", 0.5: "JSD", 1.0: "reverse KL"}.get(
        knobs.beta, f"generalised JSD beta {knobs.beta}"
    )
    facts.update(
        logits_from=student.distill_from or metrics.get("teacher"),
        divergence=f"{kind} per token, {metrics.get('divergence_first10')} (first 10 steps) -> "
        f"{metrics.get('divergence_last10')} (last 10), temperature {knobs.temperature}",
        steps=metrics.get("steps"),
        teacher_tokens_scored=metrics.get("teacher_tokens_scored"),
    )
    return facts


def grpo_facts(student, metrics: dict[str, Any]) -> dict[str, Any]:
    """A grpo student's card lines: where it started, the rewards and their weights, the stages, the steps."""
    options = student.grpo_options()
    weights = options.reward_weights or [1.0] * len(options.rewards)
    stages = [
        f"{s.get('stage')} ({s.get('max_completion_length')} tokens, {s.get('steps')} steps)"
        for s in metrics.get("stages") or []
    ]
    return {
        "init": metrics.get("init") if not student.init else f"the final weights of student {student.init}",
        "rewards": ", ".join(
            f"{name} x {weight:g}" for name, weight in zip(options.rewards, weights, strict=True)
        ),
        "stages": " -> ".join(stages) or f"one stage of {options.max_completion_length} completion tokens",
        "steps": metrics.get("steps"),
        "dynamic_sampling": options.dynamic_sampling,
    }


def _method_intro(teacher: str, method: dict[str, Any]) -> str:
    init = f" It started from {method['init']}." if method.get("init") else ""
    if method.get("method") == "grpo":
        sampling = ", DAPO dynamic sampling" if method.get("dynamic_sampling") else ""
        return (
            f"Reinforced with GRPO by distill (TRL GRPOTrainer{sampling}) on verifiable rewards: "
            f"{method.get('rewards')}; stages: {method.get('stages')}; {method.get('steps')} steps in all."
            f"{init}\n"
        )
    if method.get("method") == "on_policy":
        return (
            f"Distilled on-policy with distill: this model sampled its own answers to the kept traces' prompts and "
            f"was trained to match **{method.get('logits_from') or teacher}**'s next-token distribution on every "
            f"token of them (TRL DistillationTrainer; {method.get('divergence')}; {method.get('steps')} "
            f"steps).{init}\n"
        )
    if method.get("method") == "kd":
        return (
            f"Distilled with distill by token-level KD: the teacher **{teacher}** sampled reasoning traces, a "
            f"verifier kept the correct ones, and this model was trained to match "
            f"**{method.get('logits_from') or teacher}**'s next-token distribution on them (TRL GKDTrainer, no "
            f"student sampling; {method.get('divergence')}; {method.get('steps')} steps).{init}\n"
        )
    return (
        f"Distilled from **{teacher}** with distill: the teacher sampled reasoning traces, a verifier kept the "
        f"correct ones, and this model was fine-tuned on them with TRL.{init}\n"
    )


def _reproduce_section(reproduce: dict[str, Any]) -> str:
    versions = "\n".join(f"| {name} | {version} |" for name, version in sorted(reproduce["versions"].items()))
    recipe = yaml.safe_dump(reproduce["recipe"], sort_keys=False).strip()
    return (
        "## How to reproduce\n\n"
        f"Run the recipe below (sha256 `{reproduce['recipe_hash']}`) with distill:\n\n"
        f"```bash\n{reproduce['command']}\n```\n\n"
        f"<details><summary>Recipe snapshot</summary>\n\n```yaml\n{recipe}\n```\n\n</details>\n\n"
        f"| package | version |\n|---|---|\n{versions}\n"
    )


def dataset_card(
    repo_id: str,
    *,
    license: str,
    teacher: str,
    prompts: str,
    sampling: dict[str, Any] | None,
    report_md: str,
    rows_kept: int,
    rows_all: int,
    recipe_hash: str,
    source_datasets: list[str] | None = None,
) -> str:
    """The README.md of the trace dataset repo: two configs, the kept traces (default) and every verified
    trace with the reason it was removed (``all``)."""
    data = DatasetCardData(
        license=license,
        task_categories=["text-generation"],
        tags=["distill", "reasoning", "synthetic", "distillation"],
        pretty_name=repo_id.split("/")[-1],
        size_categories=_size_category(rows_all),
        source_datasets=source_datasets or None,
        configs=[
            {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]},
            {"config_name": "all", "data_files": [{"split": "train", "path": "all/train-*.parquet"}]},
        ],
    )
    sampling_text = ", ".join(f"{k} {v}" for k, v in (sampling or {}).items()) or "as recorded in the source"
    body = (
        f"# {repo_id.split('/')[-1]}\n\n"
        f"Reasoning traces sampled from **{teacher}** and checked by distill's verifier (math-verify). The "
        f"`default` config holds the {rows_kept} traces kept by the filter (the SFT set); `all` holds all "
        f"{rows_all} verified traces, each with `kept`, `removed_by` and `removed_detail`.\n\n"
        f"- **Prompts**: {prompts}\n- **Teacher**: {teacher}\n- **Sampling**: {sampling_text}\n"
        f"- **Recipe**: sha256 `{recipe_hash}`\n\n"
        "## Columns\n\n"
        "`prompt_id`, `sample_idx`, `messages` (system/user/assistant), `completion`, `reasoning` (inside "
        "`<think>`), `final` (after it), `finish_reason`, token counts, `teacher`, `sampling`; the verifier's "
        "verdict: `extracted`, `correct`, `verify_reason`.\n\n"
        f"## Filter report\n\n{_demote_headings(report_md)}\n\n![filter report](filter_report.png)\n"
    )
    return f"---\n{data.to_yaml()}\n---\n\n{body}"


def _demote_headings(markdown: str) -> str:
    """The report's own headings sit under the card's 'Filter report' heading (its title is dropped)."""
    lines = markdown.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(f"#{line}" if line.startswith("#") else line for line in lines).strip()


def _size_category(rows: int) -> str:
    for limit, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if rows < limit:
            return name
    return "1M<n<10M"


def parse_card(text: str, kind: str = "model"):
    """The card as huggingface_hub reads it (what the Hub shows); a malformed card raises here, not there."""
    return (ModelCard if kind == "model" else DatasetCard)(text)
