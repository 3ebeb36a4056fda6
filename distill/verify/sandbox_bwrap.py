"""A bubblewrap runner: ``LocalRunner``'s pipeline with the program inside ``bwrap`` (Debian's ``bubblewrap``).

The program sees a root of its own: read-only binds of ``/usr`` (and of the interpreter's prefix when it lives
elsewhere), ``/bin``, ``/lib``, ``/lib64`` as on the host, a fresh ``/proc`` and ``/dev``, and tmpfs mounts on
``/tmp``, ``/var/tmp`` and ``/dev/shm`` (``Limits.tmp_mb`` each) that vanish with it. New user, pid, network,
ipc, uts and cgroup namespaces (``--unshare-all``): it sees no other process, no network, no file of the
machine outside those binds (no ``/home``, ``/root``, ``/etc``, no dataset, no checkpoint). As root each run
also has a user id of its own outside (``unshare -G/-S`` before ``bwrap``), so ``RLIMIT_NPROC`` binds and
``kill_user`` ends whatever is left. The tests run in the checker process outside the sandbox, as for
``LocalRunner``. Chosen with ``sandbox: bwrap`` (or ``DISTILL_SANDBOX=bwrap``); see docs/sandbox.md.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys

from distill.verify.sandbox import _UIDS, Isolation, Job, LocalRunner, RunResult, driver_command
from distill.verify.sandbox_server import ServerPool


def bwrap_path() -> str | None:
    return shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin")


def _binds(python: str) -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))
    if not prefix.startswith("/usr"):  # e.g. a pyenv interpreter: its own tree, read-only
        args += ["--ro-bind", prefix, prefix]
    return args


def bwrap_command(python: str, tmp_mb: int, network: bool) -> list[str]:
    """``bwrap`` and its options up to the interpreter (the driver command follows)."""
    size = str(tmp_mb << 20)
    cmd = [bwrap_path() or "bwrap", *_binds(python), "--proc", "/proc", "--dev", "/dev"]
    for path in ("/tmp", "/var/tmp", "/dev/shm"):
        cmd += ["--size", size, "--tmpfs", path]
    cmd += ["--unshare-all", *([] if network else ["--share-net"]), "--die-with-parent", "--new-session"]
    cmd += ["--chdir", "/tmp", "--clearenv"]
    for name, value in (("PATH", "/usr/bin:/bin"), ("HOME", "/tmp"), ("TMPDIR", "/tmp"), ("LANG", "C.UTF-8")):
        cmd += ["--setenv", name, value]
    return [*cmd, "--"]


@functools.lru_cache(maxsize=2)
def bwrap_isolation(network: bool = True) -> Isolation | None:
    """What bubblewrap gives on this machine, or None when ``bwrap`` is missing or cannot start a sandbox
    (no user namespaces for it here)."""
    if bwrap_path() is None:
        return None
    root = os.geteuid() == 0
    python = os.path.realpath("/usr/bin/python3") if os.path.exists("/usr/bin/python3") else None
    drop = ("unshare", "-G", "{uid}", "-S", "{uid}", "--") if root else ()
    uid = str(_UIDS.acquire()) if root else ""
    for candidate in [p for p in (python, os.path.realpath(sys.executable)) if p]:
        cmd = [part.replace("{uid}", uid) for part in drop] + bwrap_command(candidate, 1, network)
        try:
            done = subprocess.run(
                [*cmd, candidate, "-I", "-S", "-c", "pass"], capture_output=True, timeout=20, env={}
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            note = "bubblewrap (user, pid, network, mount namespaces; private /tmp, /var/tmp, /dev/shm)"
            if not network:
                note = "bubblewrap, network isolation OFF (disabled)"
            return Isolation(candidate, drop, network, root, note + ("; own user id" if root else ""))
    return None


class BwrapRunner(LocalRunner):
    """``LocalRunner``'s guarantees plus bubblewrap's: the program in namespaces of its own with a read-only
    view of the interpreter and libraries only."""

    private_tmp = True

    def __init__(self, network: bool = True) -> None:
        found = bwrap_isolation(network)
        if found is None:
            raise RuntimeError(
                "sandbox bwrap: `bwrap` is not installed or cannot create namespaces here; install Debian's "
                "bubblewrap (apt-get install bubblewrap) or choose sandbox: auto"
            )
        self.isolation = found
        self._servers = ServerPool(found.python)  # the checkers' (the program starts inside bwrap)

    def _sandbox_command(self, job: Job, uid: int | None) -> list[str]:
        python = self.isolation.python
        drop = [part.replace("{uid}", str(uid)) for part in self.isolation.prefix]
        bwrap = bwrap_command(python, job.limits.tmp_mb, self.isolation.network)
        return [*drop, *bwrap, python, "-I", "-S", "-c", driver_command(python)]

    def _spawn(self, job: Job, workdir: str, uid: int | None) -> RunResult:
        result = super()._spawn(job, workdir, uid)
        # bwrap exits 128 + n when the program was killed by signal n: read it as the signal, as elsewhere
        code = result.returncode
        if code is not None and 128 < code < 128 + 65 and (code - 128) in signal.Signals._value2member_map_:
            result.returncode = -(code - 128)
        return result
