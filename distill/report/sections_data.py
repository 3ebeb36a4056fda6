"""Report sections for the data side (generation, filter, training): each a function from the collected facts to an
HTML ``<section>``."""

from __future__ import annotations

from html import escape
from typing import Any

from distill.report import charts
from distill.report.cells import fmt, pct, plain, table


def generation(gen: dict[str, Any] | None) -> str:
    if not gen:
        return '<section id="generation"><h2>Generation</h2><p class=muted>No finished generate stage.</p></section>'
    m = gen["metrics"]
    keys = (
        "prompts",
        "samples",
        "prompt_tokens",
        "completion_tokens",
        "mean_completion_tokens",
        "output_tokens_per_s",
        "samples_per_s",
        "seconds_this_run",
        "shards",
    )
    rows = [[escape(k), fmt(m[k])] for k in keys if k in m]
    rows.append(["backend", fmt(gen.get("backend"))])
    reasons = m.get("finish_reasons") or {}
    figs = [
        charts.bars("finish reasons", [(k, v, None) for k, v in sorted(reasons.items())]),
        charts.histogram("completion length (tokens)", gen["lengths"], x_label="completion tokens"),
    ]
    parts = [table(["measure", "value"], rows, {1}), *figs]
    for title, data in (("per endpoint", m.get("endpoints")), ("per chunk", m.get("chunks"))):
        if data:
            columns = sorted({c for v in data.values() for c in v})
            rows = [[escape(k), *(fmt(v.get(c)) for c in columns)] for k, v in data.items()]
            parts.append(f"<div><h3>{title}</h3>{table(['', *columns], rows)}</div>")
    if m.get("backend_stats"):
        parts.append(
            table(
                ["backend event", "count"], [[escape(k), fmt(v)] for k, v in m["backend_stats"].items()], {1}
            )
        )
    return f'<section id="generation"><h2>Generation</h2><div class=figs>{"".join(parts)}</div></section>'


def filter(rep: dict[str, Any] | None) -> str:
    if not rep:
        return '<section id="filter"><h2>Filter</h2><p class=muted>No finished filter stage.</p></section>'
    funnel = rep.get("funnel", [])
    rows = [
        [escape(f["filter"]), fmt(f["rows_in"]), fmt(f["removed"]), fmt(f["rows_out"]), fmt(f.get("seconds"))]
        for f in funnel
    ]
    parts = [table(["step", "rows in", "removed", "rows out", "seconds"], rows, {1, 2, 3, 4}, ' id="funnel"')]
    figs = [charts.bars("funnel: rows out per step", [(f["filter"], f["rows_out"], None) for f in funnel])]
    histogram = (rep.get("pass_rate_per_prompt") or {}).get("histogram") or []
    figs.append(
        charts.columns("pass rate per prompt", [(h["range"], h["prompts"]) for h in histogram], "pass rate")
    )
    parts = [f"<div class=figs>{parts[0]}{''.join(f for f in figs if f)}</div>"]
    parts += [_lengths(rep.get("lengths") or {}), _verification(rep.get("verification") or {})]
    parts.append(_contamination(rep.get("contamination")))
    for key in ("source", "judge", "code"):  # a published trace set's origin; judge and code verdicts
        if rep.get(key):
            parts.append(f"<details><summary>{key}</summary><pre>{escape(plain(rep[key]))}</pre></details>")
    if rep.get("pass_rate") is not None:
        parts.append(f"<p>pass rate of the traces: {pct(rep['pass_rate'])}%</p>")
    for note in rep.get("notes") or []:
        parts.append(f"<p class=muted>{escape(str(note))}</p>")
    return f'<section id="filter"><h2>Filter</h2>{"".join(parts)}</section>'


