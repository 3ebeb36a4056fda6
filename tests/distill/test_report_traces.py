"""The report's traces (distill/report/traces.py): the real `distill filter` over a small trace file with
right, wrong, truncated and overlong answers, then the page in headless Chromium: nothing leaves the
machine, every trace shown is a row of filter/verified.parquet, a planted secret is redacted; the draw is
fixed and does not depend on how the file is batched. And the charts' labels stay readable."""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from suite import run_distill

from distill.records import split_think
from distill.report import write_report
from distill.report.charts import _H, bars, line_chart
from distill.report.traces import KEPT, MAX_CHARS, PER_GROUP, collect_traces
from tests.distill.test_report import open_in_browser

SECRET = "hf_TRACEsecret0123456789"
SYSTEM = "You are a careful calculator. Answer with the final number in \\boxed{N}."


def _trace(index: int) -> dict:
    """Problem ``index``'s one sample: right; off by one (every third); a loop (p05, removed for repetition,
    12k characters of reasoning); no <think> block (p09, removed for its format, the secret pasted in)."""
    a, b = 10 + index, 20 + 3 * index
    given = a + b + (index % 3 == 1)
    reasoning = f"I add {a} and {b}. " + ("Let me check again. " * 600 if index == 5 else "")
    completion = f"<think>\n{reasoning}\n</think>\n\nThe sum is \\boxed{{{given}}}."
    if index == 9:
        completion = f"My token is {SECRET}. The sum is \\boxed{{{given}}}."
    return {
        "id": f"p{index:02d}",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"What is {a} + {b}?"},
            {"role": "assistant", "content": completion},
        ],
        "answer": str(a + b),
    }


@pytest.fixture(scope="module")
def filtered(tmp_path_factory) -> dict:
    """`distill filter` (the real CLI) over 12 traces, the secret in the environment; then the report."""
    tmp = tmp_path_factory.mktemp("traces")
    traces = tmp / "traces.jsonl"
    traces.write_text("".join(json.dumps(_trace(i)) + "\n" for i in range(12)))
    recipe = {
        "name": "traces",
        "run_dir": str(tmp / "run"),
        "filter": {"traces": str(traces), "workers": 0, "require_think_format": True},
        "eval": {"tasks": ["addition_heldout"]},
    }
    path = tmp / "traces.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    result = run_distill("filter", path, env={**os.environ, "HF_TOKEN": SECRET})
    assert result.returncode == 0, result.stderr[-3000:]
    root = tmp / "run"
    return {"root": root, "html": (root / "report.html").read_text(), "tmp": tmp}


