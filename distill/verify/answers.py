"""Answers: extraction + math-verify, the comparison behind every verdict (see distill.verify).

Extraction rule: the last ``\\boxed{...}`` in the final answer (text after the last ``</think>``; nothing
when a think block never closes, so reasoning cannot leak into the answer). If there is none, a configurable
fallback: ``"last_number"`` (the last number in that text) or ``"regex:<pattern>"`` (the last match, group 1
if the pattern has one). Comparison: plain numbers and fractions are compared exactly (a fast path that
agrees with math-verify - tests check it pair by pair - and needs no sympy); anything else goes to
``math_verify.verify(gold, prediction)`` (gold first: the order matters).

``distill.verify.pool.verify_many`` checks a batch over worker processes with a *hard* per-item deadline: math-verify's own
timeouts rely on SIGALRM (main thread only, and sympy can ignore them), so a worker that overruns is killed
and replaced, and its item gets the verdict ``timeout``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from distill.records import split_think

_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?(?:/\d+)?|-?\.\d+")
# Thousands separators must be well grouped: "1,000" is a number, "1,2" is a pair (math-verify agrees).
_PLAIN_NUMBER = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:/\d+)?$")
_LATEX_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(\d+)\}$")
# LaTeX thin spaces used as thousands separators ("1\,000", "1{,}000"): math-verify misreads "1\,000".
_LATEX_THOUSANDS = re.compile(r"(?<=\d)(?:\\,|\\!|\{,\}|\\ )(?=\d{3}(?!\d))")
_MATH_DOLLAR = re.compile(r"(?<!\\)\$")  # an unescaped $ opens math mode; "\$18" is a price
_INNER_TIMEOUT = 5  # math-verify's own (soft) timeout inside a worker, seconds
# math-verify rounds to 6 decimals whenever a side is a float; the fast path only decides decimals whose
# exact value survives that rounding, and leaves the rest (1/3 vs 0.333333) to math-verify.
_FLOAT_PLACES = 10**6
_FLOAT_MAX = 10**12  # beyond ~15 significant digits sympy Floats lose exactness: defer to math-verify


@dataclass(frozen=True)
class Verdict:
    correct: bool
    extracted: str | None
    reason: str  # fast-path | math-verify | wrong (...) | no-answer | gold-unparseable | timeout | error: ...


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), with balanced braces; None if absent/unclosed.

    ``\\boxed 5`` (no braces) yields the next token, as LaTeX reads it.
    """
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    rest = text[start + (6 if text.startswith("\\boxed", start) else 5) :]
    body = rest.lstrip()
    if not body.startswith("{"):
        token = re.match(r"[^\s${}]+", body) if rest[:1].isspace() else None
        return token.group(0).rstrip(".") if token else None
    depth = 0
    for pos, char in enumerate(body):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return body[1:pos].strip()
    return None


def final_text(completion: str) -> str:
    """The final answer text of a completion (see ``distill.records.split_think``)."""
    return split_think(completion)[1]


def extract_answer(completion: str, fallback: str = "none") -> str | None:
    """Apply the extraction rule (see module docstring) to a completion; None when there is no answer."""
    if not isinstance(completion, str):
        return None
    text = final_text(completion)
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


def normalize_answer(text: str) -> str:
    """Harmless clean-ups applied before either comparison: LaTeX thousands spaces, a trailing period."""
    text = _LATEX_THOUSANDS.sub(",", text.strip())
    return text[:-1].rstrip() if text.endswith(".") and text[-2:-1].isdigit() else text


def as_fraction(text: str) -> tuple[Fraction, bool] | None:
    """A plain number, decimal, a/b or \\frac{a}{b} as (exact value, written as a decimal); else None."""
    cleaned = text.strip().strip("$").replace(" ", "")
    latex = _LATEX_FRAC.match(cleaned)
    if latex:
        sign, num, den = latex.groups()
        cleaned = f"{sign}{num}/{den}"
    if not cleaned.lstrip("-") or not _PLAIN_NUMBER.match(cleaned) or cleaned.lstrip("-").startswith("/"):
        return None
    try:
        return Fraction(cleaned.replace(",", "")), "." in cleaned
    except (ValueError, ZeroDivisionError):
        return None


def fast_match(gold: str, predicted: str) -> bool | None:
    """Exact comparison when both sides are plain numbers and math-verify would agree; None otherwise."""
    gold_num, pred_num = as_fraction(normalize_answer(gold)), as_fraction(normalize_answer(predicted))
    if gold_num is None or pred_num is None:
        return None
    (gold_value, gold_decimal), (pred_value, pred_decimal) = gold_num, pred_num
    if gold_decimal or pred_decimal:
        for value in (gold_value, pred_value):
            if (value * _FLOAT_PLACES).denominator != 1 or abs(value) >= _FLOAT_MAX:
                return None
    return gold_value == pred_value


