"""The run report (runs/<name>/report.html) and `distill status`, for a finished tiny run (the real CLI), a
failed run, a half-finished run and an eval-only recipe: the page's numbers are the manifest's and
comparison.json's, and secrets from the environment appear nowhere in it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from suite import run_distill, tiny_recipe_data

from distill.pipeline import planned, write_report
from distill.recipe import load_recipe
from distill.report import write_report as write_page
from distill.report.charts import short
from distill.report.page import SECTIONS, fmt, pct
from distill.report.status import status_table
from distill.runs import Run

SECRET = "hf_REPORTsecret0123456789"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict:
    """The tiny pipeline run once through `distill run`, with secrets in the environment."""
    tmp = tmp_path_factory.mktemp("finished")
    data = tiny_recipe_data(tmp / "run")
    data["report"] = {"prices": {"device_hour": 2.5}}
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {**os.environ, "HF_TOKEN": SECRET, "OPENAI_API_KEY": SECRET}
    result = run_distill("run", path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    root = tmp / "run"
    return {"recipe": path, "root": root, "stdout": result.stdout, "html": (root / "report.html").read_text()}


class Tables(HTMLParser):
    """Every table with an id, as rows of cell texts; the <title> texts of the figures."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.titles: list[str] = []
        self.ids: set[str] = set()
        self._table = self._cell = self._title = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id", f"table{len(self.tables)}"), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")
        elif tag == "title":
            self._title = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "title" and self._title is not None:
            self.titles.append("".join(self._title))
            self._title = None

    def handle_data(self, data):
        for part in (self._cell, self._title):
            if part is not None:
                part.append(data)


def parse(html: str) -> Tables:
    tables = Tables()
    tables.feed(html)
    return tables


def body(table: list[list[str]]) -> dict[str, list[str]]:
    return {row[0]: row for row in table[1:]}


def test_the_pipeline_writes_the_report_and_prints_its_path(finished):
    assert f"[distill] report: {finished['root'] / 'report.html'}" in finished["stdout"]
    assert finished["stdout"].rstrip().splitlines()[-1] == f"report: {finished['root'] / 'report.html'}"
    page = parse(finished["html"])
    assert {"header", *SECTIONS} <= page.ids
    assert finished["html"].count("<svg") >= 8  # finish reasons, lengths, funnel, pass rates, curves, eval
    assert "<script" not in finished["html"] and "http://" not in finished["html"]


def test_every_stage_number_is_the_manifests(finished):
    manifest = json.loads((finished["root"] / "manifest.json").read_text())
    rows = body(parse(finished["html"]).tables["stage-table"])
    assert list(rows) == [s.name for s in planned(load_recipe(finished["recipe"]))]
    assert set(rows) == set(manifest["stages"])
    for name, record in manifest["stages"].items():
        assert rows[name][1] == "done" and rows[name][3] == fmt(record["seconds"])
    generate, filt = manifest["stages"]["generate"]["metrics"], manifest["stages"]["filter"]["metrics"]
    assert rows["generate"][4] == f"{fmt(generate['prompts'])} prompts"
    assert (
        rows["generate"][5]
        == f"{fmt(generate['samples'])} samples\n{fmt(generate['completion_tokens'])} tokens generated"
    )
    assert rows["filter"][5] == f"{fmt(filt['rows_out'])} rows kept"
    student = next(n for n in manifest["stages"] if n.startswith("sft:"))
    sft = manifest["stages"][student]["metrics"]
    assert rows[student][5] == f"{fmt(sft['steps'])} steps\n{fmt(sft['tokens'])} tokens trained"
    cost = body(parse(finished["html"]).tables["cost-table"])
    assert cost[student][3] == fmt(round(manifest["stages"][student]["seconds"] / 3600, 4))  # 1 device
    assert cost[student][6] == "$" + fmt(
        round(round(manifest["stages"][student]["seconds"] / 3600, 4) * 2.5, 4)
    )
    assert cost["filter"][2] == "0" and cost["filter"][6] == "$0"


