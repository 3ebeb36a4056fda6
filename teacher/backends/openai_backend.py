"""Any OpenAI-compatible chat-completions server: vLLM, SGLang, TGI, `transformers serve`, hosted APIs.

Requests run on an asyncio loop in a background thread with at most ``concurrency`` in flight per endpoint
(servers batch concurrent requests, so concurrency is what buys throughput). ``base_url`` may list several
endpoints serving the same model: each request goes to the least-loaded one, and one that keeps failing is
benched for a while and its share taken by the others (endpoints.py); a retry goes to another endpoint. 429, 5xx, timeouts and dropped
connections are retried with exponential backoff and full jitter (honouring Retry-After); anything else
(400/401/404, malformed answers) stops the run at once with one line naming the cause. On a failure no new
requests start, the ones in flight finish and are yielded (so the stage writes them), then the error is
raised. The API key is read from the environment variable *named* in the recipe and only ever sent in
the Authorization header.
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

import httpx

from distill.endpoints import Endpoint, EndpointPool, backoff_seconds, retryable, safe_url
from distill.endpoints import error_message as _error_message
from distill.endpoints import retry_after as _retry_after
from distill.errors import DistillError, first_line
from distill.secrets import key_from_env
from teacher.backends.base import GenerationRequest, GenerationResult, SamplingSpec

_DONE = object()


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | list[str],
        api_key_env: str | None = None,
        concurrency: int = 32,
        max_retries: int = 6,
        retry_backoff: float = 1.0,
        request_timeout: float = 600.0,
        bench_after: int = 3,
        bench_seconds: float = 30.0,
        seed_per_sample: bool = True,
    ):
        self.model_id = model
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self.pool = EndpointPool(urls, bench_after=bench_after, bench_seconds=bench_seconds)
        self.concurrency = concurrency  # per endpoint
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.timeout = httpx.Timeout(request_timeout, connect=min(request_timeout, 30.0))
        self.seed_scope = "request" if seed_per_sample else "none"
        self.stats: Counter[str] = Counter()  # retries by cause, reported in the manifest
        self._headers = {"Authorization": f"Bearer {api_key(api_key_env)}"} if api_key_env else {}
        self.check_server()

    @property
    def base_url(self) -> str:
        return self.pool.endpoints[0].url

    def endpoint_report(self) -> dict[str, dict[str, int]] | None:
        """Per-endpoint requests and errors for the manifest; None for a single endpoint (nothing to add)."""
        return self.pool.report() if len(self.pool.endpoints) > 1 else None

    def check_server(self) -> None:
        """Fail early, in one line, if no endpoint is reachable, one rejects the key or serves another model.
        Of a fleet, endpoints that do not answer yet are benched and the others start the work."""
        endpoints = self.pool.endpoints
        for attempt in range(self.max_retries + 1):
            with ThreadPoolExecutor(max_workers=min(16, len(endpoints))) as threads:
                answers = list(threads.map(self._probe, endpoints))
            good = [(e, a) for e, a in zip(endpoints, answers, strict=True) if isinstance(a, httpx.Response)]
            for endpoint, response in good:
                self._check_answer(endpoint, response)
            if good:
                for endpoint, answer in zip(endpoints, answers, strict=True):
                    if isinstance(answer, str):
                        self._log_bench(endpoint, self.pool.bench(endpoint), f"unreachable ({answer})")
                return
            if attempt == self.max_retries:
                urls = ", ".join(safe_url(e.url) for e in endpoints)
                raise DistillError(
                    f"cannot reach teacher.openai.base_url {urls} ({answers[0]}); "
                    "is the server running and the URL right (it usually ends in /v1)?"
                )
            self._sleep_sync(attempt)

    def _probe(self, endpoint: Endpoint) -> httpx.Response | str:
        """GET /models: the answer, or why there was none (a reason string)."""
        try:
            with httpx.Client(timeout=self.timeout, headers=self._headers) as client:
                response = client.get(f"{endpoint.url}/models")
        except httpx.TransportError as exc:  # includes timeouts
            return f"{type(exc).__name__}: {first_line(str(exc)) or 'no answer'}"
        return f"HTTP {response.status_code}" if retryable(response.status_code) else response

    def _check_answer(self, endpoint: Endpoint, response: httpx.Response) -> None:
        url = safe_url(f"{endpoint.url}/models")
        if response.status_code in (401, 403):
            raise DistillError(
                f"{url}: HTTP {response.status_code}: the server rejected the API key "
                "(check the variable named in teacher.openai.api_key_env)"
            )
        served = _served_models(response)
        if served and self.model_id not in served:
            raise DistillError(
                f"{safe_url(endpoint.url)} serves {', '.join(sorted(served)[:8])}, not {self.model_id!r}; "
                "set teacher.model to the served model name (every endpoint must serve it)"
            )

    def _log_bench(self, endpoint: Endpoint, seconds: float, why: str) -> None:
        others = len(self.pool.available())
        print(
            f"[distill] generate: endpoint {safe_url(endpoint.url)} {why}; benched for {seconds:.0f} s, "
            f"{others} other endpoint(s) take its share",
            file=sys.stderr,
            flush=True,
        )

    def _sleep_sync(self, attempt: int) -> None:
        time.sleep(self.backoff(attempt, None))

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter (uniform in [0, base * 2^attempt]) so many clients do not retry in lockstep."""
        return backoff_seconds(attempt, retry_after, self.retry_backoff)

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingSpec
    ) -> Iterator[GenerationResult]:
        run = _Run(self, requests, sampling)
        thread = threading.Thread(target=run.run, name="distill-openai", daemon=True)
        thread.start()
        try:
            while (item := run.results.get()) is not _DONE:
                yield item
            if run.failure is not None:
                raise run.failure
        finally:
            run.cancel()
            thread.join(timeout=30)

    def close(self) -> None:
        pass

    def body(self, request: GenerationRequest, sampling: SamplingSpec) -> dict[str, Any]:
        body = {
            "model": self.model_id,
            "messages": request.messages,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "n": 1,
            "stream": False,
        }
        if self.seed_scope == "request":
            body["seed"] = request.seed
        return body

    async def complete(
        self, client: httpx.AsyncClient, request: GenerationRequest, sampling: SamplingSpec
    ) -> GenerationResult:
        """One chat completion, retried on transient failures (on another endpoint when there is one)."""
        body, reason, failed_on = self.body(request, sampling), "", None
        for attempt in range(self.max_retries + 1):
            endpoint = await self._acquire(failed_on)
            url, retry_after = f"{endpoint.url}/chat/completions", None
            try:
                response = await client.post(url, json=body)
            except httpx.TransportError as exc:  # connect/read/write errors, timeouts, dropped connections
                reason = type(exc).__name__
            except BaseException:  # cancelled: says nothing about the endpoint
                self.pool.released(endpoint)
                raise
            else:
                if response.status_code == 200 or not retryable(response.status_code):
                    return self._answered(endpoint, response, request)
                reason, retry_after = f"HTTP {response.status_code}", _retry_after(response)
            benched = self.pool.failed(endpoint, reason)
            if benched:
                self._log_bench(
                    endpoint, benched, f"failed {self.pool.bench_after} requests in a row ({reason})"
                )
            failed_on = endpoint
            self.stats[f"retried {reason}" if attempt < self.max_retries else f"failed {reason}"] += 1
            if attempt < self.max_retries:
                await asyncio.sleep(self.backoff(attempt, retry_after))
        raise DistillError(
            f"{safe_url(url)}: prompt {request.prompt_id!r} sample {request.sample_idx} failed "
            f"{self.max_retries + 1} times (last: {reason}); finished rows are kept, rerun to "
            "resume (or raise teacher.openai.max_retries / request_timeout)"
        )

    async def _acquire(self, failed_on: Endpoint | None) -> Endpoint:
        """An endpoint for the next attempt; while every endpoint is benched, wait for the first to return."""
        while (endpoint := self.pool.pick(avoid=failed_on)) is None:
            await asyncio.sleep(min(max(self.pool.wait_seconds(), 0.05), 5.0))
        return endpoint

    def _answered(
        self, endpoint: Endpoint, response: httpx.Response, request: GenerationRequest
    ) -> GenerationResult:
        """A 200 (parsed) or a non-retryable status (a one-line error for the whole run)."""
        if response.status_code != 200:
            self.pool.released(endpoint)
            raise DistillError(
                f"{safe_url(str(response.request.url))}: HTTP {response.status_code} for prompt "
                f"{request.prompt_id!r}: {_error_message(response)}"
            )
        try:
            result = parse_completion(response, request)
        except DistillError:
            self.pool.released(endpoint)
            raise
        self.pool.succeeded(endpoint)
        return result


