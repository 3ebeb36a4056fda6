"""THE verifier: answer extraction + math-verify. Filtering, GRPO rewards and evaluation all call this.

Extraction rule: the last ``\\boxed{...}`` in the final answer (text after ``</think>``); if there is none
and ``fallback="last_number"``, the last number in that text. Comparison: plain numbers are compared
exactly as fractions (a fast path that agrees with math-verify); anything else goes to
``math_verify.verify(gold, prediction)`` (gold first: the order matters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from distill.records import split_think

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_PLAIN_NUMBER = re.compile(r"^-?(?:\d+(?:\.\d+)?|\.\d+)(?:/\d+)?$")


@dataclass(frozen=True)
class Verdict:
    correct: bool
    extracted: str | None
    reason: str


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), with balanced braces."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for pos in range(brace, len(text)):
        if text[pos] == "{":
            depth += 1
        elif text[pos] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : pos].strip()
    return None


def extract_answer(completion: str, fallback: str = "none") -> str | None:
    """Apply the extraction rule (see module docstring) to a completion."""
    reasoning, final = split_think(completion or "")
    text = final if final or not reasoning else ""
    boxed = last_boxed(text)
    if boxed:
        return boxed
    if fallback == "last_number":
        numbers = _NUMBER.findall(text)
        return numbers[-1].replace(",", "") if numbers else None
    return None


def _as_fraction(text: str) -> Fraction | None:
    cleaned = text.strip().strip("$").replace(",", "").replace(" ", "")
    if not _PLAIN_NUMBER.match(cleaned):
        return None
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def answers_match(gold: str, predicted: str) -> tuple[bool, str]:
    gold_num, pred_num = _as_fraction(gold), _as_fraction(predicted)
    if gold_num is not None and pred_num is not None:
        return gold_num == pred_num, "fast-path"
    from math_verify import parse, verify

    gold_parsed = parse(_boxed_if_bare(gold))
    pred_parsed = parse(_boxed_if_bare(predicted))
    if not gold_parsed:
        return False, "gold-unparseable"
    return bool(verify(gold_parsed, pred_parsed)), "math-verify"


def _boxed_if_bare(text: str) -> str:
    return text if "\\boxed" in text or "$" in text else f"\\boxed{{{text}}}"


def verify_completion(gold: str, completion: str, fallback: str = "none") -> Verdict:
    """Extract the answer from ``completion`` and compare it with ``gold``."""
    extracted = extract_answer(completion, fallback)
    if extracted is None:
        return Verdict(False, None, "no-answer")
    ok, how = answers_match(str(gold), extracted)
    return Verdict(ok, extracted, how if ok else f"wrong ({how})")