def test_eval_and_funnel_numbers_are_comparison_json_and_filter_report(finished):
    page = parse(finished["html"])
    comparison = json.loads((finished["root"] / "eval" / "comparison.json").read_text())
    table = page.tables["comparison"][1:]
    assert len(table) == len(comparison["rows"])
    for cells, row in zip(table, comparison["rows"], strict=True):
        assert cells[0] == row["model"] and cells[2] == row["task"]
        assert cells[3] == pct(row["pass_at_1"]) and abs(float(cells[3]) - 100 * row["pass_at_1"]) <= 0.005
        assert cells[4] == f"{pct(row['ci95'][0])} – {pct(row['ci95'][1])}"
        assert cells[7] == pct(row["truncated_share"]) and cells[8] == fmt(row["problems"])
    diffs = page.tables["differences"][1:]
    assert [(d[0], d[3]) for d in diffs] == [
        (d["student"], pct(d["difference"])) for d in comparison["differences"]
    ]
    gate = json.loads((finished["root"] / "eval" / "gate.json").read_text())
    assert {r[0]: r[1] == "ship" for r in page.tables["gate"][1:]} == {
        name: d["ship"] for name, d in gate["decisions"].items()
    }
    report = json.loads((finished["root"] / "filter" / "report.json").read_text())
    funnel = [
        [f["filter"], fmt(f["rows_in"]), fmt(f["removed"]), fmt(f["rows_out"]), fmt(f["seconds"])]
        for f in report["funnel"]
    ]
    assert page.tables["funnel"][1:] == funnel


def test_training_curves_are_what_the_trainer_logged(finished):
    student = json.loads((finished["root"] / "manifest.json").read_text())["recipe"]["students"][0]["name"]
    logged = json.loads((finished["root"] / "students" / student / "train_metrics.json").read_text())
    steps = [e for e in logged["log_history"] if "loss" in e]
    titles = parse(finished["html"]).titles
    assert steps and [t for t in titles if t.startswith("loss step")] == [
        f"loss step {short(e['step'])}: {short(e['loss'])}" for e in steps
    ]
    assert [t for t in titles if t.startswith("learning rate step")] == [
        f"learning rate step {short(e['step'])}: {short(e['learning_rate'])}" for e in steps
    ]


def test_secrets_from_the_environment_are_nowhere_in_the_page(finished, monkeypatch):
    assert SECRET not in finished["html"]
    # A secret on the command line (the manifest's copy is redacted; the page redacts again on its own).
    run = Run(finished["root"], write=False)
    run.manifest["command"] = f"distill run tiny.yaml release.namespace={SECRET}"
    run.save()
    monkeypatch.setenv("HF_TOKEN", SECRET)
    html = write_report(load_recipe(finished["recipe"]), record_hardware=False).read_text()
    assert SECRET not in html and "release.namespace=***" in html


def test_status_of_the_finished_run(finished):
    result = run_distill("status", finished["recipe"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith(": done") and len(lines) == 2 + 5
    assert all(" done " in line for line in lines[2:])
    changed = run_distill("status", finished["recipe"], "eval.limit=3")  # eval and publish would rerun
    assert changed.returncode == 4
    assert (
        "eval  " in changed.stdout
        and "out of date" in changed.stdout
        and "reruns after eval" in changed.stdout
    )


def _tiny_run(tmp_path: Path, tiny_recipe_dict: dict):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict, sort_keys=False))
    recipe = load_recipe(path)
    return recipe, Run(recipe.run_path(), recipe.model_dump(mode="json"), recipe.digest())


def _write_rows(path: Path, count: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table({"prompt_id": [str(i) for i in range(count)], "completion_tokens": [5] * count}), path
    )


def test_a_failed_run(tmp_path, tiny_recipe_dict):
    recipe, run = _tiny_run(tmp_path, tiny_recipe_dict)
    nodes = planned(recipe)
    work = run.begin("generate", nodes[0].fingerprint, run.root / "generate")
    _write_rows(work / "shard-00000.parquet", 8)
    run.finish(
        "generate", [work / "shard-00000.parquet"], {"prompts": 4, "samples": 8, "completion_tokens": 40}
    )
    nodes = planned(recipe)
    run.begin(
        "filter", nodes[1].fingerprint, run.root / "filter", {"generate": run.completion_id("generate")}
    )
    run.fail("filter", "DistillError: traces.parquet: no column 'completion'")
    html = write_report(recipe).read_text()
    rows = body(parse(html).tables["stage-table"])
    assert rows["generate"][1] == "done" and rows["generate"][5].startswith("8 samples")
    assert rows["filter"][1:3] == ["failed", "DistillError: traces.parquet: no column 'completion'"]
    assert all(rows[n.name][1] == "not started" for n in nodes[2:])
    assert 'class="state s-failed">failed' in html  # the header's overall state
    text, code = status_table(recipe.run_path(), planned(recipe))
    assert code == 1 and "no column 'completion'" in text
    # A later invocation that found generate up to date: skipped, with its numbers still shown.
    later = parse(write_page(recipe.run_path(), planned(recipe), since=time.time() + 5).read_text())
    assert body(later.tables["stage-table"])["generate"][1:3] == ["skipped", "up to date, skipped this run"]


