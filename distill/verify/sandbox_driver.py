"""The program-side half of the sandbox: run one Python program under limits; serve calls, or report.

This file is not imported by distill: ``distill.verify.sandbox`` reads its text and runs it as
``python -I -S -c <this file>`` inside the sandbox (a fresh interpreter, no site-packages, no environment
variables read, no script directory on ``sys.path``). It uses the standard library only.

Protocol. stdin starts with an 8-byte big-endian length and the job, a ``marshal``-ed dict (``json`` would
import ``re`` and ``enum``: more start-up time than the interpreter itself); whatever follows on stdin is the
program's own input (stdin/stdout tests), or nothing (stdin is then /dev/null). The driver lowers its
resource limits, then runs the program.

Nothing here decides a verdict: this process is the program's, and the program can reach all of it
(``sys._getframe``, ``gc.get_objects``). In function mode the tests run in the checker process
(``sandbox_checker.py``); this driver only answers its requests on two pipes, each message a 4-byte length
and a ``marshal``-ed tuple: first ``("ready",)`` (or ``("syntax", error)``, ``("done", status, error)`` when
the program did not get that far), then per request ``("names", [...])`` -> what each name is, or
``("call", name, args, kwargs)`` -> ``("value", result)`` (builtin types only) or ``("raise", type, text,
kind)``. Whatever the program writes there instead is data the checker validates, never a verdict. In stdio
mode the driver reports ``done`` on the result pipe (the output itself is compared by the parent).
"""

import marshal
import os
import sys

_PLAIN = (int, float, complex, str, bytes, bool, type(None))


