"""Made-up trace sets with every kind of row the filter removes (wrong, truncated, unanswered, duplicated,
near-duplicated, looping, off-language, contaminated, badly formatted), in distill's trace columns or in
OpenR1-Math-220k's published schema; deterministic for a seed. Shared by the filter tests and
bench/bench_data_scale.py."""

from __future__ import annotations

import json
import random
from pathlib import Path

B = "\\boxed"
BENCHMARK_PROBLEM = "Find the number of ordered pairs of positive integers whose product is 36."


def _reasoning(rng: random.Random, a: int, b: int, words: int) -> str:
    filler = [
        "so",
        "then",
        "we",
        "add",
        "the",
        "numbers",
        "check",
        "carry",
        "digits",
        "again",
        "sum",
        "result",
    ]
    steps = [
        f"Step {i}: {' '.join(rng.choice(filler) for _ in range(8))} {a + i}." for i in range(words // 10)
    ]
    return f"We need {a} + {b}. " + " ".join(steps)


def _completion(rng: random.Random, a: int, b: int, kind: str, words: int) -> str:
    answer = a + b
    body = _reasoning(rng, a, b, words)
    if kind == "wrong":
        answer += 1
    if kind == "loop":
        body = "the sum is the sum is " * (words // 4 + 5)
    if kind == "chinese":
        body = "我们需要把这两个数加起来然后检查结果是否正确。" * 4
    if kind == "no_think":
        return f"{body} So {B}{{{answer}}}."
    return f"<think>\n{body}\n</think>\nThe answer is {B}{{{answer}}}."


_KINDS = ["ok"] * 10 + ["wrong"] * 4 + ["loop", "chinese", "no_think", "truncated", "duplicate", "near"]


def trace_rows(problems: int, samples: int = 2, words: int = 60, seed: int = 0, first: int = 0) -> list[dict]:
    """Rows in distill's trace columns (prompt_id, sample_idx, problem, answer, completion, messages, ...);
    ``first``: the first problem's number (sets written in parts)."""
    rng = random.Random(seed)
    rows: list[dict] = []
    for p in range(first, first + problems):
        a, b = rng.randint(10, 999), rng.randint(10, 999)
        problem = BENCHMARK_PROBLEM if p % 97 == 13 else f"What is {a} + {b}?"
        answer = str(a + b)
        previous = ""
        for s in range(samples):
            kind = rng.choice(_KINDS)
            text = _completion(rng, a, b, kind, words + rng.randint(-20, 20))
            if kind == "duplicate" and previous:
                text = previous.upper() if rng.random() < 0.5 else previous
            elif kind == "near" and previous:
                text = previous.replace("Step 1:", "Step one:", 1)
            previous = text
            rows.append(
                {
                    "prompt_id": f"p{p:06d}",
                    "sample_idx": s,
                    "problem": problem,
                    "answer": answer,
                    "completion": text,
                    "messages": [
                        {"role": "user", "content": problem},
                        {"role": "assistant", "content": text},
                    ],
                    "finish_reason": "length" if kind == "truncated" else "stop",
                    "completion_tokens": len(text.split()),
                }
            )
    return rows


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_benchmark(path: Path) -> Path:
    """A one-problem benchmark file that some trace problems copy (decontamination removes them)."""
    rows = [{"problem": BENCHMARK_PROBLEM, "answer": "9"}, {"problem": "What is 2 + 3 + 4?", "answer": "9"}]
    return write_jsonl(rows, path)


def openr1_table(problems: int, samples: int = 2, words: int = 60, seed: int = 0, first: int = 0):
    """A pyarrow table in OpenR1-Math-220k's schema: one row per problem, its generations in lists."""
    import pyarrow as pa

    rows = trace_rows(problems, samples, words, seed, first)
    by_problem: dict[str, list[dict]] = {}
    for row in rows:
        by_problem.setdefault(row["prompt_id"], []).append(row)
    out = []
    for pid, group in by_problem.items():
        head = group[0]
        answer = "" if int(pid[1:]) % 53 == 7 else head["answer"]  # some problems lack one
        out.append(
            {
                "problem": head["problem"],
                "solution": f"Add them: {B}{{{answer}}}",
                "answer": answer,
                "problem_type": "Algebra",
                "question_type": "math-word-problem",
                "source": "synthetic",
                "uuid": pid,
                "is_reasoning_complete": [r["finish_reason"] == "stop" for r in group],
                "generations": [r["completion"] for r in group],
                "correctness_math_verify": [f"{B}{{{answer}}}" in r["completion"] for r in group],
                "correctness_llama": None,
                "finish_reasons": [r["finish_reason"] for r in group],
                "correctness_count": sum(f"{B}{{{answer}}}" in r["completion"] for r in group),
                "messages": [
                    {"role": "user", "content": head["problem"]},
                    {"role": "assistant", "content": group[0]["completion"]},
                ],
            }
        )
    return pa.Table.from_pylist(out)