def _lengths(lengths: dict[str, Any]) -> str:
    if not lengths.get("before"):
        return ""
    stats = ("rows", "min", "p50", "mean", "p90", "max")
    rows = [
        [when, *(fmt(lengths[when].get(k)) for k in stats)]
        for when in ("before", "after")
        if lengths.get(when)
    ]
    unit = escape(str(lengths.get("unit", "")))
    return f"<h3>lengths ({unit}), before and after the filter</h3>" + table(
        ["", *stats], rows, set(range(1, 7))
    )


def _verification(verification: dict[str, Any]) -> str:
    reasons = verification.get("reasons") or {}
    if not reasons:
        return ""
    rows = [[escape(reason), fmt(count)] for reason, count in reasons.items()]
    note = f"{fmt(verification.get('seconds'))} s, {fmt(verification.get('workers'))} workers"
    return f"<h3>verdicts <span class=muted>({note})</span></h3>" + table(["reason", "rows"], rows, {1})


def _contamination(found: dict[str, Any] | None) -> str:
    if not found:
        return ""
    removed = found.get("rows_removed_by_benchmark") or {}
    rows = [
        [escape(name), fmt(size), fmt(removed.get(name, 0))]
        for name, size in (found.get("benchmarks") or {}).items()
    ]
    parts = [
        f"<h3>decontamination <span class=muted>({fmt(found.get('ngram'))}-grams; "
        f"{fmt(found.get('prompts_removed'))} prompts removed)</span></h3>",
        table(["benchmark", "benchmark size", "rows removed"], rows, {1, 2}, ' id="contamination"'),
    ]
    examples = [
        [escape(e["prompt_id"]), escape(e["matched"]), escape(e["problem"])]
        for e in found.get("examples") or []
    ]
    if examples:
        parts.append(table(["prompt", "matched", "problem"], examples))
    return "".join(parts)


_CURVES = (
    ("loss", ("loss",)),
    ("learning rate", ("learning_rate",)),
    ("grad norm", ("grad_norm",)),
    ("tokens/s", ("tokens_per_second",)),
    ("real-token share", ("real_token_share",)),
    ("reward", ("reward",)),
    ("KL", ("kl",)),
    ("completion length", ("completions/mean_length",)),
    ("reflection-phrase rate (aha)", ("aha/reflection_rate",)),  # GRPO: R1's "aha moment" as a number
    ("zero-variance groups", ("dynamic_sampling/zero_variance_share",)),  # GRPO dynamic sampling
    ("extra prompts drawn", ("dynamic_sampling/extra_prompts",)),
)


def training(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return '<section id="training"><h2>Training</h2><p class=muted>No training stage.</p></section>'
    parts = []
    for run in runs:
        history = [e for e in run["history"] if "step" in e and "train_runtime" not in e]  # not the summary
        figs = []
        for title, keys in _CURVES:
            pts = [(e["step"], e[k]) for e in history for k in keys if isinstance(e.get(k), int | float)]
            figs.append(charts.line_chart(title, [(title, pts)]))
        rewards = sorted({k for e in history for k in e if k.startswith("rewards/") and k.endswith("/mean")})
        if rewards:
            series = [
                (k.split("/")[1], [(e["step"], e[k]) for e in history if isinstance(e.get(k), int | float)])
                for k in rewards
            ]
            figs.append(charts.line_chart("reward per function", series))
        source = f"read from {escape(run['source'])}" if run["source"] else "nothing logged yet"
        resumed = f"; resumed from {escape(str(run['resumed_from']))}" if run.get("resumed_from") else ""
        summary = [e for e in run["history"] if "train_loss" in e]
        total = f"; train_loss {fmt(summary[-1]['train_loss'])}" if summary else ""
        parts.append(
            f"<h3><code>{escape(run['name'])}</code></h3><p class=muted>{fmt(len(history))} logged steps, {source}"
            f"{resumed}{total}</p><div class=figs>{''.join(f for f in figs if f)}</div>"
        )
    return f'<section id="training"><h2>Training</h2>{"".join(parts)}</section>'
