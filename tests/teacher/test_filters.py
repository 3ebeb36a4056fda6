"""The filter stage: each filter on small crafted rows, the stated order, the report, external traces, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from distill.errors import DistillError
from distill.recipe import DedupConfig, FilterConfig
from distill.records import read_rows, write_parquet
from teacher.filter import steps
from teacher.filter.stage import apply_filters, build_filters, filter_traces, load_traces, run_filter

B = "\\boxed"
QUIET = {"workers": 0, "max_repetition": None, "dedup": {"exact": False, "near": False}}


def row(pid: str, idx: int, problem: str, answer: str, completion: str, **extra) -> dict:
    return {
        "prompt_id": pid,
        "sample_idx": idx,
        "problem": problem,
        "answer": answer,
        "completion": completion,
        "messages": [{"role": "user", "content": problem}, {"role": "assistant", "content": completion}],
        "finish_reason": "stop",
        "completion_tokens": len(completion.split()),
        **extra,
    }


def cfg(**fields) -> FilterConfig:
    return FilterConfig.model_validate({**QUIET, "correctness": False, "drop_truncated": False, **fields})


def kept_ids(rows: list[dict], config: FilterConfig) -> list[tuple[str, int]]:
    _, kept, _ = filter_traces(rows, config)
    return [(r["prompt_id"], r["sample_idx"]) for r in kept]


def test_truncation_and_token_length():
    rows = [
        row("a", 0, "p", "1", f"{B}{{1}}", finish_reason="length"),
        row("a", 1, "p", "1", "one two three four"),
        row("a", 2, "p", "1", "x " * 30),
    ]
    assert kept_ids(rows, cfg(drop_truncated=True)) == [("a", 1), ("a", 2)]
    assert kept_ids(rows, cfg(min_completion_tokens=2, max_completion_tokens=10)) == [("a", 1)]


def test_correctness_is_rejection_sampling():
    rows = [row("a", i, "What is 2 + 2?", "4", f"{B}{{{n}}}") for i, n in enumerate([4, 5, 4])]
    assert kept_ids(rows, cfg(correctness=True)) == [("a", 0), ("a", 2)]


def test_keep_per_prompt_first_and_shortest():
    rows = [
        row("a", i, "p", "4", text)
        for i, text in enumerate(["long one here " + B + "{4}", B + "{4}", "mid " + B + "{4}"])
    ]
    assert kept_ids(rows, cfg(keep_per_prompt=2, keep_policy="first")) == [("a", 0), ("a", 1)]
    assert sorted(kept_ids(rows, cfg(keep_per_prompt=2, keep_policy="shortest"))) == [("a", 1), ("a", 2)]


def test_pass_rate_band_keeps_prompts_solved_sometimes():
    rows = [row("always", i, "p1", "1", f"{B}{{1}}") for i in range(4)]
    rows += [row("sometimes", i, "p2", "1", f"{B}{{{1 if i < 2 else 0}}}") for i in range(4)]
    rows += [row("never", i, "p3", "1", f"{B}{{0}}") for i in range(4)]
    kept = {pid for pid, _ in kept_ids(rows, cfg(pass_rate_band=[0.1, 0.9]))}
    assert kept == {"sometimes"}
    # The band is measured on every sample, before correctness drops the wrong ones.
    kept = kept_ids(rows, cfg(pass_rate_band=[0.1, 0.9], correctness=True))
    assert kept == [("sometimes", 0), ("sometimes", 1)]


@pytest.mark.parametrize(
    ("completion", "problem"),
    [
        (f"<think>2+2 is 4</think> {B}{{4}}", None),
        (f"2+2 is 4</think> {B}{{4}}", None),  # <think> sits in the chat template
        (f"{B}{{4}}", "no <think> block"),
        (f"<think>2+2 is 4 {B}{{4}}", "unclosed <think>"),
        (f"<think>a</think><think>b</think> {B}{{4}}", "several think blocks"),
        (f"</think>x<think> {B}{{4}}", "</think> before <think>"),
        (f"<think> </think> {B}{{4}}", "empty reasoning"),
        ("<think>2+2 is 4</think> four", "no final answer after </think>"),
    ],
)
def test_think_format(completion, problem):
    assert steps.think_format_problem(completion, "none") == problem


def test_think_format_of_code_rows_wants_a_fenced_block_not_a_boxed_answer():
    code = {
        "tests": "assert f() == 1",
        "completion": "<think>easy</think>\n```python\ndef f():\n    return 1\n```",
    }
    bare = {**code, "completion": "<think>easy</think> def f(): return 1"}
    math = {"tests": None, "completion": code["completion"]}
    assert steps.think_format("none")([code, bare, math]) == [
        None,
        "no code block after </think>",
        "no final answer after </think>",
    ]


def test_format_filter_is_off_by_default():
    assert "format" not in [name for name, _ in build_filters(FilterConfig(), [])]


def test_repetition_ratio_catches_loops_not_prose():
    prose = "We add the tens and then the ones, carry the one, and check the sum against an estimate of it."
    loop = "Let me check the sum again because I am not sure about it. " * 12
    assert steps.repetition_ratio(prose, 10) == 0.0
    assert steps.repetition_ratio(loop, 10) > 0.8
    rows = [row("a", 0, "p", "1", prose), row("a", 1, "p", "1", loop)]
    assert kept_ids(rows, cfg(max_repetition=0.5)) == [("a", 0)]


def test_language_consistency():
    problem = "A farmer has twelve cows and buys five more. How many cows does the farmer have now?"
    english = "The farmer starts with twelve cows.\nBuying five more gives seventeen cows in total, so 17."
    chinese = (
        "农民一开始有十二头牛。他又买了五头牛，所以现在一共有十七头牛。答案是十七头牛，我们已经检查过了。"
    )
    french = (
        "Le fermier commence avec douze vaches. Il en achète cinq de plus, ce qui donne dix-sept vaches "
        "au total, donc la réponse est dix-sept."
    )
    rows = [
        row("a", 0, problem, "17", english),
        row("a", 1, problem, "17", chinese),  # other script
        row("a", 2, problem, "17", english + "\n" + chinese * 2),  # drifts into another script
        row("a", 3, problem, "17", french),  # same script, other language
        row("a", 4, problem, "17", "$12 + 5 = 17$ so \\boxed{17}"),  # nothing to judge
        row("b", 0, "What is 47 + 38?", "85", chinese),  # a short prompt still has a script
        row("c", 0, "47 + 38 = ?", "85", chinese),  # no letters in the prompt: not judged
    ]
    kept = kept_ids(rows, cfg(language_consistency=True))
    assert kept == [("a", 0), ("a", 4), ("c", 0)]
    assert steps.detect_language(problem) == "en" and steps.detect_language(french) == "fr"
    assert steps.detect_language("19 + 33 = 52") is None
    reasons = [steps.language_problem(problem, r["completion"], 0.8) for r in rows[1:4]]
    assert reasons == [
        "0% of the reasoning in the prompt's script (latin)",
        reasons[1],
        "reasoning in fr, prompt in en",
    ]
    assert reasons[1].endswith("(latin)")


def test_language_check_has_no_false_flags_on_real_math_text():
    from teacher.filter.steps import language_problem

    gsm = (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
        "altogether in April and May.\n#### 72"
    )
    latex = (
        "Let $\\bold{v} = \\begin{pmatrix} x \\\\ y \\end{pmatrix}$.  Then\n\\begin{align*}\n"
        "\\left\\| \\bold{v} \\right\\| &= \\sqrt{x^2 + y^2}\n\\end{align*}so the largest value is "
        "$\\boxed{4}$, which we reach when the vector points along the first axis."
    )
    question = "Natalia sold clips to 48 of her friends in April. How many clips did she sell altogether?"
    assert language_problem(question, gsm, 0.8) is None
    assert language_problem(question, latex, 0.8) is None


def test_exact_and_near_duplicates_use_the_whole_trace():
    text = (
        "First add the ones digits: seven plus eight is fifteen, so we write five and carry one to the tens. "
        "Then add the tens digits: four plus three is seven, plus the carried one makes eight tens. "
        "Eight tens and five ones make the number we want. To check, round to fifty plus forty, which is "
        "ninety, a little more than the exact sum, as expected. So the sum is {}."
    )
    rows = [
        row("a", 0, "What is 47 + 38?", "85", text.format(85)),
        row("a", 1, "What is 47 + 38?", "85", "  " + text.format(85).upper()),  # exact up to case/space
        row("a", 2, "What is 47 + 38?", "85", text.format(85).replace("First", "So first")),  # near
        row("c", 0, "What is 47 + 39?", "86", text.format(86)),
    ]  # near-identical wording, other answer
    config = cfg(dedup={"exact": True, "near": True})
    verified, kept, report = filter_traces(rows, config)
    assert [(r["prompt_id"], r["sample_idx"]) for r in kept] == [("a", 0), ("c", 0)]
    assert report["removed"] == {"exact_duplicate": 1, "near_duplicate": 1}
    assert verified[1]["removed_detail"] == "same as a/0" and verified[2]["removed_detail"] == "near a/0"


def test_short_arithmetic_rows_are_not_collapsed():
    # The quickstart's rows: short, near-identical wording, different problems. None may be merged.
    rows = [
        row(f"p{a}{b}", 0, f"What is {a} + {b}?", str(a + b), f"{a} + {b} = {a + b}.")
        for a in range(10, 40, 3)
        for b in range(50, 90, 7)
    ]
    rows += [
        row("p1050", 1, "What is 10 + 50?", "60", "10  +  50 = 60.")
    ]  # same problem and text: a duplicate
    _, kept, report = filter_traces(rows, cfg(dedup=DedupConfig().model_dump()))
    assert len(kept) == len(rows) - 1
    assert report["removed"] == {"exact_duplicate": 1, "near_duplicate": 0}


def test_order_and_report(tmp_path: Path):
    rows = [
        row("a", 0, "What is 2 + 2?", "4", f"{B}{{4}}", finish_reason="length"),
        row("a", 1, "What is 2 + 2?", "4", f"{B}{{5}}"),
        row("a", 2, "What is 2 + 2?", "4", f"{B}{{4}}"),
        row("a", 3, "What is 2 + 2?", "4", f"{B}{{4}}"),
        row("b", 0, "What is 3 + 3?", "6", f"{B}{{6}}"),
    ]
    traces = tmp_path / "traces.jsonl"
    traces.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = cfg(
        correctness=True, drop_truncated=True, keep_per_prompt=1, dedup={"exact": True, "near": True}
    )
    report = run_filter(traces, tmp_path / "out", config)
    assert report["order"] == [
        "truncated",
        "incorrect",
        "exact_duplicate",
        "near_duplicate",
        "over_per_prompt_cap",
    ]
    assert report["removed"] == {
        "truncated": 1,
        "incorrect": 1,
        "exact_duplicate": 1,
        "near_duplicate": 0,
        "over_per_prompt_cap": 0,
    }
    for key in (
        "rows_in",
        "rows_out",
        "removed",
        "prompts_in",
        "prompts_out",
        "pass_rate",
        "answer_extraction",
    ):
        assert key in report
    assert (report["rows_in"], report["rows_out"], report["prompts_out"]) == (5, 2, 2)
    assert report["verification"]["fast_path_share"] == 1.0
    assert sum(b["prompts"] for b in report["pass_rate_per_prompt"]["histogram"]) == 2
    assert report["lengths"]["before"]["rows"] == 5 and report["lengths"]["after"]["rows"] == 2
    out = tmp_path / "out"
    assert json.loads((out / "report.json").read_text())["rows_out"] == 2
    assert "| truncated | 5 | 1 | 4 |" in (out / "report.md").read_text()
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    train = read_rows(out / "train.parquet")
    assert train[0]["completion"] == [{"role": "assistant", "content": f"{B}{{4}}"}]
    verified = read_rows(out / "verified.parquet")
    assert [r["removed_by"] for r in verified] == ["truncated", "incorrect", None, "exact_duplicate", None]


def test_external_traces_with_column_mapping(tmp_path: Path):
    traces = tmp_path / "t.jsonl"
    data = [
        {"answer": "model says 2", "question": "What is 1 + 1?", "gold": 2, "response": f"{B}{{2}}"},
        {"question": "What is 1 + 1?", "gold": 2, "response": f"{B}{{3}}"},
        {"question": "What is 2 + 2?", "gold": 4, "response": "it is 4"},
    ]
    traces.write_text("".join(json.dumps(r) + "\n" for r in data))
    config = cfg(
        correctness=True,
        answer_fallback="last_number",
        columns={"problem": "question", "answer": "gold", "completion": "response"},
    )
    rows = load_traces(traces, config.columns)
    assert rows[0]["prompt_id"] == rows[1]["prompt_id"] != rows[2]["prompt_id"]
    assert [r["sample_idx"] for r in rows] == [0, 1, 0] and rows[0]["answer"] == "2"
    report = run_filter(traces, tmp_path / "out", config)
    assert report["rows_out"] == 2
    assert read_rows(tmp_path / "out" / "train.parquet")[0]["prompt"] == [
        {"role": "user", "content": "What is 1 + 1?"}
    ]


def test_generated_shards_get_their_problem_text(tmp_path: Path):
    folder = tmp_path / "generate"
    rows = [row("q1", 0, "What is 1 + 1?", "2", f"{B}{{2}}")]
    for r in rows:
        r.pop("problem")
    write_parquet(rows, folder / "shard-00000.parquet")
    write_parquet([{"id": "q1", "problem": "What is 1 + 1?", "answer": "2"}], folder / "prompts.parquet")
    assert load_traces(folder)[0]["problem"] == "What is 1 + 1?"


@pytest.mark.parametrize(
    ("content", "columns", "message"),
    [
        ('{"problem": "p", "answer": "1"}\n', {}, "missing column(s) completion"),
        ('{"problem": "p", "completion": "c"}\n', {}, "missing column(s) answer"),
        ('{"answer": "1", "completion": "c"}\n', {}, "missing column(s) problem"),
        ('{"problem": "p", "answer": ["1"], "completion": "c"}\n', {}, "row 1: answer must be"),
        ('{"problem": "p", "answer": null, "completion": "c"}\n', {}, "row 1: answer must be"),
        ('{"problem": "p", "answer": "1", "completion": 5}\n', {}, "row 1: completion must be a string"),
        ('{"problem": 3, "answer": "1", "completion": "c"}\n', {}, "row 1: problem must be a string"),
        (
            '{"problem": "p", "answer": "1", "completion": "c"}\n',
            {"completion": "response"},
            "names column 'response'",
        ),
        ("", {}, "no rows"),
        ("not json\n", {}, "not valid JSON"),
    ],
)
def test_bad_traces_give_one_line_errors(tmp_path: Path, content, columns, message):
    traces = tmp_path / "t.jsonl"
    traces.write_text(content)
    with pytest.raises(DistillError) as info:
        run_filter(traces, tmp_path / "out", cfg(columns=columns))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(traces) in str(info.value)


def test_token_limits_need_token_counts(tmp_path: Path):
    traces = tmp_path / "t.jsonl"
    traces.write_text('{"problem": "p", "answer": "1", "completion": "c"}\n')
    with pytest.raises(DistillError, match="completion_tokens"):
        run_filter(traces, tmp_path / "out", cfg(max_completion_tokens=10))


def test_nothing_kept_is_an_error_with_the_report_written(tmp_path: Path):
    traces = tmp_path / "t.jsonl"
    traces.write_text('{"problem": "p", "answer": "1", "completion": "2"}\n')
    with pytest.raises(DistillError, match="kept 0 of 1"):
        run_filter(traces, tmp_path / "out", cfg(correctness=True, answer_fallback="last_number"))
    assert (tmp_path / "out" / "report.md").exists()


def test_apply_filters_records_each_removal():
    rows = [row("a", 0, "p", "1", "x"), row("a", 1, "p", "1", "y")]
    kept, funnel = apply_filters(
        rows, [("drop_y", lambda rs: ["is y" if r["completion"] == "y" else None for r in rs])]
    )
    assert [r["completion"] for r in kept] == ["x"]
    assert rows[1]["removed_by"] == "drop_y" and rows[1]["removed_detail"] == "is y" and not rows[1]["kept"]
    assert funnel[0]["removed"] == 1


def test_cli_filter_on_an_external_traces_file(tmp_path: Path, tiny_recipe_dict: dict, capsys):
    from distill.cli import main
    from distill.pipeline import plan
    from distill.recipe import load_recipe

    traces = tmp_path / "mine.jsonl"
    traces.write_text(
        "".join(
            json.dumps({"q": f"What is {n} + 1?", "answer": str(n + 1), "completion": f"{B}{{{n + 1}}}"})
            + "\n"
            for n in range(3)
        )
    )
    tiny_recipe_dict["filter"] = {"correctness": True, "columns": {"problem": "q"}}
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe_dict))
    assert main(["filter", str(recipe), "--traces", str(traces), "--workers", "0"]) == 0
    run_dir = Path(tiny_recipe_dict["run_dir"])
    assert json.loads((run_dir / "filter" / "report.json").read_text())["rows_out"] == 3
    # The traces file is an input: editing it changes the stage's fingerprint; no generate stage is planned.
    loaded = load_recipe(recipe, [f"filter.traces={traces}"])
    before = plan(loaded)
    assert [s.name for s in before][:2] == ["filter", f"sft:{tiny_recipe_dict['students'][0]['name']}"]
    traces.write_text(traces.read_text() + json.dumps({"q": "x", "answer": "1", "completion": "1"}) + "\n")
    assert plan(loaded)[0].config != before[0].config
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "p"}\n')
    capsys.readouterr()
    assert main(["filter", str(recipe), "--traces", str(bad), "--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing column(s) answer, completion" in err[0]


def test_every_filter_on_runs_in_the_stated_order():
    from teacher.filter.decontaminate import BenchmarkSet, Decontaminator

    config = FilterConfig(
        min_completion_tokens=1,
        require_think_format=True,
        language_consistency=True,
        pass_rate_band=[0.1, 0.9],
        keep_per_prompt=2,
    )
    index = Decontaminator([BenchmarkSet("b", ["some benchmark problem text here"], ["0"])])
    names = [name for name, _ in build_filters(config, [], index)]
    assert names == [
        "contaminated", "truncated", "length", "format", "language", "repetition", "incorrect",
        "pass_rate_band", "exact_duplicate", "near_duplicate", "over_per_prompt_cap",
    ]  # fmt: skip
