"""The trusted half of a function-call run: the tests and every comparison, in a process of their own.

Like ``sandbox_driver.py`` this file is not imported by distill: the runner starts it as
``python -I -S -c <this file>`` beside the sandboxed program (as root under a user id of its own, never the
program's). The program cannot reach this process: not its frames, objects, builtins or pipes. The tests
(HumanEval's ``check(candidate)``, MBPP asserts, call-based pairs) run here unchanged; each name a test uses
that the program defines is bound to a proxy, and a call of it crosses the pipe to the program's driver as
``marshal``-ed builtin data and comes back the same way. What comes back is validated here: builtin types
only (exact types, so no ``__eq__`` of the program's, no generator, no instance), else the call raises
``TypeError``. A program can only answer calls, never report a test, so the verdict is this process's.

Protocol: stdin: an 8-byte length and the ``marshal``-ed job (tests, entry point, ``call_check``, nonce, the
two pipe descriptors, the reply cap, the float tolerance of call-based pairs); stdout: one line per event,
the nonce, a tab and the ``repr`` of a dict (``syntax`` | ``test`` | ``done``), as the driver's stdio reports.
When the program's end of the pipe closes mid-test, that test fails and no ``done`` follows: the parent then
reads the reason from how the program ended (killed, exited, timed out).
"""

import builtins
import marshal
import os
import sys

_PLAIN = (int, float, complex, str, bytes, bool, type(None))
_BUILTINS = dict(builtins.__dict__)
_NEVER_IMPORTED = {"antigravity", "this", "turtle", "tkinter", "idlelib", "webbrowser", "turtledemo"}


class Broken(BaseException):  # noqa: N818 - not an Exception: a test's own `except Exception` cannot swallow it
    """The program's end of the pipe closed, or it wrote something that is not a reply."""


def _plain(value, depth=0):
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


