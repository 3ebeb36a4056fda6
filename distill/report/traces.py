"""Traces a person can read: per filter step, a handful of the rows it removed and of the rows that passed
it, drawn with a fixed seed from the filter's ``verified.parquet`` (every trace with its verdict and, for a
removed one, the step and the reason).

Memory stays bounded whatever the size of the trace set: the first pass reads two small columns batch by
batch and keeps, per group, the rows with the smallest random keys (a uniform sample without holding the
rows); the second reads the text columns of the chosen rows only. pyarrow's dataset reader takes the file
whole or written in parts (a folder of parquet files) alike. Texts are redacted here, before any escaping.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

VERIFIED = "verified.parquet"
SEED = 0  # the same rows on every report of the same traces
PER_GROUP = 3  # "a handful" of kept and of removed rows per step
FOLD_CHARS = 400  # longer texts are folded (<details>)
MAX_CHARS = 8000  # and cut in the middle beyond this: a 30k-token trace must not make a 10 MB page
_TEXT = ("prompt_id", "sample_idx", "problem", "messages", "reasoning", "final", "completion")
_VERDICT = ("answer", "extracted", "correct", "verify_reason", "kept", "removed_by", "removed_detail")
KEPT = "(kept)"  # the group of rows that survived every step (what train.parquet holds)


def collect_traces(
    folder: Path, steps: list[str], secrets: list[str], per_group: int = PER_GROUP
) -> list[dict[str, Any]] | None:
    """Per step ``{"step", "removed": [rows], "passed": [rows]}``, then the kept rows as step ``(kept)``;
    None when the folder has no verified traces."""
    import pyarrow.dataset as ds

    path = Path(folder) / VERIFIED
    if not path.exists():
        return None
    data = ds.dataset(path, format="parquet")
    if not {"kept", "removed_by"} <= set(data.schema.names):
        return None
    chosen = _sample(data, steps, per_group)
    wanted = sorted({i for group in chosen.values() for i in group})
    columns = [c for c in (*_TEXT, *_VERDICT) if c in data.schema.names]
    rows = _read_rows(data, wanted, columns)
    by_index = {index: _readable(row, secrets) for index, row in zip(wanted, rows, strict=True)}
    out = [
        {
            "step": step,
            "removed": [by_index[i] for i in chosen[("removed", step)]],
            "passed": [by_index[i] for i in chosen[("passed", step)]],
        }
        for step in steps
    ]
    out.append({"step": KEPT, "removed": [], "passed": [by_index[i] for i in chosen[("passed", KEPT)]]})
    return out


def _sample(data, steps: list[str], per_group: int) -> dict[tuple[str, str], list[int]]:
    """Row indices per (removed|passed, step): the ``per_group`` rows with the smallest keys of a seeded
    generator, drawn per row in file order, so the draw does not depend on how the rows are batched."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    position = {step: i for i, step in enumerate(steps)}
    groups = [("removed", s) for s in steps] + [("passed", s) for s in [*steps, KEPT]]
    best = {g: (np.empty(0), np.empty(0, dtype=np.int64)) for g in groups}
    offset = 0
    for batch in data.to_batches(columns=["kept", "removed_by"], use_threads=False):
        kept = np.asarray(batch.column("kept").to_pylist(), dtype=object) == True  # noqa: E712 - nulls
        removed_by = batch.column("removed_by").to_pylist()
        # how far each row got: the index of the step that removed it, len(steps) for a kept row
        reached = np.array(
            [len(steps) if k else position.get(r, -1) for k, r in zip(kept, removed_by, strict=True)],
            dtype=np.int64,
        )
        # a key per row and group (one row of the generator's stream per trace): each group its own draw
        keys = rng.random((len(reached), len(groups)))
        indices = np.arange(offset, offset + len(reached))
        for column, (kind, step) in enumerate(groups):
            if step == KEPT:
                mask = kept
            elif kind == "removed":
                mask = reached == position[step]
            else:  # passed this step: removed by a later one, or kept
                mask = reached > position[step]
            best[kind, step] = _smallest(best[kind, step], keys[mask, column], indices[mask], per_group)
        offset += len(reached)
    return {group: sorted(int(i) for i in found) for group, (_, found) in best.items()}


