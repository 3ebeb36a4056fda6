"""The run report: ``runs/<name>/report.html`` (one self-contained page) and ``distill status`` (the stage
table in the terminal). Both read the run dir only (manifest, stage folders, what the trainers logged);
neither loads a model. The pipeline writes the page at the end of every run, failed ones included.
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

from distill.report.collect import Planned, collect
from distill.report.page import render
from distill.runs import atomic_write_text

REPORT_FILE = "report.html"


def write_report(root: Path, planned: list[Planned] | None = None, since: float | None = None) -> Path:
    """Write ``root/report.html`` for the run in ``root`` (any state) and return its path."""
    from distill.secrets import redact, secret_values

    facts = collect(Path(root), planned, since)
    page = redact(render(facts), secret_values(facts.get("recipe")))
    path = Path(root) / REPORT_FILE
    atomic_write_text(path, page)
    path.chmod(0o644)  # a page to open and share (the atomic writer's temp file is private)
    return path


def hardware() -> dict[str, object]:
    """This machine, as the manifest records it for the report: CPU, cores, memory and accelerators. No
    host name: the page may be published."""
    info: dict[str, object] = {"cpu": platform.processor() or platform.machine()}
    info["cpu cores"] = os.cpu_count() or 0
    with contextlib.suppress(ValueError, OSError, AttributeError):
        info["memory GiB"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    info["accelerators"] = _accelerators() or "none found"
    return info


def _accelerators() -> str | None:
    """NVIDIA GPUs as nvidia-smi lists them, else what an already imported torch sees (no import here)."""
    import shutil
    import subprocess
    import sys

    smi = shutil.which("nvidia-smi")
    names: list[str] = []
    if smi:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            query = [smi, "--query-gpu=name", "--format=csv,noheader"]
            names = [
                n.strip()
                for n in subprocess.run(query, capture_output=True, text=True, timeout=10).stdout.splitlines()
                if n.strip()
            ]
    torch = sys.modules.get("torch")
    if not names and torch is not None and torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return f"{len(names)} x {names[0]}" if names else None


__all__ = ["REPORT_FILE", "Planned", "collect", "hardware", "render", "write_report"]
