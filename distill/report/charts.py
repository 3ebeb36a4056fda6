"""Small inline SVG figures (no library, no script): line charts, horizontal bars with intervals, histograms.

Each figure is a string of SVG that renders with JavaScript off; every mark carries a ``<title>`` so hovering
shows its exact value. Values are drawn as given (the caller passes what the run logged).
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_W, _H, _L, _R, _T, _B = 340, 200, 52, 10, 26, 30


def _ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / count))
    for factor in (1, 2, 5, 10):
        if (hi - lo) / (step * factor) <= count:
            step *= factor
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def short(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.2g}"
    return f"{value:.4g}"


def line_chart(title: str, series: list[tuple[str, list[tuple[float, float]]]], x_label: str = "step") -> str:
    points = [p for _, pts in series for p in pts if math.isfinite(p[1])]
    if not points:
        return ""
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - (abs(y_lo) * 0.1 or 1), y_hi + (abs(y_hi) * 0.1 or 1)
    x_hi = x_hi if x_hi > x_lo else x_lo + 1

    def sx(x: float) -> float:
        return _L + (x - x_lo) / (x_hi - x_lo) * (_W - _L - _R)

    def sy(y: float) -> float:
        return _H - _B - (y - y_lo) / (y_hi - y_lo) * (_H - _T - _B)

    legend = [label for label, _ in series] if len(series) > 1 else []
    width = max(_W, _L + max((_text_width(label) for label in legend), default=0) + 24)
    parts = [_frame(title, width, _H + (_LEGEND_ROW * len(legend) + 6 if legend else 0))]
    parts += _axes(_ticks(y_lo, y_hi), sy, _ticks(x_lo, x_hi), sx, x_label)
    for index, (label, pts) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        pts = [p for p in pts if math.isfinite(p[1])]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{path}"/>')
        for x, y in pts if len(pts) <= 60 else []:
            parts.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{colour}">'
                f"<title>{escape(label)} {x_label} {short(x)}: {short(y)}</title></circle>"
            )
        if legend:  # below the plot, a swatch and the full label per series: never over the lines
            y = _H + 12 + _LEGEND_ROW * index
            parts.append(
                f'<line class="legend" x1="{_L}" x2="{_L + 14}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" '
                f'stroke-width="2"/><text class="legend" x="{_L + 20}" y="{y}" fill="{colour}" '
                f'font-size="11">{escape(label)}</text>'
            )
    return "".join(parts) + "</svg>"


_LEGEND_ROW = 15  # px per legend line under a line chart


def _text_width(text: str, size: float = 11) -> float:
    """A generous estimate of a label's width in the figures' sans-serif font (~0.62 em per character), so
    that a figure is made wide enough for its labels instead of cutting them."""
    return len(text) * size * 0.62


def bars(title: str, items: list[tuple[str, float, tuple[float, float] | None]], unit: str = "") -> str:
    """Horizontal bars, one per (label, value, interval or None)."""
    if not items:
        return ""
    height = _T + 22 * len(items) + _B
    top = max([v for _, v, _ in items] + [hi for *_, ci in items if ci for hi in ci[1:]] + [0])
    top = top or 1
    # the label column fits the longest label (a Hub id and a task name are never cut)
    left = max(150, round(max(_text_width(label) for label, _, _ in items)) + 14)
    width = left + _W - 90

    def sx(v: float) -> float:
        return left + max(v, 0) / top * (width - left - 50)  # 50 px on the right for the value

    parts = [_frame(title, width, height)]
    for index, (label, value, interval) in enumerate(items):
        y = _T + 22 * index
        colour = PALETTE[0]
        end = max(sx(value), sx(interval[1]) if interval else 0)  # the value's text clears the interval
        parts.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" font-size="11">{escape(label)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{sx(value) - left:.1f}" height="14" fill="{colour}" '
            f'opacity="0.8"><title>{escape(label)}: {short(value)}{unit}</title></rect>'
            f'<text x="{end + 4:.1f}" y="{y + 14}" font-size="10">{short(value)}{unit}</text>'
        )
        if interval:
            lo, hi = sx(interval[0]), sx(interval[1])
            parts.append(
                f'<line x1="{lo:.1f}" x2="{hi:.1f}" y1="{y + 10}" y2="{y + 10}" stroke="#222"/>'
                f'<line x1="{lo:.1f}" x2="{lo:.1f}" y1="{y + 6}" y2="{y + 14}" stroke="#222"/>'
                f'<line x1="{hi:.1f}" x2="{hi:.1f}" y1="{y + 6}" y2="{y + 14}" stroke="#222"/>'
            )
    return "".join(parts) + "</svg>"


def histogram(title: str, values: list[float], bins: int = 20, x_label: str = "") -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    width = (hi - lo) / bins if hi > lo else 1.0
    counts = [0] * bins
    for value in values:
        counts[min(int((value - lo) / width), bins - 1)] += 1
    return columns(
        title,
        [(f"{short(lo + i * width)}-{short(lo + (i + 1) * width)}", c) for i, c in enumerate(counts)],
        x_label,
    )


def columns(title: str, items: list[tuple[str, float]], x_label: str = "") -> str:
    """Vertical columns over labelled bins (a histogram already counted, e.g. the filter's pass rates)."""
    if not items:
        return ""
    top = max(v for _, v in items) or 1
    span = (_W - _L - _R) / len(items)

    def sy(v: float) -> float:
        return _H - _B - v / top * (_H - _T - _B)

    parts = [_frame(title), *_axes(_ticks(0, top), sy, [], None, x_label)]
    for index, (label, value) in enumerate(items):
        x = _L + index * span
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{sy(value):.1f}" width="{max(span - 2, 1):.1f}" '
            f'height="{_H - _B - sy(value):.1f}" fill="{PALETTE[0]}"><title>{escape(label)}: {short(value)}'
            "</title></rect>"
        )
    first, last = items[0][0].split("-")[0], items[-1][0].split("-")[-1]
    parts.append(f'<text x="{_L}" y="{_H - _B + 13}" font-size="10">{escape(first)}</text>')
    parts.append(
        f'<text x="{_W - _R}" y="{_H - _B + 13}" font-size="10" text-anchor="end">{escape(last)}</text>'
    )
    return "".join(parts) + "</svg>"


def _frame(title: str, width: int = _W, height: int = _H) -> str:
    return (
        f'<svg class="figure" role="img" aria-label="{escape(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">'
        f'<text x="8" y="16" font-size="12" font-weight="bold">{escape(title)}</text>'
    )


def _axes(y_ticks, sy, x_ticks, sx, x_label: str) -> list[str]:
    parts = [
        f'<line x1="{_L}" x2="{_L}" y1="{_T}" y2="{_H - _B}" stroke="#888"/>'
        f'<line x1="{_L}" x2="{_W - _R}" y1="{_H - _B}" y2="{_H - _B}" stroke="#888"/>'
    ]
    for tick in y_ticks:
        parts.append(
            f'<text x="{_L - 4}" y="{sy(tick) + 3:.1f}" font-size="10" text-anchor="end">{short(tick)}</text>'
            f'<line x1="{_L}" x2="{_W - _R}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" stroke="#eee"/>'
        )
    for tick in x_ticks if sx else []:
        parts.append(
            f'<text x="{sx(tick):.1f}" y="{_H - _B + 13}" font-size="10" text-anchor="middle">{short(tick)}</text>'
        )
    if x_label:
        parts.append(
            f'<text x="{(_L + _W) / 2}" y="{_H - 4}" font-size="10" text-anchor="middle">{escape(x_label)}</text>'
        )
    return parts
