"""Batch verification with hard per-item deadlines (``verify_many``).

Cheap decisions (no answer, plain numbers) are made in this process; the rest is sent in small chunks to
worker processes. Each worker streams one result per item; a worker that makes no progress for ``timeout``
seconds is killed and replaced, its current item is marked ``timeout`` and the rest of its chunk re-queued.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import deque
from multiprocessing.connection import wait

from tqdm.auto import tqdm

from distill.verify.answers import Verdict, _verdict, checked_match, fast_match, precheck

# fork: workers start in milliseconds and need no `if __name__ == "__main__"` guard in user scripts; they run
# only pure-Python parsing (no torch/tokenizers), so the usual fork-with-threads hazards do not apply.
_CTX = mp.get_context("fork")


def _worker_main(conn) -> None:
    while True:
        chunk = conn.recv()
        if chunk is None:
            return
        for index, gold, extracted in chunk:
            conn.send((index, *checked_match(gold, extracted)))


class _Worker:
    def __init__(self) -> None:
        self.conn, child = _CTX.Pipe()
        self.proc = _CTX.Process(target=_worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.inflight: deque[tuple[int, str, str]] = deque()
        self.deadline = 0.0

    def send(self, chunk: list[tuple[int, str, str]], timeout: float) -> None:
        self.inflight.extend(chunk)
        self.deadline = time.monotonic() + timeout
        self.conn.send(chunk)

    def stop(self) -> None:
        try:
            self.conn.send(None)
            self.proc.join(timeout=2)
        except (BrokenPipeError, OSError):
            pass
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def triage(
    items: list[tuple[str, str]], fallback: str
) -> tuple[list[Verdict | None], list[tuple[int, str, str]]]:
    """Decide what needs no sympy here; return (verdicts with gaps, the (index, gold, extracted) left)."""
    verdicts: list[Verdict | None] = [None] * len(items)
    pending = []
    for index, (gold, completion) in enumerate(items):
        extracted = precheck(gold, completion, fallback)
        if isinstance(extracted, Verdict):
            verdicts[index] = extracted
            continue
        fast = fast_match(gold, extracted)
        if fast is not None:
            verdicts[index] = _verdict(extracted, fast, "fast-path")
        else:
            pending.append((index, gold, extracted))
    return verdicts, pending


def verify_many(
    items: list[tuple[str, str]],
    fallback: str = "none",
    workers: int = 2,
    timeout: float = 10.0,
    progress: bool = True,
) -> list[Verdict]:
    """Verify (gold, completion) pairs; plain numbers in-process, the rest over ``workers`` processes.

    ``workers=0`` runs math-verify in this process (no hard deadline beyond math-verify's own).
    """
    verdicts, pending = triage(items, fallback)
    bar = tqdm(
        total=len(items),
        initial=len(items) - len(pending),
        desc="verify",
        unit="answer",
        disable=not progress,
        smoothing=0,
    )
    try:
        if workers <= 0:
            for index, gold, extracted in pending:
                verdicts[index] = _verdict(extracted, *checked_match(gold, extracted))
                bar.update(1)
        elif pending:
            _run_pool(pending, verdicts, min(workers, len(pending)), timeout, bar)
    finally:
        bar.close()
    return verdicts  # type: ignore[return-value]


def _run_pool(pending, verdicts, workers: int, timeout: float, bar) -> None:
    queue = deque(pending)
    extracted_of = {index: extracted for index, _, extracted in pending}
    chunk_size = max(1, min(32, len(pending) // (workers * 4)))
    pool = [_Worker() for _ in range(workers)]
    deaths: list[float] = []  # when workers died this batch: many in a short time means a systematic fault
    try:
        while queue or any(w.inflight for w in pool):
            for worker in pool:
                if not worker.inflight and queue:
                    worker.send([queue.popleft() for _ in range(min(chunk_size, len(queue)))], timeout)
            busy = [w for w in pool if w.inflight]
            wait_for = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = set(wait([w.conn for w in busy], timeout=wait_for))
            for slot, worker in enumerate(pool):
                if worker.conn in ready:
                    pool[slot] = _receive(worker, verdicts, extracted_of, timeout, bar, queue, deaths)
                elif worker.inflight and time.monotonic() > worker.deadline:
                    pool[slot] = _replace(worker, verdicts, "timeout", bar, queue)
    finally:
        for worker in pool:
            worker.stop()


def _receive(worker: _Worker, verdicts, extracted_of, timeout: float, bar, queue, deaths) -> _Worker:
    try:
        index, ok, how = worker.conn.recv()
    except (EOFError, OSError):  # the worker died (e.g. out of memory): blame its current item
        deaths.append(time.monotonic())
        if len(deaths) >= 20 and deaths[-1] - deaths[-20] < 10:
            raise RuntimeError(
                "verification workers keep dying; rerun with workers=0 to see the error"
            ) from None
        return _replace(worker, verdicts, "error: worker died", bar, queue)
    worker.inflight.popleft()
    worker.deadline = time.monotonic() + timeout
    verdicts[index] = _verdict(extracted_of[index], ok, how)
    bar.update(1)
    return worker


def _replace(worker: _Worker, verdicts, reason: str, bar, queue) -> _Worker:
    index, _, extracted = worker.inflight.popleft()
    verdicts[index] = Verdict(False, extracted, reason)
    bar.update(1)
    queue.extendleft(reversed(worker.inflight))
    worker.inflight.clear()
    worker.proc.kill()
    worker.proc.join()
    return _Worker()
