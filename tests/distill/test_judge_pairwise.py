"""eval.judged: pairwise student-vs-baseline with both orders asked, against scripted stand-in judges (one
fair, one that always says A, one that likes long answers, one that rambles), the statistics by hand, answers
generated through lm-eval by the tiny model, and the eval preflight."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml
from servers import ScriptedChatServer

from distill.config.judge import JudgeConfig
from distill.errors import DistillError
from distill.judge import Judge, JudgeCache
from eval.pairwise import ask_both_orders, outcome, summarize
from eval.stats import wilson_interval

PROMPTS = [{"id": str(i), "prompt": f"Tell me about topic {i}."} for i in range(6)]
STUDENT = {str(i): f"A long and careful answer about topic {i}, with detail." for i in range(6)}
BASELINE = {str(i): f"Topic {i}." for i in range(6)}


def _responses(body: dict) -> tuple[str, str]:
    text = body["messages"][-1]["content"]
    a = re.search(r"<response_a>\n(.*?)\n</response_a>", text, re.DOTALL)[1]
    b = re.search(r"<response_b>\n(.*?)\n</response_b>", text, re.DOTALL)[1]
    return a, b


def longer_wins(body: dict) -> str:
    a, b = _responses(body)
    return f"Longer is better here.\nWINNER: {'A' if len(a) > len(b) else 'B' if len(b) > len(a) else 'TIE'}"


def always_a(body: dict) -> str:
    return "The first one.\nWINNER: A"


def rambles(body: dict) -> str:
    return "Both are fine, I think A or maybe B."


def judge_for(server) -> Judge:
    return Judge(JudgeConfig(model="judge", retry_backoff=0.01), [server.url], JudgeCache(None))


def test_both_orders_are_asked_and_a_fair_judge_gives_wins():
    with ScriptedChatServer(longer_wins) as server:
        pairs = ask_both_orders(judge_for(server), PROMPTS, STUDENT, BASELINE)
        assert len(server.requests) == 12  # every prompt in both orders
        firsts = [_responses(b)[0] for b in server.requests]
        assert sum(f in STUDENT.values() for f in firsts) == 6  # the student is A in half of them
    summary = summarize(pairs)
    assert (summary["wins"], summary["ties"], summary["losses"]) == (6, 0, 0)
    assert summary["win_rate"] == 1.0 and summary["win_rate_ci95"] == [
        round(x, 4) for x in wilson_interval(1.0, 6)
    ]
    assert summary["position_a_share"] == 0.5  # it named A and B equally often: no position bias
    assert summary["length_gap_words"] > 0 and summary["prompts_not_longer"] == 0
    assert summary["win_rate_when_not_longer"] is None


def test_a_position_biased_judge_is_measured_and_wins_nothing():
    with ScriptedChatServer(always_a) as server:
        summary = summarize(ask_both_orders(judge_for(server), PROMPTS, STUDENT, BASELINE))
    assert summary["position_a_share"] == 1.0
    assert summary["inconsistent"] == 6 and summary["ties"] == 6 and summary["wins"] == 0
    assert summary["win_rate"] == 0.5


def test_unparsed_replies_are_counted_and_left_out():
    with ScriptedChatServer(rambles) as server:
        summary = summarize(ask_both_orders(judge_for(server), PROMPTS, STUDENT, BASELINE))
    assert summary["judge_unparsed"] == 6 and summary["judged"] == 0 and "win_rate" not in summary


@pytest.mark.parametrize(
    ("as_a", "as_b", "expect"),
    [
        ("A", "B", "win"),
        ("B", "A", "loss"),
        ("A", "A", "inconsistent"),
        ("tie", "tie", "tie"),
        ("A", "tie", "win"),
        ("tie", "A", "loss"),
        (None, "B", "unparsed"),
    ],
)
def test_outcome_from_the_students_side(as_a, as_b, expect):
    assert outcome(as_a, as_b) == expect


def test_summary_by_hand():
    def pair(result: str, student_words: int = 3, baseline_words: int = 3) -> dict:
        votes = {"win": ("A", "B"), "loss": ("B", "A"), "tie": ("tie", "tie"), "unparsed": (None, "A")}[
            result
        ]
        return {
            "student_as_a": votes[0],
            "student_as_b": votes[1],
            "outcome": result,
            "student_words": student_words,
            "baseline_words": baseline_words,
        }

    pairs = [pair("win", 10, 2), pair("win"), pair("tie"), pair("loss", 1, 5), pair("unparsed")]
    s = summarize(pairs)
    assert (s["prompts"], s["judged"], s["judge_unparsed"]) == (5, 4, 1)
    assert s["win_rate"] == (1 + 1 + 0.5 + 0) / 4 and s["win_share"] == 0.5 and s["loss_share"] == 0.25
    # Named verdicts over every pair: (A,B) (A,B) (B,A) (-,A): A named 4 times of 7.
    assert s["position_a_share"] == round(4 / 7, 4)
    assert s["student_mean_words"] == (10 + 3 + 3 + 1) / 4 and s["baseline_mean_words"] == (2 + 3 + 3 + 5) / 4
    assert s["win_rate_when_not_longer"] == (1 + 0.5 + 0) / 3


def _recipe(tmp_path: Path, tiny_recipe_dict: dict, tiny_model_dir: Path, url: str, **bench):
    from distill.recipe import Recipe

    prompts = tmp_path / "open.jsonl"
    prompts.write_text("".join(json.dumps({"instruction": p["prompt"]}) + "\n" for p in PROMPTS[:3]))
    data = {k: v for k, v in tiny_recipe_dict.items() if k not in ("students",)}
    data["eval"] = {
        **data["eval"],
        "include_teacher": False,
        "models": [
            {"label": "left", "model": str(tiny_model_dir)},
            {"label": "right", "model": str(tiny_model_dir)},
        ],
        "judged": [{"name": "open", "prompts": str(prompts), "baseline": "right", "max_tokens": 8, **bench}],
        "temperature": 0.0,
    }
    data["judge"] = {"model": "judge", "base_url": url, "retry_backoff": 0.01}
    return Recipe.model_validate(data)


def _answers(tmp_path: Path, label: str) -> list[str]:
    return (tmp_path / "eval" / label / "judged_open.jsonl").read_text().splitlines()


def test_answers_come_from_lm_eval_and_the_judge_compares_them(tmp_path, tiny_recipe_dict, tiny_model_dir):
    from eval.judged import run_judged
    from eval.pairwise import judged_markdown
    from eval.stage import eval_targets

    with ScriptedChatServer(longer_wins) as server:
        recipe = _recipe(tmp_path, tiny_recipe_dict, tiny_model_dir, server.url)
        targets, bases = eval_targets(recipe, tmp_path / "run")
        judge = judge_for(server)
        rows = run_judged(recipe, targets, bases, tmp_path / "eval", False, judge)
        # The same weights answer alike (greedy), so a prompt's two orders are one question: 3 requests.
        assert _answers(tmp_path, "left") == _answers(tmp_path, "right")
        assert len(server.requests) == 3
        judge.ask("pairwise", [{"problem": "p", "response_a": "x", "response_b": "yy"}] * 2)
        assert len(server.requests) == 4  # one question twice in a batch is asked once
    answers = _answers(tmp_path, "left")
    assert len(answers) == 3 and all(isinstance(json.loads(a)["answer"], str) for a in answers)
    assert (
        rows[0]["student"] == "left" and rows[0]["baseline"] == "right" and rows[0]["summary"]["prompts"] == 3
    )
    # The same weights, greedy: equal answers, so the length-preferring judge calls every pair a tie.
    assert rows[0]["summary"]["ties"] == 3 and rows[0]["summary"]["length_gap_words"] == 0
    section = judged_markdown(rows)
    assert "## Judged benchmarks" in section and "| open | left | right | 3 |" in section


def test_the_eval_preflight_checks_judged_benchmarks(tmp_path, tiny_recipe_dict, tiny_model_dir):
    from eval.judged import check_judged

    recipe = _recipe(tmp_path, tiny_recipe_dict, tiny_model_dir, "http://127.0.0.1:9/v1")
    assert "pairwise" in check_judged(recipe)
    bad = _recipe(tmp_path, tiny_recipe_dict, tiny_model_dir, "http://127.0.0.1:9/v1", baseline="nobody")
    with pytest.raises(DistillError, match="baseline 'nobody' is not an eval.models label"):
        check_judged(bad)
    base = _recipe(tmp_path, tiny_recipe_dict, tiny_model_dir, "http://127.0.0.1:9/v1", baseline="base")
    with pytest.raises(DistillError, match="set eval.include_base: true"):
        check_judged(base)
    missing = _recipe(
        tmp_path, tiny_recipe_dict, tiny_model_dir, "http://127.0.0.1:9/v1", prompts="nope.jsonl"
    )
    with pytest.raises(DistillError, match="no such file"):
        check_judged(missing)
    no_url = _recipe(tmp_path, tiny_recipe_dict, tiny_model_dir, "http://127.0.0.1:9/v1")
    no_url.judge.base_url = None
    with pytest.raises(DistillError, match="judge.base_url is missing"):
        check_judged(no_url)


def test_judged_benchmarks_leave_the_eval_fingerprint_alone_until_used(
    tiny_recipe_dict, tmp_path, tiny_model_dir
):
    from distill.pipeline import plan
    from distill.recipe import Recipe
    from distill.runs import fingerprint

    def eval_fp(recipe) -> str:
        spec = next(s for s in plan(recipe) if s.name == "eval")
        return fingerprint(spec.config, spec.upstream)

    plain = Recipe.model_validate(yaml.safe_load(yaml.safe_dump(tiny_recipe_dict)))
    assert "judged" not in next(s for s in plan(plain) if s.name == "eval").config["eval"]
    judged = _recipe(tmp_path, tiny_recipe_dict, tiny_model_dir, "http://127.0.0.1:9/v1")
    other_endpoint = _recipe(tmp_path, tiny_recipe_dict, tiny_model_dir, "http://127.0.0.1:10/v1")
    assert eval_fp(judged) == eval_fp(other_endpoint)
    other_model = _recipe(tmp_path, tiny_recipe_dict, tiny_model_dir, "http://127.0.0.1:9/v1")
    other_model.judge.model = "judge-2"
    assert eval_fp(judged) != eval_fp(other_model)


def test_the_eval_stage_writes_judged_results_into_the_comparison_and_keeps_the_key_out(
    tmp_path, tiny_recipe_dict, tiny_model_dir, monkeypatch, capsys
):
    from distill.cli import main

    secret = "sk-pairwise-secret-0123456789"
    monkeypatch.setenv("PAIRWISE_KEY", secret)
    with ScriptedChatServer(longer_wins) as server:
        recipe = _recipe(tmp_path, tiny_recipe_dict, tiny_model_dir, server.url).model_dump(mode="json")
        recipe = {k: v for k, v in recipe.items() if k not in ("data", "teacher", "students", "grpo")}
        recipe["judge"]["api_key_env"] = "PAIRWISE_KEY"
        path = tmp_path / "judged.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        assert main(["eval", str(path)]) == 0, capsys.readouterr().err
        assert server.requests and set(server.auth) == {f"Bearer {secret}"}
    run_dir = Path(recipe["run_dir"])
    metrics = json.loads((run_dir / "manifest.json").read_text())["stages"]["eval"]["metrics"]
    assert metrics["judged"][0]["benchmark"] == "open" and metrics["judge_cost"]["total"]["calls"] >= 3
    assert "## Judged benchmarks" in (run_dir / "eval" / "comparison.md").read_text()
    assert json.loads((run_dir / "eval" / "judged.json").read_text())["judged"][0]["student"] == "left"
    # Like any benchmark: in comparison.json and a line of comparison.csv beside the verified rows.
    comparison = json.loads((run_dir / "eval" / "comparison.json").read_text())
    assert (
        comparison["judged"][0]["summary"]["prompts"] == 3 and comparison["judge_cost"]["total"]["calls"] >= 3
    )
    lines = list(csv.DictReader((run_dir / "eval" / "comparison.csv").read_text().splitlines()))
    judged_line = next(line for line in lines if line["role"] == "judged")
    assert (judged_line["model"], judged_line["task"], judged_line["baseline"]) == ("left", "open", "right")
    assert float(judged_line["win_rate"]) == comparison["judged"][0]["summary"]["win_rate"]
    assert any(line["role"] != "judged" and line["pass_at_1"] for line in lines)
    # The run's page shows the judged rows and what the judge cost.
    from distill.report import write_report

    page = write_report(run_dir).read_text()
    assert 'id="judged"' in page and 'id="judge-cost"' in page
    calls = metrics["judge_cost"]["total"]["calls"]
    assert re.search(rf'id="judge-cost".*?<code>eval</code>.*?<td[^>]*>{calls}</td>', page, re.S)
    for file in (p for p in run_dir.rglob("*") if p.is_file()):
        assert secret.encode() not in file.read_bytes(), file
