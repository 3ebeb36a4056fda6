"""The phases graph of a multi-phase recipe (distill/report/lineage.py): who sampled which traces, who trained
on them, who started from whom, with pass@1 and the paired difference against the origin."""

from __future__ import annotations

import json

from distill.report import write_report
from distill.report.lineage import lineage_rows, lineage_text, multi_phase
from distill.report.status import status_table

RECIPE = {
    "name": "r1-toy",
    "grpo": {"model": "base-model"},
    "teacher": {"model": "grpo"},
    "filter": {},
    "rounds": [{"name": "rs", "teacher": {"model": "student:rl"}}],
    "students": [
        {"name": "cold", "model": "base-model"},
        {"name": "rl", "model": "base-model", "init": "cold", "method": "grpo"},
        {"name": "rs-sft", "model": "base-model", "traces": "rs"},
    ],
    "eval": {"tasks": ["addition_heldout"]},
}


def row(model: str, score: float) -> dict:
    return {"model": model, "task": "addition_heldout", "pass_at_1": score}


def manifest() -> dict:
    diffs = [
        {"student": "rl", "versus": "init", "reference": "cold", "task": "addition_heldout", "difference": 0.125,
         "ci95": [0.05, 0.2]},
        {"student": "rl", "versus": "teacher", "reference": "teacher (x)", "task": "addition_heldout",
         "difference": 0.5, "ci95": [0.4, 0.6]},
    ]  # fmt: skip
    evals = [
        row("teacher (/runs/teacher/final)", 0.25),
        row("cold", 0.3),
        row("rl", 0.425),
        row("rs-sft", 0.5),
    ]
    return {
        "recipe": RECIPE,
        "stages": {
            "filter": {"status": "done", "metrics": {"rows_in": 40, "rows_out": 12}},
            "filter:rs": {"status": "done", "metrics": {"rows_in": 80, "rows_out": 30}},
            "eval": {"status": "done", "metrics": {"rows": evals, "differences": diffs}},
        },
    }


def test_each_node_says_where_it_came_from_with_its_score_and_difference():
    assert multi_phase(RECIPE) and not multi_phase({"students": [{"name": "s", "model": "m"}]})
    text = lineage_text(lineage_rows(manifest()))
    lines = text.splitlines()
    assert lines[0].startswith("phases (held-out pass@1 on addition_heldout")
    assert [line.split()[0] for line in lines[1:]] == [
        "grpo",
        "filter",
        "filter:rs",
        "sft:cold",
        "sft:rl",
        "sft:rs-sft",
    ]
    assert "GRPO of base-model  25.0%" in lines[1]
    assert "traces sampled by grpo: 12 of 40 kept" in lines[2]
    assert "traces sampled by student:rl: 30 of 80 kept" in lines[3]
    assert "grpo from student:cold  42.5%  +12.5 [+5.0, +20.0] vs init: cold" in lines[5]
    assert "sft from base-model on traces of filter:rs  50.0%" in lines[6]


def test_status_and_report_show_the_phases(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(manifest()))
    text, _ = status_table(tmp_path, [])
    assert "\n\nphases (held-out pass@1" in text and "vs init: cold" in text
    page = write_report(tmp_path).read_text()
    assert '<section id="phases">' in page and "+12.5 [+5.0, +20.0] vs init: cold" in page
    assert '<a href="#phases">' in page
