"""Pre-started interpreters that fork the program and its checker per run (``ForkServerRunner``), or only the
checker (``LocalRunner``): an interpreter start (~10 ms of CPU here) saved per process.

A server is ``python -I -S`` with the driver and the checker compiled once. Per request it forks: the
program's child (root only: a session, a network and mount namespace with private tmpfs, the run's user id,
the temporary directory as cwd, a clean environment, then the driver) and/or the checker's child (a session,
as root a user id of its own, ``/`` as cwd, then the checker). It reports both pids, reaps them and reports
the program's wait status. ``ServerPool`` keeps one idle server per run in flight, replacing dead ones.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import pathlib
import socket
import subprocess
import threading

from distill.verify.sandbox_tmp import MOUNT_CODE

DRIVER = (pathlib.Path(__file__).with_name("sandbox_driver.py")).read_text()
CHECKER = (pathlib.Path(__file__).with_name("sandbox_checker.py")).read_text()

# The server: receives a request + the program's descriptors (stdin, stdout, stderr, result or reply, [request];
# none when the program is started elsewhere) and, for a function-call job, the checker's (stdin, stdout,
# stderr, reply, request); forks the program and/or the checker, reports the pids, waits for them and reports
# the program's wait status. One request at a time (one server per pool thread).
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
        if uid is not None:  # as root: the run's user id (else this user's, as the server's)
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
    split, pid, checker_pid = request["program_fds"], 0, 0
    if split:
        pid = os.fork()
        if pid == 0:
            child(fds[:split], request["uid"], driver, request["env"], lambda: program_setup(request))
    if request["checker"]:
        checker_pid = os.fork()
        if checker_pid == 0:
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
            child(fds[split:], request["checker_uid"], checker, env, checker_setup)
    for fd in fds:
        os.close(fd)
    sock.sendall(marshal.dumps(("pid", pid, checker_pid)))
    status = os.waitpid(pid, 0)[1] if pid else 0
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
        self.proc.stdin.write(DRIVER + "\0" + CHECKER)
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


class ServerPool:
    """Idle servers of one interpreter, one per run in flight; a dead one is replaced."""

    def __init__(self, python: str) -> None:
        self.python = python
        self._idle: list[_Server] = []
        self._lock = threading.Lock()

    def acquire(self) -> _Server:
        with self._lock:
            while self._idle:
                server = self._idle.pop()
                if server.alive():
                    return server
        return _Server(self.python)

    def release(self, server: _Server) -> None:
        if server.alive():
            with self._lock:
                self._idle.append(server)


def feed(fd: int, data: bytes) -> None:
    """Write a checker's job and close its stdin (a checker that died at once simply reports nothing)."""
    with contextlib.suppress(OSError):
        view = memoryview(data)
        while len(view):
            view = view[os.write(fd, view) :]
    os.close(fd)
