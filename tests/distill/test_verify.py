"""The one verifier: extraction, fast path (agrees with math-verify), math-verify, hard timeouts in the pool."""

from __future__ import annotations

import itertools
import time

import pytest
from suite import hangs_past_alarms

from distill.verify import (
    extract_answer,
    fast_match,
    final_text,
    math_verify_match,
    normalize_answer,
    verify_completion,
    verify_many,
)

B = "\\boxed"
# (gold, completion, fallback, expected correct). Expectations are what a careful grader would say; where
# math-verify has a documented convention (order of a pair, 6-decimal rounding) the case says so.
CASES = [
    # plain boxed numbers, fast path
    ("42", f"The answer is {B}{{42}}.", "none", True),
    ("42", f"{B}{{43}}", "none", False),
    ("-7", f"so x = {B}{{-7}}", "none", True),
    ("1000", f"{B}{{1,000}}", "none", True),
    ("1000", f"{B}{{1\\,000}}", "none", True),
    ("1000", f"{B}{{1{{,}}000}}", "none", True),
    ("12", f"{B}{{12.}}", "none", True),
    ("2.5", f"{B}{{2.50}}", "none", True),
    ("27.0", f"{B}{{27}}", "none", True),  # AMC answers are floats in the file
    # fractions and decimals
    ("\\frac{1}{2}", f"{B}{{0.5}}", "none", True),
    ("\\dfrac{3}{4}", f"{B}{{\\frac{{3}}{{4}}}}", "none", True),
    ("-\\frac{1}{2}", f"{B}{{\\frac{{-1}}{{2}}}}", "none", True),
    ("3/6", f"{B}{{1/2}}", "none", True),
    ("\\frac{1}{3}", f"{B}{{0.3333333}}", "none", True),  # math-verify rounds floats to 6 places
    ("\\frac{1}{3}", f"{B}{{0.33}}", "none", False),
    ("\\frac{2}{3}", f"{B}{{\\frac{{3}}{{2}}}}", "none", False),
    # LaTeX forms (math-verify)
    ("\\frac{\\sqrt{3}}{2}", f"{B}{{\\frac{{\\sqrt3}}{{2}}}}", "none", True),
    ("2\\sqrt{2}", f"{B}{{\\sqrt{{8}}}}", "none", True),
    ("x^2+2x+1", f"{B}{{(x+1)^2}}", "none", True),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", f"{B}{{(3, \\frac{{\\pi}}{{2}})}}", "none", True),
    ("y=2x+3", f"{B}{{y = 3 + 2x}}", "none", True),
    ("\\pi", f"{B}{{3.14159}}", "none", False),
    ("\\text{(C)}", f"{B}{{C}}", "none", True),
    ("\\{1,2\\}", f"{B}{{\\{{2,1\\}}}}", "none", True),
    # intervals
    ("(2, 5]", f"{B}{{(2,5]}}", "none", True),
    ("(2, 5]", f"{B}{{[2,5]}}", "none", False),
    ("(-\\infty, 0)", f"{B}{{(-\\infty,0)}}", "none", True),
    ("x \\in (1, 2)", f"{B}{{(1,2)}}", "none", True),
    # units, degrees, currency
    ("5", f"{B}{{5\\text{{ cm}}}}", "none", True),
    ("30", f"{B}{{30^\\circ}}", "none", True),
    ("18", f"{B}{{\\$18}}", "none", True),
    ("\\$18", f"{B}{{18}}", "none", True),
    # <think> leakage: only the final answer counts
    ("5", f"<think>maybe {B}{{5}}</think>The answer is {B}{{6}}", "none", False),
    ("6", f"<think>maybe {B}{{5}}</think>The answer is {B}{{6}}", "none", True),
    ("5", f"<think>it is {B}{{5}} but I am still thinking", "none", False),  # unclosed: no answer
    ("5", f"reasoning {B}{{5}}... </think> so {B}{{7}}", "none", False),  # <think> was in the prompt
    ("7", f"reasoning {B}{{5}}... </think> so {B}{{7}}", "none", True),
    ("5", f"<think>{B}{{5}}</think>", "last_number", False),  # nothing after the think block
    # multiple boxes: the last one is the answer
    ("3", f"first {B}{{2}}, corrected: {B}{{3}}", "none", True),
    ("2", f"first {B}{{2}}, corrected: {B}{{3}}", "none", False),
    ("\\frac{1}{2}", f"{B}{{\\frac{{1}}{{2}}}}", "none", True),  # nested braces
    # unboxed: fallbacks
    ("85", "47 + 38 = 85", "none", False),
    ("85", "47 + 38 = 85", "last_number", True),
    ("1234", "so the total is 1,234 apples", "last_number", True),
    ("2", "pairs 1,2", "last_number", True),  # "1,2" is two numbers, not 12
    ("9", "Answer: 9 (checked 3 times)", "regex:Answer:\\s*(\\S+)", True),
    ("9", "no marker here 9", "regex:Answer:\\s*(\\S+)", False),
    # empty and missing answers
    ("3", f"{B}{{}}", "none", False),
    ("3", f"The answer is {B}{{ }}", "none", False),
    ("3", "", "last_number", False),
    ("", f"{B}{{3}}", "none", False),
    ("3", f"{B} 3", "none", True),  # \boxed without braces takes the next token, as LaTeX does
]


