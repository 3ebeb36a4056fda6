"""Code: take the program from an answer, run it against the problem's tests in the sandbox, give a verdict.

Extraction: the last fenced code block of the final answer (text after the last ``</think>``) whose tag is
the problem's language (``python``, ``py``, ``python3``) or empty; no such block -> ``no_code``.

Tests (the prompt contract's ``tests``; see ``code_problem``):
- a string defining ``check(candidate)`` (HumanEval): one test, ``check`` called with the entry point;
- a list of ``assert`` lines (MBPP): each line one test;
- stdin/stdout pairs: a list of ``{"input", "output"}``, APPS/TACO's ``{"inputs": [...], "outputs": [...]}``
  (with ``fn_name``: call-based, each pair becomes an assert), or open-r1's ``{"test_cases": [...]}``.
  Output is compared token by token (whitespace runs and line ends do not matter); ``float_tolerance``
  accepts numbers within that absolute or relative distance.

Function-call tests run in one process after the program (``starter_code`` first, so imports and helpers of
a HumanEval prompt are there); each stdin/stdout test runs in a fresh process; after a timeout the remaining
tests are not run (they count as failed). Reasons: ``passed``, ``failed: test N`` (1-based, the first one
failing), ``timeout``, ``runtime_error: ...``, ``memory``, ``no_code``, ``syntax``, ``error: ...`` (the
sandbox itself failed). ``share`` is the fraction of tests passed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from distill.records import split_think
from distill.verify.sandbox import Job, Limits, LocalRunner, Runner, RunResult

log = logging.getLogger("distill.verify")
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.DOTALL | re.MULTILINE)
_TAGS = {"python": {"python", "py", "python3", "py3"}}
REASONS = ("passed", "failed", "timeout", "runtime_error", "memory", "no_code", "syntax", "error")


@dataclass(frozen=True)
class CodeVerdict:
    correct: bool
    extracted: str | None  # the program as run (None: no code)
    reason: str
    share: float = 0.0  # tests passed / tests
    passed: int = 0
    total: int = 0
    network_isolated: bool = False

    @property
    def kind(self) -> str:
        """The reason's category (for counting): passed, failed, timeout, runtime_error, ..."""
        return self.reason.split(":", 1)[0]


@dataclass
class CodeProblem:
    tests: str | list
    entry_point: str | None = None
    starter_code: str = ""
    language: str = "python"
    float_tolerance: float | None = None
    fn_name: str | None = None  # APPS call-based problems
    limits: Limits = field(default_factory=Limits)


def code_problem(row: dict, limits: Limits | None = None) -> CodeProblem:
    """A ``CodeProblem`` from a prompt-contract row (``tests``, ``entry_point``, ``starter_code``, ...)."""
    tests = row.get("tests")
    if isinstance(tests, str) and tests.lstrip()[:1] in "[{":
        with contextlib.suppress(ValueError):
            tests = json.loads(tests)
    fn_name = tests.get("fn_name") if isinstance(tests, dict) else None
    return CodeProblem(
        tests=tests if tests is not None else [],
        entry_point=row.get("entry_point") or fn_name,
        starter_code=row.get("starter_code") or "",
        language=(row.get("language") or "python").lower(),
        float_tolerance=row.get("float_tolerance"),
        fn_name=fn_name,
        limits=limits or Limits(),
    )


def code_instruction(problem: CodeProblem) -> str:
    """What a code prompt is told when the recipe keeps the default prompt template: how the answer will be
    read (the last fenced block, see ``extract_code``) and run (stdin/stdout, or a call of the entry point)."""
    language = problem.language.capitalize() if problem.language != "cpp" else "C++"
    tag = "python" if problem.language == "python" else problem.language
    if _stdio_pairs(problem.tests) is not None:
        how = "The program reads the input from standard input and writes the answer to standard output."
    elif problem.entry_point:
        how = f"Define the function `{problem.entry_point}`; the tests call it."
    else:
        how = "The tests run after your code in the same file."
    text = f"Write a solution in {language}. {how} Put the complete code in one ```{tag} fenced block"
    text += " at the end of your answer."
    if problem.starter_code.strip():
        text += f" Start from this code:\n\n```{tag}\n{problem.starter_code.rstrip()}\n```"
    return text


def extract_code(completion: str, language: str = "python") -> str | None:
    """The last fenced block of the final answer tagged ``language`` (or untagged); None if there is none."""
    if not isinstance(completion, str):
        return None
    accepted = _TAGS.get(language, {language})
    blocks = [
        body for tag, body in _FENCE.findall(split_think(completion)[1]) if not tag or tag.lower() in accepted
    ]
    return blocks[-1] if blocks else None


def outputs_match(actual: str, expected: str, float_tolerance: float | None = None) -> bool:
    """Token-wise comparison with whitespace normalised; numbers within ``float_tolerance`` are equal."""
    got, want = actual.split(), expected.split()
    if len(got) != len(want):
        return False
    for a, b in zip(got, want, strict=False):
        if a == b:
            continue
        if float_tolerance is None:
            return False
        try:
            x, y = float(a), float(b)
        except ValueError:
            return False
        if not abs(x - y) <= float_tolerance * max(1.0, abs(y)):
            return False
    return True


