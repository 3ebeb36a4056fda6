"""Recipes that inherit (`base:`), built-in recipes by name, `distill recipes`, `distill init`, `--resolved`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distill import recipe_files
from distill.cli import main
from distill.errors import DistillError
from distill.recipe import Recipe, load_recipe

REPO = Path(__file__).resolve().parents[2]
BEFORE = json.loads((Path(__file__).parent / "data" / "r1_recipes_before_base.json").read_text())


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def based(tmp_path, tiny_recipe_dict) -> Path:
    """The tiny recipe split in two: everything but name and students in bases/common.yaml."""
    common = {k: v for k, v in tiny_recipe_dict.items() if k not in ("name", "students")}
    write(tmp_path / "bases" / "common.yaml", common)
    child = {"name": "child", "base": "bases/common.yaml", "students": tiny_recipe_dict["students"]}
    return write(tmp_path / "child.yaml", child)


@pytest.mark.parametrize("name", sorted(BEFORE["recipes"]))
def test_r1_recipes_resolve_to_what_they_were_before_the_base(name):
    """The five R1 recipes, flat at commit 866f9b0, and now over bases/r1-common.yaml: the same recipe, the
    same digest (run dirs made before stay up to date). Change the fixture when a recipe changes on purpose."""
    before = Recipe.model_validate(BEFORE["recipes"][name])
    now = load_recipe(REPO / "recipes" / name)
    assert now.model_dump(mode="json") == before.model_dump(mode="json")
    assert now.digest() == before.digest()
    assert yaml.safe_load((REPO / "recipes" / name).read_text())["base"] == "bases/r1-common.yaml"


def test_the_r1_base_holds_only_what_all_five_share():
    common = yaml.safe_load((REPO / "recipes" / "bases" / "r1-common.yaml").read_text())
    flat = [_leaves(recipe) for recipe in BEFORE["recipes"].values()]
    for key, value in _leaves(common).items():
        assert all(f.get(key) == value for f in flat), key
    shared = {k for k in flat[0] if all(k in f and f[k] == flat[0][k] for f in flat)}
    assert len(shared) == 34  # issue 20: 34 of 77 settings word for word; 11 of them inside students (a list)
    assert set(_leaves(common)) == {k for k in shared if not k.startswith("students.")}


def _leaves(data, prefix=""):
    if isinstance(data, dict):
        return {k: v for key, sub in data.items() for k, v in _leaves(sub, f"{prefix}{key}.").items()}
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        return {k: v for i, x in enumerate(data) for k, v in _leaves(x, f"{prefix}{i}.").items()}
    return {prefix[:-1]: data}


def test_base_merges_mappings_and_the_child_wins(based, tiny_recipe_dict):
    text = based.read_text() + "teacher:\n  samples_per_prompt: 3\n  sampling: {max_tokens: 5}\n"
    based.write_text(text)
    recipe = load_recipe(based)
    flat = Recipe.model_validate({**tiny_recipe_dict, "name": "child"})
    assert recipe.teacher.samples_per_prompt == 3 and recipe.teacher.sampling.max_tokens == 5
    assert recipe.teacher.sampling.temperature == flat.teacher.sampling.temperature  # merged, not replaced
    assert recipe.teacher.model == flat.teacher.model
    assert recipe.eval == flat.eval and recipe.filter == flat.filter


def test_lists_are_replaced_whole(tmp_path, based):
    common = yaml.safe_load((tmp_path / "bases" / "common.yaml").read_text())
    assert len(common["eval"]["tasks"]) == 1
    based.write_text(based.read_text() + "eval: {tasks: [math500, gsm8k]}\n")
    assert load_recipe(based).eval.tasks == ["math500", "gsm8k"]
    based.write_text(based.read_text() + "data: {system_prompt: null}\n")
    assert load_recipe(based).data.system_prompt is None  # null is a value like any other


def test_a_list_of_bases_merges_in_order(tmp_path, based):
    write(tmp_path / "more.yaml", {"teacher": {"batch_size": 3, "samples_per_prompt": 5}})
    write(tmp_path / "last.yaml", {"teacher": {"batch_size": 7}})
    data = yaml.safe_load(based.read_text())
    data["base"] = ["bases/common.yaml", "more.yaml", "last.yaml"]
    recipe = load_recipe(write(based, data))
    assert (recipe.teacher.batch_size, recipe.teacher.samples_per_prompt) == (7, 5)


def test_bases_nest_and_resolve_relative_to_the_file_naming_them(tmp_path, based):
    common = tmp_path / "bases" / "common.yaml"
    data = yaml.safe_load(common.read_text())
    teacher = data.pop("teacher")
    write(tmp_path / "bases" / "teacher.yaml", {"teacher": teacher})
    write(common, {**data, "base": "teacher.yaml"})  # next to common.yaml, not next to child.yaml
    assert load_recipe(based).teacher.model == teacher["model"]


def test_overrides_apply_after_merging(based):
    recipe = load_recipe(based, ["teacher.batch_size=3", "eval.limit=1"])
    assert recipe.teacher.batch_size == 3 and recipe.eval.limit == 1
    assert recipe.teacher.model == "tiny-random-llama"  # the rest of the base's teacher section stays


def test_base_cycle_is_one_line_naming_the_chain(tmp_path, based):
    common = tmp_path / "bases" / "common.yaml"
    common.write_text(common.read_text() + "base: ../child.yaml\n")
    with pytest.raises(DistillError, match=r"child\.yaml -> .*common\.yaml -> .*child\.yaml: base cycle"):
        load_recipe(based)
    write(tmp_path / "self.yaml", {"name": "s", "base": "self.yaml"})
    with pytest.raises(DistillError, match="base cycle"):
        load_recipe(tmp_path / "self.yaml")


def test_missing_base_names_the_file(tmp_path):
    path = write(tmp_path / "r.yaml", {"name": "r", "base": "nope.yaml"})
    with pytest.raises(DistillError) as info:
        load_recipe(path)
    message = str(info.value)
    assert message.startswith(f"{path}: base 'nope.yaml' not found") and "\n" not in message


@pytest.mark.parametrize("base", [7, [], ["ok.yaml", 3], {"a": 1}])
def test_base_must_name_files(tmp_path, base):
    with pytest.raises(DistillError, match="field 'base': expected a recipe file"):
        load_recipe(write(tmp_path / "r.yaml", {"name": "r", "base": base}))


def test_unknown_key_after_merging_names_the_chain(tmp_path, based):
    common = tmp_path / "bases" / "common.yaml"
    common.write_text(common.read_text().replace("  correctness:", "  corectness:"))
    with pytest.raises(DistillError) as info:
        load_recipe(based)
    assert str(info.value) == (
        f"{based} (with base {common}): unknown key 'filter.corectness' (did you mean 'correctness'?)"
    )


def test_validate_resolved_prints_a_recipe_that_loads_to_the_same_digest(tmp_path, based, capsys):
    assert main(["validate", str(based), "teacher.batch_size=3", "--resolved"]) == 0
    out = capsys.readouterr().out
    resolved = yaml.safe_load(out)
    assert "base" not in resolved and resolved["teacher"]["batch_size"] == 3
    assert resolved["teacher"]["model"] == "tiny-random-llama"  # from the base
    again = load_recipe(write(tmp_path / "resolved.yaml", resolved))
    assert again.digest() == load_recipe(based, ["teacher.batch_size=3"]).digest()
    assert main(["validate", "r1-qwen2.5-14b", "--show-resolved"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["data"]["split"] == "train"


def test_builtin_recipe_by_name_and_a_path_wins(tmp_path, monkeypatch):
    assert recipe_files.find_recipe("quickstart") == REPO / "recipes" / "quickstart.yaml"
    assert recipe_files.find_recipe("tiny.yaml") == REPO / "recipes" / "tiny.yaml"
    assert recipe_files.find_recipe("../quickstart") == Path("../quickstart")  # never outside the folder
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path / "quickstart",
        {"name": "mine", "eval": {"tasks": ["gsm8k"], "models": [{"label": "x", "model": "x"}]}},
    )
    assert load_recipe("quickstart").name == "mine"  # an existing path wins over the built-in name


def test_builtin_recipe_by_name_keeps_the_checkout_fingerprints(monkeypatch):
    """From the checkout's root the quickstart's data path is the same string as before (fingerprinted)."""
    from distill.pipeline import plan

    monkeypatch.chdir(REPO)
    by_name, by_path = load_recipe("quickstart"), load_recipe("recipes/quickstart.yaml")
    assert by_name.data.source == "recipes/data/addition_train.jsonl"
    assert by_name.digest() == by_path.digest()
    assert [(s.name, s.config) for s in plan(by_name)] == [(s.name, s.config) for s in plan(by_path)]


def test_builtin_data_resolves_beside_the_recipes_from_any_folder(tmp_path, monkeypatch, tiny_recipe_dict):
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe("grpo-quickstart")
    shipped = REPO / "recipes" / "data" / "addition_train.jsonl"
    assert Path(recipe.data.source) == shipped and Path(recipe.grpo.data.source) == shipped
    tiny_recipe_dict["data"]["source"] = "recipes/data/addition_train.jsonl"
    mine = write(
        tmp_path / "mine.yaml", tiny_recipe_dict
    )  # the user's own recipe: its paths mean what they say
    assert load_recipe(mine).data.source == "recipes/data/addition_train.jsonl"


def test_distill_recipes_lists_purpose_and_hardware(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for path in sorted((REPO / "recipes").glob("*.yaml")):
        purpose, hardware = recipe_files.summary(path)
        assert f"{path.stem}  " in out and purpose in out and hardware and f"hardware: {hardware}" in out
    assert "r1-common" not in out  # a base, not a recipe to run
    assert "hardware: CPU only, 2 cores, ~4 GB RAM; about 12-15 minutes end to end." in out  # quickstart's


def test_distill_init_writes_a_copy_that_runs_from_here(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "mine"]) == 0
    copy = tmp_path / "mine.yaml"
    text = copy.read_text()
    assert text.startswith("# Quickstart:") and "\nname: mine\n" in text  # comments kept, renamed
    recipe = load_recipe(copy)
    assert Path(recipe.data.source).is_file()
    original = load_recipe(REPO / "recipes" / "quickstart.yaml")
    assert recipe.model_dump(exclude={"name", "data"}) == original.model_dump(exclude={"name", "data"})
    assert main(["init", "big", "--from", "r1-qwen2.5-14b"]) == 0
    assert load_recipe(tmp_path / "big.yaml").students == load_recipe("r1-qwen2.5-14b").students


def test_distill_init_refuses_to_overwrite(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("mine")
    assert main(["init", "mine", "--from", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mine.yaml: already exists" in err
    assert (tmp_path / "mine.yaml").read_text() == "mine"
    assert main(["init", "x", "--from", "nope"]) == 2
    assert "--from nope: no such recipe file (nor a built-in recipe: " in capsys.readouterr().err


def _fake_package(root: Path, name: str, dist: str | None) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("raise ImportError('the wrong package')\n")
    if dist:
        info = root / f"{dist}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "top_level.txt").write_text(f"{name}\n")


@pytest.mark.parametrize(("name", "dist"), [("teacher", "teacher-fake"), ("eval", None)])
def test_a_shadowing_package_is_one_line(tmp_path, name, dist):
    _fake_package(tmp_path / "fake", name, dist)
    env = {"PYTHONPATH": f"{tmp_path / 'fake'}:{REPO}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from distill.cli import main; sys.exit(main())", "recipes"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""
    assert f"the import package '{name}' comes from {tmp_path / 'fake' / name}" in done.stderr
    assert (f"installed by {dist}" if dist else "not installed by any distribution") in done.stderr


@pytest.mark.parametrize("command", [["recipes"], ["init"], ["validate"], ["plan"]])
def test_recipe_commands_have_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert f"usage: distill {command[0]}" in capsys.readouterr().out


def test_a_builtin_recipe_as_base(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    child = write(
        tmp_path / "mine.yaml", {"name": "mine", "base": "quickstart", "teacher": {"batch_size": 4}}
    )
    recipe, original = load_recipe(child), load_recipe(REPO / "recipes" / "quickstart.yaml")
    assert recipe.teacher.batch_size == 4 and recipe.students == original.students
    assert (
        Path(recipe.data.source) == REPO / "recipes" / "data" / "addition_train.jsonl"
    )  # inherited, shipped
