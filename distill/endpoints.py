"""A fleet of OpenAI-compatible endpoints serving one model: which one gets the next request, and the retry
rules every client of such servers shares (the teacher's openai backend, the judge).

Requests go to the available endpoint with the fewest requests in flight (ties: the one that has answered
fewest so far), so a fast replica takes more work and a slow one less. An endpoint whose requests fail
``bench_after`` times in a row (5xx, 429, timeouts, dropped connections) is benched: it gets no requests for
``bench_seconds``, doubling each time it fails again right after coming back (at most 10 x), and the
others take its share; one success puts it fully back. The last available endpoint is never benched (its
requests just retry with backoff), so one endpoint behaves as before there were fleets. Pure bookkeeping
with an injectable clock: the openai backend calls it from its event loop, the judge from its threads (under a
lock), tests drive it directly.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from distill.errors import first_line

MAX_BENCH_FACTOR = 10
BACKOFF_CAP_S = 60.0


def retryable(status: int) -> bool:
    """HTTP statuses worth another try: timeouts, rate limits and server errors."""
    return status in (408, 425, 429) or status >= 500


def backoff_seconds(attempt: int, retry_after: float | None, base: float) -> float:
    """Full jitter (uniform in [0, base * 2^attempt]) so many clients do not retry in lockstep; a server's
    Retry-After (capped) plus a little jitter when it gives one."""
    if retry_after is not None:
        return min(retry_after, BACKOFF_CAP_S) + random.uniform(0, base)
    return random.uniform(0, min(BACKOFF_CAP_S, base * 2**attempt))


def retry_after(response: httpx.Response) -> float | None:
    try:
        return max(float(response.headers.get("retry-after", "")), 0.0)
    except ValueError:
        return None


def error_message(response: httpx.Response) -> str:
    """The server's one-line reason for an error status (OpenAI's {"error": {"message": ...}} or the body)."""
    try:
        error = response.json().get("error") or response.json()
        message = error.get("message") if isinstance(error, dict) else error
        return first_line(str(message or response.text))
    except (ValueError, AttributeError):
        return first_line(response.text) or response.reason_phrase


@dataclass
class Endpoint:
    url: str
    in_flight: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    failures_in_a_row: int = 0
    benched_until: float = 0.0
    benched: int = 0  # times taken out of the rotation
    bench_level: int = 0  # consecutive benches without a success in between


class EndpointPool:
    def __init__(
        self,
        urls: list[str],
        *,
        bench_after: int = 3,
        bench_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.endpoints = [Endpoint(url.rstrip("/")) for url in urls]
        self.bench_after, self.bench_seconds, self.clock = bench_after, bench_seconds, clock

    def available(self) -> list[Endpoint]:
        now = self.clock()
        return [e for e in self.endpoints if e.benched_until <= now]

    def pick(self, avoid: Endpoint | None = None) -> Endpoint | None:
        """The least-loaded available endpoint (not ``avoid``, the one that just failed this request, unless
        it is the only one left); None while every endpoint is benched."""
        candidates = self.available()
        if avoid is not None and len(candidates) > 1:
            candidates = [e for e in candidates if e is not avoid]
        if not candidates:
            return None
        chosen = min(candidates, key=lambda e: (e.in_flight, e.ok))
        chosen.in_flight += 1
        return chosen

    def wait_seconds(self) -> float:
        """Until the first benched endpoint comes back (0 if one is available)."""
        now = self.clock()
        return max(0.0, min(e.benched_until for e in self.endpoints) - now)

    def succeeded(self, endpoint: Endpoint) -> None:
        endpoint.in_flight -= 1
        endpoint.ok += 1
        endpoint.failures_in_a_row = endpoint.bench_level = 0

    def released(self, endpoint: Endpoint) -> None:
        """A request that ended without saying anything about the endpoint's health (a 4xx, a cancel)."""
        endpoint.in_flight -= 1

    def failed(self, endpoint: Endpoint, reason: str) -> float | None:
        """Record a failed request; returns the bench length when this failure benched the endpoint."""
        endpoint.in_flight -= 1
        endpoint.errors[reason] += 1
        endpoint.failures_in_a_row += 1
        if endpoint.failures_in_a_row < self.bench_after or endpoint.benched_until > self.clock():
            return None
        if not [e for e in self.available() if e is not endpoint]:
            return None  # the last one standing is never benched: that would only add waiting to backoff
        return self.bench(endpoint)

    def bench(self, endpoint: Endpoint) -> float:
        seconds = self.bench_seconds * min(2**endpoint.bench_level, MAX_BENCH_FACTOR)
        endpoint.benched_until = self.clock() + seconds
        endpoint.benched += 1
        endpoint.bench_level += 1
        # Back on probation: one more failure after the bench benches it again (for longer).
        endpoint.failures_in_a_row = self.bench_after - 1
        return seconds

    def report(self) -> dict[str, dict[str, int]]:
        """Per endpoint: answered requests, failed attempts by cause, times benched (for the manifest)."""
        return {
            safe_url(e.url): {
                "requests_ok": e.ok,
                "errors": sum(e.errors.values()),
                "benched": e.benched,
                **{f"error {cause}": n for cause, n in sorted(e.errors.items())},
            }
            for e in self.endpoints
        }


def safe_url(url: str) -> str:
    """The URL without user:password@ or a query string: what may be logged and written to the manifest."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
