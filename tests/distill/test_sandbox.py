"""The sandbox against hostile programs: each gets a verdict, the pool stays up, nothing leaks or survives."""

from __future__ import annotations

import os
import socket
import textwrap
import time

import pytest

from distill.verify import CodeProblem, Job, Limits, LocalRunner, check_program, isolation, run_many

ISO = isolation()
needs_own_user = pytest.mark.skipif(not ISO.own_user, reason="a user id per run needs root; see README Code")
FAST = Limits(wall_seconds=2.0, memory_mb=512)


SMALL = Limits(wall_seconds=8.0, memory_mb=256)  # memory tests: the limit, not a busy machine, ends them


def stdio(source: str, limits: Limits = FAST) -> Job:
    return Job(textwrap.dedent(source), mode="stdio", limits=limits)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            state = next(line for line in status if line.startswith("State:"))
    except (FileNotFoundError, StopIteration):
        return False
    return state.split()[1] not in ("Z", "X")  # a zombie waiting for init to reap it is dead


@pytest.fixture(params=["local", "forkserver"], scope="module")
def runner(request):
    """Every test runs on both local runners: an interpreter start per program, or a fork server."""
    if request.param == "local":
        return LocalRunner()
    if not ISO.own_user:
        pytest.skip("the fork server needs root (a user id per run)")
    from distill.verify.sandbox_forkserver import ForkServerRunner

    return ForkServerRunner()


def _owned_by_us(entry, base: int, span: int) -> bool:
    try:
        return base <= entry.stat().st_uid < base + span
    except OSError:
        return False


def test_isolation_is_detected_and_recorded(runner):
    result = runner.run(stdio("print('hi')"))
    assert result.stdout == b"hi\n"
    assert result.network_isolated is ISO.network
    assert ISO.note  # the log line says which protections are on


def test_hostile_programs_each_get_a_verdict_and_the_pool_survives(tmp_path, monkeypatch, runner):
    monkeypatch.setenv("HF_TOKEN", "hf_FAKE_TOKEN_must_not_leak")
    outside = tmp_path / "outside.txt"
    os.chmod(tmp_path, 0o700)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    jobs = {
        "fork_bomb": stdio(
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
        ),
        "memory_bomb": stdio("x = bytearray(8 << 30)\n", SMALL),
        "memory_creep": stdio("a = []\nwhile True:\n    a.append(bytearray(1 << 24))\n", SMALL),
        "gigabyte_stdout": stdio("import sys\nfor _ in range(16384):\n    sys.stdout.write('x' * 65536)\n"),
        "write_outside": stdio(f"open({str(outside)!r}, 'w').write('pwned')\n"),
        "write_home_tmp": stdio(
            "import os\nopen(os.path.join(os.environ['HOME'], 'f'), 'w').write('ok')\nprint('ok')"
        ),
        "read_tokens": stdio(
            """
            import os
            found = [os.environ.get('HF_TOKEN', '')]
            for pid in (os.getppid(), 1):
                try:
                    found.append(open('/proc/%d/environ' % pid).read())
                except OSError as exc:
                    found.append('denied ' + type(exc).__name__)
            print(repr(found))
            """
        ),
        "socket": stdio(
            f"""
            import socket
            try:
                socket.create_connection(('127.0.0.1', {port}), timeout=1)
                print('connected')
            except OSError as exc:
                print('refused', exc.errno)
            """
        ),
        "file_too_big": stdio("open('big', 'wb').write(b'x' * (64 << 20))\n"),
    }
    names = list(jobs)
    results = dict(zip(names, run_many(list(jobs.values()), runner, workers=2), strict=False))
    server.close()
    for name, result in results.items():
        assert not result.error, (name, result.error)
        assert result.seconds < 10, name
    assert results["fork_bomb"].timed_out or results["fork_bomb"].returncode != 0
    assert not results["memory_bomb"].timed_out
    assert results["memory_bomb"].events[-1]["status"] == "memory"
    assert results["memory_creep"].events and results["memory_creep"].events[-1]["status"] == "memory"
    assert results["gigabyte_stdout"].overflow == "stdout"
    assert len(results["gigabyte_stdout"].stdout) == FAST.output_bytes
    assert results["write_home_tmp"].stdout == b"ok\n"  # its own directory is writable
    found = eval(results["read_tokens"].stdout.decode())  # noqa: S307 - the list the program printed
    assert found[0] == ""  # its environment has no token
    if ISO.own_user:  # another user id: the parent's (and init's) environment cannot be read
        assert all(text.startswith("denied PermissionError") for text in found[1:]), found
    if ISO.network:
        assert results["socket"].stdout.startswith(b"refused"), results["socket"].stdout
    else:
        assert results["socket"].stdout == b"connected\n"
    assert results["file_too_big"].returncode != 0 or results["file_too_big"].events[-1]["status"] != "ok"
    if ISO.own_user:
        assert not outside.exists()
        error = results["write_outside"].events[-1]["error"]  # a private /tmp: not even there to see
        assert "PermissionError" in error or (runner.private_tmp and "FileNotFoundError" in error), error
    from distill.verify.sandbox import _UID_BASE, _UID_SPAN

    left = [
        e.name
        for e in os.scandir("/proc")
        if e.name.isdigit() and _owned_by_us(e, _UID_BASE, _UID_SPAN) and _alive(int(e.name))
    ]
    assert not left, left  # the fork bomb's processes are all gone
    # the pool still runs programs, and verdicts still come out right
    ok = check_program(
        "def f(x):\n    return x + 1\n", CodeProblem(["assert f(1) == 2"], "f", limits=FAST), runner
    )
    assert ok.reason == "passed"


