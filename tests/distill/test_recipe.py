from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.errors import DistillError
from distill.recipe import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.name
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("#"), (
        f"{path.name} must start with a comment giving the command that runs it"
    )


def write(tmp_path, data) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_overrides_parse_values_as_yaml(tiny_recipe):
    recipe = load_recipe(
        tiny_recipe, ["teacher.batch_size=3", "eval.tasks=[a, b]", "students.0.learning_rate=1e-4"]
    )
    assert recipe.teacher.batch_size == 3
    assert recipe.eval.tasks == ["a", "b"]
    assert recipe.students[0].learning_rate == pytest.approx(1e-4)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["teacher"].update(bach_size=3),
            "unknown key 'teacher.bach_size' (did you mean 'batch_size'?)",
        ),
        (lambda d: d.update(studnets=d.pop("students")), "unknown key 'studnets' (did you mean 'students'?)"),
        (
            lambda d: d["students"][0].update(lora={"rank": 8}),
            "unknown key 'students.0.lora.rank' (valid keys here: r, alpha,",
        ),
        (
            lambda d: d["filter"].update(dedup={"zzz": 1}),
            "unknown key 'filter.dedup.zzz' (valid keys here: exact,",
        ),
        (lambda d: d["data"].update(too_long="truncate"), "field 'data.too_long'"),
        (lambda d: d.update(name="x y" * 50_000), "... (150,002 characters)"),
        (lambda d: d.pop("teacher"), "teacher and data go together"),
        (lambda d: [d.pop("teacher"), d.pop("data")], "students need traces: a teacher + data section"),
        (lambda d: d["teacher"].update(batch_size="many"), "field 'teacher.batch_size'"),
        (lambda d: d["teacher"].update(backend="magic"), "field 'teacher.backend'"),
        (lambda d: d["data"].update(prompt_template="no placeholder"), "field 'data.prompt_template'"),
        (lambda d: d["eval"].update(backend="served"), "students are local weights: use hf or vllm"),
        (lambda d: d["release"]["gate"].update(no_regression=True), "set eval.include_base: true"),
    ],
)
def test_bad_recipes_fail_with_one_line_naming_the_field(tmp_path, tiny_recipe_dict, mutate, expected):
    mutate(tiny_recipe_dict)
    path = write(tmp_path, tiny_recipe_dict)
    with pytest.raises(DistillError) as info:
        load_recipe(path)
    message = str(info.value)
    assert expected in message and str(path) in message
    assert "\n" not in message


def test_bad_override_syntax(tiny_recipe):
    with pytest.raises(DistillError, match="expected key.sub=value"):
        load_recipe(tiny_recipe, ["teacher.batch_size"])


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nteacher: [unclosed\n")
    with pytest.raises(DistillError, match=r"broken.yaml: line \d+ is not valid YAML"):
        load_recipe(path)


def test_cli_validate_misspelled_key_exits_nonzero_without_traceback(tiny_recipe, capsys):
    assert main(["validate", str(tiny_recipe), "filter.corectness=true"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unknown key 'filter.corectness'" in err and "Traceback" not in err


def test_cli_validate_ok(tiny_recipe, capsys):
    assert main(["validate", str(tiny_recipe)]) == 0
    assert "ok" in capsys.readouterr().out


def test_cli_missing_recipe(capsys):
    assert main(["validate", "nope.yaml"]) == 2
    assert "nope.yaml: recipe file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", [[], ["run"], ["generate"], ["filter"], ["sft"], ["eval"], ["publish"], ["validate"]]
)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: distill" in capsys.readouterr().out
