"""Per-sample logs as zstd parquet: the same fields as lm-eval's log, readable by `datasets`, several times
smaller than the JSON lines they replace on long answers, and re-scoring from them reproduces every score."""

from __future__ import annotations

import json
import random

import pytest

from eval.harness import problem_results, problem_votes, read_samples, write_samples
from eval.tasks import utils

WORDS = [
    "so",
    "the",
    "sum",
    "of",
    "the",
    "digits",
    "is",
    "then",
    "we",
    "carry",
    "one",
    "and",
    "add",
    "the",
    "tens",
    "which",
    "gives",
    "us",
    "wait",
    "let",
    "me",
    "check",
    "again",
    "because",
    "the",
    "units",
    "place",
    "was",
    "seven",
    "plus",
    "eight",
    "fifteen",
    "write",
    "five",
    "carry",
    "one",
    "hence",
    "therefore",
    "total",
]


def long_answer_log(problems: int = 8, n: int = 16, words: int = 1500) -> list[dict]:
    """lm-eval-shaped samples (repeats: one instance holding n answers) with R1-length reasoning."""
    rng = random.Random(0)
    samples = []
    for i in range(problems):
        gold = str(rng.randint(10, 99))
        texts = []
        for _ in range(n):
            thought = " ".join(rng.choice(WORDS) for _ in range(words))
            answer = gold if rng.random() < 0.4 else str(rng.randint(10, 99))
            texts.append(f"<think>\n{thought}</think> The answer is \\boxed{{{answer}}}.")
        doc = {"id": f"p{i}", "problem": f"What is {gold}?", "answer": gold}
        samples.append(
            {
                "doc_id": i,
                "doc": doc,
                "target": gold,
                "arguments": [[f"<|user|>{doc['problem']}<|assistant|>", {"max_gen_toks": 32768}]],
                "resps": [[texts]],
                "filtered_resps": [texts],
                "filter": "all",
                "metrics": ["pass_at_1", "pass_at_n", "maj_at_n", "answer_votes"],
                "doc_hash": f"{i:064x}",
                **utils.process_results_boxed(doc, [texts]),
            }
        )
    return samples


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    samples = long_answer_log()
    folder = tmp_path_factory.mktemp("log")
    jsonl = folder / "samples.jsonl"
    jsonl.write_text("".join(json.dumps(s, default=str) + "\n" for s in samples))
    return samples, jsonl, write_samples(samples, folder / "samples.parquet")


def test_compact_log_is_several_times_smaller_on_long_answers(logged):
    _, jsonl, parquet = logged
    ratio = jsonl.stat().st_size / parquet.stat().st_size
    print(
        f"jsonl {jsonl.stat().st_size / 1e6:.2f} MB -> parquet {parquet.stat().st_size / 1e6:.2f} MB ({ratio:.1f}x)"
    )
    assert ratio > 4


def test_round_trip_keeps_every_field(logged):
    samples, _, parquet = logged
    assert read_samples(parquet) == json.loads(json.dumps(samples, default=str))


def test_readable_by_datasets(logged):
    datasets = pytest.importorskip("datasets")
    samples, _, parquet = logged
    table = datasets.load_dataset("parquet", data_files=str(parquet), split="train")
    assert table.num_rows == len(samples) and {"doc", "resps", "pass_at_1", "answer_votes"} <= set(
        table.column_names
    )
    assert table[0]["pass_at_1"] == samples[0]["pass_at_1"] and table[0]["target"] == samples[0]["target"]


def test_rescoring_from_the_compact_log_reproduces_every_score(logged):
    samples, _, parquet = logged
    again = read_samples(parquet)
    for sample in again:
        scores = utils.process_results_boxed(sample["doc"], sample["filtered_resps"])
        assert {k: sample[k] for k in scores} == json.loads(json.dumps(scores))
    n = len(samples[0]["filtered_resps"][0])
    assert problem_results(again, n) == problem_results(samples, n)
    assert problem_votes(again) == json.loads(json.dumps(problem_votes(samples)))
