"""MBPP and LiveCodeBench tasks: rows in their published shapes (the Hub is not reachable here, so a few rows
are written as google-research-datasets/mbpp and livecodebench/code_generation_lite publish them) load,
and a right program passes and a wrong one fails through the shared code checker."""

from __future__ import annotations

import base64
import json
import pickle
import zlib

import pytest

from distill.errors import DistillError
from eval import code_sets
from eval.tasks import utils

MBPP_SANITIZED = [
    {
        "source_file": "Benchmark Questions Verification V2.ipynb",
        "task_id": 2,
        "prompt": "Write a function to find the shared elements from the given two lists.",
        "code": "def similar_elements(test_tup1, test_tup2):\n  res = tuple(set(test_tup1) & set(test_tup2))\n"
        "  return (res) ",
        "test_imports": [],
        "test_list": [
            "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
            "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))",
            "assert set(similar_elements((11, 12, 14, 13),(17, 15, 14, 13))) == set((13, 14))",
        ],
    },
    {
        "source_file": "Benchmark Questions Verification V2.ipynb",
        "task_id": 17,
        "prompt": "Write a function that returns the perimeter of a square given its side length as input.",
        "code": "def square_perimeter(a):\n  perimeter=4*a\n  return perimeter",
        "test_imports": ["import math"],
        "test_list": [
            "assert square_perimeter(10)==40",
            "assert math.isclose(square_perimeter(2.5), 10.0)",
            "assert square_perimeter(4)==16",
        ],
    },
]
MBPP_FULL = {
    "task_id": 11,
    "text": "Write a python function to remove first and last occurrence of a given character from the string.",
    "code": "def remove_Occ(s,ch):\n    s = s.replace(ch, '', 1)\n    return s[::-1].replace(ch, '', 1)[::-1]",
    "test_list": [
        'assert remove_Occ("hello","l") == "heo"',
        'assert remove_Occ("abcda","a") == "bcd"',
        'assert remove_Occ("PHP","P") == "H"',
    ],
    "test_setup_code": "",
    "challenge_test_list": [],
}


def fenced(code: str) -> str:
    return f"<think>Let me write it.</think>Here it is:\n```python\n{code}\n```"


