"""Strategy ``single`` trains in a child process of the stage's, so that a training process the kernel kills
(out of memory, most often: a CPU student's activations) is reported in one line and the stage is recorded as
failed, instead of taking the whole `distill` command down with it and leaving the run "running".

The child is forked from a fork server that imported torch/transformers/TRL once and never ran a tensor
operation: forking the stage's own process would be free, but a process that already ran OpenMP work (any
torch op) hangs in its forked child's first parallel region, and a process that started CUDA cannot give it
to a fork. A fresh interpreter per run would pay the imports (~10 s) every time. The fork server pays them
once per `distill` process; each training child then starts in about a second. The child takes the
stage's environment, working directory and import path at the time of the call (the server's are those of
when it started).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import multiprocessing
import os
import signal
import sys
import traceback
from pathlib import Path

from distill.errors import DistillError, first_line

ERROR_FILE = "training_error.txt"  # the child's error message, for the stage to raise
_PRELOAD = ["torch", "transformers", "datasets", "trl"]
_context = None


def train_in_child(module: str, job_file: Path, label: str) -> None:
    """Run the training process ``python -m MODULE JOB_FILE`` would, as a child of this process; a
    DistillError in it is raised here with its own message, a kill by a signal as a one-line DistillError."""
    out_dir = job_file.parent
    error_file = out_dir / ERROR_FILE
    error_file.unlink(missing_ok=True)
    child = _fork_server().Process(
        target=_child,
        args=(module, str(job_file), list(sys.path), dict(os.environ), os.getcwd()),
        name=f"distill {label}",
    )
    child.start()
    try:
        child.join()
    except BaseException:  # Ctrl-C: the child gets it too (same process group); do not leave it behind
        child.terminate()
        child.join()
        raise
    if child.exitcode == 0:
        return
    if child.exitcode is not None and child.exitcode < 0:
        raise DistillError(killed_message(label, -child.exitcode, out_dir))
    error = json.loads(error_file.read_text()) if error_file.exists() else {}
    if error.get("distill_error"):
        raise DistillError(error["message"])
    raise DistillError(
        f"{label}: the training process failed ({error.get('message') or f'exit status {child.exitcode}'}; "
        f"its traceback is above); the partial run is in {out_dir}"
    )


def killed_message(label: str, signum: int, out_dir: Path) -> str:
    name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else str(signum)
    hint = " (out of memory? the kernel's OOM killer sends SIGKILL; `dmesg` says)" if signum == 9 else ""
    return (
        f"{label}: the training process was killed by {name}{hint}; the partial run is in {out_dir} and a "
        "rerun resumes from its last complete checkpoint; if memory ran out, turn on "
        "gradient_checkpointing or lower batch_size or max_length (`distill plan` estimates host memory)"
    )


def _fork_server():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload([m for m in _PRELOAD if importlib.util.find_spec(m) is not None])
    return _context


def _child(module: str, job_file: str, sys_path: list[str], env: dict[str, str], cwd: str) -> None:
    """In the child: the stage's environment, then the method's training process on the job file."""
    _die_with_the_fork_server()
    sys.path[:] = sys_path
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    error_file = Path(job_file).parent / ERROR_FILE
    try:
        method = importlib.import_module(module).METHOD
        method.train(json.loads(Path(job_file).read_text()))
        from distill.training import end_process_group

        end_process_group()
    except DistillError as exc:
        error_file.write_text(json.dumps({"distill_error": True, "message": str(exc)}))
        sys.exit(2)
    except BaseException as exc:
        traceback.print_exc()
        message = first_line(f"{type(exc).__name__}: {exc}", 300)
        error_file.write_text(json.dumps({"distill_error": False, "message": message}))
        sys.exit(1)


def _die_with_the_fork_server() -> None:
    """End this child when its fork server ends, which it does when the stage's process is gone (killed
    too): an orphaned training process would go on writing checkpoints into the partial folder that the
    rerun resumes from. The kernel's parent-death signal where there is one (Linux), a watch otherwise."""
    import ctypes
    import threading
    import time

    server = os.getppid()
    if server == 1:  # the server ended before this child ran: its stage is gone
        os._exit(1)
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def watch() -> None:
        while os.getppid() == server:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="distill-parent-watch").start()