class Traces(HTMLParser):
    """Each drawn trace of the page: its data-* attributes, its step group and its cells' texts."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []
        self._step = self._kind = self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "details" and "data-step" in attrs:
            self._step = attrs["data-step"]
        elif tag == "table" and "traces" in (attrs.get("class") or ""):
            self._kind = attrs["class"].split("t-")[-1]
        elif tag == "tr" and attrs.get("class") == "trace":
            self.rows.append({"step": self._step, "kind": self._kind, **attrs})
        elif tag == "td" and self.rows and (attrs.get("class") or "").startswith("t-"):
            self._cell = attrs["class"].removeprefix("t-")
            self.rows[-1][self._cell] = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._cell:
            self.rows[-1][self._cell] += data


def drawn(html: str) -> list[dict]:
    found = Traces()
    found.feed(html)
    return found.rows


def _verified(root: Path) -> dict[tuple[str, str], dict]:
    rows = pq.read_table(root / "filter" / "verified.parquet").to_pylist()
    return {(r["prompt_id"], str(r["sample_idx"])): r for r in rows}


def test_the_traces_in_a_real_browser_are_rows_of_verified_parquet(filtered, tmp_path):
    page = filtered["root"] / "report.html"
    dom, console, requests = open_in_browser(page, tmp_path)
    assert console == [] and requests == []
    assert SECRET not in dom and SECRET not in filtered["html"]
    rows, verified = drawn(dom), _verified(filtered["root"])
    report = json.loads((filtered["root"] / "filter" / "report.json").read_text())
    steps = [f["filter"] for f in report["funnel"]]
    assert [s for s in dict.fromkeys(r["step"] for r in rows)] == [
        s for s in [*steps, KEPT] if any(r["step"] == s for r in rows)
    ]
    assert {"format", "repetition", "incorrect", KEPT} <= {r["step"] for r in rows}
    for row in rows:
        source = verified[row["data-prompt-id"], row["data-sample-idx"]]
        assert row["extracted"] == (source["extracted"] or "-") and row["reference"] == source["answer"]
        assert row["prompt"] == source["messages"][-2]["content"]
        assert row["verdict"].startswith({True: "correct", False: "wrong"}[source["correct"]])
        reasoning, final = split_think(source["completion"])  # external traces record neither apart
        assert row["final"] == final.replace(SECRET, "***")
        assert reasoning[:100] in row["reasoning"] or (not reasoning and row["reasoning"] == "(empty)")
        if row["kind"] == "removed":
            assert source["removed_by"] == row["step"] and source["removed_detail"] in row["filter"]
        elif row["step"] == KEPT:
            assert source["kept"] and row["filter"] == "kept"
        else:  # passed this step: kept, or removed by a later one
            assert source["kept"] or steps.index(source["removed_by"]) > steps.index(row["step"])
    planted = [r for r in rows if r["data-prompt-id"] == "p09"]  # the one row the format step removed
    assert planted and all("My token is ***." in r["final"] for r in planted)
    long = [r for r in rows if r["data-prompt-id"] == "p05"]  # 12k characters of reasoning: folded and cut
    assert long and all("characters left out" in r["reasoning"] for r in long)
    assert all(len(r["reasoning"]) < MAX_CHARS + 200 for r in long)


def test_the_draw_is_fixed_and_does_not_depend_on_the_batching(filtered, tmp_path):
    folder = filtered["root"] / "filter"
    steps = [f["filter"] for f in json.loads((folder / "report.json").read_text())["funnel"]]
    once = collect_traces(folder, steps, [])
    assert once == collect_traces(folder, steps, [])
    # The same rows written as two files of small row groups (as a streaming writer would): the same draw.
    table = pq.read_table(folder / "verified.parquet")
    parts = tmp_path / "verified.parquet"
    parts.mkdir()
    pq.write_table(table.slice(0, 5), parts / "part-0.parquet", row_group_size=2)
    pq.write_table(table.slice(5), parts / "part-1.parquet", row_group_size=3)
    assert collect_traces(tmp_path, steps, []) == once
    for group in once:
        assert len(group["removed"]) <= PER_GROUP and len(group["passed"]) <= PER_GROUP


def test_a_secret_with_html_characters_is_redacted_before_escaping(filtered, tmp_path, monkeypatch):
    """Redacting the finished page cannot find ``a&b`` once it is written ``a&amp;b``: traces are redacted
    before they are escaped."""
    import shutil

    secret = "hf_amp&<secret>0123456789"
    root = tmp_path / "run"
    shutil.copytree(filtered["root"], root)
    table = pq.read_table(root / "filter" / "verified.parquet")
    planted = [f"{text} {secret}" for text in table.column("completion").to_pylist()]
    table = table.set_column(table.schema.get_field_index("completion"), "completion", pa.array(planted))
    pq.write_table(table, root / "filter" / "verified.parquet")
    monkeypatch.setenv("HF_TOKEN", secret)
    html = write_report(root).read_text()
    assert "secret&gt;0123456789" not in html and "&lt;secret&gt;" not in html
    assert len(drawn(html)) >= PER_GROUP


def test_the_pass_at_k_legend_sits_below_its_lines():
    svg = line_chart(
        "pass@k %",
        [("a" * 60 + " · aime24", [(1, 20.0), (4, 60.0)]), ("student · aime24", [(1, 30.0), (4, 80.0)])],
        "k",
    )
    legend = [float(y) for y in re.findall(r'<text class="legend" x="[\d.]+" y="([\d.]+)"', svg)]
    points = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert len(legend) == 2 and min(legend) - 11 > _H - 4 > max(points)  # under the x axis label, too
    width = float(re.search(r'width="([\d.]+)"', svg).group(1))
    assert "a" * 60 + " · aime24" in svg and width >= 60 + 60 * 11 * 0.6


def test_long_model_names_are_not_cut_in_the_pass_at_1_chart():
    name = "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B-very-long-name · aime24"
    svg = bars("pass@1 % with 95% CI", [(name, 40.0, (30.0, 50.0)), ("small · aime24", 20.0, None)], "%")
    label = re.search(r'<text x="([\d.]+)"[^>]*text-anchor="end"[^>]*>([^<]*)</text>', svg)
    assert label.group(2) == name
    assert float(label.group(1)) >= len(name) * 11 * 0.6  # room for the whole label left of the bars