def _read_rows(data, wanted: list[int], columns: list[str]) -> list[dict[str, Any]]:
    """The rows at ``wanted`` (sorted indices in file order), reading only the row groups that hold them,
    a few hundred rows at a time, pages streamed (``Dataset.take`` holds whole text columns: 5x the memory)."""
    import pyarrow.parquet as pq

    out: list[dict[str, Any]] = []
    offset = 0
    for fragment in data.get_fragments():
        source = pq.ParquetFile(fragment.path, buffer_size=1 << 20, pre_buffer=False)
        for group in range(source.metadata.num_row_groups):
            size = source.metadata.row_group(group).num_rows
            inside = [i - offset for i in wanted if offset <= i < offset + size]
            position = 0
            for batch in source.iter_batches(256, [group], columns) if inside else ():
                local = [i - position for i in inside if position <= i < position + batch.num_rows]
                out += batch.take(local).to_pylist() if local else []
                position += batch.num_rows
            offset += size
    return out


def _smallest(current, keys, indices, count: int):
    import numpy as np

    all_keys = np.concatenate([current[0], keys])
    all_indices = np.concatenate([current[1], indices])
    order = np.argsort(all_keys, kind="stable")[:count]
    return all_keys[order], all_indices[order]


def _readable(row: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    """A row as the page shows it: the prompt the teacher saw, reasoning and final answer apart (read
    from the completion where the source recorded neither), texts redacted."""
    from distill.secrets import redact

    messages = row.get("messages") or []
    prompt = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), None)
    out = {k: row.get(k) for k in (*_TEXT, *_VERDICT) if k != "messages"}
    out["prompt"] = prompt if prompt is not None else row.get("problem")
    if out.get("final") is None and isinstance(row.get("completion"), str):  # external traces: split here
        from distill.records import split_think

        out["reasoning"], out["final"] = split_think(row["completion"])
    for key in (
        "prompt",
        "problem",
        "reasoning",
        "final",
        "completion",
        "removed_detail",
        "extracted",
        "answer",
    ):
        if isinstance(out.get(key), str):
            out[key] = redact(out[key], secrets)
    return out


# --- the page's section ---------------------------------------------------------------------------------


def section(nodes: list[dict[str, Any]]) -> str:
    """``<section id="traces">``: per filter node and step, the drawn removed and passed rows."""
    parts = [
        '<section id="traces"><h2>Traces</h2>',
        f"<p class=muted>Per filter step, up to {PER_GROUP} rows it removed and {PER_GROUP} that passed it, "
        f"drawn with seed {SEED} from <code>{VERIFIED}</code>; long texts are folded.</p>",
    ]
    if not nodes:
        parts.append("<p class=muted>No finished filter stage.</p>")
    for node in nodes:
        if len(nodes) > 1:
            parts.append(f"<h3><code>{escape(node['name'])}</code></h3>")
        if node.get("error"):
            parts.append(f"<p class=muted>Traces could not be read: {escape(node['error'])}</p>")
        for group in node["steps"]:
            parts.append(_step(group))
    return "".join(parts) + "</section>"


def _step(group: dict[str, Any]) -> str:
    step = group["step"]
    title = "kept: rows that passed every step" if step == KEPT else f"step <code>{escape(step)}</code>"
    body = []
    if step != KEPT:
        body.append(_samples("removed", group["removed"]))
    body.append(_samples("passed" if step != KEPT else "kept", group["passed"]))
    shown = (
        f"{len(group['passed'])} kept"
        if step == KEPT
        else (f"{len(group['removed'])} removed, {len(group['passed'])} passed")
    )
    opened = " open" if step == KEPT else ""  # the steps stay folded: a page of a dozen steps stays short
    return (
        f'<details class=step data-step="{escape(step)}"{opened}><summary>{title} '
        f"<span class=muted>({shown} shown)</span></summary>{''.join(body)}</details>"
    )


