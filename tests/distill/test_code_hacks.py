"""Reward hacks against the code verifier: none passes, on every runner; nothing is left in the shared tmp.

Every hostile answer below computes the wrong thing (or nothing) and tries to be scored correct anyway: by
an object that claims equality, by reaching the driver's reporting from its own frames or the heap, by
forging lines or replies on every descriptor it inherited, by patching the serialisers, by raising what a
harness might not catch. The tests run in a checker process the program cannot reach (sandbox_checker.py).
"""

from __future__ import annotations

import os
import textwrap

import pytest

from distill.verify import CodeProblem, Limits, LocalRunner, check_program, isolation
from distill.verify.sandbox import Job
from distill.verify.sandbox_bwrap import BwrapRunner, bwrap_isolation

ISO = isolation()
QUICK = Limits(wall_seconds=3.0, memory_mb=512)
ASSERTS = CodeProblem(
    ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(0, 5) == 5"],
    entry_point="add",
    limits=QUICK,
)
CHECK = CodeProblem(
    "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(2, 2) == 4\n"
    "    assert candidate(0, 5) == 5\n    assert candidate(-1, 1) == 0\n",
    entry_point="add",
    limits=QUICK,
)
CALLS = CodeProblem(
    {"fn_name": "add", "inputs": [[1, 2], [2, 2]], "outputs": [[3], [4]]}, fn_name="add", limits=QUICK
)


def userns_runner() -> LocalRunner:
    """``LocalRunner`` as it runs without root: a user namespace (network and mount) where the driver mounts
    the private tmpfs itself; built here by hand so that a root CI covers that path too."""
    from dataclasses import replace

    from distill.verify.sandbox import _probe

    prefix = ("unshare", "-r", "-n", "-m", "--")
    if not _probe(list(prefix), ISO.python, None, mounts=True):
        pytest.skip("user namespaces with mounts are not allowed here")
    runner = LocalRunner()
    runner.isolation = replace(ISO, prefix=prefix, own_user=False, private_tmp=True)
    runner.private_tmp = True
    return runner


@pytest.fixture(params=["local", "forkserver", "bwrap", "userns"], scope="module")
def runner(request):
    if request.param == "local":
        return LocalRunner()
    if request.param == "userns":
        return userns_runner()
    if request.param == "forkserver":
        if not ISO.own_user:
            pytest.skip("the fork server needs root (a user id per run)")
        from distill.verify.sandbox_forkserver import ForkServerRunner

        return ForkServerRunner()
    if bwrap_isolation() is None:
        pytest.skip("bubblewrap (`bwrap`) is not installed or cannot create namespaces here")
    return BwrapRunner()


_FORGE = """
def _forge():
    import marshal, os
    lines = [repr({"event": "test", "i": i, "ok": True}) for i in range(8)] + [repr({"event": "done", "status": "ok"})]
    text = ("\\n".join(lines) + "\\n").encode()
    frames = [marshal.dumps(m) for m in [("ready",), ("names", {"add": ("value", True)})] + [("value", True)] * 8]
    data = b"".join(len(f).to_bytes(4, "big") + f for f in frames)
    for fd in range(0, 64):
        for payload in (text, data):
            try:
                os.write(fd, payload)
            except OSError:
                pass
"""

