"""THE verifier: answer extraction + math-verify. Filtering, GRPO rewards and evaluation all call this.

Extraction rule: the last ``\\boxed{...}`` in the final answer (text after ``</think>``; nothing when the
think block never closes). If there is none, a configurable fallback: ``"last_number"`` (the last number in
that text) or ``"regex:<pattern>"`` (the last match, group 1 if the pattern has one). Comparison: plain
numbers and fractions are compared exactly (a fast path that agrees with math-verify and needs no sympy);
anything else goes to ``math_verify.verify(gold, prediction)`` (gold first: the order matters).

``verify_many`` checks a batch over worker processes with a *hard* per-item deadline: math-verify's own
timeouts rely on SIGALRM (main thread only, and sympy can ignore them), so a worker that overruns is killed
and replaced, and its item gets the verdict ``timeout``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from fractions import Fraction

from distill.records import split_think

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_PLAIN_NUMBER = re.compile(r"^-?(?:\d+(?:\.\d+)?|\.\d+)(?:/\d+)?$")
_LATEX_FRAC = re.compile(r"^(-?)\\d?frac\{(-?\d+)\}\{(\d+)\}$")
_INNER_TIMEOUT = 5  # math-verify's own (soft) timeout inside a worker, seconds


@dataclass(frozen=True)
class Verdict:
    correct: bool
    extracted: str | None
    reason: str  # fast-path | math-verify | wrong (...) | no-answer | gold-unparseable | timeout | error: ...


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), with balanced braces; None if absent/unclosed."""
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
    if fallback.startswith("regex:"):
        matches = list(re.finditer(fallback[len("regex:") :], text))
        if matches:
            last = matches[-1]
            return (last.group(1) if last.re.groups else last.group(0)).strip() or None
    return None


def as_fraction(text: str) -> Fraction | None:
    """A plain number, decimal, a/b or \\frac{a}{b} as an exact Fraction; None for anything else."""
    cleaned = text.strip().strip("$").replace(",", "").replace(" ", "").replace("\\!", "")
    latex = _LATEX_FRAC.match(cleaned)
    if latex:
        sign, num, den = latex.groups()
        cleaned = f"{sign}{num}/{den}"
    if not _PLAIN_NUMBER.match(cleaned):
        return None
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def fast_match(gold: str, predicted: str) -> bool | None:
    """Exact comparison when both sides are plain numbers; None when math-verify must decide."""
    gold_num, pred_num = as_fraction(gold), as_fraction(predicted)
    if gold_num is None or pred_num is None:
        return None
    return gold_num == pred_num


def math_verify_match(gold: str, predicted: str) -> tuple[bool, str]:
    from math_verify import parse, verify

    # SIGALRM-based timeouts only work in a main thread; elsewhere the caller must bound the time.
    seconds = _INNER_TIMEOUT if threading.current_thread() is threading.main_thread() else None
    gold_parsed = parse(_boxed_if_bare(gold), parsing_timeout=seconds)
    if not gold_parsed:
        return False, "gold-unparseable"
    pred_parsed = parse(_boxed_if_bare(predicted), parsing_timeout=seconds)
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=seconds)), "math-verify"


def answers_match(gold: str, predicted: str) -> tuple[bool, str]:
    fast = fast_match(gold, predicted)
    if fast is not None:
        return fast, "fast-path"
    return math_verify_match(gold, predicted)


def _boxed_if_bare(text: str) -> str:
    return text if "\\boxed" in text or "$" in text else f"\\boxed{{{text}}}"


def _verdict(extracted: str | None, ok: bool, how: str) -> Verdict:
    if how == "gold-unparseable":
        return Verdict(False, extracted, how)
    return Verdict(ok, extracted, how if ok else f"wrong ({how})")


def verify_completion(gold: str, completion: str, fallback: str = "none") -> Verdict:
    """Extract the answer from ``completion`` and compare it with ``gold`` (single item, in-process)."""
    if not isinstance(gold, str) or not gold.strip():
        return Verdict(False, None, "gold-unparseable")
    extracted = extract_answer(completion, fallback)
    if extracted is None:
        return Verdict(False, None, "no-answer")
    try:
        ok, how = answers_match(gold, extracted)
    except Exception as exc:  # math-verify/sympy raising on odd input must not sink a whole batch
        return Verdict(False, extracted, f"error: {type(exc).__name__}")
    return _verdict(extracted, ok, how)


def verify_many(items: list[tuple[str, str]], fallback: str = "none", workers: int = 2, timeout: float = 10.0,
                progress: bool = True) -> list[Verdict]:
    """Verify (gold, completion) pairs; plain numbers in-process, the rest over ``workers`` processes.

    ``workers=0`` runs math-verify in this process (no hard deadline beyond math-verify's own).
    """
    from distill.verify_pool import verify_in_pool

    return verify_in_pool(items, fallback, workers, timeout, progress)