_COLUMNS = ("sample", "prompt", "reasoning", "final answer", "extracted", "reference", "verdict", "filter")
_WIDTHS = (8, 15, 17, 22, 8, 9, 9, 12)  # percent of the page: the texts get the room


def _samples(kind: str, rows: list[dict[str, Any]]) -> str:
    """One table per group, a row per drawn trace (``data-*`` name the trace in verified.parquet)."""
    if not rows:
        return f"<p class=muted>{kind}: none</p>"
    cols = "".join(f'<col style="width:{w}%">' for w in _WIDTHS)
    head = "".join(f"<th>{c}</th>" for c in _COLUMNS)
    body = "".join(_trace(row) for row in rows)
    title = "" if kind == "kept" else f"<caption>{kind}</caption>"
    return (
        f'<table class="traces t-{kind}">{title}<colgroup>{cols}</colgroup>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _trace(row: dict[str, Any]) -> str:
    correct = row.get("correct")
    verdict = "correct" if correct is True else "wrong" if correct is False else "no verdict"
    why = str(row.get("verify_reason") or "")
    if why.startswith(verdict):  # "wrong (fast-path)": the reason says the verdict already
        why = why.removeprefix(verdict).strip().removeprefix("(").removesuffix(")")
    reason = f" <span class=muted>({escape(why)})</span>" if why else ""
    outcome = "kept" if row.get("kept") else f"removed by <code>{escape(str(row.get('removed_by')))}</code>"
    if row.get("removed_detail"):
        outcome += f": {escape(str(row['removed_detail']))}"
    cells = [
        f"{escape(str(row.get('prompt_id')))}<br><span class=muted>#{escape(str(row.get('sample_idx')))}</span>",
        _folded(row.get("prompt"), "prompt"),
        _folded(row.get("reasoning"), "reasoning", always=True),
        _folded(row.get("final") or row.get("completion"), "final answer"),
        f"<code>{_text(row.get('extracted'))}</code>",
        f"<code>{_text(row.get('answer'))}</code>",
        f"{verdict}{reason}",
        outcome,
    ]
    tds = "".join(f'<td class="t-{c.split()[0]}">{v}</td>' for c, v in zip(_COLUMNS, cells, strict=True))
    return (
        f'<tr class=trace data-prompt-id="{escape(str(row.get("prompt_id")))}" '
        f'data-sample-idx="{escape(str(row.get("sample_idx")))}">{tds}</tr>'
    )


def _text(value: Any) -> str:
    return "-" if value is None else escape(str(value))


def _folded(value: Any, label: str, always: bool = False) -> str:
    """A text in a <pre>; folded in <details> when long (always, for the reasoning), cut in the middle
    beyond MAX_CHARS with how much was left out."""
    if value is None or value == "":
        return "<span class=muted>(empty)</span>"
    text = str(value)
    if len(text) > MAX_CHARS:
        half = MAX_CHARS // 2
        text = f"{text[:half]}\n… {len(text) - 2 * half:,} characters left out …\n{text[-half:]}"
    pre = f"<pre>{escape(text)}</pre>"
    if not always and len(str(value)) <= FOLD_CHARS:
        return pre
    return f"<details><summary>{label} ({len(str(value)):,} characters)</summary>{pre}</details>"


def collect_nodes(root: Path, stages: list[dict[str, Any]], recipe: dict[str, Any]) -> list[dict[str, Any]]:
    """The drawn traces of every finished filter node (``filter``, ``filter:<round>``) of the run in ``root``;
    a node whose files cannot be read carries the one-line reason instead (the rest of the page stays)."""
    import json

    from distill.secrets import secret_values

    secrets = secret_values(recipe)
    nodes = []
    for row in stages:
        if row["family"] != "filter" or row["state"] not in ("done", "skipped", "out of date"):
            continue
        folder = Path(root) / row["folder"]
        try:
            report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
            steps = [str(f["filter"]) for f in report.get("funnel") or []]
            found = collect_traces(folder, steps, secrets)
        except Exception as exc:  # one odd file must not cost the whole report
            nodes.append({"name": row["name"], "steps": [], "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        if found is not None:
            nodes.append({"name": row["name"], "steps": found})
    return nodes
