"""A pip user has the recipes too: the wheel built from the checkout, installed into a fresh virtual
environment outside it (no editable install), runs `distill recipes` and `distill validate quickstart`.

The heavy dependencies (torch, transformers, ...) are not installed again: the fresh environment gets the
wheel alone (--no-deps) and reads this environment's site-packages through a .pth file, after its own."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# 8 s on a quiet machine, ~27 s on a busy one (a wheel build, a venv, pip, four distill processes).
pytestmark = pytest.mark.integration


def _checkout_copy(target: Path) -> Path:
    """The checkout's files as a clean clone has them (tracked and not ignored), without build leftovers."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to build the wheel from")
    tmp = tmp_path_factory.mktemp("wheel")
    source = _checkout_copy(tmp / "src")
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", source], check=True
    )
    wheel = next((tmp / "dist").glob("distill-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", python, "install", "-q", "--no-deps", "--no-index", wheel], check=True)
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    Path(purelib, "_distill_test_deps.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    return venv


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(cwd),
        "HF_HUB_OFFLINE": "1",
        "DISTILL_CACHE": str(cwd / "cache"),
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
    }
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_installed_wheel_runs_builtin_recipes(installed, tmp_path):
    venv = installed.resolve()
    where = _run(venv, "python", "-c", "import distill, teacher, eval; print(distill.__file__)", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv)  # the wheel's distill, not the checkout's

    listed = _run(venv, "distill", "recipes", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for path in (REPO / "recipes").glob("*.yaml"):
        assert f"\n{path.stem} " in f"\n{listed.stdout}"
    assert str(venv) in listed.stdout  # the folder they were read from

    checked = _run(venv, "distill", "validate", "quickstart", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "quickstart: ok" in checked.stdout and "preflight: ok" in checked.stdout

    resolved = _run(venv, "distill", "validate", "r1-qwen2.5-14b", "--resolved", cwd=tmp_path)
    assert resolved.returncode == 0, resolved.stderr
    assert yaml.safe_load(resolved.stdout)["eval"]["tasks"][0] == "math500"  # from bases/r1-common.yaml

    made = _run(venv, "distill", "init", "mine", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    source = yaml.safe_load((tmp_path / "mine.yaml").read_text())["data"]["source"]
    assert Path(source).is_relative_to(venv) and Path(source).is_file()  # the data shipped in the wheel
    again = _run(venv, "distill", "validate", "mine.yaml", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
