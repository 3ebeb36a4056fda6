"""The code checker where data flows: GRPO's `code` reward, the filter's code step, the prompt contract's
code fields, and the trace readers (bare-answer solutions, OpenMathReasoning, code sets with tests)."""

from __future__ import annotations

import pytest

from distill.verify import code_problem, verify_code


def fenced(code: str, tag: str = "python") -> str:
    return f"<think>\nlet me write it\n</think>\nHere it is:\n```{tag}\n{code.rstrip()}\n```\n"


# ---- the same checker in GRPO's `code` reward, the filter and the prompt contract ----

ADD_TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(-1, 1) == 0"]
RIGHT = fenced("def add(a, b):\n    return a + b\n")
TWO_OF_THREE = fenced("def add(a, b):\n    return 3 if a == 1 else 4\n")
WRONG = fenced("def add(a, b):\n    return a * b\n")


def test_code_reward_share_all_or_nothing_and_rows_without_tests():
    from distill.grpo.rewards import build_reward_funcs
    from distill.recipe import GRPOTeacherConfig

    columns = {"tests": [ADD_TESTS] * 4 + [None], "answer": ["", "", "", "", "4"]}
    completions = [RIGHT, TWO_OF_THREE, WRONG, "no code at all", "\\boxed{4}"]
    cfg = GRPOTeacherConfig(model="tiny-random-llama", rewards=["code"])
    (share,) = build_reward_funcs(["code"], cfg.reward_options())
    assert share.__name__ == "code"
    assert share(completions, **columns) == [1.0, pytest.approx(2 / 3, abs=1e-4), 1 / 3, 0.0, None]
    strict = GRPOTeacherConfig(model="tiny-random-llama", rewards=["code"], code={"all_or_nothing": True})
    (binary,) = build_reward_funcs(["code"], strict.reward_options())
    assert binary(completions, **columns) == [1.0, 0.0, 0.0, 0.0, None]


def test_grpo_pass_rate_filter_checks_code_prompts_with_their_tests():
    # The pass-rate pre-filter must score as the rewards do: a prompt with tests by the code checker
    # (every test passed), a math prompt by the answer verifier, in one mixed set.
    from distill.grpo.prompts import samples_correct
    from distill.recipe import GRPOTeacherConfig

    by_id = {
        "code": {"prompt_id": "code", "answer": "", "tests": ADD_TESTS, "entry_point": "add"},
        "math": {"prompt_id": "math", "answer": "4"},
    }
    samples = [
        ("code", RIGHT),
        ("code", TWO_OF_THREE),
        ("code", "no code"),
        ("math", "\\boxed{4}"),
        ("math", "5"),
    ]
    rows = [by_id[pid] for pid, _ in samples]
    cfg = GRPOTeacherConfig(model="tiny-random-llama", rewards=["code", "accuracy"])
    assert samples_correct(cfg, rows, [text for _, text in samples]) == [True, False, False, True, False]


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