def test_a_half_finished_generate(tmp_path, tiny_recipe_dict):
    """Killed mid-generate: the partial folder's shards give the progress; no stage after it is shown done."""
    recipe, run = _tiny_run(tmp_path, tiny_recipe_dict)
    work = run.begin("generate", planned(recipe)[0].fingerprint, run.root / "generate")
    _write_rows(work / "prompts.parquet", 4)  # 4 prompts x samples_per_prompt 2
    _write_rows(work / "shard-00000.parquet", 3)
    rows = body(parse(write_report(recipe).read_text()).tables["stage-table"])
    assert rows["generate"][1:3] == ["partial", "3 of 8 samples"]
    assert float(rows["generate"][3]) >= 0
    text, code = status_table(recipe.run_path(), planned(recipe))
    assert code == 3 and "3 of 8 samples" in text and ": running or interrupted" in text.splitlines()[0]


def test_no_run_yet(tmp_path, tiny_recipe_dict):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict, sort_keys=False))
    result = run_distill("report", path)
    assert result.returncode == 2 and "no run there yet" in result.stderr
    status = run_distill("status", path)
    assert status.returncode == 4 and status.stdout.count("not started") == 5
    assert not Path(tiny_recipe_dict["run_dir"]).exists()  # status and report create nothing


def test_an_eval_only_recipe(tmp_path, tiny_recipe_dict):
    data = {
        "name": "eval-only",
        "run_dir": str(tmp_path / "run"),
        "eval": {
            **tiny_recipe_dict["eval"],
            "include_teacher": False,
            "models": [{"label": "tiny", "model": "tiny-random-llama"}],
        },
    }
    path = tmp_path / "eval-only.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_distill("run", path)
    assert result.returncode == 0, result.stderr[-3000:]
    html = (tmp_path / "run" / "report.html").read_text()
    page = parse(html)
    comparison = json.loads((tmp_path / "run" / "eval" / "comparison.json").read_text())
    assert [c[3] for c in page.tables["comparison"][1:]] == [pct(r["pass_at_1"]) for r in comparison["rows"]]
    assert list(body(page.tables["stage-table"])) == [n.name for n in planned(load_recipe(path))]
    assert "No finished generate stage." in html and "No training stage." in html
    assert run_distill("status", path).returncode == 0


# --- in a real browser (Debian's chromium; `make test` installs it) ---------------------------------------


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip(
            "no chromium on PATH: `make test` installs Debian's (apt-get install -y chromium); it could not here"
        )
    return found


def browser(profile: Path) -> list[str]:
    """Headless Chromium with a fresh profile (a reused one hands the page to a lingering instance) and
    every host name unresolvable, so nothing could leave the machine even if the page asked."""
    args = [_chromium(), "--headless=new", "--disable-gpu", "--no-first-run", "--enable-logging=stderr"]
    args += ["--v=0", "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}"]
    return args + (["--no-sandbox"] if os.geteuid() == 0 else [])  # Chromium's sandbox refuses root


