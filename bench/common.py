"""What the side-by-side benchmarks share: run the named parts in order and print each result as JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_parts(parts: dict[str, Callable[..., dict]], args) -> int:
    """Run ``args.parts`` (comma-separated names of ``parts``); write the results to ``args.json`` if set."""
    os.chdir(REPO)  # the quickstart recipe names its prompt file relative to the repository
    results = {}
    for name in args.parts.split(","):
        results[name] = parts[name](args)
        print(f"[bench] {name}: {json.dumps(results[name])}", flush=True)
    print("\n## results\n" + json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0
