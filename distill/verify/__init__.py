"""THE verifier: one checker shared by filtering, GRPO rewards and evaluation.

- ``answers``: answer extraction and comparison (math-verify with an exact fast path; multiple-choice letters).
- ``pool``: ``verify_many``, batches over worker processes with a hard per-item deadline.
- ``code``: programs from answers run against tests (``verify_code``, ``verify_code_many``), in
- ``sandbox``: the runner interface, the local runner (process group, limits, own user id, network
  namespace) and ``run_many``; ``sandbox_driver`` is the program-side half, ``sandbox_checker`` the trusted
  half that runs the tests, ``sandbox_io`` the parent's reading of one run (caps, deadline, reaping),
  ``sandbox_tmp`` private mounts or the sweep, ``sandbox_forkserver`` and ``sandbox_bwrap`` the other runners.

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
from distill.verify.code import (
    CodeProblem,
    CodeVerdict,
    check_program,
    code_problem,
    count_reasons,
    default_runner,
    extract_code,
    outputs_match,
    verify_code,
    verify_code_many,
)
from distill.verify.pool import verify_many
from distill.verify.sandbox import Job, Limits, LocalRunner, Runner, RunResult, isolation, run_many

__all__ = [
    "CodeProblem",
    "CodeVerdict",
    "Job",
    "Limits",
    "LocalRunner",
    "RunResult",
    "Runner",
    "Verdict",
    "answers_match",
    "as_fraction",
    "check_program",
    "checked_match",
    "code_problem",
    "count_reasons",
    "default_runner",
    "extract_answer",
    "extract_choice",
    "extract_code",
    "fast_match",
    "final_text",
    "isolation",
    "last_boxed",
    "math_verify_match",
    "normalize_answer",
    "outputs_match",
    "precheck",
    "run_many",
    "verify_choice",
    "verify_code",
    "verify_code_many",
    "verify_completion",
    "verify_many",
]