@pytest.mark.parametrize(("gold", "completion", "fallback", "expected"), CASES)
def test_verifier_table(gold, completion, fallback, expected):
    assert verify_completion(gold, completion, fallback).correct is expected


def test_batch_api_agrees_with_single_item_api():
    items = [(gold, completion) for gold, completion, fallback, _ in CASES if fallback == "none"]
    single = [verify_completion(gold, completion) for gold, completion in items]
    assert verify_many(items, workers=2, timeout=20, progress=False) == single
    assert verify_many(items, workers=0, progress=False) == single


def test_reasons_say_why():
    assert verify_completion("3", "no box here").reason == "no-answer"
    assert verify_completion("", f"{B}{{3}}").reason == "gold-unparseable"
    assert verify_completion("3", f"{B}{{4}}").reason == "wrong (fast-path)"
    assert verify_completion("3", f"{B}{{3}}").reason == "fast-path"
    assert verify_completion("\\sqrt{2}", f"{B}{{\\sqrt{{2}}}}").reason == "math-verify"
    assert verify_completion(None, f"{B}{{3}}").reason == "gold-unparseable"
    assert verify_completion("3", None).reason == "no-answer"


def test_extraction_details():
    assert final_text("<think>a</think> b <think>c</think> d") == "d"
    assert final_text("a </think> b") == "b"
    assert final_text("<think> open") == ""
    assert extract_answer(f"{B}{{\\frac{{1}}{{2}}}} and {B}{{x^{{2}}}}") == "x^{2}"
    assert extract_answer(f"unclosed {B}{{3") is None
    assert extract_answer("\\fbox{7}") == "7"
    assert extract_answer("x = -3.5 then 2,000,000", "last_number") == "2000000"
    assert normalize_answer("1\\,000\\,000") == "1,000,000"


# Forms the fast path claims; for every pair it decides, math-verify must agree.
_FORMS = [
    "5",
    "-5",
    "05",
    "5.0",
    "5.5",
    "11/2",
    "\\frac{11}{2}",
    "-\\frac{11}{2}",
    "0.5",
    "1/2",
    ".5",
    "1,000",
    "1000",
    "1000.5",
    "1/3",
    "0.333333",
    "0.3333333",
    "0.1",
    "0.10000001",
    "10.0000001",
    "10",
    "1,2",
    "12",
    "123456789012345678",
    "123456789012345679",
    "1234567890123.5",
    "1234567890123",
    "-0",
    "0.0",
]


def test_fast_path_agrees_with_math_verify():
    decided = 0
    for gold, predicted in itertools.product(_FORMS, _FORMS):
        fast = fast_match(gold, predicted)
        if fast is None:
            continue
        decided += 1
        slow, how = math_verify_match(normalize_answer(gold), normalize_answer(predicted))
        assert (fast, how) == (slow, "math-verify"), (gold, predicted)
    assert decided > 400  # the fast path really covers the plain forms


_ADVERSARIAL = ["9^{9^{9^{9}}}", "(x+1)^{100000}", "999999999!", "(1+2)^{99999999}"]


def test_adversarial_inputs_time_out_without_hanging_the_pool():
    items = [("1", f"{B}{{{expr}}}") for expr in _ADVERSARIAL] + [
        ("\\sqrt{2}", f"{B}{{\\sqrt{{2}}}}"),
        ("4", f"{B}{{4}}"),
    ]
    started = time.monotonic()
    verdicts = verify_many(items, workers=2, timeout=1.0, progress=False)
    elapsed = time.monotonic() - started
    assert [v.reason for v in verdicts[:4]] == ["timeout"] * 4
    assert verdicts[4].correct and verdicts[5].correct
    assert elapsed < 8, elapsed  # 4 stuck items on 2 workers at 1 s each, plus restarts


def test_stuck_worker_is_killed_and_replaced(monkeypatch):
    # Workers are forked, so they inherit the patched comparison (looked up in distill.verify.answers).
    import distill.verify.answers as verify

    monkeypatch.setattr(verify, "answers_match", hangs_past_alarms)
    items = [("hang", f"{B}{{x}}"), ("a", f"{B}{{a}}"), ("hang", f"{B}{{y}}"), ("b", f"{B}{{b}}")]
    started = time.monotonic()
    verdicts = verify_many(items, workers=1, timeout=0.5, progress=False)
    assert time.monotonic() - started < 5
    assert [v.reason for v in verdicts] == ["timeout", "fast-path", "timeout", "fast-path"]
    assert [v.correct for v in verdicts] == [False, True, False, True]


def test_math_verify_own_timeout_is_reported_as_timeout(monkeypatch):
    import distill.verify.answers as verify

    monkeypatch.setattr(verify, "_INNER_TIMEOUT", 1)
    assert math_verify_match("1", "(x+1)^{100000}") == (False, "timeout")


def test_pool_leaves_no_processes_behind():
    import multiprocessing

    verify_many([("\\sqrt{2}", f"{B}{{\\sqrt{{2}}}}")] * 8, workers=2, progress=False)
    assert multiprocessing.active_children() == []
