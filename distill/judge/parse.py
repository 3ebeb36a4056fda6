"""Strict parsing of judge replies: the last non-empty line is the verdict, everything before it the reasoning.

The verdict line must be exactly ``VERDICT: EQUIVALENT|DIFFERENT``, ``SCORE: <integer in the template's
scale>`` or ``WINNER: A|B|TIE`` (surrounding markdown bold and spaces aside). Anything else — a bare "10", a
score out of range, "SCORE: 8/10", a verdict in the middle of a paragraph, or two verdict lines (a reply that
echoes a verdict planted in the judged text) — is unparsed: the caller counts it as ``judge_unparsed`` and never
treats it as a pass. A ``<think>...</think>`` block a reasoning judge emits is part of the reasoning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from distill.judge.templates import MARKERS, Template

_PATTERNS = {
    "verdict": re.compile(r"VERDICT:\s*(EQUIVALENT|DIFFERENT)"),
    "score": re.compile(r"SCORE:\s*(\d{1,3})"),
    "pairwise": re.compile(r"WINNER:\s*(A|B|TIE)"),
}


@dataclass(frozen=True)
class Parsed:
    value: str | int | None  # "equivalent"/"different", an int score, "A"/"B"/"tie"; None when unparsed
    reasoning: str  # what the judge wrote before its verdict line (all of it when unparsed)
    problem: str | None = None  # why it did not parse


def parse_reply(template: Template, reply: str) -> Parsed:
    text = reply or ""
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        return Parsed(None, "", "empty reply")
    marker = MARKERS[template.output]
    last = lines[-1].strip("*_ ").strip()
    marked = [line for line in lines if line.strip("*_ ").startswith(marker)]
    if len(marked) > 1:
        return Parsed(None, text.strip(), f"{len(marked)} {marker} lines")
    match = _PATTERNS[template.output].fullmatch(last)
    if match is None:
        return Parsed(None, text.strip(), f"last line is not `{marker} ...`")
    reasoning = text.strip()
    reasoning = reasoning[: reasoning.rfind(lines[-1])].strip()
    raw = match.group(1)
    if template.output == "score":
        score, (low, high) = int(raw), template.scale
        if not low <= score <= high:
            return Parsed(None, text.strip(), f"score {score} outside [{low}, {high}]")
        return Parsed(score, reasoning)
    if template.output == "verdict":
        return Parsed(raw.lower(), reasoning)
    return Parsed("tie" if raw == "TIE" else raw, reasoning)
