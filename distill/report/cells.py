"""How every number and table on the report page is written: one formatter, so a test can check each
printed number against the manifest and comparison.json."""

from __future__ import annotations

import json
from html import escape
from typing import Any


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


def table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), attrs: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i in numeric else ''}>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def interval(ci: list[float] | None) -> str:
    """A 95% interval of shares, in percent; "-" where there is none (one problem: no spread)."""
    return "-" if not ci else f"{pct(ci[0])} – {pct(ci[1])}"


def plain(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)
