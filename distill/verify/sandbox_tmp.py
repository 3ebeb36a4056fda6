"""Nothing a program writes outlives it: private temporary mounts per program, else a sweep after the run.

Where the runner may create a mount namespace (root, for the fork server; bubblewrap's own), each program gets
tmpfs mounts of its own on ``/tmp``, ``/var/tmp`` and ``/dev/shm`` (``Limits.tmp_mb`` each): they vanish
with the program's last process, whatever it wrote. Elsewhere, with a user id per run (root), every file and
folder of that user id left in those three places is removed after the run, counted in
``RunResult.removed_files`` and logged. Without either (no root, no namespaces) nothing is guaranteed; see
docs/sandbox.md.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import stat
import subprocess

log = logging.getLogger("distill.verify")
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")

# Run in a forked child, as root, before it drops to the program's user id (fork server) and by the probe:
# a mount namespace of its own (with the network one when asked), mounts made private so nothing propagates
# back, then a tmpfs on each shared temporary folder. Needs `libc` (ctypes.CDLL) and `os` in scope.
MOUNT_CODE = r"""
def private_tmp(libc, size_mb, network):
    flags = 0x00020000 | (0x40000000 if network else 0)  # CLONE_NEWNS | CLONE_NEWNET
    if libc.unshare(flags) != 0:
        return False
    if libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None) != 0:  # MS_REC | MS_PRIVATE
        return False
    options = b"size=%dm,mode=1777" % size_mb
    for path in (b"/tmp", b"/var/tmp", b"/dev/shm"):
        if os.path.isdir(path) and libc.mount(b"tmpfs", path, b"tmpfs", 0x2 | 0x4, options) != 0:
            return False  # MS_NOSUID | MS_NODEV
    return True
"""

_PROBE = (
    "import ctypes, os\n"
    + MOUNT_CODE
    + (
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "ok = private_tmp(libc, 1, False) and not os.listdir('/tmp') and os.statvfs('/tmp').f_blocks > 0\n"
        "raise SystemExit(0 if ok else 1)\n"
    )
)


# Run inside `unshare -r -m` (a user namespace: no root needed): can the driver mount a tmpfs there?
USERNS_MOUNT_PROBE = (
    "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    "ok = libc.mount(b'tmpfs', b'/tmp', b'tmpfs', 6, b'size=1m,mode=1777') == 0 and not os.listdir('/tmp')\n"
    "raise SystemExit(0 if ok else 1)\n"
)


@functools.lru_cache(maxsize=2)
def private_mounts_work(python: str) -> bool:
    """Can a child of this process (as root) mount tmpfs in a namespace of its own? Probed once."""
    if os.geteuid() != 0:
        return False
    try:
        done = subprocess.run([python, "-I", "-S", "-c", _PROBE], capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def sweep_tmp(uid: int, roots: tuple[str, ...] = SHARED_TMP) -> int:
    """Remove every file and folder owned by ``uid`` in ``roots`` (and in world-writable folders there);
    returns how many top-level entries were removed, logged when any. Symlinks are removed, never followed."""
    removed = 0
    pending = [root for root in roots if os.path.isdir(root)]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_uid == uid:
                removed += _remove(entry.path, info)
            elif stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IWOTH:
                pending.append(entry.path)  # a shared folder (sticky, like /tmp): the program may write there
    if removed:
        log.info("code sandbox: removed %d file(s) the program of user id %d left in %s", removed, uid, roots)
    return removed


def _remove(path: str, info: os.stat_result) -> int:
    try:
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        return 0
    return 1
