"""External traces (``filter.traces``): a local file, a `datasets` folder or a `datasets` Hub id, read in
the shape it is published in (teacher.filter.trace_formats), plus what the report, the model card's lineage and
``distill filter --dry-run`` say about it: the source, the commit read, the format chosen, the columns read
and left unread, and every source item not turned into a trace, by reason."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.recipe import FilterConfig
from teacher.filter.trace_formats import read_as_traces
from teacher.filter.trace_layout import Layout, resolve_layout
from teacher.prompts import load_prompt_rows

Row = dict[str, Any]
_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
_COMMIT = re.compile(r"[0-9a-f]{40}")
PREVIEW_ROWS = 5  # --dry-run on a Hub id without --limit streams only this many rows


def source_kind(traces: str) -> str:
    """file | folder | hub: how ``traces`` is read (a local path wins over a Hub id of the same name)."""
    path = Path(traces).expanduser()
    if path.is_dir():
        return "folder"
    if path.exists() or path.suffix.lower() in _FILE_SUFFIXES or traces.startswith((".", "/", "~")):
        return "file"
    return "hub"


def resolve_revision(repo: str, revision: str | None) -> str | None:
    """The commit a Hub dataset id + revision reads, for the lineage; None when it cannot be told offline."""
    if revision and _COMMIT.fullmatch(revision):
        return revision
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(repo, revision=revision).sha
    except Exception:  # offline or unreachable: the local cache may still know the commit
        from huggingface_hub import constants

        ref = (
            Path(constants.HF_HUB_CACHE)
            / f"datasets--{repo.replace('/', '--')}"
            / "refs"
            / (revision or "main")
        )
        return ref.read_text().strip() if ref.is_file() else None


def read_source(traces: str, cfg: FilterConfig, limit: int | None = None) -> tuple[list[Row], dict[str, Any]]:
    """Trace rows of ``traces`` and a description of what was read (``limit`` overrides filter.limit)."""
    kind = source_kind(traces)
    limit = limit or cfg.limit
    commit = resolve_revision(traces, cfg.revision) if kind == "hub" else None
    raw = load_prompt_rows(
        traces,
        cfg.split,
        name=cfg.config,
        revision=commit or cfg.revision,
        limit=limit,
        label="filter.traces",
    )
    where = traces if kind == "file" else f"{traces} [{cfg.split}]"
    if not raw:
        raise DistillError(f"{where}: no rows; expected one problem (or trace) per row")
    layout = resolve_layout(list(raw[0]), cfg, where)
    rows, unused = read_as_traces(raw, layout, where)
    if not rows:
        reasons = ", ".join(f"{n} {why}" for why, n in unused.items()) or "no rows"
        raise DistillError(
            f"{where}: no traces in {len(raw)} rows ({reasons}); check filter.format / filter.columns"
        )
    return rows, describe(traces, kind, commit, cfg, layout, len(raw), len(rows), unused, limit)


def describe(
    traces: str,
    kind: str,
    commit: str | None,
    cfg: FilterConfig,
    layout: Layout,
    source_rows: int,
    trace_rows: int,
    unused: Counter[str],
    limit: int | None = None,
) -> dict[str, Any]:
    """What was read: for the report, the model card's lineage and ``distill filter --dry-run``."""
    limit = limit or cfg.limit
    info = {
        "traces": traces,
        "kind": kind,
        "dataset": traces if kind == "hub" else None,
        "revision": commit or cfg.revision,
        "split": None if kind == "file" else cfg.split,
        "config": cfg.config,
        "limit": limit,
        "streamed": kind != "file" and limit is not None,
        **_layout_info(layout, cfg),
        "source_rows": source_rows,
        "trace_rows": trace_rows,
        "not_used": dict(unused.most_common()),
    }
    info["summary"] = summary_line(info)
    return info


def _layout_info(layout: Layout, cfg: FilterConfig) -> dict[str, Any]:
    return {
        "format": layout.format,
        "format_detected": layout.detected,
        "layout": layout.describe(),
        "columns": layout.columns,
        "columns_not_read": layout.unread,
        "answers": layout.answers,
        "reverify": cfg.reverify,
    }


def summary_line(info: dict[str, Any]) -> str:
    where = info["traces"]
    if info["kind"] != "file":
        at = f"@{info['revision'][:12]}" if info.get("revision") else ""
        where += f"{at} [{info['split']}]"
    line = f"{where}: {info['layout']}; {info['source_rows']} rows -> {info['trace_rows']} traces"
    if info["not_used"]:
        line += "; not used: " + ", ".join(f"{n} {why}" for why, n in info["not_used"].items())
    return line


def _clip(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    return f"{flat[: width - 60]} ... {flat[-50:]} ({len(text):,} characters)"


def preview(rows: list[Row], info: dict[str, Any], shown: int = 3) -> str:
    """How the first source rows are read: the lines ``distill filter --dry-run`` prints."""
    lines = [info["summary"]]
    if info["columns_not_read"]:
        lines.append("columns not read: " + ", ".join(info["columns_not_read"]))
    if info["answers"] == "none":
        lines.append("no reference answers: correctness cannot be checked (filter.answer_from none)")
    by_row: dict[int, list[Row]] = {}
    for row in rows:
        by_row.setdefault(row["source_row"], []).append(row)
    for source_row in sorted(by_row)[:shown]:
        group = by_row[source_row]
        first = group[0]
        lines.append(f"row {source_row + 1} -> {len(group)} trace(s), prompt_id {first['prompt_id']}")
        for message in first["messages"]:
            lines.append(f"  {message['role']}: {_clip(message['content'])}")
        facts = [f"answer: {first['answer'] if first['answer'] is not None else '-'}"]
        if first.get("answer_missing"):
            facts.append(f"({first['answer_missing']})")
        for key in ("finish_reason", "source_correct"):
            if first.get(key) is not None:
                facts.append(f"{key}: {first[key]}")
        lines.append("  " + "; ".join(facts))
    return "\n".join(lines)
