"""The Python API at distill's top level (distill/api.py): the shipped tiny recipe end to end through
``distill.run`` and a rerun that skips every stage; keyword overrides are the CLI's overrides; the API's
errors are the CLI's one-line DistillErrors; ``import distill`` stays light."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from suite import REPO, run_distill

import distill
from distill.errors import DistillError


def test_import_distill_loads_nothing_heavy():
    code = (
        "import sys, distill; heavy = {'pydantic', 'torch', 'transformers', 'math_verify', 'pyarrow', 'yaml'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_every_exported_name_resolves_and_none_shadows_a_submodule():
    submodules = {m.name for m in pkgutil.iter_modules(distill.__path__)}
    exported = set(distill.__all__) - {"__version__"}
    assert not exported & submodules  # `distill.verify` must stay the package
    assert {
        "load_recipe",
        "run",
        "status",
        "plan",
        "verify_many",
        "verify_code_many",
        "open_judge",
    } <= exported
    for name in exported:
        assert getattr(distill, name) is not None
    assert distill.verify_many is distill.verify.verify_many  # re-exported, not copied
    assert distill.open_judge is distill.judge.open_judge
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        distill.nope  # noqa: B018


def test_keyword_overrides_are_the_clis_overrides(tmp_path):
    cli = distill.load_recipe(
        "tiny",
        [
            f"run_dir={tmp_path}",
            "teacher.batch_size=4",
            "teacher.sampling.seed=3",
            "eval.tasks=[addition_heldout]",
        ],
    )
    api = distill.load_recipe(
        "tiny",
        run_dir=tmp_path,
        teacher={"batch_size": 4, "sampling": {"seed": 3}},
        eval={"tasks": ("addition_heldout",)},
    )
    assert api.model_dump() == cli.model_dump()
    assert api.teacher.sampling.temperature == 0.8  # a dict sets fields; the section's others stay


def _cli_error(*args) -> str:
    result = run_distill(*args, cwd=REPO)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("distill: error: ")
    return lines[0].removeprefix("distill: error: ")


def test_errors_are_the_clis_one_line_errors(tmp_path):
    with pytest.raises(DistillError) as caught:
        distill.load_recipe("recipes/tiny.yaml", teacher={"batchsize": 4})
    assert str(caught.value) == _cli_error("validate", "recipes/tiny.yaml", "teacher.batchsize=4")
    assert "unknown key 'teacher.batchsize'" in str(caught.value)

    run_dir = tmp_path / "run"
    with pytest.raises(DistillError) as caught:
        distill.run(distill.load_recipe("recipes/tiny.yaml", run_dir=run_dir), only="sft")
    assert str(caught.value) == _cli_error("sft", "recipes/tiny.yaml", f"run_dir={run_dir}")
    assert "needs filter first" in str(caught.value)

    with pytest.raises(DistillError) as caught:
        distill.run(tmp_path / "missing.yaml")
    assert str(caught.value) == _cli_error("run", tmp_path / "missing.yaml")


def test_the_tiny_recipe_end_to_end_then_a_rerun_skips_every_stage(tmp_path, capsys):
    """Every stage of the shipped tiny recipe in this process (~15-25 s here; eval is most of it)."""
    recipe = distill.load_recipe(REPO / "recipes" / "tiny.yaml", run_dir=tmp_path / "run", eval={"limit": 2})
    nodes = ("generate", "filter", "sft:tiny-student", "eval", "publish")
    assert [(p.name, p.will_run) for p in distill.plan(recipe)] == [(n, True) for n in nodes]

    first = distill.run(recipe)
    assert (first.ran, first.skipped) == (nodes, ())
    assert first.stages == dict.fromkeys(nodes, "done")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert first.manifest == manifest and first.metrics("generate")["samples"] == 16
    assert first.report == tmp_path / "run" / "report.html" and first.report.is_file()
    assert [row["task"] for row in first.comparison["rows"]][0] == "addition_heldout"
    state = distill.status(recipe)
    assert (state.state, state.exit_code) == ("done", 0)
    assert [row["name"] for row in state.stages] == list(nodes)
    printed = run_distill("status", REPO / "recipes/tiny.yaml", f"run_dir={tmp_path / 'run'}", "eval.limit=2")
    assert state.text == printed.stdout.removesuffix("\n")

    capsys.readouterr()
    second = distill.run(recipe)
    assert (second.ran, second.skipped) == ((), nodes)
    assert capsys.readouterr().out.count("up to date, skipped") == len(nodes)
    assert all(second.manifest["stages"][n] == manifest["stages"][n] for n in nodes)
    assert not any(p.will_run for p in distill.plan(recipe))
    assert [p.name for p in distill.plan(recipe, force="eval") if p.will_run] == ["eval", "publish"]

    forced = distill.run(recipe, only="publish", force="publish")
    assert (forced.ran, forced.skipped) == (("publish",), ())
    assert distill.write_report(recipe) == first.report
    assert Path(first.report).read_text().count("<section") >= 7
