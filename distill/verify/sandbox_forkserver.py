"""A faster local runner: a fork server per worker thread instead of a fresh interpreter per program.

``ForkServerRunner`` keeps one pre-started sandbox interpreter (``python -I -S``, as root, the driver already
compiled) per pool thread. For each program it forks a child that does what the ``unshare`` prefix and the
interpreter start do for ``LocalRunner``: a session of its own, its own network namespace (``unshare(2)``), the
run's user id (made dumpable again so ``kill_user`` finds it), the temporary directory as cwd, a clean
environment, then the driver (limits, program, tests). The parent's side (``Pump``, caps, deadline, reaping,
nonce-checked reports) is ``LocalRunner``'s. Root only; everything else is as ``LocalRunner`` guarantees.

The saving is the interpreter start (~9 ms of CPU of ~17 per program here); see bench/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import functools
import marshal
import os
import secrets
import socket
import subprocess
import threading

from distill.verify.sandbox import (
    _DRIVER,
    Job,
    LocalRunner,
    RunResult,
    _events,
    _payload,
)
from distill.verify.sandbox_io import Pump, kill_all, kill_group, kill_user

# The server: receives (workdir, uid, network) + the child's 4 descriptors, forks, reports the pid, waits for
# the child and reports its wait status. One request at a time (one server per pool thread).
_SERVER = r"""
import ctypes, marshal, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
driver = compile(sys.stdin.read(), "sandbox_driver.py", "exec")
sock = socket.socket(fileno=int(sys.argv[1]))
while True:
    try:
        data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 4)
    except OSError:
        os._exit(0)
    if not data:
        os._exit(0)
    request = marshal.loads(data)
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            os.closerange(4, 1 << 16)
            if request["network"] and libc.unshare(0x40000000) != 0:
                os._exit(70)
            os.chdir(request["workdir"])
            uid = request["uid"]
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: /proc/<pid> owned by uid, so kill_user finds it
            os.environ.clear()
            os.environ.update(request["env"])
            exec(driver, {"__name__": "__main__", "__builtins__": __builtins__})
            sys.stdout.flush()
            os._exit(0)
        except SystemExit as exc:
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        except BaseException:
            os._exit(71)
    for fd in fds:
        os.close(fd)
    sock.sendall(marshal.dumps(("pid", pid)))
    _, status = os.waitpid(pid, 0)
    sock.sendall(marshal.dumps(("status", status)))
"""


class _Server:
    def __init__(self, python: str) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # message boundaries kept
        self.sock = ours
        self.proc = subprocess.Popen(
            [python, "-I", "-S", "-c", _SERVER, str(theirs.fileno())],
            stdin=subprocess.PIPE,
            pass_fds=(theirs.fileno(),),
            env={"PATH": "/usr/bin:/bin"},
            text=True,
        )
        theirs.close()
        self.sock.settimeout(60)  # a server that stops answering is replaced, never waited on forever
        self.proc.stdin.write(_DRIVER)
        self.proc.stdin.close()

    def start(self, request: dict, fds: list[int]) -> int:
        socket.send_fds(self.sock, [marshal.dumps(request, 2)], fds)
        kind, pid = marshal.loads(self.sock.recv(1 << 10))
        if kind != "pid":
            raise RuntimeError(f"fork server: expected a pid, got {kind}")
        return pid

    def status(self) -> int:
        kind, status = marshal.loads(self.sock.recv(1 << 10))
        return status

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self.sock.close()
        self.proc.kill()
        self.proc.wait()


class _Child:
    """What ``Pump`` and ``kill_group`` need of a process: pid, poll(), and the parent's pipe ends."""

    def __init__(self, pid: int, stdin, stdout, stderr) -> None:
        self.pid, self.stdin, self.stdout, self.stderr = pid, stdin, stdout, stderr
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """Not None once the process is gone (the server reaps it at once); used where there is no pidfd."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return 0
        except PermissionError:
            pass
        return None


class ForkServerRunner(LocalRunner):
    """``LocalRunner``'s guarantees with a fork per program instead of an interpreter start (root only)."""

    def __init__(self, network: bool = True) -> None:
        super().__init__(network)
        if not self.isolation.own_user:
            raise RuntimeError("ForkServerRunner needs root (a user id per run); use LocalRunner")
        self._idle: list[_Server] = []  # one server per program running at once, reused
        self._lock = threading.Lock()

    def _acquire(self) -> _Server:
        with self._lock:
            while self._idle:
                server = self._idle.pop()
                if server.alive():
                    return server
        return _Server(self.isolation.python)

    def _release(self, server: _Server) -> None:
        if server.alive():
            with self._lock:
                self._idle.append(server)

    def _spawn(self, job: Job, workdir: str, uid: int | None) -> RunResult:
        nonce = secrets.token_hex(16)
        pipes = [os.pipe() for _ in range(4)]  # stdin, stdout, stderr, result
        child_ends = [pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1]]
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
        request = {"workdir": workdir, "uid": uid, "network": self.isolation.network, "env": env}
        server = self._acquire()
        try:
            pid = server.start(request, child_ends)
        except BaseException:
            server.close()
            for fd in (pipes[0][1], pipes[1][0], pipes[2][0], pipes[3][0]):
                os.close(fd)
            raise
        finally:
            for fd in child_ends:
                os.close(fd)
        child = _Child(
            pid, os.fdopen(pipes[0][1], "wb"), os.fdopen(pipes[1][0], "rb"), os.fdopen(pipes[2][0], "rb")
        )
        try:
            pump = Pump(
                child,
                _payload(job, nonce, 3),
                pipes[3][0],
                job.limits.output_bytes,
                functools.partial(kill_all, child, uid),
            )
            streams, timed_out, overflow = pump.run(job.limits.wall_seconds)
        finally:
            kill_group(child)
            kill_user(uid)
            os.close(pipes[3][0])
            for pipe in (child.stdin, child.stdout, child.stderr):
                with contextlib.suppress(OSError):
                    pipe.close()
            try:
                status = server.status()  # the server has reaped it
            except (OSError, EOFError, ValueError):
                server.close()  # out of step or gone: the next run starts a new one
                raise
        self._release(server)
        code = os.waitstatus_to_exitcode(status)
        return RunResult(
            _events(streams["result"], nonce),
            bytes(streams["stdout"]),
            bytes(streams["stderr"]),
            code,
            timed_out,
            overflow,
        )
