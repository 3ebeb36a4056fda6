"""Any OpenAI-compatible chat-completions server: vLLM, SGLang, TGI, `transformers serve`, hosted APIs.

Requests run on an asyncio loop in a background thread with at most ``concurrency`` in flight (servers
batch concurrent requests, so concurrency is what buys throughput). 429, 5xx, timeouts and dropped
connections are retried with exponential backoff and full jitter (honouring Retry-After); anything else
(400/401/404, malformed answers) stops the run at once with one line naming the cause. On a failure no new
requests start, the ones in flight finish and are yielded (so the stage writes them), then the error is
raised. The API key is read from the environment variable *named* in the recipe and only ever sent in
the Authorization header.
"""

from __future__ import annotations

import asyncio
import os
import queue
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import httpx

from distill.errors import DistillError, first_line
from teacher.backends.base import GenerationRequest, GenerationResult, SamplingSpec

_BACKOFF_CAP_S = 60.0
_DONE = object()


def retryable(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key_env: str | None = None,
        concurrency: int = 32,
        max_retries: int = 6,
        retry_backoff: float = 1.0,
        request_timeout: float = 600.0,
        seed_per_sample: bool = True,
    ):
        self.model_id = model
        self.base_url = base_url.rstrip("/")
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.timeout = httpx.Timeout(request_timeout, connect=min(request_timeout, 30.0))
        self.seed_scope = "request" if seed_per_sample else "none"
        self.stats: Counter[str] = Counter()  # retries by cause, reported in the manifest
        self._headers = {"Authorization": f"Bearer {api_key(api_key_env)}"} if api_key_env else {}
        self.check_server()

    def check_server(self) -> None:
        """Fail early, in one line, if the server is unreachable, rejects the key or does not serve the model."""
        url = f"{self.base_url}/models"
        with httpx.Client(timeout=self.timeout, headers=self._headers) as client:
            for attempt in range(self.max_retries + 1):
                try:
                    response = client.get(url)
                    if not retryable(response.status_code):
                        break
                    reason = f"HTTP {response.status_code}"
                except httpx.TransportError as exc:  # includes timeouts
                    reason = f"{type(exc).__name__}: {first_line(str(exc)) or 'no answer'}"
                if attempt == self.max_retries:
                    raise DistillError(
                        f"cannot reach teacher.openai.base_url {self.base_url} ({reason}); "
                        "is the server running and the URL right (it usually ends in /v1)?"
                    )
                self._sleep_sync(attempt)
        if response.status_code in (401, 403):
            raise DistillError(
                f"{url}: HTTP {response.status_code}: the server rejected the API key "
                "(check the variable named in teacher.openai.api_key_env)"
            )
        served = _served_models(response)
        if served and self.model_id not in served:
            raise DistillError(
                f"{self.base_url} serves {', '.join(sorted(served)[:8])}, not {self.model_id!r}; "
                "set teacher.model to the served model name"
            )

    def _sleep_sync(self, attempt: int) -> None:
        time.sleep(self.backoff(attempt, None))

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter (uniform in [0, base * 2^attempt]) so many clients do not retry in lockstep."""
        if retry_after is not None:
            return min(retry_after, _BACKOFF_CAP_S) + random.uniform(0, self.retry_backoff)
        return random.uniform(0, min(_BACKOFF_CAP_S, self.retry_backoff * 2**attempt))

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
        """One chat completion, retried on transient failures."""
        url, body, reason = f"{self.base_url}/chat/completions", self.body(request, sampling), ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                response = await client.post(url, json=body)
            except httpx.TransportError as exc:  # connect/read/write errors, timeouts, dropped connections
                reason = type(exc).__name__
            else:
                if response.status_code == 200:
                    return parse_completion(response, request)
                if not retryable(response.status_code):
                    raise DistillError(
                        f"{url}: HTTP {response.status_code} for prompt {request.prompt_id!r}: "
                        f"{_error_message(response)}"
                    )
                reason, retry_after = f"HTTP {response.status_code}", _retry_after(response)
            self.stats[f"retried {reason}" if attempt < self.max_retries else f"failed {reason}"] += 1
            if attempt < self.max_retries:
                await asyncio.sleep(self.backoff(attempt, retry_after))
        raise DistillError(
            f"{url}: prompt {request.prompt_id!r} sample {request.sample_idx} failed "
            f"{self.max_retries + 1} times (last: {reason}); finished rows are kept, rerun to "
            "resume (or raise teacher.openai.max_retries / request_timeout)"
        )


class _Run:
    """One generate() call: a pool of ``concurrency`` coroutines draining a queue of requests."""

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
        limits = httpx.Limits(max_connections=b.concurrency, max_keepalive_connections=b.concurrency)
        async with httpx.AsyncClient(timeout=b.timeout, limits=limits, headers=b._headers) as client:
            workers = min(b.concurrency, len(self.todo))
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
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise DistillError(
            f"teacher.openai.api_key_env is {env_name!r}, but that environment variable is not set "
            "or empty; export it before running"
        )
    return value


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


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(float(response.headers.get("retry-after", "")), 0.0)
    except ValueError:
        return None


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or response.json()
        message = error.get("message") if isinstance(error, dict) else error
        return first_line(str(message or response.text))
    except (ValueError, AttributeError):
        return first_line(response.text) or response.reason_phrase
