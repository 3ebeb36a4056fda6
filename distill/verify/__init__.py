"""THE verifier: one checker shared by filtering, GRPO rewards and evaluation.

- ``answers``: answer extraction and comparison (math-verify with an exact fast path; multiple-choice letters).
- ``pool``: ``verify_many``, batches over worker processes with a hard per-item deadline.

New domains (code, ...) join here as sibling modules; callers import from ``distill.verify``.
"""

from distill.verify.answers import (
    Verdict,
    answers_match,
    as_fraction,
    checked_match,
    extract_answer,
    extract_choice,
    fast_match,
    final_text,
    last_boxed,
    math_verify_match,
    normalize_answer,
    precheck,
    verify_choice,
    verify_completion,
)
from distill.verify.pool import verify_many

__all__ = [
    "Verdict",
    "answers_match",
    "as_fraction",
    "checked_match",
    "extract_answer",
    "extract_choice",
    "fast_match",
    "final_text",
    "last_boxed",
    "math_verify_match",
    "normalize_answer",
    "precheck",
    "verify_choice",
    "verify_completion",
    "verify_many",
]
