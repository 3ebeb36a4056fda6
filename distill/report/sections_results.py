"""Report sections for the results side (eval, gate, release, cost): each a function from the collected facts to an
HTML ``<section>``."""

from __future__ import annotations

from html import escape
from typing import Any

from distill.report import charts
from distill.report.cells import fmt, interval, pct, plain, table
from distill.report.cost import cost_rows, judge_rows, price_per_point

_COMPARISON = [
    "model",
    "role",
    "task",
    "pass@1 %",
    "95% CI %",
    "maj@n %",
    "pass@k %",
    "truncated %",
    "problems",
]


def eval(ev: dict[str, Any] | None) -> str:
    if not ev:
        return '<section id="eval"><h2>Eval</h2><p class=muted>No finished eval stage.</p></section>'
    rows = ev.get("rows", [])
    parts = [
        table([*_COMPARISON, "n"], [_comparison_row(r) for r in rows], {3, 4, 5, 7, 8, 9}, ' id="comparison"')
    ]
    items = [(f"{r['model']} · {r['task']}", r["pass_at_1"] * 100, _scaled(r.get("ci95"))) for r in rows]
    curves = [
        (
            f"{r['model']} · {r['task']}",
            sorted((int(k), v * 100) for k, v in (r.get("pass_at_k") or {}).items()),
        )
        for r in rows
        if len(r.get("pass_at_k") or {}) > 1
    ]
    figs = [charts.bars("pass@1 % with 95% CI", items, "%"), charts.line_chart("pass@k %", curves, "k")]
    parts.append(f"<div class=figs>{''.join(f for f in figs if f)}</div>")
    parts += [_differences(ev.get("differences") or []), _judged(ev.get("judged") or [])]
    parts.append(_gate((ev.get("gate") or {}).get("decisions") or {}))
    if ev.get("extraction"):
        parts.append(f"<p class=muted>Answer extraction: {escape(ev['extraction'])}</p>")
    return f'<section id="eval"><h2>Eval</h2>{"".join(parts)}</section>'


def _scaled(interval: list[float] | None) -> tuple[float, float] | None:
    return (interval[0] * 100, interval[1] * 100) if interval else None


def _comparison_row(r: dict[str, Any]) -> list[str]:
    pass_at_k = sorted((r.get("pass_at_k") or {}).items(), key=lambda item: int(item[0]))
    return [
        escape(r["model"]),
        escape(r.get("role", "")),
        escape(r["task"]),
        pct(r["pass_at_1"]),
        interval(r.get("ci95")),
        pct(r.get("maj_at_n")),
        ", ".join(f"pass@{k} {pct(v)}" for k, v in pass_at_k),
        pct(r.get("truncated_share")),
        fmt(r.get("problems")),
        fmt(r.get("samples_per_problem")),
    ]


def _judged(rows_data: list[dict[str, Any]]) -> str:
    """eval.judged: pairwise win rates against each student's baseline, both orders asked."""
    if not rows_data:
        return ""
    rows = [
        [
            escape(r["benchmark"]),
            escape(r["student"]),
            escape(r["baseline"]),
            fmt(s.get("judged")),
            f"{fmt(s.get('wins'))} / {fmt(s.get('ties'))} / {fmt(s.get('losses'))}",
            pct(s.get("win_rate")),
            interval(s.get("win_rate_ci95")),
            fmt(s.get("position_a_share")),
            fmt(s.get("length_gap_words")),
            fmt(s.get("judge_unparsed")),
        ]
        for r in rows_data
        for s in [r["summary"]]
    ]
    header = ["benchmark", "student", "baseline", "judged", "win / tie / loss", "win rate %", "95% CI"]
    header += ["position A share", "length gap (words)", "unparsed"]
    judge = escape(str(rows_data[0].get("judge")))
    return f"<h3>judged benchmarks (pairwise, both orders; judge {judge})</h3>" + table(
        header, rows, {3, 5, 6, 7, 8, 9}, ' id="judged"'
    )


def _differences(diffs: list[dict[str, Any]]) -> str:
    if not diffs:
        return ""
    rows = [
        [
            escape(d["student"]),
            escape(d["versus"]),
            escape(d["task"]),
            pct(d["difference"]),
            interval(d.get("ci95")),
            "yes" if d.get("significant") else "no",
            fmt(d.get("problems")),
        ]
        for d in diffs
    ]
    header = ["student", "versus", "task", "difference", "95% CI", "significant", "problems"]
    return "<h3>paired differences (points)</h3>" + table(header, rows, {3, 4, 6}, ' id="differences"')


def _gate(decisions: dict[str, Any]) -> str:
    if not decisions:
        return ""
    rows = [
        [
            escape(name),
            "ship" if d.get("ship") else "held back",
            escape("; ".join(d.get("reasons") or [])) or "-",
        ]
        for name, d in decisions.items()
    ]
    return "<h3>release gate</h3>" + table(["student", "decision", "reasons"], rows, attrs=' id="gate"')


def release(rel: dict[str, Any] | None) -> str:
    if not rel:
        return '<section id="release"><h2>Release</h2><p class=muted>No finished publish stage.</p></section>'
    parts = []
    for repo in rel.get("repos", []):
        rows = [[f"<code>{escape(f['path'])}</code>", fmt(f.get("bytes"))] for f in repo.get("files", [])]
        size = sum(f.get("bytes") or 0 for f in repo.get("files", []))
        parts.append(
            f"<h3>{escape(repo.get('type', 'repo'))} <code>{escape(repo['repo'])}</code> "
            f"<span class=muted>({fmt(size)} bytes)</span></h3>" + table(["file", "bytes"], rows, {1})
        )
    extra = {k: v for k, v in rel.items() if k != "repos"}
    if extra:
        parts.append(f"<pre>{escape(plain(extra))}</pre>")
    return f'<section id="release"><h2>Release</h2>{"".join(parts)}</section>'


def cost(facts: dict[str, Any], prices: dict[str, Any] | None) -> str:
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
    parts = [table(header, rows, {1, 2, 3, 4, 5, 6}, ' id="cost-table"')]
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
            + table(["student", "task", "points", "price per point"], rows, {2, 3})
        )
    parts.append(_judge_cost(facts["stages"]))
    note = "Device count from the launch settings (see distill/report/cost.py)."
    if not prices:
        note += " Add report.prices (device_hour, input_per_million, output_per_million) to the recipe for prices."
    return f'<section id="cost"><h2>Cost</h2>{"".join(parts)}<p class=muted>{note}</p></section>'


def _judge_cost(stages: list[dict[str, Any]]) -> str:
    rows_data = judge_rows(stages)
    if not rows_data:
        return ""
    columns = (
        "calls",
        "cached",
        "prompt_tokens",
        "completion_tokens",
        "judge_unparsed",
        "timeouts",
        "failed",
    )
    rows = [
        [f"<code>{escape(r['stage'])}</code>", escape(str(r.get("model") or "-"))]
        + [fmt(r.get(c)) for c in columns]
        + [f"${fmt(r['estimated_usd'])}" if r.get("estimated_usd") is not None else "-"]
        for r in rows_data
    ]
    header = ["stage", "judge", "calls", "from cache", "prompt tokens", "completion tokens", "unparsed"]
    header += ["timeouts", "failed", "estimated price"]
    note = "<p class=muted>Estimated price from judge.price_per_million; cache hits cost nothing.</p>"
    return "<h3>judge calls</h3>" + table(header, rows, set(range(2, 10)), ' id="judge-cost"') + note