def _read_exact(fd, count):
    buf = bytearray()
    while len(buf) < count:
        chunk = os.read(fd, min(count - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class Link:
    """The checker's end of the pipes to the program's driver."""

    def __init__(self, job):
        self.reply_fd, self.request_fd, self.cap = job["reply_fd"], job["request_fd"], job["reply_bytes"]
        self.broken = ""

    def receive(self):
        if self.broken:
            raise Broken(self.broken)
        head = _read_exact(self.reply_fd, 4)
        size = int.from_bytes(head, "big") if head else 0
        if head is not None and size > self.cap:
            self.broken = f"the program's reply ({size} bytes) is over the cap"
            raise Broken(self.broken)
        body = _read_exact(self.reply_fd, size) if head else None
        if body is None:
            self.broken = "the program ended during the test"
            raise Broken(self.broken)
        try:
            message = marshal.loads(body)
        except (ValueError, EOFError, TypeError, RecursionError, MemoryError):
            message = None
        if type(message) is not tuple or not message or type(message[0]) is not str:
            self.broken = "the program wrote something that is not a reply"
            raise Broken(self.broken)
        return message

    def request(self, message):
        if self.broken:
            raise Broken(self.broken)
        data = marshal.dumps(message)
        frame = memoryview(len(data).to_bytes(4, "big") + data)
        try:
            while len(frame):
                frame = frame[os.write(self.request_fd, frame) :]
        except OSError:
            self.broken = "the program ended during the test"
            raise Broken(self.broken) from None
        return self.receive()


def _raise_from(reply):
    """Raise here what the program's function raised there: a builtin exception class by name, else a new one."""
    name, text, kind = (reply + ("", "", ""))[1:4]
    name = name if type(name) is str and name.isidentifier() else "Exception"
    text = text[:300] if type(text) is str else ""
    message = text.split(": ", 1)[1] if text.startswith(name + ": ") else ("" if text == name else text)
    if kind == "memory":
        raise MemoryError(message)
    known = _BUILTINS.get(name)
    if isinstance(known, type) and issubclass(known, Exception):
        try:
            error = known(message)
        except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError takes five arguments
            error = None
        if error is not None:
            raise error
    raise type(name, (Exception,), {})(message)


class Remote:
    """A function of the program: calling it crosses the pipe with builtin data only."""

    __slots__ = ("_link", "_name")

    def __init__(self, link, name):
        self._link, self._name = link, name

    def __call__(self, *args, **kwargs):
        try:
            marshal.dumps((args, kwargs))
        except ValueError:
            raise TypeError(
                f"arguments of {self._name}() must be builtin data to reach the program"
            ) from None
        reply = self._link.request(("call", self._name, args, kwargs))
        if reply[0] == "value" and len(reply) == 2 and _plain(reply[1]):
            return reply[1]
        if reply[0] == "raise":
            _raise_from(reply)
        raise TypeError(f"{self._name}() returned something that is not builtin data")

    def __repr__(self):
        return f"<the program's {self._name}>"


def same(actual, expected, tolerance=None):
    """Type-aware equality of call-based results: ``True`` is not ``1``; a list and a tuple are the same
    sequence (JSON has no tuples); numbers within ``tolerance`` (absolute, or relative above 1) are equal."""
    if type(actual) is bool or type(expected) is bool:
        return type(actual) is type(expected) and actual == expected
    numbers = (int, float)
    if type(actual) in numbers and type(expected) in numbers:
        if actual == expected:
            return True
        return tolerance is not None and abs(actual - expected) <= tolerance * max(1.0, abs(expected))
    sequences = (list, tuple)
    if type(actual) in sequences and type(expected) in sequences:
        return len(actual) == len(expected) and all(
            same(a, e, tolerance) for a, e in zip(actual, expected, strict=True)
        )
    if type(actual) is dict and type(expected) is dict:
        return actual.keys() == expected.keys() and all(
            same(actual[k], expected[k], tolerance) for k in actual
        )
    return type(actual) is type(expected) and actual == expected


def _names(code):
    names = set(code.co_names)
    for const in code.co_consts:
        if type(const) is type(code):
            names |= _names(const)
    return names


def _bind(link, name, what):
    """The test's value for a name the program defines: a proxy, plain data, or the stdlib module itself."""
    if type(what) is not tuple or not what:
        return None
    if what[0] == "call":
        return Remote(link, name)
    if what[0] == "value" and len(what) == 2 and _plain(what[1]):
        return what[1]
    # A module only under its own name (`import math`, `import os.path`): the checker imports its own copy,
    # and a name bound to another module (`math = mock`) would let the program choose what the test calls.
    if what[0] == "module" and len(what) == 2 and type(what[1]) is str and name in what[1].split("."):
        top = what[1].split(".")[0]
        if top not in _NEVER_IMPORTED:  # `-I -S`: only the standard library is on sys.path
            try:
                __import__(what[1])
                return sys.modules[what[1]]
            except Exception:  # noqa: BLE001 - a module this interpreter lacks: the name stays unbound
                return None
    return None


def _scope(link, job, code):
    scope = {"__builtins__": dict(_BUILTINS), "__name__": "__test__"}
    scope["__entry__"] = Remote(link, job["entry_point"] or "solution")
    tolerance = job.get("float_tolerance")
    scope["__same__"] = lambda actual, expected: same(actual, expected, tolerance)
    wanted = sorted(n for n in _names(code) if n not in _BUILTINS and not n.startswith("__"))
    if wanted:
        reply = link.request(("names", wanted))
        described = reply[1] if reply[0] == "names" and len(reply) == 2 and type(reply[1]) is dict else {}
        for name in wanted:
            value = _bind(link, name, described.get(name))
            if value is not None:
                scope[name] = value
    return scope


def _describe(exc):
    text = str(exc).strip().splitlines()
    return (type(exc).__name__ + (": " + text[0] if text else ""))[:300]


def _kind(exc):
    if isinstance(exc, MemoryError):
        return "memory"
    return "failed" if isinstance(exc, AssertionError) else "runtime_error"


def _run_tests(link, job, emit):
    """Each test in turn; False when the program's end broke off (the rest are not run)."""
    for index, test in enumerate(job["tests"]):
        try:
            code = compile(test, f"<test {index + 1}>", "exec")
            scope = _scope(link, job, code)
            exec(code, scope)
            if job["call_check"]:
                scope["check"](Remote(link, job["entry_point"]))
            if link.broken:  # a test that caught the break itself still fails
                raise Broken(link.broken)
        except Broken as exc:
            emit(event="test", i=index, ok=False, status="runtime_error", error=str(exc))
            return False
        except BaseException as exc:  # noqa: BLE001 - a test may raise anything
            emit(event="test", i=index, ok=False, status=_kind(exc), error=_describe(exc))
            continue
        emit(event="test", i=index, ok=True)
    return True


def main():
    head = _read_exact(0, 8)
    job = marshal.loads(_read_exact(0, int.from_bytes(head, "big")))
    out = os.fdopen(1, "w", buffering=1)
    prefix = job["nonce"] + "\t"

    def emit(**fields):
        out.write(prefix + repr(fields) + "\n")

    link = Link(job)
    try:
        first = link.receive()
    except Broken:
        return  # the program ended before it was run to the end: the parent reads why from its exit
    if first[0] == "syntax":
        emit(event="syntax", error=str(first[1:2] and first[1])[:300])
    elif first[0] == "done":
        status = first[1] if len(first) == 3 and first[1] in ("memory", "runtime_error") else "runtime_error"
        emit(event="done", status=status, error=str(first[2] if len(first) == 3 else "")[:300])
    elif first[0] != "ready":
        emit(event="done", status="runtime_error", error="the program wrote something that is not a reply")
    elif _run_tests(link, job, emit):
        emit(event="done", status="ok")


main()
