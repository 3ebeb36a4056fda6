"""The judge's content-addressed cache: one jsonl file in the run dir (``<run>/judge/cache.jsonl``), shared by
every stage of the run.

A call's key is the sha256 of the judge model, the template's digest (its file's text), the values filled in
and the sampling settings, so the same question is never asked twice — not on a rerun, not after a crash (each
answer is appended and flushed as it arrives; a torn last line is skipped), not by another stage. Only the
server's reply and its token counts are stored, never a key or a header; the verdict is parsed again on read,
so a stricter parser applies to cached replies too.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from distill.judge.templates import escape_value

CACHE_FILE = "cache.jsonl"


def call_key(model: str, template_digest: str, values: dict[str, Any], sampling: dict[str, Any]) -> str:
    # The values as the template places them (escaped): a value the escaping changes was sent differently
    # before it existed, so its cached reply is not reused; every other key is what it was.
    sent = {name: escape_value(v) if isinstance(v, str) else v for name, v in values.items()}
    payload = {"model": model, "template": template_digest, "values": sent, "sampling": sampling}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class JudgeCache:
    """Replies by call key; ``path`` None keeps them in memory only (tests, benchmarks)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        if path is not None and path.is_file():
            self._load(path)

    def _load(self, path: Path) -> None:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a kill: that call is simply made again
                if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                    self.entries[entry["key"]] = entry

    def get(self, key: str) -> dict[str, Any] | None:
        with self.lock:
            return self.entries.get(key)

    def put(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.entries[entry["key"]] = entry
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def __len__(self) -> int:
        return len(self.entries)