class _Run:
    """One generate() call: ``concurrency`` coroutines per endpoint draining one queue of requests."""

    def __init__(self, backend: OpenAIBackend, requests: list[GenerationRequest], sampling: SamplingSpec):
        self.backend, self.sampling = backend, sampling
        self.todo = deque(requests)
        self.results: queue.Queue = queue.Queue()
        self.failure: DistillError | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task | None = None
        self.cancelled = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # a bug, not a server problem: still surface it in the consumer
            self.failure = self.failure or DistillError(
                f"openai backend crashed: {type(exc).__name__}: {exc}"
            )
        finally:
            self.results.put(_DONE)

    async def _main(self) -> None:
        self.loop, self.task = asyncio.get_running_loop(), asyncio.current_task()
        if self.cancelled.is_set():
            return
        b = self.backend
        total = b.concurrency * len(b.pool.endpoints)
        limits = httpx.Limits(max_connections=total, max_keepalive_connections=total)
        async with httpx.AsyncClient(timeout=b.timeout, limits=limits, headers=b._headers) as client:
            workers = min(total, len(self.todo))
            await asyncio.gather(*(self._worker(client) for _ in range(workers)))

    async def _worker(self, client: httpx.AsyncClient) -> None:
        while self.todo and self.failure is None:
            request = self.todo.popleft()
            try:
                result = await self.backend.complete(client, request, self.sampling)
            except DistillError as exc:
                self.failure = self.failure or exc  # first failure wins; other workers stop taking new work
                return
            self.results.put(result)

    def cancel(self) -> None:
        self.cancelled.set()
        if self.loop is not None and self.task is not None and not self.loop.is_closed():
            with suppress(RuntimeError):  # the loop closed meanwhile
                self.loop.call_soon_threadsafe(self.task.cancel)


