"""The parent's side of one sandboxed run: feed stdin, read the outputs up to a cap, end every process.

``Pump`` waits on the process's pipes and on its exit (a pidfd, or polling where there is none) until the
pipes close, the wall deadline passes, or an output passes its cap. When the program exits, its process group
and every process of its user id are killed at once, so children it left behind cannot hold the pipes open.
"""

from __future__ import annotations

import ast
import contextlib
import marshal
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distill.verify.sandbox import Job


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def kill_user(uid: int, wait: float = 2.0) -> bool:
    """SIGKILL every process owned by ``uid`` (children that left the process group with setsid), pass after
    pass (a fork bomb forks between passes) until only zombies are left (init reaps them; the id is not
    handed out again meanwhile). False if a live one remains after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        alive = False
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    if stat.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                        continue
                os.kill(int(entry.name), signal.SIGKILL)
                alive = True
            except (OSError, IndexError):
                continue
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)


def kill_all(proc: subprocess.Popen, uid: int | None) -> None:
    kill_group(proc)
    if uid is not None:  # children that left the group (setsid) still hold the pipes: end them now
        kill_user(uid)


class Pump:
    """Feeds ``data`` to the process's stdin and reads stdout, stderr and the result pipe (``cap`` each)."""

    def __init__(
        self, proc: subprocess.Popen, data: bytes, result_fd: int, cap: int, reap: Callable[[], None]
    ):
        self.proc, self.cap, self.reap = proc, cap, reap
        self.sel = selectors.DefaultSelector()
        self.buffers: dict[str, bytearray] = {}
        self.view = memoryview(data)
        self.exited_at: float | None = None
        self.overflow = ""
        try:  # readable when the process exits (Linux >= 5.3); else it is polled every 20 ms
            self.pidfd: int | None = os.pidfd_open(proc.pid)
            self.sel.register(self.pidfd, selectors.EVENT_READ, "exit")
        except (AttributeError, OSError):
            self.pidfd = None
        for name, fd in (
            ("stdout", proc.stdout.fileno()),
            ("stderr", proc.stderr.fileno()),
            ("result", result_fd),
        ):
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, name)
            self.buffers[name] = bytearray()
        os.set_blocking(proc.stdin.fileno(), False)
        self.sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "stdin")

    def run(self, wall_seconds: float) -> tuple[dict[str, bytearray], bool, str]:
        """(outputs, timed out, which output passed its cap or "")."""
        deadline = time.monotonic() + wall_seconds
        try:
            while self.sel.get_map() or (self.pidfd is None and self.exited_at is None):
                now = time.monotonic()
                if now >= deadline or (self.exited_at is not None and now > self.exited_at + 1.0):
                    return self.buffers, self.exited_at is None, ""
                if self.pidfd is None and self.exited_at is None and self.proc.poll() is not None:
                    self._exited()
                polling = self.pidfd is None and self.exited_at is None
                for key, _ in self.sel.select(
                    timeout=min(deadline - now, 0.02) if polling else deadline - now
                ):
                    if self._handle(key):
                        return self.buffers, False, self.overflow
        finally:
            self.sel.close()
            if self.pidfd is not None:
                os.close(self.pidfd)
        return self.buffers, False, ""

    def _exited(self) -> None:
        self.exited_at = time.monotonic()
        self.reap()

    def _handle(self, key: selectors.SelectorKey) -> bool:
        """Serve one ready descriptor; True when an output passed its cap (the group is then killed)."""
        if key.data == "exit":
            self.sel.unregister(key.fd)
            self._exited()
        elif key.data == "stdin":
            try:
                written = os.write(key.fd, self.view[:65536])
            except OSError:  # the program closed its stdin or ended: the rest is not wanted
                written = len(self.view)
            self.view = self.view[written:]
            if not len(self.view):
                self.sel.unregister(key.fd)
                self.proc.stdin.close()
        else:
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                return False
            except OSError:
                chunk = b""
            if not chunk:
                self.sel.unregister(key.fd)
                return False
            buffer = self.buffers[key.data]
            room = self.cap - len(buffer)
            buffer += chunk[:room]
            if len(chunk) > room:
                self.overflow = key.data
                kill_group(self.proc)
                return True
        return False


class Link:
    """The two pipes between a program and its checker: requests (calls) one way, replies the other."""

    def __init__(self) -> None:
        self.reply_read, self.reply_write = os.pipe()
        self.request_read, self.request_write = os.pipe()
        self.program_ends = (self.reply_write, self.request_read)
        self.checker_ends = (self.reply_read, self.request_write)

    def close_child_ends(self) -> None:
        for fd in (*self.program_ends, *self.checker_ends):
            with contextlib.suppress(OSError):
                os.close(fd)


REPLY_BYTES = 64 << 20  # the most one call's result may take on the pipe (a long list is fine; memory is not)


def _payload(job: Job, nonce: str, result_fd: int, request_fd: int | None = None, mounts: int = 0) -> bytes:
    """What the driver reads from stdin: length, the marshalled job, then the program's own input. In function
    mode ``result_fd`` is the reply pipe to the checker and ``request_fd`` its requests; the tests stay out."""
    job_fields = {
        "nonce": nonce,
        "result_fd": result_fd,  # the same number in the child (pass_fds)
        "request_fd": request_fd,
        "mode": job.mode,
        "source": job.source,
        "entry_point": job.entry_point,
        "limits": job.limits.for_driver(),
        "mounts": mounts,  # MiB of each private tmpfs the driver mounts first (0: none, or done already)
    }
    data = marshal.dumps(job_fields, 2)  # version 2: plain types, read by any Python 3 the sandbox runs
    return len(data).to_bytes(8, "big") + data + (job.stdin if job.mode == "stdio" else b"")


def checker_payload(job: Job, nonce: str, reply_fd: int, request_fd: int) -> bytes:
    """What the checker reads from stdin: length and the marshalled tests (it writes events to its stdout)."""
    fields = {
        "nonce": nonce,
        "reply_fd": reply_fd,
        "request_fd": request_fd,
        "reply_bytes": max(job.limits.output_bytes, REPLY_BYTES),
        "tests": list(job.tests),
        "entry_point": job.entry_point,
        "call_check": job.call_check,
        "float_tolerance": job.float_tolerance,
    }
    data = marshal.dumps(fields, 2)
    return len(data).to_bytes(8, "big") + data


def _events(raw: bytes, nonce: str) -> list[dict]:
    """The driver's reports: lines starting with the run's nonce; anything the program wrote is ignored."""
    events = []
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line.startswith(nonce + "\t"):
            continue
        try:
            event = ast.literal_eval(line[len(nonce) + 1 :])
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            continue
        if isinstance(event, dict):
            events.append(event)
    return events