def _stdio_pairs(tests) -> list[tuple[str, str]] | None:
    if isinstance(tests, dict) and "test_cases" in tests:
        tests = tests["test_cases"]
    if isinstance(tests, dict) and "inputs" in tests and "outputs" in tests and not tests.get("fn_name"):
        return [(_text(i), _text(o)) for i, o in zip(tests["inputs"], tests["outputs"], strict=False)]
    if isinstance(tests, list) and tests and all(isinstance(t, dict) for t in tests):
        return [(_text(t.get("input", "")), _text(t.get("output", ""))) for t in tests]
    return None


def _text(value) -> str:
    if isinstance(value, list):
        return "\n".join(map(str, value))
    return value if isinstance(value, str) else str(value)


def _call_based_asserts(tests: dict) -> list[str]:
    # Run by the checker process: ``__entry__`` calls the program's function (or, LeetCode-style, the method
    # of a ``Solution()``) across the pipe; ``__same__`` compares type-aware (see sandbox_checker.same).
    return [
        f"import json\nassert __same__(__entry__(*json.loads({json.dumps(json.dumps(i))})), "
        f"json.loads({json.dumps(json.dumps(o[0] if isinstance(o, list) and len(o) == 1 else o))}))"
        for i, o in zip(tests["inputs"], tests["outputs"], strict=False)
    ]


def assemble(code: str, problem: CodeProblem) -> str:
    """The program to run: the starter code (imports, helpers, signature) and then the answer's code."""
    starter = problem.starter_code or ""
    if not starter:
        return code
    if problem.entry_point and re.search(rf"^\s*def\s+{re.escape(problem.entry_point)}\s*\(", code, re.M):
        if _only_headers(
            starter
        ):  # a bare signature (`def f(x):`, `class Solution:`): the answer replaces it
            imports = [line for line in starter.splitlines() if re.match(r"\s*(import|from)\s", line)]
            return "\n".join([*imports, code]) if imports else code
        return starter.rstrip() + "\n\n" + code
    if code[:1] in " \t":  # a function body continuing the starter's signature
        return starter + code
    return starter.rstrip() + "\n\n" + code


def _only_headers(starter: str) -> bool:
    """Does the starter end in a header with no body (APPS/TACO/LeetCode signatures), so it cannot run?"""
    lines = [line for line in starter.splitlines() if line.strip() and not line.strip().startswith("#")]
    return bool(lines) and lines[-1].rstrip().endswith(":")


def check_program(source: str, problem: CodeProblem, runner: Runner | None = None) -> CodeVerdict:
    """Run ``source`` (already assembled) against ``problem``'s tests; see the module docstring."""
    runner = runner or default_runner()
    pairs = _stdio_pairs(problem.tests)
    if pairs is not None:
        return _check_stdio(source, pairs, problem, runner)
    tests, call_check, entry = problem.tests, False, problem.entry_point
    if isinstance(tests, dict) and "inputs" in tests:
        tests, entry = _call_based_asserts(tests), problem.fn_name or problem.entry_point or "solution"
    elif isinstance(tests, str):
        call_check = bool(re.search(r"^def\s+check\s*\(", tests, re.M)) and bool(problem.entry_point)
        tests = [tests] if call_check else [line for line in tests.splitlines() if line.strip()]
    if not tests:
        return CodeVerdict(False, source, "error: the problem has no tests")
    job = Job(
        source,
        "function",
        list(tests),
        entry,
        call_check,
        limits=problem.limits,
        float_tolerance=problem.float_tolerance,
    )
    return _function_verdict(source, runner.run(job), len(tests))


def _function_verdict(source: str, result: RunResult, total: int) -> CodeVerdict:
    events = result.events
    tests = [e for e in events if e.get("event") == "test"]
    passed = sum(1 for e in tests if e.get("ok"))
    done = next((e for e in events if e.get("event") == "done"), None)
    reason = _process_reason(result, events, done)
    if reason is None:
        failing = next((e for e in tests if not e.get("ok")), None)
        if failing is None and len(tests) == total:
            reason = "passed"
        elif failing is None:
            reason = "runtime_error: the tests did not all report"
        else:
            reason = _test_reason(failing)
    return CodeVerdict(
        reason == "passed", source, reason, passed / total, passed, total, result.network_isolated
    )


def _test_reason(event: dict) -> str:
    number = event.get("i", 0) + 1
    if event.get("status") == "memory":
        return "memory"
    if event.get("status") == "failed":
        return f"failed: test {number}"
    return f"runtime_error: {event.get('error', '')} (test {number})"