def math_verify_match(gold: str, predicted: str) -> tuple[bool, str]:
    import time

    from math_verify import parse, verify

    # SIGALRM-based timeouts only work in a main thread; elsewhere the caller must bound the time.
    seconds = _INNER_TIMEOUT if threading.current_thread() is threading.main_thread() else None
    started = time.monotonic()
    gold_parsed = parse(_boxed_if_bare(gold), parsing_timeout=seconds)
    if not gold_parsed:
        return False, "gold-unparseable"
    pred_parsed = parse(_boxed_if_bare(predicted), parsing_timeout=seconds)
    ok = bool(verify(gold_parsed, pred_parsed, timeout_seconds=seconds))
    # math-verify swallows its own timeout and answers False: say so instead of blaming the answer.
    if not ok and seconds and time.monotonic() - started >= seconds * 0.95:
        return False, "timeout"
    return ok, "math-verify"


def answers_match(gold: str, predicted: str) -> tuple[bool, str]:
    """(equal?, how decided): the fast path for plain numbers, else math-verify (gold first)."""
    gold, predicted = normalize_answer(gold), normalize_answer(predicted)
    fast = fast_match(gold, predicted)
    if fast is not None:
        return fast, "fast-path"
    return math_verify_match(gold, predicted)


def _boxed_if_bare(text: str) -> str:
    return text if "\\boxed" in text or _MATH_DOLLAR.search(text) else f"\\boxed{{{text}}}"


def _verdict(extracted: str | None, ok: bool, how: str) -> Verdict:
    if how in ("gold-unparseable", "timeout") or how.startswith("error"):
        return Verdict(False, extracted, how)
    return Verdict(ok, extracted, how if ok else f"wrong ({how})")


def precheck(gold: Any, completion: Any, fallback: str) -> Verdict | str:
    """What needs no comparison: a Verdict (bad gold, no answer), else the extracted answer to compare."""
    if not isinstance(gold, str) or not gold.strip():
        return Verdict(False, None, "gold-unparseable")
    extracted = extract_answer(completion, fallback)
    return Verdict(False, None, "no-answer") if extracted is None else extracted


def checked_match(gold: str, extracted: str) -> tuple[bool, str]:
    """``answers_match`` that turns an exception into a reason: one odd input must not sink a batch."""
    try:
        return answers_match(gold, extracted)
    except Exception as exc:  # math-verify/sympy raising on odd input
        return False, f"error: {type(exc).__name__}"


def verify_completion(gold: str, completion: str, fallback: str = "none") -> Verdict:
    """Extract the answer from ``completion`` and compare it with ``gold`` (single item, in-process)."""
    checked = precheck(gold, completion, fallback)
    if isinstance(checked, Verdict):
        return checked
    return _verdict(checked, *checked_match(gold, checked))


# Multiple choice: the letter in the last \boxed{} ("\boxed{B}", "\boxed{(B)}", "\boxed{\text{B}}"), else the
# last "answer is B" / "Answer: (B)" in the final answer text. Letters are compared exactly, never by sympy.
_BOXED_LETTER = re.compile(r"^\(?\s*(?:\\text(?:bf)?\{\s*)?\(?([A-Z])\)?\s*\}?\s*\)?\.?$")
_STATED_LETTER = re.compile(r"(?i:answer)\s*(?i:is)?\s*:?\s*\**\s*\(?([A-Z])\)?(?![A-Za-z])")


def extract_choice(completion: str, letters: str = "ABCD") -> str | None:
    """The chosen letter of a multiple-choice completion (see the rule above); None when there is none."""
    if not isinstance(completion, str):
        return None
    text = final_text(completion)
    boxed = last_boxed(text)
    if boxed is not None:
        match = _BOXED_LETTER.match(boxed.strip().strip("$"))
        letter = match.group(1) if match else None
    else:
        stated = _STATED_LETTER.findall(text)
        letter = stated[-1] if stated else None
    return letter if letter and letter in letters else None


def verify_choice(gold: str, completion: str, letters: str = "ABCD") -> Verdict:
    """Multiple-choice twin of ``verify_completion``: the extracted letter must equal the gold letter."""
    if not isinstance(gold, str) or gold.strip() not in letters or len(gold.strip()) != 1:
        return Verdict(False, None, "gold-unparseable")
    letter = extract_choice(completion, letters)
    if letter is None:
        return Verdict(False, None, "no-answer")
    return Verdict(letter == gold.strip(), letter, "choice" if letter == gold.strip() else "wrong (choice)")
