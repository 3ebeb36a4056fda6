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
import signal
import socket
import subprocess
import threading

from distill.verify.sandbox import (
    _CHECKER,
    _DRIVER,
    _UIDS,
    Job,
    LocalRunner,
    RunResult,
    _events,
    _payload,
    checker_payload,
)
from distill.verify.sandbox_io import Link, Pump, kill_all, kill_group, kill_user
from distill.verify.sandbox_tmp import MOUNT_CODE, private_mounts_work

# The server: receives a request + the program's descriptors (stdin, stdout, stderr, result or reply, [request])
# and, for a function-call job, the checker's (stdin, stdout, stderr, reply, request); forks the program (and
# the checker), reports the pids, waits for them and reports the program's wait status. One request at a
# time (one server per pool thread).
_SERVER = (
    r"""
import ctypes, marshal, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
driver_text, checker_text = sys.stdin.read().split("\0")
driver = compile(driver_text, "sandbox_driver.py", "exec")
checker = compile(checker_text, "sandbox_checker.py", "exec")
sock = socket.socket(fileno=int(sys.argv[1]))
"""
    + MOUNT_CODE
    + r"""
def child(fds, uid, code, env, setup):
    try:
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(len(fds), 1 << 16)
        setup()
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: /proc/<pid> owned by uid, so kill_user finds it
        os.environ.clear()
        os.environ.update(env)
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
        sys.stdout.flush()
        os._exit(0)
    except SystemExit as exc:
        os._exit(exc.code if isinstance(exc.code, int) else 1)
    except BaseException:
        os._exit(71)

def program_setup(request):
    if request["private_tmp"]:
        if not private_tmp(libc, request["tmp_mb"], request["network"]):
            os._exit(70)
        os.makedirs(request["workdir"], exist_ok=True)
        os.chown(request["workdir"], request["uid"], request["uid"])
    elif request["network"] and libc.unshare(0x40000000) != 0:
        os._exit(70)
    os.chdir(request["workdir"])

def checker_setup():
    os.chdir("/")

while True:
    try:
        data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 10)
    except OSError:
        os._exit(0)
    if not data:
        os._exit(0)
    request = marshal.loads(data)
    split = request["program_fds"]
    pid = os.fork()
    if pid == 0:
        child(fds[:split], request["uid"], driver, request["env"], lambda: program_setup(request))
    checker_pid = 0
    if request["checker_uid"] is not None:
        checker_pid = os.fork()
        if checker_pid == 0:
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
            child(fds[split:], request["checker_uid"], checker, env, checker_setup)
    for fd in fds:
        os.close(fd)
    sock.sendall(marshal.dumps(("pid", pid, checker_pid)))
    _, status = os.waitpid(pid, 0)
    if checker_pid:
        os.waitpid(checker_pid, 0)
    sock.sendall(marshal.dumps(("status", status)))
"""
)


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
        self.proc.stdin.write(_DRIVER + "\0" + _CHECKER)
        self.proc.stdin.close()

    def start(self, request: dict, fds: list[int]) -> tuple[int, int]:
        """(the program's pid, the checker's or 0); both stay the server's children until it reports."""
        socket.send_fds(self.sock, [marshal.dumps(request, 2)], fds)
        kind, pid, checker_pid = marshal.loads(self.sock.recv(1 << 10))
        if kind != "pid":
            raise RuntimeError(f"fork server: expected a pid, got {kind}")
        return pid, checker_pid

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
        self.private_tmp = private_mounts_work(self.isolation.python)
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
        stdin, stdout, stderr, result = (os.pipe() for _ in range(4))
        link = Link() if job.mode == "function" else None
        if link is None:
            ends, checker_uid = [stdin[0], stdout[1], stderr[1], result[1]], None
        else:  # the program talks to the checker only; the checker writes the events to us
            checker_in = os.pipe()
            devnull = os.open(os.devnull, os.O_WRONLY)
            ends = [stdin[0], stdout[1], stderr[1], *link.program_ends]
            ends += [checker_in[0], result[1], devnull, *link.checker_ends]
            checker_uid = _UIDS.acquire()
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
        request = {
            "workdir": workdir,
            "uid": uid,
            "network": self.isolation.network,
            "env": env,
            "private_tmp": self.private_tmp,
            "tmp_mb": job.limits.tmp_mb,
            "program_fds": 4 if link is None else 5,
            "checker_uid": checker_uid,
        }
        server = self._acquire()
        try:
            pid, checker_pid = server.start(request, ends)
        except BaseException:
            server.close()
            for fd in (stdin[1], stdout[0], stderr[0], result[0], *([checker_in[1]] if link else [])):
                os.close(fd)
            raise
        finally:
            for fd in ends:
                os.close(fd)
        if link is not None:
            _feed(checker_in[1], checker_payload(job, nonce, 3, 4))
        child = _Child(pid, os.fdopen(stdin[1], "wb"), os.fdopen(stdout[0], "rb"), os.fdopen(stderr[0], "rb"))
        try:
            pump = Pump(
                child,
                _payload(job, nonce, 3, 4 if link else None),
                result[0],
                job.limits.output_bytes,
                functools.partial(kill_all, child, uid),
            )
            streams, timed_out, overflow = pump.run(job.limits.wall_seconds)
        finally:
            kill_group(child)
            kill_user(uid)
            if (
                checker_pid
            ):  # trusted, it starts no process; not reaped until the server reports: no pid reuse
                with contextlib.suppress(ProcessLookupError):
                    os.kill(checker_pid, signal.SIGKILL)
            os.close(result[0])
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


def _feed(fd: int, data: bytes) -> None:
    """Write the checker's job and close its stdin (a checker that died at once simply reports nothing)."""
    with contextlib.suppress(OSError):
        view = memoryview(data)
        while len(view):
            view = view[os.write(fd, view) :]
    os.close(fd)
