"""The report page: one self-contained HTML file (inline CSS and SVG, no script, no external reference) from
the facts distill.report.collect gathered. Numbers are printed with ``fmt`` only, so a test can check each
against the manifest and comparison.json.
"""

from __future__ import annotations

from html import escape
from typing import Any

from distill.report import lineage, traces
from distill.report import sections_data as data
from distill.report import sections_results as results
from distill.report.cells import fmt, pct, table

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
.figs{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}.figure{background:#fcfcfc;border:1px solid #eee}
.muted{color:#666;font-size:.9em}nav a{margin-right:10px}
details.step{margin:.4em 0}details.step>summary{cursor:pointer;font-weight:600}h4{margin:.6em 0 .2em;font-size:.95em}
table.traces{width:100%;table-layout:fixed;margin:.3em 0 .8em}
table.traces pre{margin:0;max-height:24em;overflow:auto;word-break:normal;overflow-wrap:anywhere}
table.traces caption{text-align:left;font-weight:600;padding:2px 0}table.t-removed caption{color:#a33}
table.t-passed caption{color:#285}td.t-sample{font-size:.85em;word-break:break-all}
"""
SECTIONS = ("stages", "phases", "generation", "filter", "traces", "training", "eval", "release", "cost")


def render(facts: dict[str, Any]) -> str:
    recipe_prices = ((facts.get("recipe") or {}).get("report") or {}).get("prices")
    drawers = [
        ("header", lambda: _header(facts)),
        ("stages", lambda: _stages(facts["stages"])),
        ("phases", lambda: lineage.lineage_section(facts.get("phases") or [])),
        ("generation", lambda: data.generation(facts.get("generation"))),
        ("filter", lambda: data.filter(facts.get("filter"))),
        ("traces", lambda: traces.section(facts.get("traces") or [])),
        ("training", lambda: data.training(facts.get("training") or [])),
        ("eval", lambda: results.eval(facts.get("eval"))),
        ("release", lambda: results.release(facts.get("release"))),
        ("cost", lambda: results.cost(facts, recipe_prices)),
    ]
    body = [_drawn(name, draw) for name, draw in drawers]
    nav = "".join(f'<a href="#{s}">{s}</a>' for s in SECTIONS)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>distill run report: {escape(facts['name'])}</title><style>{CSS}</style></head><body>"
        f"<nav class=muted>{nav}</nav>{''.join(body)}"
        f"<p class=muted>Written by distill from {escape(facts['root'])}/manifest.json and the stage folders; "
        "every number is read from what the stages and trainers recorded.</p></body></html>\n"
    )


def _drawn(name: str, draw) -> str:
    """A section, or where its files hold something unexpected a line saying so: the rest of the page stays."""
    try:
        return draw()
    except Exception as exc:  # one odd file must not cost the whole report
        return (
            f'<section id="{name}"><h2>{name.capitalize()}</h2><p class=muted>This section could not be '
            f"drawn: {escape(type(exc).__name__)}: {escape(str(exc))[:300]}</p></section>"
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
    headline = _headline(facts.get("eval"))
    if headline:
        rows.insert(3, ["result", headline])
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<header id="header"><h1>Run report: {escape(facts["name"])}</h1><table>{table}</table></header>'


def _headline(ev: dict[str, Any] | None) -> str | None:
    """Each student's pass@1 beside the base's and teacher's on the same benchmark, and the gate's word."""
    if not ev:
        return None
    rows = ev.get("rows", [])
    refs = {(r.get("role"), r["task"]): r["pass_at_1"] for r in rows if r.get("role") in ("teacher", "base")}
    decisions = (ev.get("gate") or {}).get("decisions") or {}
    lines = []
    for row in (r for r in rows if r.get("role") == "student"):
        compared = [
            f"{role} {pct(refs[role, row['task']])}%"
            for role in ("base", "teacher")
            if (role, row["task"]) in refs
        ]
        decision = decisions.get(row["model"])
        gate = "" if decision is None else " · gate: ship" if decision.get("ship") else " · gate: held back"
        versus = f" ({', '.join(compared)})" if compared else ""
        lines.append(
            f"<b>{escape(row['model'])}</b> on {escape(row['task'])}: pass@1 {pct(row['pass_at_1'])}%{versus}{gate}"
        )
    return "<br>".join(lines) or None


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
    stage_table = table(
        ["stage", "state", "detail", "wall s", "consumed", "produced"], rows, {3}, ' id="stage-table"'
    )
    return f'<section id="stages"><h2>Stages</h2>{stage_table}</section>'


__all__ = ["CSS", "SECTIONS", "fmt", "pct", "render"]