def api_key(env_name: str) -> str:
    return key_from_env(env_name, "teacher.openai.api_key_env")


def parse_completion(response: httpx.Response, request: GenerationRequest) -> GenerationResult:
    """A chat completion -> result; `reasoning_content` (DeepSeek, vLLM < 0.11) or `reasoning` (vLLM >= 0.11)
    carries the thinking when the server splits it out."""
    try:
        data = response.json()
        choice = data["choices"][0]
        message = choice["message"]
        content = message.get("content") or ""
        reasoning = message.get("reasoning_content") or message.get("reasoning") or None
        usage = data.get("usage") or {}
        if (
            not isinstance(content, str)
            or not isinstance(reasoning, str | None)
            or not isinstance(usage, dict)
        ):
            raise TypeError("content and reasoning must be strings")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise DistillError(
            f"{response.request.url}: malformed chat completion for prompt {request.prompt_id!r} "
            f"({type(exc).__name__}: {first_line(str(exc), 60)}); body starts "
            f"{first_line(response.text, 80)!r}; is base_url an OpenAI-compatible /v1 endpoint?"
        ) from None
    return GenerationResult(
        prompt_id=request.prompt_id,
        sample_idx=request.sample_idx,
        completion=content,
        finish_reason=str(choice.get("finish_reason") or "unknown"),
        prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
        completion_tokens=_int_or_none(usage.get("completion_tokens")),
        reasoning=reasoning,
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _served_models(response: httpx.Response) -> set[str]:
    if response.status_code != 200:
        return set()  # some servers have no /models; the first completion will tell
    try:
        return {m["id"] for m in response.json()["data"] if isinstance(m, dict) and "id" in m}
    except (ValueError, KeyError, TypeError):
        return set()
