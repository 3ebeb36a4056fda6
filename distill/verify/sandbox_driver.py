"""The program-side half of the sandbox: run one Python program under limits and report over a pipe.

This file is not imported by distill: ``distill.verify.sandbox`` reads its text and runs it as
``python -I -S -c <this file>`` inside the sandbox (a fresh interpreter, no site-packages, no environment
variables read, no script directory on ``sys.path``). It uses the standard library only.

Protocol. stdin starts with an 8-byte big-endian length and the job, a ``marshal``-ed dict (``json`` would
import ``re`` and ``enum``: more start-up time than the interpreter itself); whatever follows on stdin is the
program's own input (stdin/stdout tests), or nothing (stdin is then /dev/null). The driver lowers its
resource limits, then runs the program and reports one line per event on the result pipe: the job's nonce,
a tab, and the ``repr`` of a dict ``{"event": "syntax" | "test" | "done", ...}`` (a program that writes on
that pipe cannot forge a line without the nonce).

Function-call mode runs the program once, then each test (asserts, or a ``check`` called with the entry
point) in a namespace with a *private copy of the builtins taken before the program ran*, so a program that
patches ``builtins.abs`` or shadows ``len`` cannot change what the tests compute.
"""

import marshal
import os
import sys


def _read_exact(count):
    buf = bytearray()
    while len(buf) < count:
        chunk = os.read(0, count - len(buf))
        if not chunk:
            raise SystemExit(71)
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


def _describe(exc):
    text = str(exc).strip().splitlines()
    return (type(exc).__name__ + (": " + text[0] if text else ""))[:300]


def _kind(exc):
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, AssertionError):
        return "failed"
    return "runtime_error"


def _run_function_tests(code, job, emit, builtins_copy):
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(code, namespace)
    except BaseException as exc:  # noqa: BLE001 - a program may raise anything, SystemExit included
        emit(
            event="done",
            status=_kind(exc) if _kind(exc) != "failed" else "runtime_error",
            error=_describe(exc),
        )
        return
    entry = job.get("entry_point")
    for index, test in enumerate(job["tests"]):
        scope = {k: v for k, v in namespace.items() if k not in builtins_copy and not k.startswith("__")}
        scope.update(__builtins__=dict(builtins_copy), __name__="__test__")
        try:
            exec(compile(test, f"<test {index + 1}>", "exec"), scope)
            if job["call_check"]:
                scope["check"](namespace[entry])
        except BaseException as exc:  # noqa: BLE001
            emit(event="test", i=index, ok=False, status=_kind(exc), error=_describe(exc))
            continue
        emit(event="test", i=index, ok=True)
    emit(event="done", status="ok")


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
    job = marshal.loads(_read_exact(int.from_bytes(_read_exact(8), "big")))
    results = os.fdopen(job["result_fd"], "w", buffering=1)
    prefix = job.pop("nonce") + "\t"
    write = results.write  # bound before the program runs

    def emit(**fields):
        try:  # noqa: SIM105
            write(prefix + repr(fields) + "\n")
        except BaseException:  # noqa: BLE001 - the program closed the pipe: the parent sees no report
            pass

    _limit(job)
    if job["mode"] == "function":
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    import builtins

    builtins_copy = dict(builtins.__dict__)
    try:
        code = compile(job["source"], "solution.py", "exec")
    except (SyntaxError, ValueError) as exc:
        emit(event="syntax", error=_describe(exc))
        return
    del job["source"]
    if job["mode"] == "function":
        _run_function_tests(code, job, emit, builtins_copy)
    else:
        _run_stdio(code, emit)


main()