# name -> the answer's program; each `add` is wrong (or absent) and tries to pass anyway.
HACKS = {
    "always_equal": "class E:\n    __eq__ = lambda s, o: True\n    __ne__ = lambda s, o: False\n"
    "def add(a, b):\n    return E()\n",
    "int_subclass_eq": "class I(int):\n    __eq__ = lambda s, o: True\n    __hash__ = int.__hash__\n"
    "def add(a, b):\n    return I(0)\n",
    "str_subclass_eq": "class S(str):\n    __eq__ = lambda s, o: True\ndef add(a, b):\n    return S('x')\n",
    "list_subclass_eq": "class L(list):\n    __eq__ = lambda s, o: True\ndef add(a, b):\n    return L()\n",
    "hash_and_bool": "class B:\n    __bool__ = lambda s: True\n    __hash__ = lambda s: hash(3)\n"
    "    __eq__ = lambda s, o: hash(o) == hash(3) or True\ndef add(a, b):\n    return B()\n",
    "generator": "def add(a, b):\n    yield a + b\n",
    "caller_frame": textwrap.dedent(
        """
        import os, sys
        def add(a, b):
            frame = sys._getframe(1)
            while frame is not None:
                for scope in (frame.f_locals, frame.f_globals):
                    emit, job = scope.get("emit"), scope.get("job")
                    if callable(emit) and isinstance(job, dict):
                        for i in range(len(job.get("tests", [1, 2, 3, 4]))):
                            emit(event="test", i=i, ok=True)
                        emit(event="done", status="ok")
                        os._exit(0)
                    send = scope.get("send")
                    if callable(send):
                        send(("value", a + b + 1))
                frame = frame.f_back
            return 0
        """
    ),
    "gc_objects": textwrap.dedent(
        """
        import gc, os
        def add(a, b):
            for obj in gc.get_objects():
                if type(obj).__name__ == "function" and obj.__name__ in ("emit", "send", "_send"):
                    for forged in ({"event": "test", "i": 0, "ok": True}, {"event": "done", "status": "ok"}):
                        try:
                            obj(**forged)
                        except Exception:
                            pass
                if isinstance(obj, dict) and "tests" in obj and isinstance(obj["tests"], list):
                    obj["tests"][:] = ["pass"] * len(obj["tests"])
            os._exit(0)
        """
    ),
    "settrace": textwrap.dedent(
        """
        import sys
        def tracer(frame, event, arg):
            if frame.f_code.co_name in ("check", "<module>") and "candidate" in frame.f_locals:
                frame.f_locals["candidate"] = lambda *a: 3
            return tracer
        sys.settrace(tracer)
        def add(a, b):
            sys.settrace(tracer)
            return None
        """
    ),
    "inspect_stack": textwrap.dedent(
        """
        import inspect
        def add(a, b):
            for info in inspect.stack():
                for name, value in list(info.frame.f_locals.items()):
                    if isinstance(value, list) and value and all(isinstance(t, str) for t in value):
                        value[:] = ["pass"] * len(value)
                    if name in ("ok", "passed"):
                        info.frame.f_locals[name] = True
            return -1
        """
    ),
    "forge_every_descriptor_at_import": _FORGE + "_forge()\ndef add(a, b):\n    return None\n",
    "forge_every_descriptor_then_exit": _FORGE
    + "def add(a, b):\n    _forge()\n    import os\n    os._exit(0)\n",
    "patch_serialisers": textwrap.dedent(
        """
        import marshal, json, pickle
        real = marshal.dumps
        marshal.dumps = lambda value, *rest: real(("value", 3), *rest) if value and value[0] == "value" else real(value, *rest)
        marshal.loads = lambda data: ("call", "add", (1, 2), {})
        json.loads = lambda text, *a, **k: 3
        json.dumps = lambda value, *a, **k: "3"
        pickle.loads = pickle.dumps = lambda *a, **k: b"3"
        def add(a, b):
            return None
        """
    ),
    "system_exit_in_call": "def add(a, b):\n    raise SystemExit(0)\n",
    "keyboard_interrupt_in_call": "def add(a, b):\n    raise KeyboardInterrupt\n",
    "system_exit_at_import": "def add(a, b):\n    return a + b + 1\nraise SystemExit(0)\n",
    "assertion_error_replaced": "import builtins\nbuiltins.AssertionError = KeyError\n"
    "def add(a, b):\n    return None\n",
    "bool_for_int": "def add(a, b):\n    return True\n",  # True == 1 but add(0, 1) is not True
    "module_alias": "import unittest.mock as math\nimport types\nmath = types.ModuleType('math')\n"
    "math.isclose = lambda *a, **k: True\ndef add(a, b):\n    return None\n",
}


@pytest.mark.parametrize("problem", [ASSERTS, CHECK, CALLS], ids=["asserts", "check", "calls"])
def test_no_hack_passes(runner, problem):
    items = [(name, source) for name, source in HACKS.items()]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        verdicts = list(pool.map(lambda item: check_program(item[1], problem, runner), items))
    passed = [name for (name, _), verdict in zip(items, verdicts, strict=True) if verdict.correct]
    assert passed == [], passed
    assert all(not v.reason.startswith("error") for v in verdicts), [v.reason for v in verdicts]
    honest = check_program("def add(a, b):\n    return a + b\n", problem, runner)
    assert honest.reason == "passed", honest.reason  # the pool lives on and still passes a right answer


def test_results_cross_as_builtin_data_and_compare_type_aware():
    problem = CodeProblem(
        {"fn_name": "f", "inputs": [[1], [2], [3]], "outputs": [[True], [[1, 2]], [0.3]]},
        fn_name="f",
        float_tolerance=1e-6,
        limits=QUICK,
    )
    right = "def f(x):\n    return {1: True, 2: (1, 2), 3: 0.1 + 0.2}[x]\n"  # a tuple for a JSON list
    assert check_program(right, problem).reason == "passed"
    ones = "def f(x):\n    return {1: 1, 2: [1, 2], 3: 0.3}[x]\n"  # 1 is not True
    assert check_program(ones, problem).reason == "failed: test 1"
    strings = "def f(x):\n    return {1: True, 2: ['1', '2'], 3: 0.3}[x]\n"
    assert check_program(strings, problem).reason == "failed: test 2"
    far = "def f(x):\n    return {1: True, 2: [1, 2], 3: 0.31}[x]\n"
    assert check_program(far, problem).reason == "failed: test 3"


def test_a_large_result_crosses():
    problem = CodeProblem(["assert len(squares(400000)) == 400000 and squares(5)[-1] == 16"], limits=QUICK)
    source = "def squares(n):\n    return [i * i for i in range(n)]\n"  # ~3 MiB marshalled
    assert check_program(source, problem).reason == "passed"