def _process_reason(result: RunResult, events: list[dict], done: dict | None) -> str | None:
    """A reason from how the process ended, or None when it ended normally and the tests decide."""
    if result.error:
        return f"error: {result.error}"
    if any(e.get("event") == "syntax" for e in events):
        return "syntax"
    if result.timed_out or result.returncode == -signal.SIGXCPU:
        return "timeout"
    if result.overflow:
        return f"runtime_error: {result.overflow} over the output cap"
    if done is not None:
        status = done.get("status", "ok")
        if status == "memory":
            return "memory"
        if status != "ok":
            return f"runtime_error: {done.get('error', '')}"
        return None
    code = result.returncode
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return "memory" if name == "SIGKILL" else f"runtime_error: killed by {name}"
    return f"runtime_error: exited (code {code}) before the tests finished"


def _check_stdio(source: str, pairs: list, problem: CodeProblem, runner: Runner) -> CodeVerdict:
    if not pairs:
        return CodeVerdict(False, source, "error: the problem has no tests")
    passed, first_bad, isolated = 0, None, False
    for number, (given, expected) in enumerate(pairs, start=1):
        job = Job(source, "stdio", stdin=given.encode(), limits=problem.limits)
        result = runner.run(job)
        isolated = result.network_isolated
        done = next((e for e in result.events if e.get("event") == "done"), None)
        reason = _process_reason(result, result.events, done)
        if reason is None:
            actual = result.stdout.decode("utf-8", "replace")
            ok = outputs_match(actual, expected, problem.float_tolerance)
            reason = None if ok else f"failed: test {number}"
        if reason is None:
            passed += 1
            continue
        first_bad = first_bad or reason
        if reason in ("syntax", "timeout") or reason.startswith("error"):
            break  # the rest would take as long or fail the same way: counted as failed
    total = len(pairs)
    verdict_reason = first_bad or "passed"
    return CodeVerdict(first_bad is None, source, verdict_reason, passed / total, passed, total, isolated)


def verify_code(completion: str, problem: CodeProblem | dict, runner: Runner | None = None) -> CodeVerdict:
    """Extract the program from a completion and check it (``no_code`` when there is no block)."""
    if isinstance(problem, dict):
        problem = code_problem(problem)
    code = extract_code(completion, problem.language)
    if code is None:
        return CodeVerdict(False, None, "no_code", 0.0, 0, 0)
    if problem.language not in _TAGS:
        return CodeVerdict(False, code, f"error: no runner for {problem.language}")
    return check_program(assemble(code, problem), problem, runner)


def verify_code_many(
    items: list[tuple[CodeProblem | dict, str]], runner: Runner | None = None, workers: int | None = None
) -> list[CodeVerdict]:
    """Verify (problem, completion) pairs over ``workers`` programs at a time (default: one per core)."""
    import os

    runner = runner or default_runner()
    workers = max(1, workers or os.cpu_count() or 1)
    if workers == 1 or len(items) <= 1:
        return [verify_code(completion, problem, runner) for problem, completion in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda item: verify_code(item[1], item[0], runner), items))


_RUNNERS: dict[tuple[bool, str], LocalRunner] = {}
SANDBOXES = ("auto", "local", "forkserver", "bwrap")


def default_runner(network_isolation: bool = True, sandbox: str | None = None) -> LocalRunner:
    """The shared runner of one kind (``sandbox``, default ``DISTILL_SANDBOX`` or ``auto``): ``auto`` is the
    fork server as root (~2.5x the programs/s), else ``local`` (an interpreter start per program); ``bwrap``
    runs each program inside bubblewrap (docs/sandbox.md). Logs once which protections are on."""
    import os

    kind = (sandbox or os.environ.get("DISTILL_SANDBOX") or "auto").lower()
    if kind not in SANDBOXES:
        raise ValueError(f"DISTILL_SANDBOX={kind!r}: expected one of {', '.join(SANDBOXES)}")
    if (network_isolation, kind) not in _RUNNERS:
        from distill.verify.sandbox import isolation
        from distill.verify.sandbox_bwrap import BwrapRunner
        from distill.verify.sandbox_forkserver import ForkServerRunner

        if kind == "auto":
            kind_class = ForkServerRunner if isolation(network_isolation).own_user else LocalRunner
        else:
            kind_class = {"local": LocalRunner, "forkserver": ForkServerRunner, "bwrap": BwrapRunner}[kind]
        runner = kind_class(network=network_isolation)
        log.info(
            "code sandbox: %s, %s (python %s)%s",
            runner.isolation.note,
            type(runner).__name__,
            runner.isolation.python,
            "; private /tmp, /var/tmp, /dev/shm" if runner.private_tmp else "; /tmp swept after each run",
        )
        if not runner.isolation.network:
            log.warning("code sandbox: network isolation is OFF: programs can open connections")
        _RUNNERS[network_isolation, kind] = runner
    return _RUNNERS[network_isolation, kind]


def count_reasons(verdicts: list) -> dict[str, int]:
    """How many verdicts of each reason category (``passed``, ``failed``, ``timeout``, ...)."""
    counts: dict[str, int] = {}
    for verdict in verdicts:
        kind = verdict.reason.split(":", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    return counts
