"""The report page: one self-contained HTML file (inline CSS and SVG, no script, no external reference) from
the facts distill.report.collect gathered. Numbers are printed with ``fmt`` only, so a test can check each
against the manifest and comparison.json.
"""

from __future__ import annotations

from html import escape
from typing import Any

from distill.report import charts
from distill.report.cost import cost_rows, price_per_point

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px;
color:#1b1b1b;background:#fff;line-height:1.4}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;border-bottom:2px solid #e4e4e4;padding-bottom:3px;margin-top:1.6em}
h3{font-size:1em;margin:1em 0 .3em}table{border-collapse:collapse;margin:.4em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}code,pre{font-family:ui-monospace,Menlo,monospace;font-size:.88em}
pre{background:#f6f6f6;padding:6px 8px;white-space:pre-wrap;word-break:break-all}
.state{font-weight:600;padding:1px 6px;border-radius:3px}.s-done,.s-skipped{background:#dff3df}
.s-failed{background:#fbdcdc}.s-partial{background:#fff2c6}.s-not-started,.s-out-of-date{background:#eee}
.figs{display:flex;flex-wrap:wrap;gap:12px}.figure{background:#fcfcfc;border:1px solid #eee}
.muted{color:#666;font-size:.9em}nav a{margin-right:10px}
"""
SECTIONS = ("stages", "generation", "filter", "training", "eval", "release", "cost")


def fmt(value: Any) -> str:
    """Every number on the page goes through here: integers with thousands separators, other numbers with
    at most four significant digits past the point (as the manifest rounds them)."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) >= 0.01 else f"{value:.3g}"
    return escape(str(value))


def pct(share: float | None) -> str:
    """A share (0..1) as percent with two decimals: pass@1 0.4575 -> 45.75."""
    return "-" if share is None else f"{share * 100:.2f}"


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), attrs: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i in numeric else ''}>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(facts: dict[str, Any]) -> str:
    recipe_prices = ((facts.get("recipe") or {}).get("report") or {}).get("prices")
    body = [
        _header(facts),
        _stages(facts["stages"]),
        _generation(facts.get("generation")),
        _filter(facts.get("filter")),
        _training(facts.get("training") or []),
        _eval(facts.get("eval")),
        _release(facts.get("release")),
        _cost(facts, recipe_prices),
    ]
    nav = "".join(f'<a href="#{s}">{s}</a>' for s in SECTIONS)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>distill run report: {escape(facts['name'])}</title><style>{CSS}</style></head><body>"
        f"<nav class=muted>{nav}</nav>{''.join(body)}"
        f"<p class=muted>Written by distill from {escape(facts['root'])}/manifest.json and the stage folders; "
        "every number is read from what the stages and trainers recorded.</p></body></html>\n"
    )


def _header(facts: dict[str, Any]) -> str:
    versions = ", ".join(f"{escape(k)} {escape(str(v))}" for k, v in sorted(facts["versions"].items()))
    hardware = (
        ", ".join(f"{escape(k)}: {fmt(v)}" for k, v in facts.get("hardware", {}).items()) or "not recorded"
    )
    state = facts["state"]
    rows = [
        [
            "recipe",
            f"{escape(facts['name'])} <span class=muted>(sha256 <code>{fmt(facts['recipe_hash'])}</code>)</span>",
        ],
        ["command", f"<code>{escape(facts.get('command') or '-')}</code>"],
        ["state", f'<span class="state s-{state.replace(" ", "-")}">{escape(state)}</span>'],
        ["started", fmt(facts.get("started"))],
        ["finished", fmt(facts.get("finished"))],
        ["versions", versions],
        ["hardware", hardware],
    ]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<header id="header"><h1>Run report: {escape(facts["name"])}</h1><table>{table}</table></header>'


def _counts(pairs: list) -> str:
    return "<br>".join(f"{fmt(v)} {escape(label)}" for label, v in pairs) or "-"


def _stages(stages: list[dict[str, Any]]) -> str:
    rows = []
    for s in stages:
        state = s["state"]
        detail = s.get("error") or s.get("progress") or ""
        if state == "skipped":
            detail = "up to date, skipped this run"
        badge = f'<span class="state s-{state.replace(" ", "-")}">{escape(state)}</span>'
        rows.append(
            [
                f"<code>{escape(s['name'])}</code>",
                badge,
                escape(detail),
                fmt(s.get("seconds")),
                _counts(s.get("consumed", [])),
                _counts(s.get("produced", [])),
            ]
        )
    table = _table(
        ["stage", "state", "detail", "wall s", "consumed", "produced"], rows, {3}, ' id="stage-table"'
    )
    return f'<section id="stages"><h2>Stages</h2>{table}</section>'


def _generation(gen: dict[str, Any] | None) -> str:
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
    parts = [_table(["measure", "value"], rows, {1}), f"<div class=figs>{''.join(figs)}</div>"]
    if reasons:
        parts.append(
            _table(
                ["finish reason", "samples"], [[escape(k), fmt(v)] for k, v in sorted(reasons.items())], {1}
            )
        )
    for title, data in (("per endpoint", m.get("endpoints")), ("per chunk", m.get("chunks"))):
        if data:
            columns = sorted({c for v in data.values() for c in v})
            rows = [[escape(k), *(fmt(v.get(c)) for c in columns)] for k, v in data.items()]
            parts.append(f"<h3>{title}</h3>" + _table(["", *columns], rows))
    if m.get("backend_stats"):
        parts.append(
            _table(
                ["backend event", "count"], [[escape(k), fmt(v)] for k, v in m["backend_stats"].items()], {1}
            )
        )
    return f'<section id="generation"><h2>Generation</h2>{"".join(parts)}</section>'


def _filter(rep: dict[str, Any] | None) -> str:
    if not rep:
        return '<section id="filter"><h2>Filter</h2><p class=muted>No finished filter stage.</p></section>'
    funnel = rep.get("funnel", [])
    rows = [
        [escape(f["filter"]), fmt(f["rows_in"]), fmt(f["removed"]), fmt(f["rows_out"]), fmt(f.get("seconds"))]
        for f in funnel
    ]
    parts = [
        _table(["step", "rows in", "removed", "rows out", "seconds"], rows, {1, 2, 3, 4}, ' id="funnel"')
    ]
    figs = [charts.bars("funnel: rows out per step", [(f["filter"], f["rows_out"], None) for f in funnel])]
    histogram = (rep.get("pass_rate_per_prompt") or {}).get("histogram") or []
    figs.append(
        charts.columns("pass rate per prompt", [(h["range"], h["prompts"]) for h in histogram], "pass rate")
    )
    parts.append(f"<div class=figs>{''.join(f for f in figs if f)}</div>")
    lengths = rep.get("lengths") or {}
    if lengths.get("before"):
        stats = ("rows", "min", "p50", "mean", "p90", "max")
        rows = [
            [when, *(fmt(lengths[when].get(k)) for k in stats)]
            for when in ("before", "after")
            if lengths.get(when)
        ]
        parts.append(
            f"<h3>lengths ({escape(str(lengths.get('unit', '')))})</h3>"
            + _table(["", *stats], rows, set(range(1, 7)))
        )
    for key in ("decontamination", "source"):
        if rep.get(key):
            parts.append(f"<h3>{key}</h3><pre>{escape(_plain(rep[key]))}</pre>")
    if rep.get("pass_rate") is not None:
        parts.append(f"<p>pass rate of the traces: {pct(rep['pass_rate'])}%</p>")
    for note in rep.get("notes") or []:
        parts.append(f"<p class=muted>{escape(str(note))}</p>")
    return f'<section id="filter"><h2>Filter</h2>{"".join(parts)}</section>'


_CURVES = (
    ("loss", ("loss",)),
    ("learning rate", ("learning_rate",)),
    ("grad norm", ("grad_norm",)),
    ("tokens/s", ("tokens_per_second",)),
    ("real-token share", ("real_token_share",)),
    ("reward", ("reward",)),
    ("KL", ("kl",)),
    ("completion length", ("completions/mean_length",)),
)


def _training(runs: list[dict[str, Any]]) -> str:
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


def _eval(ev: dict[str, Any] | None) -> str:
    if not ev:
        return '<section id="eval"><h2>Eval</h2><p class=muted>No finished eval stage.</p></section>'
    rows = []
    for r in ev.get("rows", []):
        ci = r.get("ci95") or [None, None]
        passk = ", ".join(
            f"pass@{k} {pct(v)}"
            for k, v in sorted((r.get("pass_at_k") or {}).items(), key=lambda x: int(x[0]))
        )
        rows.append(
            [
                escape(r["model"]),
                escape(r.get("role", "")),
                escape(r["task"]),
                pct(r["pass_at_1"]),
                f"{pct(ci[0])} – {pct(ci[1])}",
                pct(r.get("maj_at_n")),
                passk,
                pct(r.get("truncated_share")),
                fmt(r.get("problems")),
                fmt(r.get("samples_per_problem")),
            ]
        )
    header = [
        "model",
        "role",
        "task",
        "pass@1 %",
        "95% CI %",
        "maj@n %",
        "pass@k %",
        "truncated %",
        "problems",
        "n",
    ]
    parts = [_table(header, rows, {3, 4, 5, 7, 8, 9}, ' id="comparison"')]
    items = [
        (
            f"{r['model']} · {r['task']}",
            r["pass_at_1"] * 100,
            tuple(c * 100 for c in r["ci95"]) if r.get("ci95") else None,
        )
        for r in ev.get("rows", [])
    ]
    parts.append(f"<div class=figs>{charts.bars('pass@1 % with 95% CI', items, '%')}</div>")
    diffs = ev.get("differences") or []
    if diffs:
        rows = [
            [
                escape(d["student"]),
                escape(d["versus"]),
                escape(d["task"]),
                pct(d["difference"]),
                f"{pct(d['ci95'][0])} – {pct(d['ci95'][1])}",
                "yes" if d.get("significant") else "no",
                fmt(d.get("problems")),
            ]
            for d in diffs
        ]
        parts.append(
            "<h3>paired differences (points)</h3>"
            + _table(
                ["student", "versus", "task", "difference", "95% CI", "significant", "problems"],
                rows,
                {3, 4, 6},
                ' id="differences"',
            )
        )
    gate = ev.get("gate") or {}
    if gate.get("decisions"):
        rows = [
            [
                escape(name),
                "ship" if d.get("ship") else "held back",
                escape("; ".join(d.get("reasons") or [])) or "-",
            ]
            for name, d in gate["decisions"].items()
        ]
        parts.append(
            "<h3>release gate</h3>" + _table(["student", "decision", "reasons"], rows, attrs=' id="gate"')
        )
    if ev.get("extraction"):
        parts.append(f"<p class=muted>Answer extraction: {escape(ev['extraction'])}</p>")
    return f'<section id="eval"><h2>Eval</h2>{"".join(parts)}</section>'


def _release(rel: dict[str, Any] | None) -> str:
    if not rel:
        return '<section id="release"><h2>Release</h2><p class=muted>No finished publish stage.</p></section>'
    parts = []
    for repo in rel.get("repos", []):
        rows = [[f"<code>{escape(f['path'])}</code>", fmt(f.get("bytes"))] for f in repo.get("files", [])]
        size = sum(f.get("bytes") or 0 for f in repo.get("files", []))
        parts.append(
            f"<h3>{escape(repo.get('type', 'repo'))} <code>{escape(repo['repo'])}</code> "
            f"<span class=muted>({fmt(size)} bytes)</span></h3>" + _table(["file", "bytes"], rows, {1})
        )
    extra = {k: v for k, v in rel.items() if k != "repos"}
    if extra:
        parts.append(f"<pre>{escape(_plain(extra))}</pre>")
    return f'<section id="release"><h2>Release</h2>{"".join(parts)}</section>'


def _cost(facts: dict[str, Any], prices: dict[str, Any] | None) -> str:
    rows_data = cost_rows(facts["stages"], facts.get("recipe") or {})
    currency = escape((prices or {}).get("currency", "$"))
    rows = [
        [
            f"<code>{escape(r['stage'])}</code>",
            fmt(r["seconds"]),
            fmt(r["devices"]),
            fmt(r["device_hours"]),
            fmt(r.get("prompt_tokens")),
            fmt(r.get("completion_tokens")),
            f"{currency}{fmt(r['price'])}" if r["price"] is not None else "-",
        ]
        for r in rows_data
    ]
    seconds = sum(r["seconds"] or 0 for r in rows_data)
    hours = sum(r["device_hours"] or 0 for r in rows_data)
    prices_known = [r["price"] for r in rows_data if r["price"] is not None]
    rows.append(
        [
            "<b>total</b>",
            fmt(round(seconds, 2)),
            "",
            fmt(round(hours, 4)),
            "",
            "",
            f"{currency}{fmt(round(sum(prices_known), 4))}" if prices_known else "-",
        ]
    )
    header = [
        "stage",
        "wall s",
        "devices",
        "device-hours",
        "prompt tokens (API)",
        "completion tokens (API)",
        "price",
    ]
    parts = [_table(header, rows, {1, 2, 3, 4, 5, 6}, ' id="cost-table"')]
    per_point = price_per_point(rows_data, facts.get("eval"))
    if per_point:
        rows = [
            [
                escape(p["model"]),
                escape(p["task"]),
                fmt(round(p["points"], 2)),
                f"{currency}{fmt(p['per_point'])}" if p["per_point"] is not None else "no gain",
            ]
            for p in per_point
        ]
        parts.append(
            "<h3>price per point of pass@1 gained over the base</h3>"
            + _table(["student", "task", "points", "price per point"], rows, {2, 3})
        )
    note = "Device count from the launch settings (see distill/report/cost.py)."
    if not prices:
        note += " Add report.prices (device_hour, input_per_million, output_per_million) to the recipe for prices."
    return f'<section id="cost"><h2>Cost</h2>{"".join(parts)}<p class=muted>{note}</p></section>'


def _plain(value: Any) -> str:
    import json

    return json.dumps(value, indent=1, sort_keys=True, default=str)
