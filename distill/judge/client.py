"""The judge client: one template per use, any OpenAI-compatible endpoint (or a fleet), cached and costed.

``Judge.ask(use, items)`` fills the use's template with each item's values, answers what the cache already
holds, and asks the server the rest, ``concurrency`` calls in flight per endpoint (threads; the fleet's
bookkeeping in distill/endpoints.py under a lock). A call is retried on 429/5xx/timeouts/dropped connections
with jittered backoff, on another endpoint when there is one; a 4xx (wrong model, rejected key) stops the
stage in one line. With a ``deadline`` (seconds per call, the verifier's deadline in GRPO) a call not answered
in time is a ``timeout`` result instead. Every answered call is appended to the cache at once, so a crash
loses nothing already paid for. The key is read from the variable named in ``judge.api_key_env`` and only
ever sent in the Authorization header.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from distill.endpoints import (
    Endpoint,
    EndpointPool,
    backoff_seconds,
    error_message,
    retry_after,
    retryable,
    safe_url,
)
from distill.errors import DistillError, first_line
from distill.judge.cache import JudgeCache, call_key
from distill.judge.cost import JudgeUsage, total_report
from distill.judge.parse import parse_reply
from distill.judge.templates import Template, load_template
from distill.secrets import key_from_env


@dataclass(frozen=True)
class JudgeResult:
    key: str
    status: str  # ok | unparsed | timeout | failed
    value: str | int | None  # the parsed verdict (None unless ok)
    reasoning: str  # kept for audit: the server's reasoning field + the text before the verdict line
    reply: str
    cached: bool = False
    problem: str | None = None  # why it is not ok


class Judge:
    def __init__(
        self,
        cfg: Any,  # distill.config.judge.JudgeConfig
        base_urls: list[str],
        cache: JudgeCache,
        *,
        bench_after: int = 3,
        bench_seconds: float = 30.0,
    ):
        if not base_urls:
            raise DistillError("judge.base_url: no endpoint; give the judge's /v1 URL(s) in judge.base_url")
        self.cfg, self.cache = cfg, cache
        self.pool = EndpointPool(base_urls, bench_after=bench_after, bench_seconds=bench_seconds)
        self.lock = threading.Lock()
        self.usage: dict[str, JudgeUsage] = {}
        self.templates: dict[str, Template] = {}
        headers = {"Authorization": f"Bearer {judge_key(cfg.api_key_env)}"} if cfg.api_key_env else {}
        total = cfg.concurrency * len(self.pool.endpoints)
        limits = httpx.Limits(max_connections=total, max_keepalive_connections=total)
        self.http = httpx.Client(headers=headers, limits=limits, timeout=cfg.request_timeout)

    def close(self) -> None:
        self.http.close()

    def template(self, use: str) -> Template:
        if use not in self.templates:
            self.templates[use] = load_template(use, self.cfg.templates)
        return self.templates[use]

    def sampling(self) -> dict[str, Any]:
        """What decides the reply besides the messages: in every call key; constrained only when asked, so
        the keys of existing caches stay as they were."""
        sampling = {"temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens}
        return sampling if self.cfg.constrain is None else {**sampling, "constrain": self.cfg.constrain}

    def key(self, use: str, values: dict[str, Any]) -> str:
        return call_key(self.cfg.model, self.template(use).digest, values, self.sampling())

    def ask(
        self, use: str, items: Iterable[dict[str, Any]], deadline: float | None = None
    ) -> list[JudgeResult]:
        """One result per item, in order; ``deadline`` seconds per call (None: retries decide)."""
        template, items = self.template(use), [dict(item) for item in items]
        usage = self.usage.setdefault(use, JudgeUsage())
        # The same question twice in one batch (equal answers in both orders) is asked once.
        unique = {call_key(self.cfg.model, template.digest, v, self.sampling()): v for v in items}
        workers = max(1, min(len(unique), self.cfg.concurrency * len(self.pool.endpoints)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="distill-judge") as threads:
            answers = list(threads.map(lambda v: self._one(template, v, usage, deadline), unique.values()))
        by_key = dict(zip(unique, answers, strict=True))
        return [by_key[call_key(self.cfg.model, template.digest, v, self.sampling())] for v in items]

    def report(self) -> dict[str, Any]:
        """Calls, cache hits, tokens, unparsed, timeouts and the estimated price, per use and in all."""
        out = total_report(self.usage, self.cfg.price_per_million)
        out["model"] = self.cfg.model
        if len(self.pool.endpoints) > 1:
            out["endpoints"] = self.pool.report()
        return out

    def _one(self, template: Template, values: dict[str, Any], usage: JudgeUsage, deadline: float | None):
        key = call_key(self.cfg.model, template.digest, values, self.sampling())
        entry = self.cache.get(key)
        cached = entry is not None
        if entry is None:
            entry = self._call(template, values, key, usage, deadline)
            if isinstance(entry, JudgeResult):  # timed out or failed: not cached, asked again next time
                return entry
            self.cache.put(entry)
        parsed = parse_reply(template, entry["reply"])
        reasoning = "\n\n".join(r for r in (entry.get("reasoning") or "", parsed.reasoning) if r)
        with self.lock:
            usage.cached += cached
            usage.unparsed += parsed.value is None
        status = "ok" if parsed.value is not None else "unparsed"
        return JudgeResult(key, status, parsed.value, reasoning, entry["reply"], cached, parsed.problem)

    def _call(self, template, values, key, usage, deadline) -> dict[str, Any] | JudgeResult:
        body = {"model": self.cfg.model, "messages": template.render(values), "n": 1, "stream": False}
        body.update(temperature=self.cfg.temperature, max_tokens=self.cfg.max_tokens)
        if self.cfg.constrain is not None:  # vLLM's structured outputs: the reply cannot leave the format
            body["structured_outputs"] = {"regex": template.reply_regex(self.cfg.constrain)}
        until = None if deadline is None else time.monotonic() + deadline
        reason, failed_on = "", None
        for attempt in range(self.cfg.max_retries + 1):
            left = None if until is None else until - time.monotonic()
            if left is not None and left <= 0:
                return self._gave_up(usage, key, "timeout", f"no answer within {deadline:g} s")
            endpoint = self._acquire(failed_on, until)
            if endpoint is None:
                return self._gave_up(usage, key, "timeout", f"no endpoint within {deadline:g} s")
            timeout = self.cfg.request_timeout if left is None else min(self.cfg.request_timeout, left)
            wait_hint = None
            try:
                response = self.http.post(f"{endpoint.url}/chat/completions", json=body, timeout=timeout)
            except httpx.TransportError as exc:
                reason = type(exc).__name__
            else:
                if response.status_code == 200:
                    return self._answered(endpoint, response, key, template, usage)
                if not retryable(response.status_code):
                    self._release(endpoint)
                    raise DistillError(
                        f"judge {safe_url(endpoint.url)}: HTTP {response.status_code}: {error_message(response)} "
                        f"(check judge.model {self.cfg.model!r}, judge.base_url and judge.api_key_env)"
                    )
                reason, wait_hint = f"HTTP {response.status_code}", retry_after(response)
            with self.lock:
                self.pool.failed(endpoint, reason)
                usage.retries[reason] += 1
            failed_on = endpoint
            if attempt < self.cfg.max_retries:
                pause = backoff_seconds(attempt, wait_hint, self.cfg.retry_backoff)
                time.sleep(pause if until is None else max(0.0, min(pause, until - time.monotonic())))
        if until is not None and time.monotonic() >= until:
            return self._gave_up(usage, key, "timeout", f"no answer within {deadline:g} s")
        return self._gave_up(usage, key, "failed", f"{self.cfg.max_retries + 1} attempts (last: {reason})")

    def _acquire(self, failed_on: Endpoint | None, until: float | None) -> Endpoint | None:
        while True:
            with self.lock:
                endpoint = self.pool.pick(avoid=failed_on)
                wait = self.pool.wait_seconds()
            if endpoint is not None:
                return endpoint
            if until is not None and time.monotonic() >= until:
                return None
            time.sleep(min(max(wait, 0.05), 5.0))

    def _release(self, endpoint: Endpoint) -> None:
        with self.lock:
            self.pool.released(endpoint)

    def _answered(self, endpoint, response, key, template, usage) -> dict[str, Any]:
        try:
            data = response.json()
            message = data["choices"][0]["message"]
            reply = message.get("content") or ""
            reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
            tokens = data.get("usage") or {}
            if not isinstance(reply, str) or not isinstance(reasoning, str):
                raise TypeError("content must be a string")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            self._release(endpoint)
            raise DistillError(
                f"judge {safe_url(endpoint.url)}: malformed chat completion ({type(exc).__name__}); body starts "
                f"{first_line(response.text, 80)!r}; is judge.base_url an OpenAI-compatible /v1 endpoint?"
            ) from None
        prompt_tokens = _count(tokens.get("prompt_tokens"))
        completion_tokens = _count(tokens.get("completion_tokens"))
        with self.lock:
            self.pool.succeeded(endpoint)
            usage.calls += 1
            usage.prompt_tokens += prompt_tokens
            usage.completion_tokens += completion_tokens
        return {
            "key": key,
            "use": template.use,
            "model": self.cfg.model,
            "reply": reply,
            "reasoning": reasoning,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        }

    def _gave_up(self, usage: JudgeUsage, key: str, status: str, problem: str) -> JudgeResult:
        with self.lock:
            if status == "timeout":
                usage.timeouts += 1
            else:
                usage.failed += 1
        return JudgeResult(key, status, None, "", "", problem=problem)


def judge_key(env_name: str) -> str:
    return key_from_env(env_name, "judge.api_key_env")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
