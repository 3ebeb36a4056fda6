"""The docs site: the generated references (recipe fields, CLI, recipe gallery) match the code, and the strict
site build fails on a broken link (`make test` builds the real site strictly before pytest runs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from suite import REPO

from distill.docs_reference import generated_files, main, stale_files


def test_committed_references_are_regenerated_from_the_code():
    stale = [str(path.relative_to(REPO)) for path in stale_files(REPO)]
    assert stale == [], f"stale generated docs {stale}: run `make docs-reference` and commit the result"


def _checkout_copy(tmp_path: Path) -> Path:
    """The files the generator reads and the site is built from, copied into a scratch checkout."""
    root = tmp_path / "checkout"
    for folder in ("docs", "recipes"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "bench").mkdir()
    for name in ("README.md", "mkdocs.yml", "bench/RESULTS.md"):
        shutil.copy(REPO / name, root / name)
    return root


def test_a_reference_that_lags_the_code_is_reported_stale(tmp_path, capsys):
    root = _checkout_copy(tmp_path)
    recipe_md = root / "docs" / "reference" / "recipe.md"
    recipe_md.write_text(
        recipe_md.read_text().replace("| `samples_per_prompt` | int | `4` |", "| `n` | int | `4` |")
    )
    assert main(["--root", str(root), "--check"]) == 1
    assert "recipe.md" in capsys.readouterr().err
    assert main(["--root", str(root)]) == 0  # regenerating repairs it
    assert stale_files(root) == []


def test_every_recipe_field_and_cli_flag_is_in_the_references():
    from distill.cli import build_parser
    from distill.recipe import Recipe

    texts = {path.name: text for path, text in generated_files(REPO).items()}
    for name in Recipe.model_fields:
        assert f"| `{name}` |" in texts["recipe.md"], name
    assert "| `api_key_env` | str \\| null | `null` |" in texts["recipe.md"]
    assert "| `concurrency` | int | `32` | &gt;= 1 | no (runtime) |" in texts["recipe.md"]  # teacher.openai
    assert "| `judge` | [judge](#judge) \\| null | `null` |  | when set (added) |" in texts["recipe.md"]
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for command, parser in sub.choices.items():
        assert f"## distill {command} {{#{command}}}" in texts["cli.md"]
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}`" in texts["cli.md"], (command, flag)
    for recipe in (REPO / "recipes").glob("*.yaml"):
        assert f"[`{recipe.name}`](" in texts["gallery.md"]


def test_the_strict_site_build_fails_on_a_broken_link(tmp_path):
    root = _checkout_copy(tmp_path)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    build = [
        sys.executable,
        "-m",
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        str(tmp_path / "site"),
    ]
    assert subprocess.run(build, cwd=root, env=env, capture_output=True, text=True).returncode == 0
    page = root / "docs" / "runs.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    broken = subprocess.run(build, cwd=root, env=env, capture_output=True, text=True)
    assert broken.returncode != 0
    assert "no-such-page.md" in broken.stdout + broken.stderr