def compressed(cases: list[dict]) -> str:
    """The private_test_cases encoding of LiveCodeBench's later releases: base64(zlib(pickle(JSON text)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


STDIN_CASES = [{"input": "3 4\n", "output": "7\n", "testtype": "stdin"}]
LCB_ROWS = [
    {  # AtCoder, stdin/stdout; private cases compressed
        "question_title": "A+B",
        "question_content": "Given two integers A and B, print A+B.",
        "platform": "atcoder",
        "question_id": "abc999_a",
        "contest_id": "abc999",
        "contest_date": "2024-09-14T00:00:00",
        "starter_code": "",
        "difficulty": "easy",
        "public_test_cases": json.dumps(STDIN_CASES),
        "private_test_cases": compressed(
            [{"input": "10 -2\n", "output": "8\n", "testtype": "stdin"}, {"input": "0 0", "output": "0"}]
        ),
        "metadata": "{}",
    },
    {  # LeetCode, call-based
        "question_title": "Sum of Pairs",
        "question_content": "Given nums and k, return the list of nums[i] + k.",
        "platform": "leetcode",
        "question_id": "3100",
        "contest_id": "weekly-contest-400",
        "contest_date": "2024-10-05T00:00:00",
        "starter_code": "class Solution:\n    def addAll(self, nums: List[int], k: int) -> List[int]:\n        ",
        "difficulty": "medium",
        "public_test_cases": json.dumps(
            [
                {"input": "[1, 2]\n3", "output": "[4, 5]", "testtype": "functional"},
                {"input": "[7]\n0", "output": "[7]", "testtype": "functional"},
            ]
        ),
        "private_test_cases": json.dumps([{"input": "[]\n5", "output": "[]", "testtype": "functional"}]),
        "metadata": json.dumps({"func_name": "addAll"}),
    },
    {  # before the task's window: not loaded
        **{k: "" for k in ("question_title", "platform", "contest_id", "starter_code", "difficulty")},
        "question_content": "An old problem.",
        "question_id": "old",
        "contest_date": "2023-05-01T00:00:00",
        "public_test_cases": json.dumps(STDIN_CASES),
        "private_test_cases": "[]",
        "metadata": "{}",
    },
]


def write_set(folder, name: str, rows: list[dict]):
    path = folder / name / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def score(doc: dict, *completions: str) -> list[float]:
    return [utils.process_results_code_tests(doc, [[c]])["pass_at_1"] for c in completions]


def test_mbpp_rows_as_published_load_and_score(tmp_path):
    write_set(tmp_path, "mbpp", MBPP_SANITIZED)
    docs = list(utils.load_code_set("mbpp", data_dir=str(tmp_path))["test"])
    assert [(d["id"], d["entry_point"], d["setup"]) for d in docs] == [
        ("2", "similar_elements", ""),
        ("17", "square_perimeter", "import math"),
    ]
    prompt = utils.mbpp_prompt(docs[1])
    assert prompt.startswith(MBPP_SANITIZED[1]["prompt"]) and "assert square_perimeter(4)==16" in prompt
    assert score(
        docs[0], fenced(MBPP_SANITIZED[0]["code"]), fenced("def similar_elements(a, b):\n  return a")
    ) == [
        1.0,
        0.0,
    ]
    # test_imports run before the program: math.isclose works without the answer importing math
    right, wrong = (
        fenced("def square_perimeter(a):\n    return 4 * a"),
        fenced("def square_perimeter(a):\n    return a * a"),
    )
    assert score(docs[1], right, wrong, "no code at all") == [1.0, 0.0, 0.0]
    checked = utils.process_results_code_tests(docs[1], [[wrong]])
    assert checked["answer_votes"][0][1] is False


def test_mbpp_full_config_via_data_file(tmp_path):
    path = tmp_path / "mbpp_full.jsonl"
    path.write_text(json.dumps(MBPP_FULL) + "\n")
    (doc,) = utils.load_code_set("mbpp", data_file=str(path), data_dir=str(tmp_path / "none"))["test"]
    assert doc["problem"] == MBPP_FULL["text"] and doc["entry_point"] == "remove_Occ"
    assert score(
        doc, fenced(MBPP_FULL["code"]), fenced("def remove_Occ(s, ch):\n    return s.replace(ch, '', 1)")
    ) == [
        1.0,
        0.0,
    ]


def test_livecodebench_rows_as_published_load_and_score(tmp_path):
    write_set(tmp_path, "livecodebench", LCB_ROWS)
    docs = list(
        utils.load_code_set("livecodebench", data_dir=str(tmp_path), since="2024-08-01", until="2025-02-01")[
            "test"
        ]
    )
    assert [d["id"] for d in docs] == ["abc999_a", "3100"]  # the 2023 problem is outside the window
    stdin, leetcode = docs
    assert len(json.loads(stdin["tests"])) == 3  # public + decompressed private cases
    reads = "a, b = map(int, input().split())\nprint(a + b)"
    assert score(stdin, fenced(reads), fenced("a, b = map(int, input().split())\nprint(a - b)")) == [1.0, 0.0]
    assert "standard input" in utils.livecodebench_prompt(stdin)
    assert "class Solution" in utils.livecodebench_prompt(leetcode)
    right = "class Solution:\n    def addAll(self, nums: List[int], k: int) -> List[int]:\n        return [n + k for n in nums]"
    wrong = right.replace("n + k", "n * k")
    # List comes from LiveCodeBench's import header; [7] must not be confused with 7 (outputs wrapped once)
    assert score(leetcode, fenced(right), fenced(wrong)) == [1.0, 0.0]
    off_by_one = right.replace("return [n + k for n in nums]", "return [n + k for n in nums] or [0]")
    assert score(leetcode, fenced(off_by_one)) == [0.0]  # fails only the private case


def test_offline_without_a_local_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DISTILL_BENCHMARKS", str(tmp_path / "none"))
    for name, hub_id in (("mbpp", "google-research-datasets/mbpp"), ("livecodebench", "livecodebench/")):
        with pytest.raises(DistillError) as info:
            utils.load_code_set(name)
        message = str(info.value)
        assert "HF_HUB_OFFLINE" in message and hub_id in message and "\n" not in message
    from eval import preflight

    with pytest.raises(DistillError, match="mbpp/test.jsonl not found and the Hub is offline"):
        preflight.check_benchmark_data(["humaneval", "mbpp"], str(tmp_path))
    write_set(tmp_path, "mbpp", MBPP_SANITIZED)
    preflight.check_benchmark_data(["humaneval", "mbpp"], str(tmp_path))


def test_a_test_case_payload_that_would_run_code_is_refused(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("ran",))

    hostile = base64.b64encode(zlib.compress(pickle.dumps(Boom()))).decode()
    with pytest.raises(pickle.UnpicklingError, match="refusing builtins.print"):
        code_sets.decode_cases(hostile)


def test_the_task_yamls_load_through_the_harness(tmp_path):
    from eval.harness import load_tasks

    write_set(tmp_path, "mbpp", MBPP_SANITIZED)
    write_set(tmp_path, "livecodebench", LCB_ROWS)
    tasks = {t.config.task: t for t in load_tasks(["mbpp", "livecodebench"], 1, str(tmp_path))}
    assert {name: len(list(t.test_docs())) for name, t in tasks.items()} == {"mbpp": 2, "livecodebench": 2}
    lcb = tasks["livecodebench"]
    assert "Question: Given two integers" in lcb.doc_to_text(next(iter(lcb.test_docs())))