def open_in_browser(page: Path, out: Path) -> tuple[str, list[str], list[str]]:
    """(the rendered DOM, the page's console lines, the URLs the page asked the network for), from headless
    Chromium opening ``page`` from disk."""
    net_log = out / "net-log.json"
    result = subprocess.run(
        [*browser(out / "profile-dom"), f"--log-net-log={net_log}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requests = [  # the page's own requests: the browser's background ones have another isolation key
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start
        and "file://" in e["params"].get("network_isolation_key", "")
        and not e["params"]["url"].startswith("file:")
    ]
    return result.stdout, console, requests


def test_the_checks_catch_a_page_that_reaches_out(tmp_path):
    """The browser checks below can fail: a page with a remote image and a console message is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<html><body><img src="https://cdn.example.com/x.png"><script>console.error("boom")</script></body></html>'
    )
    dom, console, requests = open_in_browser(bad, tmp_path)
    assert requests == ["https://cdn.example.com/x.png"]
    assert any('"boom"' in line for line in console) and "<img" in dom


def test_the_report_in_a_real_browser(finished, tmp_path):
    page = finished["root"] / "report.html"
    dom, console, requests = open_in_browser(page, tmp_path)
    assert console == [] and requests == []
    rendered = parse(dom)
    assert {"header", *SECTIONS} <= rendered.ids
    assert dom.count("<svg") == finished["html"].count("<svg") >= 8
    assert rendered.tables["comparison"] == parse(finished["html"]).tables["comparison"]
    assert dom.count('<tr class="trace"') == finished["html"].count("<tr class=trace") > 0  # the traces
    assert re.findall(r'(?:src|href)\s*=\s*"(https?:[^"]*)"', dom) == []
    # Readable with JavaScript off: the page has no script at all (headless Chromium's --dump-dom and
    # --screenshot need scripting themselves, so it stays on here).
    assert "<script" not in dom
    shot = tmp_path / "report.png"
    result = subprocess.run(
        [
            *browser(tmp_path / "profile-shot"),
            f"--screenshot={shot}",
            "--window-size=1200,2400",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", result.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1200, 2400)
        assert len(image.convert("L").getcolors(maxcolors=1 << 16) or []) > 20  # drawn, not blank


@pytest.mark.integration
def test_grpo_teacher_and_two_students(tmp_path, tiny_recipe_dict):
    """A real run with a GRPO-trained teacher and two students: a training section each, GRPO's rewards, KL
    and completion length as TRL logged them, and the price per pass@1 point over the base."""
    from tests.teacher.test_grpo import GRPO

    tiny_recipe_dict["grpo"] = {**GRPO, "max_steps": 2, "save_steps": 2}
    tiny_recipe_dict["teacher"]["model"] = "grpo"
    second = {**tiny_recipe_dict["students"][0], "name": "second-student", "learning_rate": 1e-4}
    tiny_recipe_dict["students"].append(second)
    tiny_recipe_dict["eval"]["include_base"] = True
    tiny_recipe_dict["report"] = {"prices": {"device_hour": 4.0, "currency": "EUR "}}
    path = tmp_path / "grpo.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict, sort_keys=False))
    result = run_distill("run", path)
    assert result.returncode == 0, result.stderr[-3000:]
    root = Path(tiny_recipe_dict["run_dir"])
    html = (root / "report.html").read_text()
    page = parse(html)
    names = [n.name for n in planned(load_recipe(path))]
    assert names[0] == "grpo" and len([n for n in names if n.startswith("sft:")]) == 2
    assert [r[1] for r in page.tables["stage-table"][1:]] == ["done"] * len(names)
    logged = json.loads((root / "teacher" / "grpo_metrics.json").read_text())["log_history"]
    steps = [e for e in logged if "reward" in e]
    for title, key in (("reward", "reward"), ("KL", "kl"), ("completion length", "completions/mean_length")):
        shown = [t for t in page.titles if t.startswith(f"{title} step ")]
        assert shown == [f"{title} step {short(e['step'])}: {short(e[key])}" for e in steps if key in e], (
            title
        )
    assert html.count("<h3><code>sft:") == 2 and "<h3><code>grpo</code></h3>" in html
    comparison = json.loads((root / "eval" / "comparison.json").read_text())
    base = {r["task"]: r["pass_at_1"] for r in comparison["rows"] if r["role"] == "base"}
    points = [
        (r["model"], fmt(round((r["pass_at_1"] - base[r["task"]]) * 100, 2)))
        for r in comparison["rows"]
        if r["role"] == "student"
    ]
    per_point = page.tables[
        next(k for k, t in page.tables.items() if t[0][:3] == ["student", "task", "points"])
    ]
    assert [(row[0], row[2]) for row in per_point[1:]] == points
    cost = body(page.tables["cost-table"])
    assert cost["grpo"][6].startswith("EUR ") and cost["total"][6].startswith("EUR ")


@pytest.mark.parametrize("command", ["report", "status"])
def test_report_commands_have_help(command, capsys):
    from distill.cli import main

    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0 and f"usage: distill {command}" in capsys.readouterr().out


def test_chunked_fleet_generation_and_decontamination(tmp_path, tiny_recipe_dict):
    """Per-chunk and per-endpoint counts (as the merge records them) and the decontamination hits per
    benchmark (as filter/report.json holds them) are on the page as recorded."""
    recipe, run = _tiny_run(tmp_path, tiny_recipe_dict)
    chunks = {
        "0/2": {"state": "done", "host": "node-a", "requested_prompts": 2, "attempts": 1, "new_samples": 4},
        "1/2": {"state": "done", "host": "node-b", "requested_prompts": 2, "attempts": 2, "new_samples": 4},
    }
    endpoints = {
        "http://127.0.0.1:8001/v1": {"requests": 5, "retries": 1},
        "http://127.0.0.1:8002/v1": {"requests": 3},
    }
    work = run.begin("generate", planned(recipe)[0].fingerprint, run.root / "generate")
    _write_rows(work / "shard-00000.parquet", 8)
    metrics = {"prompts": 4, "samples": 8, "completion_tokens": 40, "chunks": chunks, "endpoints": endpoints}
    run.finish("generate", [work / "shard-00000.parquet"], metrics)
    work = run.begin(
        "filter",
        planned(recipe)[1].fingerprint,
        run.root / "filter",
        {"generate": run.completion_id("generate")},
    )
    contamination = {
        "benchmarks": {"math500": 500, "aime24": 30},
        "ngram": 8,
        "fuzzy": False,
        "rows_removed_by_benchmark": {"math500": 3},
        "prompts_removed": 2,
        "examples": [{"prompt_id": "p7", "matched": "math500#12", "problem": "What is 1 + 1?"}],
    }
    funnel = [{"filter": "contaminated", "rows_in": 8, "removed": 3, "rows_out": 5, "seconds": 0.01}]
    report = {"funnel": funnel, "contamination": contamination, "verification": {"reasons": {"no answer": 8}}}
    (work / "report.json").write_text(json.dumps(report))
    run.finish("filter", [work / "report.json"], {"rows_in": 8, "rows_out": 5})
    page = parse(write_report(recipe).read_text())
    per_chunk = body(next(t for t in page.tables.values() if t[1][0] == "0/2"))
    header = next(t for t in page.tables.values() if t[1][0] == "0/2")[0]
    for chunk, status in chunks.items():
        assert {header[i]: cell for i, cell in enumerate(per_chunk[chunk])}["new_samples"] == fmt(
            status["new_samples"]
        )
        assert status["host"] in per_chunk[chunk]
    per_endpoint = body(next(t for t in page.tables.values() if t[1][0].startswith("http://127.0.0.1:8001")))
    assert per_endpoint["http://127.0.0.1:8001/v1"][1:] == ["5", "1"] and per_endpoint[
        "http://127.0.0.1:8002/v1"
    ][1:] == ["3", "-"]  # columns: requests, retries
    assert body(page.tables["contamination"]) == {
        "math500": ["math500", "500", "3"],
        "aime24": ["aime24", "30", "0"],
    }
    assert body(page.tables["funnel"])["contaminated"][1:4] == ["8", "3", "5"]


def test_training_curves_from_tensorboard_when_no_history_was_written(finished, tmp_path):
    """A run killed before its first checkpoint has only TensorBoard events: the curves come from those."""
    from distill.report.collect import _training

    student = next(p for p in (finished["root"] / "students").iterdir() if p.is_dir())
    logged = json.loads((student / "train_metrics.json").read_text())["log_history"]
    copy = tmp_path / "students" / student.name
    shutil.copytree(student, copy, ignore=shutil.ignore_patterns("train_metrics.json", "final"))
    assert not list(copy.glob("checkpoints/checkpoint-*"))  # no trainer_state.json either
    found = _training(
        tmp_path, {"name": f"sft:{student.name}", "family": "sft", "folder": f"students/{student.name}"}
    )
    assert found["source"] == "TensorBoard events"
    steps = [e for e in found["history"] if "loss" in e]
    assert [e["step"] for e in steps] == [e["step"] for e in logged if "loss" in e]
    assert [e["loss"] for e in steps] == pytest.approx([e["loss"] for e in logged if "loss" in e], rel=1e-6)
