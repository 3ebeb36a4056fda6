"""A fleet of OpenAI-compatible endpoints (fast): least-loaded routing, benching with a fake clock, and a
run over three stand-in servers where one answers HTTP 500 for a while and one is killed mid-run."""

from __future__ import annotations

import threading

import pytest
from servers import StandInChatServer, free_port
from teacher_helpers import as_recipe, key_counts

from distill.errors import DistillError
from teacher.backends.endpoints import EndpointPool, safe_url
from teacher.backends.openai_backend import OpenAIBackend
from teacher.generate.stage import generate


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_requests_go_to_the_least_loaded_endpoint():
    pool = EndpointPool(["http://a/v1", "http://b/v1", "http://c/v1"])
    picked = [pool.pick().url for _ in range(6)]
    assert sorted(picked) == sorted(["http://a/v1", "http://b/v1", "http://c/v1"] * 2)
    a = pool.endpoints[0]
    pool.succeeded(a)
    pool.succeeded(a)  # a is now the least loaded
    assert pool.pick().url == "http://a/v1"


def test_failing_endpoint_is_benched_then_tried_again_for_longer_each_time():
    clock = Clock()
    pool = EndpointPool(["http://a/v1", "http://b/v1"], bench_after=3, bench_seconds=10, clock=clock)
    a, b = pool.endpoints
    assert [pool.failed(a, "HTTP 500") for _ in range(3)] == [None, None, 10.0]
    assert [pool.pick() for _ in range(3)] == [b, b, b]  # a is benched: b takes its share
    assert pool.wait_seconds() == 0  # b is available
    clock.now += 10.5
    assert a in pool.available()
    assert pool.failed(a, "ConnectError") == 20.0  # on probation: one failure benches it, twice as long
    clock.now += 21
    pool.succeeded(a)  # back in full
    assert [pool.failed(a, "HTTP 500") for _ in range(3)] == [None, None, 10.0]
    report = pool.report()["http://a/v1"]
    assert report["benched"] == 3 and report["requests_ok"] == 1 and report["error HTTP 500"] == 6


def test_the_last_available_endpoint_is_never_benched_and_a_retry_avoids_the_failed_one():
    clock = Clock()
    pool = EndpointPool(["http://a/v1", "http://b/v1"], bench_after=1, bench_seconds=10, clock=clock)
    a, b = pool.endpoints
    assert pool.failed(a, "HTTP 503") == 10.0
    assert pool.failed(b, "HTTP 503") is None  # b is all that is left
    clock.now += 11
    assert pool.pick(avoid=a) is b and pool.pick(avoid=b) is a


def test_urls_in_reports_carry_no_credentials():
    assert safe_url("https://user:secret@host:8443/v1?key=sk-1") == "https://host:8443/v1"


def test_check_benches_an_unreachable_endpoint_and_refuses_when_none_answers(capsys):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    fast = {"max_retries": 1, "retry_backoff": 0.01, "request_timeout": 2.0}
    with StandInChatServer() as server:
        backend = OpenAIBackend("stand-in", base_url=[dead, server.url], **fast)
    assert backend.pool.endpoints[0].benched == 1
    assert "unreachable" in capsys.readouterr().err
    with pytest.raises(DistillError, match="cannot reach teacher.openai.base_url"):
        OpenAIBackend("stand-in", base_url=[dead, f"http://127.0.0.1:{free_port()}/v1"], **fast)


def test_fleet_with_a_failing_and_a_killed_endpoint_delivers_every_row_once(gen_recipe_dict, tmp_path):
    """48 requests over three endpoints: one answers HTTP 500 to its first 3 requests, one is killed after
    answering 5 (its requests in flight are dropped); the run still has every row exactly once."""
    recipe = gen_recipe_dict
    recipe["teacher"].update(backend="openai", model="stand-in", chat_template=None, samples_per_prompt=8)
    out = tmp_path / "out"
    out.mkdir()
    with (
        StandInChatServer(delay=0.2) as steady,
        StandInChatServer(fail_first=3, delay=0.2) as flaky,
        StandInChatServer(delay=0.2) as doomed,
    ):
        recipe["teacher"]["openai"] = {
            "base_url": [steady.url, flaky.url, doomed.url],
            "concurrency": 2,
            "max_retries": 6,
            "retry_backoff": 0.02,
            "request_timeout": 5.0,
            "bench_after": 2,
            "bench_seconds": 0.3,
        }
        killer = threading.Thread(target=_kill_after, args=(doomed, 5), daemon=True)
        killer.start()
        metrics = generate(as_recipe(recipe), None, out)
        killer.join(timeout=5)
    counts = key_counts(out)
    assert len(counts) == 48 and set(counts.values()) == {1}
    assert doomed.dead.is_set() and len(doomed.requests) > doomed.answered  # some were dropped in flight
    assert steady.answered + flaky.answered + doomed.answered >= 48
    report = metrics["endpoints"]
    assert sum(e["requests_ok"] for e in report.values()) == 48
    assert report[flaky.url]["error HTTP 500"] == 3 and report[flaky.url]["requests_ok"] > 0
    assert report[doomed.url]["errors"] >= 1 and report[doomed.url]["benched"] >= 1  # its work went elsewhere
    assert report[steady.url]["errors"] == 0


def _kill_after(server: StandInChatServer, answers: int) -> None:
    while server.answered < answers:
        threading.Event().wait(0.005)
    server.kill()


def test_base_url_list_is_checked_and_one_url_stays_a_string():
    from pydantic import ValidationError

    from distill.recipe import OpenAIOptions

    assert OpenAIOptions(base_url="http://a/v1").base_urls == ["http://a/v1"]
    assert OpenAIOptions(base_url="http://a/v1").model_dump()["base_url"] == "http://a/v1"  # same fingerprint
    for urls, message in (([], "an empty list"), (["http://a/v1", "http://a/v1/"], "listed twice")):
        with pytest.raises(ValidationError, match=message):
            OpenAIOptions(base_url=urls)