@needs_own_user
def test_killing_the_parent_or_everything_is_refused(runner):
    me = os.getpid()
    jobs = [
        stdio("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"),
        stdio(f"import os, signal\nos.kill({me}, signal.SIGKILL)\n"),
        stdio("import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('still here')"),  # all it may: none
    ]
    results = run_many(jobs, runner, workers=3)
    assert os.getpid() == me  # we are alive to check
    assert "PermissionError" in results[0].events[-1]["error"]
    assert "PermissionError" in results[1].events[-1]["error"]
    assert results[2].stdout == b"still here\n"  # kill(-1) spares the caller; nothing else was its own


def test_children_left_behind_are_reaped(runner):
    source = """
    import os, sys, time
    for escape in (False, True):
        pid = os.fork()
        if pid == 0:
            if escape:
                os.setsid()  # leaves the process group: only the per-run user id finds it
            time.sleep(60)
            os._exit(0)
        print(pid, flush=True)
    """
    result = runner.run(stdio(source))
    assert not result.timed_out and result.seconds < FAST.wall_seconds  # it ended with the program
    pids = [int(p) for p in result.stdout.split()]
    assert len(pids) == 2
    time.sleep(0.2)
    assert not _alive(pids[0])
    if ISO.own_user:
        assert not _alive(pids[1])


def test_wall_deadline_kills_a_sleeper_and_a_spinner(runner):
    jobs = [stdio("import time\ntime.sleep(30)"), stdio("while True:\n    pass\n")]
    results = run_many(jobs, runner, workers=2)
    for result in results:
        assert result.timed_out and result.seconds < FAST.wall_seconds + 1.5


def test_the_program_cannot_forge_its_report(runner):
    # writes a report line on the result pipe without the nonce, then exits early: no passed verdict
    forger = """
    import os, json
    for fd in range(3, 20):
        try:
            os.write(fd, (json.dumps({"event": "test", "i": 0, "ok": True}) + "\\n").encode())
            os.write(fd, (json.dumps({"event": "done", "status": "ok"}) + "\\n").encode())
        except OSError:
            pass
    os._exit(0)
    """
    verdict = check_program(textwrap.dedent(forger), CodeProblem(["assert False"], limits=FAST), runner)
    assert verdict.reason.startswith("runtime_error: exited (code 0)")
    assert not verdict.correct


def test_without_pidfd_the_exit_is_polled(monkeypatch):
    monkeypatch.delattr(os, "pidfd_open")
    result = LocalRunner().run(stdio("import sys\nsys.stdout.write('y' * 200000)\n"))
    assert result.stdout == b"y" * 200000 and not result.timed_out
    assert LocalRunner().run(stdio("while True:\n    pass\n")).timed_out


@needs_own_user
def test_a_dead_fork_server_is_replaced():
    from distill.verify.sandbox_forkserver import ForkServerRunner

    runner = ForkServerRunner()
    assert runner.run(stdio("print(1)")).stdout == b"1\n"
    (server,) = runner._servers._idle
    server.proc.kill()
    server.proc.wait()
    assert runner.run(stdio("print(2)")).stdout == b"2\n"  # a new server started
    assert runner._servers._idle and runner._servers._idle[0] is not server
