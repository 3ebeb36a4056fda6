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
import os
import secrets
import signal

from distill.verify.sandbox import (
    _UIDS,
    Job,
    LocalRunner,
    RunResult,
)
from distill.verify.sandbox_io import (
    Link,
    Pump,
    _events,
    _payload,
    checker_payload,
    kill_all,
    kill_group,
    kill_user,
)
from distill.verify.sandbox_server import feed
from distill.verify.sandbox_tmp import private_mounts_work


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

    def _request(self, job: Job, workdir: str, uid: int | None, checker_uid: int | None) -> dict:
        """What the server forks: the program (as ``uid``, in ``workdir``) and, for function calls, the checker."""
        return {
            "workdir": workdir,
            "uid": uid,
            "network": self.isolation.network,
            "env": {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"},
            "private_tmp": self.private_tmp,
            "tmp_mb": job.limits.tmp_mb,
            "program_fds": 4 if checker_uid is None else 5,
            "checker": checker_uid is not None,
            "checker_uid": checker_uid,
        }

    def _spawn(self, job: Job, workdir: str, uid: int | None) -> RunResult:
        nonce = secrets.token_hex(16)
        link = Link() if job.mode == "function" else None
        stdin, stdout, stderr, result, checker_in, ends = _descriptors(link)
        checker_uid = _UIDS.acquire() if link is not None else None
        request = self._request(job, workdir, uid, checker_uid)
        server = self._servers.acquire()
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
            feed(checker_in[1], checker_payload(job, nonce, 3, 4))
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
        self._servers.release(server)
        code = os.waitstatus_to_exitcode(status)
        return RunResult(
            _events(streams["result"], nonce),
            bytes(streams["stdout"]),
            bytes(streams["stderr"]),
            code,
            timed_out,
            overflow,
        )


def _descriptors(link: Link | None) -> tuple:
    """Pipes for one run: (stdin, stdout, stderr, result, the checker's stdin or None, the children's ends in
    the order the server hands them out). With a checker the program talks to it only, and the checker writes
    the events on ``result``."""
    stdin, stdout, stderr, result = (os.pipe() for _ in range(4))
    if link is None:
        return stdin, stdout, stderr, result, None, [stdin[0], stdout[1], stderr[1], result[1]]
    checker_in = os.pipe()
    devnull = os.open(os.devnull, os.O_WRONLY)
    ends = [stdin[0], stdout[1], stderr[1], *link.program_ends]
    ends += [checker_in[0], result[1], devnull, *link.checker_ends]
    return stdin, stdout, stderr, result, checker_in, ends