def _read_exact(fd, count):
    buf = bytearray()
    while len(buf) < count:
        chunk = os.read(fd, count - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _limit(job):
    import resource

    limits = job["limits"]
    pairs = [
        (resource.RLIMIT_CPU, limits["cpu_seconds"], limits["cpu_seconds"] + 1),
        (resource.RLIMIT_AS, limits["memory_bytes"], limits["memory_bytes"]),
        (resource.RLIMIT_FSIZE, limits["file_size_bytes"], limits["file_size_bytes"]),
        (resource.RLIMIT_NPROC, limits["processes"], limits["processes"]),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    for which, soft, hard in pairs:
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):  # e.g. NPROC above the current hard limit: keep the lower one
            current = resource.getrlimit(which)[1]
            resource.setrlimit(which, (min(soft, current), current))


def _private_tmp(size_mb):
    """In a user+mount namespace of its own (``unshare -r -m``, no root needed): tmpfs on the shared temporary
    folders, gone with the program; the run's directory made again inside when it lived there."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    options = b"size=%dm,mode=1777" % size_mb
    for path in (b"/tmp", b"/var/tmp", b"/dev/shm"):
        if os.path.isdir(path) and libc.mount(b"tmpfs", path, b"tmpfs", 0x2 | 0x4, options) != 0:
            raise SystemExit(70)  # MS_NOSUID | MS_NODEV
    work = os.environ.get("TMPDIR", "")
    if work:
        os.makedirs(work, exist_ok=True)
        os.chdir(work)


def _describe(exc):
    try:
        text = str(exc).strip().splitlines()
    except BaseException:  # noqa: BLE001 - the program's own __str__
        text = []
    return (type(exc).__name__ + (": " + text[0] if text else ""))[:300]


def _kind(exc):
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, AssertionError):
        return "failed"
    return "runtime_error"


def _plain(value, depth=0):
    """Builtin data only (exact types: a subclass with its own ``__eq__`` is not plain); no program code runs."""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if depth > 200:
        return False
    if kind in (list, tuple, set, frozenset):
        return all(_plain(item, depth + 1) for item in value)
    if kind is dict:
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _what(namespace, name):
    value = namespace[name]
    if type(value) is type(sys):
        return ("module", str(getattr(value, "__name__", "")))
    if callable(value):
        return ("call",)
    return ("value", value) if _plain(value) else ("opaque", type(value).__name__)


def _call(namespace, name, args, kwargs):
    try:
        if name in namespace:
            target = namespace[name]
        elif name.isidentifier() and "Solution" in namespace:  # LeetCode-style: a method of Solution
            target = getattr(namespace["Solution"](), name)
        else:
            target = eval(name, namespace)  # noqa: S307 - the program's own namespace, in its sandbox
        value = target(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - a program may raise anything, SystemExit included
        return ("raise", type(exc).__name__, _describe(exc), _kind(exc))
    if not _plain(value):
        text = f"the result ({type(value).__name__}) cannot reach the tests: builtin data types only"
        return ("raise", "TypeError", text, "runtime_error")
    return ("value", value)


def _serve_calls(code, job):
    reply_fd, request_fd = job["result_fd"], job["request_fd"]
    dumps, loads, write = marshal.dumps, marshal.loads, os.write  # bound before the program runs

    def send(message):
        try:
            data = dumps(message)
        except (ValueError, TypeError):  # e.g. a recursive list
            data = dumps(("raise", "TypeError", "the result cannot be marshalled", "runtime_error"))
        frame = memoryview(len(data).to_bytes(4, "big") + data)
        while len(frame):
            frame = frame[write(reply_fd, frame) :]

    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(code, namespace)
    except BaseException as exc:  # noqa: BLE001
        send(("done", _kind(exc) if _kind(exc) != "failed" else "runtime_error", _describe(exc)))
        return
    send(("ready",))
    while True:
        head = _read_exact(request_fd, 4)
        body = head and _read_exact(request_fd, int.from_bytes(head, "big"))
        if body is None:
            return  # the checker is done (or gone)
        request = loads(body)
        if request[0] == "names":
            send(("names", {n: _what(namespace, n) for n in request[1] if n in namespace}))
        else:
            send(_call(namespace, *request[1:]))


def _run_stdio(code, emit):
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    status, error = "ok", ""
    try:
        exec(code, namespace)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            status, error = "runtime_error", f"SystemExit: {exc.code}"
    except BaseException as exc:  # noqa: BLE001
        status, error = _kind(exc), _describe(exc)
        if status == "failed":
            status = "runtime_error"
    try:  # noqa: SIM105 - contextlib is one more import at every program start
        sys.stdout.flush()
    except BaseException:  # noqa: BLE001 - a closed or replaced stdout
        pass
    emit(event="done", status=status, error=error)


def main():
    head = _read_exact(0, 8)
    body = head and _read_exact(0, int.from_bytes(head, "big"))
    if not body:
        raise SystemExit(71)
    job = marshal.loads(body)
    if job.get("mounts"):
        _private_tmp(job["mounts"])
    _limit(job)
    if job["mode"] == "function":
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        try:
            code = compile(job.pop("source"), "solution.py", "exec")
        except (SyntaxError, ValueError) as exc:
            code, error = None, _describe(exc)
        if code is None:
            data = marshal.dumps(("syntax", error))
            os.write(job["result_fd"], len(data).to_bytes(4, "big") + data)
            return
        _serve_calls(code, job)
        try:  # noqa: SIM105
            sys.stdout.flush()
        except BaseException:  # noqa: BLE001
            pass
        os._exit(0)  # threads the program left running do not hold the verdict up
    results = os.fdopen(job["result_fd"], "w", buffering=1)
    prefix = job.pop("nonce") + "\t"
    write = results.write  # bound before the program runs

    def emit(**fields):
        try:  # noqa: SIM105
            write(prefix + repr(fields) + "\n")
        except BaseException:  # noqa: BLE001 - the program closed the pipe: the parent sees no report
            pass

    try:
        code = compile(job.pop("source"), "solution.py", "exec")
    except (SyntaxError, ValueError) as exc:
        emit(event="syntax", error=_describe(exc))
        return
    _run_stdio(code, emit)


main()
