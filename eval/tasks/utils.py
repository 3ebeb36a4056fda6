"""Helpers the task YAMLs in this folder reference with `!function utils.<name>`.

Scoring goes through distill.verify, the same checker the filter stage uses, so a trace kept for training
and an answer counted at evaluation are judged by one rule.
"""

from __future__ import annotations

import math
from pathlib import Path

from distill.records import read_rows
from distill.verify import verify_completion

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


def keep_all(resps, docs):
    """Filter that keeps every repeat, so process_results sees all n samples of a problem."""
    return resps


def _pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimator (Chen et al. 2021) from n samples with c correct."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _score(doc: dict, results: list, fallback: str) -> dict[str, float]:
    # With `repeats` and the keep_all filter, lm-eval passes one instance holding all n responses.
    if results and isinstance(results[0], list):
        results = results[0]
    correct = [verify_completion(doc["answer"], text, fallback).correct for text in results]
    n, c = len(correct), sum(correct)
    return {"pass_at_1": c / n, "pass_at_n": _pass_at_k(n, c, n)}


def process_results_boxed(doc: dict, results: list[str]) -> dict[str, float]:
    """Answer = last \\boxed{} of the final answer; nothing else counts."""
    return _score(doc, results, "none")


def process_results_lenient(doc: dict, results: list[str]) -> dict[str, float]:
    """Answer = last \\boxed{} of the final answer, else its last number (for weak models on easy tasks)."""
    return _score(doc, results, "last_number")