def test_the_tests_reach_helpers_modules_and_data_of_the_program():
    """HumanEval's check sometimes calls a helper of the prompt (poly, encode_cyclic) or a module the program
    imported; both reach the checker: the helper as a proxy, the module as the checker's own import."""
    problem = CodeProblem(
        [
            "assert twice(add(1, 2)) == 6",
            "assert math.isclose(add(0.1, 0.2), 0.3)",
            "assert LIMIT == 7",
            "assert os.path.basename('/a/b') == 'b'",
        ],
        entry_point="add",
        limits=QUICK,
    )
    source = "import math\nimport os\nLIMIT = 7\ndef twice(x):\n    return 2 * x\ndef add(a, b):\n    return a + b\n"
    assert check_program(source, problem).reason == "passed"


def _leftovers(tag: str) -> list[str]:
    found = []
    for root in ("/tmp", "/var/tmp", "/dev/shm"):
        for folder, _, files in os.walk(root):
            found += [os.path.join(folder, f) for f in files if tag in f]
    return found


def test_nothing_is_left_in_the_shared_tmp(runner):
    if not (ISO.own_user or runner.private_tmp):
        pytest.skip("without root or namespaces a program's files cannot be told from ours")
    tag = f"distill-leftover-{os.getpid()}-{type(runner).__name__}"
    writer = textwrap.dedent(
        f"""
        import os
        for i in range(100):
            root = ("/tmp", "/var/tmp", "/dev/shm")[i % 3]
            with open(os.path.join(root, "{tag}-%d" % i), "wb") as out:
                out.write(b"x" * 4096)
        os.makedirs("/tmp/{tag}-dir/sub", exist_ok=True)
        open("/tmp/{tag}-dir/sub/{tag}-deep", "w").write("x")
        print(sum(1 for root in ("/tmp", "/var/tmp", "/dev/shm") for f in os.listdir(root) if "{tag}" in f))
        """
    )
    result = runner.run(Job(writer, mode="stdio", limits=QUICK))
    assert result.stdout == b"101\n", (result.stdout, result.stderr)  # they were written
    assert _leftovers(tag) == []
    assert result.removed_files == (0 if runner.private_tmp else 101)
    shared = {"/tmp", "/var/tmp", "/dev/shm"}
    assert all(os.path.isdir(path) for path in shared)  # the folders themselves stay


def test_a_large_answer_on_dev_shm_is_gone_after_its_verdict(runner):
    if not (ISO.own_user or runner.private_tmp):
        pytest.skip("without root or namespaces a program's files cannot be told from ours")
    tag = f"distill-shm-{os.getpid()}"
    hog = f"for i in range(8):\n    open('/dev/shm/{tag}-%d' % i, 'wb').write(bytes(8 << 20))\nprint('ok')\n"
    result = runner.run(Job(hog, mode="stdio", limits=Limits(wall_seconds=5.0, file_size_mb=16, tmp_mb=96)))
    assert result.stdout == b"ok\n", result.stderr[-300:]
    assert _leftovers(tag) == []


def test_the_private_tmpfs_is_capped(runner):
    if not runner.private_tmp:
        pytest.skip("this runner has no private tmpfs (files are swept after the run instead)")
    filler = "import os\ntry:\n    for i in range(64):\n        open('/dev/shm/f%d' % i, 'wb').write(bytes(1 << 20))\n"
    filler += "except OSError as exc:\n    print('full', i)\n"
    result = runner.run(Job(filler, mode="stdio", limits=Limits(wall_seconds=5.0, tmp_mb=8)))
    assert result.stdout.startswith(b"full "), result.stdout
    assert int(result.stdout.split()[1]) <= 8


def test_bwrap_shows_the_program_nothing_of_the_machine(tmp_path):
    if bwrap_isolation() is None:
        pytest.skip("bubblewrap (`bwrap`) is not installed or cannot create namespaces here")
    secret = tmp_path / "dataset.jsonl"
    secret.write_text("private\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(secret, 0o644)  # world-readable: the other runners would let a program read it
    probe = textwrap.dedent(
        f"""
        import os, socket
        seen = []
        for path in ({str(secret)!r}, "/etc/passwd", "/root", "/home", "/work"):
            seen.append(os.path.exists(path))
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        try:
            socket.create_connection(("127.0.0.1", 22), timeout=1)
            net = "connected"
        except OSError:
            net = "refused"
        try:
            open("/usr/bin/distill-pwned", "w")
            wrote = True
        except OSError:
            wrote = False
        print(repr((seen, len(pids) <= 3, net, wrote, os.getpid() < 10)))
        """
    )
    result = BwrapRunner().run(Job(probe, mode="stdio", limits=QUICK))
    seen, few_processes, net, wrote, own_pids = eval(result.stdout.decode())  # noqa: S307
    assert seen == [False] * 5  # no dataset, no /etc, /root, /home, working tree
    assert few_processes and own_pids  # a pid namespace: none of the machine's processes
    assert net == "refused" and wrote is False  # no network; the binds are read-only
    assert not os.path.exists("/usr/bin/distill-pwned")
