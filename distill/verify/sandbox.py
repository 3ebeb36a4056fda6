"""Where programs run: a runner interface, the local runner, and a pool (``run_many``).

What is checked (tests, comparison) lives in ``distill.verify.code``; this module only runs a ``Job`` and
returns what happened. Every limit is here, in ``Limits``. The local runner starts each program as
``python -I -S -c <sandbox_driver.py>`` (isolated mode, no site-packages: the standard library only):

- its own session and process group (``start_new_session``), killed as a whole (``os.killpg``) at the wall
  deadline and again when the program ends, so children it leaves behind are reaped;
- a fresh temporary directory as cwd, ``HOME`` and ``TMPDIR``, removed afterwards;
- an environment built from nothing: ``PATH=/usr/bin:/bin``, ``HOME``, ``TMPDIR``, ``LANG`` (no tokens, no
  API keys, nothing of the parent's);
- limits on CPU seconds, address space, file size, process count and core files (``resource.setrlimit``,
  set by the driver before the program's first line; not ``preexec_fn``, which is unsafe in the threaded
  pool), a wall deadline, and caps on stdout, stderr and the result pipe (the group is killed at a cap);
- stdin: the test input only (stdin/stdout tests) or /dev/null;
- function-call tests in a checker process beside the program (``sandbox_checker.py``, never the program's
  user id): calls of the entry point cross two pipes as marshalled builtin data, so nothing the program does
  in its own process (frames, ``gc``, patched serialisers, objects with their own ``__eq__``) reaches a verdict;
- as root: a new user id per run (so ``RLIMIT_NPROC`` binds, files only you can read and
  ``/proc/<pid>/environ`` are out of reach and it cannot signal your processes; every process of that id is
  killed afterwards, even one that left the group), and a network namespace of its own (``unshare -n``: no
  interface is up, connections fail); files of that id left in ``/tmp``, ``/var/tmp``, ``/dev/shm`` are
  removed after the run (``sandbox_tmp.sweep_tmp``). Without root, a user+network namespace (``unshare -rn``)
  where the kernel allows it, else no network isolation; ``isolation()`` says which, and every ``RunResult``
  records it.

``distill.verify.sandbox_forkserver.ForkServerRunner`` (the default as root, see ``code.default_runner``)
gives the same guarantees with a fork of a pre-started sandbox interpreter instead of an interpreter start,
and private tmpfs mounts instead of the sweep; ``sandbox_bwrap.BwrapRunner`` runs the program inside
bubblewrap. Which runner guarantees what, and what none does: docs/sandbox.md.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import pathlib
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Protocol

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
from distill.verify.sandbox_server import ServerPool, feed
from distill.verify.sandbox_tmp import USERNS_MOUNT_PROBE, sweep_tmp

_DRIVER = (pathlib.Path(__file__).with_name("sandbox_driver.py")).read_text()
# User ids of no real user: a range of a million per parent process (by pid), each run a new one, so no two
# runs share an id while a zombie of the first (still counted by RLIMIT_NPROC) waits for init to reap it.
_UID_SPAN = 1_000_000
_UID_BASE = 100_000_000 + (os.getpid() % 2_000) * _UID_SPAN  # below 2**31: bwrap maps no larger id


@dataclass(frozen=True)
class Limits:
    """Limits of one program run (one process group)."""

    wall_seconds: float = 10.0  # the whole run (all function-call tests, or one stdin/stdout test)
    cpu_seconds: int | None = None  # RLIMIT_CPU; None: the wall time rounded up, + 1
    memory_mb: int = 1024  # RLIMIT_AS (address space), per process
    file_size_mb: int = 16  # RLIMIT_FSIZE: the largest file it may write
    processes: int = 32  # RLIMIT_NPROC (binds when each run has its own user id, i.e. as root)
    output_bytes: int = 1 << 20  # cap on each of stdout, stderr and the result pipe
    tmp_mb: int = 64  # size of each private tmpfs (/tmp, /var/tmp, /dev/shm) where the runner mounts them

    def for_driver(self) -> dict:
        cpu = self.cpu_seconds or math.ceil(self.wall_seconds) + 1
        return {
            "cpu_seconds": int(cpu),
            "memory_bytes": self.memory_mb << 20,
            "file_size_bytes": self.file_size_mb << 20,
            "processes": self.processes,
        }


@dataclass
class Job:
    """One program run. ``mode``: "function" (run tests in-process) or "stdio" (feed ``stdin``)."""

    source: str
    mode: str = "function"
    tests: list[str] = field(default_factory=list)
    entry_point: str | None = None
    call_check: bool = False  # tests define check(candidate): call it with the entry point
    stdin: bytes = b""
    float_tolerance: float | None = None  # for call-based pairs compared by the checker's ``same``
    limits: Limits = field(default_factory=Limits)


@dataclass
class RunResult:
    events: list[dict]  # the driver's authenticated reports, in order
    stdout: bytes = b""
    stderr: bytes = b""
    returncode: int | None = None  # negative: killed by that signal
    timed_out: bool = False  # killed at the wall deadline
    overflow: str = ""  # which stream passed its cap ("" if none)
    seconds: float = 0.0
    network_isolated: bool = False
    error: str = ""  # the runner itself failed (the program never ran)
    removed_files: int = 0  # files of the program's user id left in /tmp, /var/tmp, /dev/shm and removed


class Runner(Protocol):
    """Runs jobs for one language; a container or remote runner implements the same two members."""

    language: str

    def run(self, job: Job) -> RunResult: ...


@dataclass(frozen=True)
class Isolation:
    python: str  # the interpreter programs run with
    prefix: tuple[str, ...]  # command prefix (unshare ...), "{uid}" filled per run
    network: bool  # a network namespace of its own
    own_user: bool  # a user id of its own per run (root only)
    note: str
    private_tmp: bool = False  # the driver mounts tmpfs on /tmp, /var/tmp, /dev/shm (a user+mount namespace)

    def describe(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=8)
def driver_command(python: str, source: str = _DRIVER) -> str:
    """The ``-c`` argument that runs the driver (or the checker): its code compiled once by ``python`` and
    passed marshalled (compiling the source at every start costs ~2 ms of CPU per program); the source itself
    as a fallback."""
    compile_it = (
        "import marshal,sys;sys.stdout.write(marshal.dumps(compile(sys.stdin.read(),'driver','exec')).hex())"
    )
    try:
        done = subprocess.run(
            [python, "-I", "-S", "-c", compile_it], input=source, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return source
    if done.returncode != 0 or not done.stdout:
        return source
    return f"import marshal;exec(marshal.loads(bytes.fromhex('{done.stdout.strip()}')))"


def _probe(prefix: list[str], python: str, uid: int | None, mounts: bool = False) -> bool:
    code = USERNS_MOUNT_PROBE if mounts else "pass"
    cmd = [part.replace("{uid}", str(uid)) for part in prefix] + [python, "-I", "-S", "-c", code]
    extra = {"user": uid, "group": uid, "extra_groups": []} if uid is not None and not prefix else {}
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=20, env={"PATH": "/usr/bin:/bin"}, **extra)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@functools.lru_cache(maxsize=2)
def isolation(network: bool = True) -> Isolation:
    """Detect once what this machine allows: the interpreter, a network namespace, a user id per run."""
    pythons = [os.path.realpath(sys.executable)]
    pythons += [p for p in ("/usr/bin/python3",) if os.path.exists(p) and p not in pythons]
    unshare = shutil.which("unshare", path="/usr/bin:/bin")
    root = os.geteuid() == 0
    if root:
        # unshare also drops to the run's user id (-G/-S): Popen(user=...) would rule out vfork, and a
        # fork of a large parent (torch loaded) is slow.
        drop = ("-G", "{uid}", "-S", "{uid}", "--")
        plans = [(("unshare", "-n", *drop), True, True, False), (("unshare", *drop), False, True, False)]
        plans = (plans if unshare else []) + [((), False, True, False)]
    else:  # a user namespace: network and mount namespaces of its own where the kernel allows them
        plans = [
            (("unshare", "-r", "-n", "-m", "--"), True, False, True),
            (("unshare", "-r", "-n", "--"), True, False, False),
            (("unshare", "-r", "-m", "--"), False, False, True),
        ]
        plans = (plans if unshare else []) + [((), False, False, False)]
    for prefix, net, own_user, mounts in plans:
        if net and not network:
            continue
        for python in pythons:
            if _probe(list(prefix), python, _UID_BASE if own_user else None, mounts):
                note = "network namespace" if net else "network isolation OFF (no usable unshare)"
                if not network:
                    note = "network isolation OFF (disabled)"
                note += ("; own user id" if own_user else "") + (
                    "; private /tmp (user namespace)" if mounts else ""
                )
                return Isolation(python, prefix, net, own_user, note, mounts)
    raise RuntimeError(
        "sandbox: no Python interpreter could be started (tried {})".format(", ".join(pythons))
    )


class _UserIds:
    """Hands out user ids, a new one per run, cycling through this process's range."""

    def __init__(self) -> None:
        self._next = 0
        self._lock = threading.Lock()

    def acquire(self) -> int:
        with self._lock:
            self._next = self._next % (_UID_SPAN - 1) + 1
            return _UID_BASE + self._next


