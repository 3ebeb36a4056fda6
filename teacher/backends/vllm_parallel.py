"""Data parallel vLLM: independent engine replicas in their own processes, each on its own GPUs.

vLLM's offline ``LLM`` refuses ``data_parallel_size > 1`` in one process; its documented alternative is one
process per rank. For dense models the ranks share nothing, so each replica here is a plain engine pinned
to ``tensor_parallel_size`` GPUs through CUDA_VISIBLE_DEVICES, taking every n-th request; results stream
back through one queue. Replica r is seeded with seed + r so replicas do not draw identical samples.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Iterator
from typing import Any

from distill.errors import DistillError, first_line
from teacher.backends.base import Backend, GenerationRequest, GenerationResult, SamplingSpec
from teacher.backends.vllm_backend import VLLMBackend, import_vllm, on_cpu

_START_TIMEOUT_S = 1800  # loading a 70B checkpoint from network storage takes a while


def make_vllm_backend(model: str, *, data_parallel_size: int = 1, **options: Any) -> Backend:
    """One engine, or ``data_parallel_size`` engine replicas in their own processes (below)."""
    import_vllm()  # fail with the install hint before any process is spawned
    if data_parallel_size > 1:
        return DataParallelVLLM(model, data_parallel_size, **options)
    return VLLMBackend(model, **options)


def device_groups(replicas: int, tensor_parallel_size: int) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES for each replica; None on CPU (replicas share the cores)."""
    if on_cpu():
        return [None] * replicas
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        ids = [d.strip() for d in visible.split(",") if d.strip()]
    else:
        import torch

        ids = [str(i) for i in range(torch.cuda.device_count())]
    need = replicas * tensor_parallel_size
    if len(ids) < need:
        raise DistillError(
            f"teacher.vllm.data_parallel_size x tensor_parallel_size = {need} GPUs, but only "
            f"{len(ids)} are visible; lower one of them"
        )
    return [",".join(ids[r * tensor_parallel_size : (r + 1) * tensor_parallel_size]) for r in range(replicas)]


def _replica(rank: int, devices: str | None, model: str, options: dict, inbox, outbox) -> None:
    """Process body: start one engine, then serve (requests, sampling) jobs until told to stop (None)."""
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices
    try:
        backend = VLLMBackend(model, **{**options, "seed": options.get("seed", 0) + rank})
    except BaseException as exc:
        outbox.put(("error", rank, f"{type(exc).__name__}: {exc}"))
        return
    outbox.put(("ready", rank, backend.seed_scope))
    try:
        while (job := inbox.get()) is not None:
            requests, sampling = job
            for result in backend.generate(requests, sampling):
                outbox.put(("result", rank, result))
            outbox.put(("done", rank, None))
    except BaseException as exc:
        outbox.put(("error", rank, f"{type(exc).__name__}: {exc}"))
    finally:
        backend.close()


class DataParallelVLLM:
    name = "vllm"

    def __init__(self, model: str, replicas: int, *, tensor_parallel_size: int = 1, **options: Any):
        self.model_id = model
        ctx = multiprocessing.get_context("spawn")  # vLLM and CUDA do not survive fork
        self.outbox = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(replicas)]
        options = {**options, "tensor_parallel_size": tensor_parallel_size}
        # Not daemonic: each replica's vLLM spawns its own engine process, which daemons may not do.
        self.workers = [
            ctx.Process(
                target=_replica,
                args=(rank, devices, model, options, self.inboxes[rank], self.outbox),
                name=f"distill-vllm-dp{rank}",
            )
            for rank, devices in enumerate(device_groups(replicas, tensor_parallel_size))
        ]
        for worker in self.workers:
            worker.start()
        try:
            scopes = {self._receive(timeout=_START_TIMEOUT_S)[2] for _ in self.workers}
        except BaseException:
            self.close()
            raise
        self.seed_scope = scopes.pop() if len(scopes) == 1 else "engine"

    def _receive(self, timeout: float | None = None) -> tuple[str, int, Any]:
        """The next message from any replica; a replica's error or death becomes a DistillError."""
        waited = 0.0
        while True:
            try:
                kind, rank, payload = self.outbox.get(timeout=5)
                break
            except queue.Empty:
                waited += 5
                dead = [w for w in self.workers if not w.is_alive()]
                if dead:
                    raise DistillError(
                        f"vLLM replica {dead[0].name} exited (code {dead[0].exitcode})"
                    ) from None
                if timeout is not None and waited >= timeout:
                    raise DistillError(f"vLLM replicas sent nothing for {timeout:.0f} s") from None
        if kind == "error":
            raise DistillError(f"vLLM replica {rank} failed: {first_line(payload, 300)}")
        return kind, rank, payload

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingSpec
    ) -> Iterator[GenerationResult]:
        # Interleaved shares keep the replicas' loads (and prompt lengths) balanced.
        for rank, inbox in enumerate(self.inboxes):
            inbox.put((requests[rank :: len(self.inboxes)], sampling))
        running, complete = len(self.inboxes), False
        try:
            while running:
                kind, _, payload = self._receive()
                if kind == "done":
                    running -= 1
                else:
                    yield payload
            complete = True
        finally:
            if not complete:  # replicas would keep streaming into the queue: stop them for good
                self.close()

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for worker in self.workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=10)
        self.workers, self.inboxes = [w for w in self.workers if w.is_alive()], []