_UIDS = _UserIds()


class LocalRunner:
    """Runs Python programs on this machine, each in its own process group, user id and network namespace;
    the tests of a function-call job in a checker process beside it (``sandbox_checker.py``)."""

    language = "python"
    private_tmp = False  # /tmp, /var/tmp, /dev/shm of its own per program (else: swept after the run)

    def __init__(self, network: bool = True) -> None:
        self.isolation = isolation(network)
        self.private_tmp = self.isolation.private_tmp
        self._servers = ServerPool(self.isolation.python)  # fork the checkers (and, as root, the programs)

    def run(self, job: Job) -> RunResult:
        started = time.monotonic()
        try:
            result = self._run(job)
        except Exception as exc:  # noqa: BLE001 - the pool must survive anything
            result = RunResult(events=[], error=f"{type(exc).__name__}: {exc}")
        result.seconds = time.monotonic() - started
        result.network_isolated = self.isolation.network
        return result

    def _run(self, job: Job) -> RunResult:
        iso = self.isolation
        uid = _UIDS.acquire() if iso.own_user else None
        workdir = tempfile.mkdtemp(prefix="distill-sandbox-")
        removed = 0
        try:
            if uid is not None:
                os.chown(workdir, uid, uid)
            result = self._spawn(job, workdir, uid)
        finally:
            if uid is not None:
                kill_user(uid)
            shutil.rmtree(workdir, ignore_errors=True)
            if uid is not None and not self.private_tmp:
                removed = sweep_tmp(uid)
        result.removed_files = removed
        return result

    def _sandbox_command(self, job: Job, uid: int | None) -> list[str]:
        cmd = [p.replace("{uid}", str(uid)) for p in self.isolation.prefix]
        return cmd + [self.isolation.python, "-I", "-S", "-c", driver_command(self.isolation.python)]

    def _spawn(self, job: Job, workdir: str, uid: int | None) -> RunResult:
        iso = self.isolation
        nonce = secrets.token_hex(16)
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
        drop = {"user": uid, "group": uid, "extra_groups": []} if uid is not None and not iso.prefix else {}
        read_fd, write_fd = os.pipe()
        link = Link() if job.mode == "function" else None
        checker = None
        try:
            proc = subprocess.Popen(
                self._sandbox_command(job, uid),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd,) if link is None else link.program_ends,
                cwd=workdir,
                env=env,
                start_new_session=True,
                **drop,
            )
            if link is not None:
                checker = self._start_checker(job, nonce, write_fd, link, uid is not None)
        finally:
            os.close(write_fd)
            if link is not None:
                link.close_child_ends()
        try:
            mounts = job.limits.tmp_mb if self.isolation.private_tmp else 0  # the driver mounts them
            if link is None:
                data = _payload(job, nonce, write_fd, mounts=mounts)
            else:
                data = _payload(job, nonce, *link.program_ends, mounts=mounts)
            pump = Pump(proc, data, read_fd, job.limits.output_bytes, functools.partial(kill_all, proc, uid))
            streams, timed_out, overflow = pump.run(job.limits.wall_seconds)
        finally:
            kill_group(proc)
            proc.wait()
            os.close(read_fd)
            if checker is not None:
                self._end_checker(*checker)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    pipe.close()
        return RunResult(
            events=_events(streams["result"], nonce),
            stdout=bytes(streams["stdout"]),
            stderr=bytes(streams["stderr"]),
            returncode=proc.returncode,
            timed_out=timed_out,
            overflow=overflow,
        )

    def _start_checker(self, job: Job, nonce: str, result_fd: int, link: Link, own_user: bool) -> tuple:
        """The trusted checker, forked by a checker server: as this user, or as root a user id of its own
        (never the program's). Returns (server, pid) for ``_end_checker``."""
        server = self._servers.acquire()
        job_read, job_write = os.pipe()
        devnull = os.open(os.devnull, os.O_WRONLY)
        fds = [job_read, result_fd, devnull, *link.checker_ends]
        request = {"program_fds": 0, "checker": True, "checker_uid": _UIDS.acquire() if own_user else None}
        try:
            _, pid = server.start(request, fds)
        except BaseException:
            server.close()
            os.close(job_write)
            raise
        finally:
            os.close(job_read)
            os.close(devnull)
        feed(job_write, checker_payload(job, nonce, 3, 4))
        return server, pid

    def _end_checker(self, server, pid: int) -> None:
        """The checker is trusted and starts no process; it is the server's child until the server reports."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        try:
            server.status()
        except (OSError, EOFError, ValueError):
            server.close()
            raise
        self._servers.release(server)


def run_many(jobs: list[Job], runner: Runner | None = None, workers: int | None = None) -> list[RunResult]:
    """Run jobs in parallel (threads waiting on processes); one failing run never stops the others."""
    runner = runner or LocalRunner()
    workers = max(1, workers or os.cpu_count() or 1)
    if workers == 1 or len(jobs) <= 1:
        return [runner.run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(runner.run, jobs))
