"""Preflight (issue 8): bad input fails in seconds with one line naming the file, before any stage starts,
leaving the run dir untouched; BOM/CRLF input is fine; over-long prompts are dropped (counted) or refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from bad_inputs import BIG, CASES, GOOD_ROWS, command_for

from distill.cli import main
from distill.errors import DistillError
from distill.pipeline import pending_stages, preflight
from distill.recipe import Recipe
from distill.records import read_rows
from student import preflight as checks

ALL_STAGES = {"generate", "filter", "sft", "eval", "publish"}


def snapshot(folder: Path) -> dict[str, tuple[int, int]] | None:
    """Every path under ``folder`` with its mtime and size; None when the folder does not exist."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert "[distill]" not in captured.out, "a stage started"
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("distill: error: "), captured.err[-2000:]
    assert len(lines[0]) < 1000
    return lines[0]


@pytest.fixture(scope="module", autouse=True)
def builtin_files_written():
    """The timed checks below measure the preflight, not the session's first use of a built-in model
    (writing its config and tokenizer once; that path has its own tests in test_models.py)."""
    from distill.models import BUILTIN_MODELS, builtin_files

    for ref in BUILTIN_MODELS:
        builtin_files(ref)


@pytest.fixture
def existing_run(tiny_recipe_dict) -> Path:
    """A run dir with a manifest from an earlier run: a failed preflight must not touch it."""
    run = Path(tiny_recipe_dict["run_dir"])
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"created": "earlier", "stages": {}}))
    return run


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_line_exit_2_and_leaves_the_run_dir_alone(
    case, tmp_path, tiny_recipe_dict, existing_run, capsys
):
    folder = tmp_path / "inputs"
    folder.mkdir()
    bad = folder / case.name
    case.make(bad)
    args = command_for(case, bad, tiny_recipe_dict, folder)
    if case.target == "recipe":  # the recipe itself is broken: its run_dir is the default one
        existing_run = Path("runs") / "tiny"
    before = snapshot(existing_run)
    started = time.perf_counter()
    assert main(args) == 2
    seconds = time.perf_counter() - started
    line = one_line_error(capsys)
    assert case.expect in line, line
    assert str(bad) in line or case.name in line, line
    assert snapshot(existing_run) == before
    assert seconds < 30


def test_fresh_run_dir_is_not_created_on_a_failed_preflight(tmp_path, tiny_recipe_dict, capsys):
    bad = tmp_path / "p.jsonl"
    bad.write_bytes(b"\x00\x01")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**tiny_recipe_dict, "data": {"source": str(bad)}}))
    assert main(["run", str(path)]) == 2
    assert "binary data" in one_line_error(capsys)
    assert not Path(tiny_recipe_dict["run_dir"]).exists()


def test_bom_and_crlf_inputs_are_valid(tmp_path, tiny_recipe_dict, capsys):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps(r).encode() + b"\r\n" for r in GOOD_ROWS))
    csv = tmp_path / "p.csv"
    csv.write_bytes(b"\xef\xbb\xbfid,problem,answer\r\na,What is 1 + 1?,2\r\nb,What is 2 + 3?,5\r\n")
    as_json = tmp_path / "p.json"
    as_json.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD_ROWS, indent=1).replace("\n", "\r\n").encode())
    for path in (jsonl, csv, as_json):
        assert read_rows(path) == GOOD_ROWS, path
    recipe = tmp_path / "r.yaml"
    text = yaml.safe_dump({**tiny_recipe_dict, "data": {"source": str(jsonl)}}, sort_keys=False)
    recipe.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert main(["validate", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert "preflight: ok" in out and "2 prompts" in out


def test_a_5mb_line_and_a_long_csv_field_load_fast(tmp_path):
    rows = [{"id": "big", "problem": "x " * (BIG // 2), "answer": "1"}, GOOD_ROWS[1]]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv = tmp_path / "p.csv"
    csv.write_text("id,problem,answer\n" + "".join(f"{r['id']},{r['problem']},{r['answer']}\n" for r in rows))
    started = time.perf_counter()
    assert [len(r["problem"]) for r in read_rows(jsonl)] == [BIG, len(GOOD_ROWS[1]["problem"])]
    assert read_rows(csv)[0]["problem"] == rows[0]["problem"]
    assert time.perf_counter() - started < 5


def distill_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distill.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("eval.tasks=[addition_heldot]", "unknown task 'addition_heldot' (did you mean 'addition_heldout'?)"),
        ("eval.tasks=[no_such_lm_eval_task_xyz]", "unknown task 'no_such_lm_eval_task_xyz'"),
        ("students.0.model=no-such-org/no-such-model", "students.0.model: model 'no-such-org/no-such-model'"),
        ("students.0.model=./no/such/folder", "students.0.model: cannot resolve model './no/such/folder'"),
    ],
)
def test_run_with_unknown_task_or_student_fails_in_seconds_before_any_stage(
    override, expected, tiny_recipe, tiny_recipe_dict, tmp_path
):
    started = time.perf_counter()
    result = distill_cli("run", str(tiny_recipe), override, cwd=tmp_path)
    seconds = time.perf_counter() - started
    assert result.returncode == 2, result.stderr[-2000:]
    assert expected in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "[distill]" not in result.stdout  # no stage started
    assert not Path(tiny_recipe_dict["run_dir"]).exists()
    assert seconds < 10, f"took {seconds:.1f}s"


def long_prompts_recipe(tmp_path: Path, tiny_recipe_dict: dict) -> Path:
    rows = [
        GOOD_ROWS[0],
        {"id": "huge", "problem": "What is " + "1234567890+" * (BIG // 11) + "1?", "answer": "1"},
        {"id": "long", "problem": "What is " + "12 + " * 400 + "1?", "answer": "4801"},
    ]
    prompts = tmp_path / "long.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tiny_recipe_dict["data"].update(source=str(prompts), limit=None)
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict, sort_keys=False))
    return path


def test_over_long_prompts_are_refused_with_too_long_error(tmp_path, tiny_recipe_dict, capsys):
    path = long_prompts_recipe(tmp_path, tiny_recipe_dict)
    started = time.perf_counter()
    assert main(["run", str(path), "data.too_long=error"]) == 2
    line = one_line_error(capsys)
    assert "2 of 3 prompts are over the teacher's budget of 506 prompt tokens (context 512" in line
    assert "id 'huge'" in line and "data.too_long: drop" in line
    assert not Path(tiny_recipe_dict["run_dir"]).exists()
    assert time.perf_counter() - started < 30


def test_over_long_prompts_are_dropped_and_counted(tmp_path, tiny_recipe_dict, capsys):
    path = long_prompts_recipe(tmp_path, tiny_recipe_dict)
    assert main(["generate", str(path)]) == 0
    assert "dropped 2 of 3 prompts over the teacher's budget" in capsys.readouterr().out
    run = Path(tiny_recipe_dict["run_dir"])
    metrics = json.loads((run / "manifest.json").read_text())["stages"]["generate"]["metrics"]
    assert metrics["prompts_too_long"] == 2 and metrics["prompts"] == 1
    assert [r["id"] for r in read_rows(run / "generate" / "prompts.parquet")] == ["a"]


def test_a_prompt_judged_on_its_prefix_is_never_over_counted(tmp_path, tiny_recipe_dict):
    from distill.models import resolve_model
    from teacher.prompt_length import check_lengths

    recipe = Recipe.model_validate(tiny_recipe_dict)
    problem = "What is " + "12 + " * 5000 + "1?"  # 25k characters: over the 506 x 16 prefix
    check = check_lengths(
        [{"id": "x", "problem": problem}], resolve_model("tiny-random-llama"), recipe.teacher, recipe.data
    )
    from teacher.backends.base import load_chat_tokenizer

    tokenizer = load_chat_tokenizer(resolve_model("tiny-random-llama"), None)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": problem}], tokenize=False, add_generation_prompt=True
    )
    full = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert "x" in check.cut and check.budget < check.too_long["x"] <= full


def test_max_tokens_leaving_no_room_is_refused(tiny_recipe, capsys):
    assert main(["validate", str(tiny_recipe), "teacher.sampling.max_tokens=600"]) == 2
    assert "max_tokens 600 leaves no room for a prompt in the teacher's context of 512" in one_line_error(
        capsys
    )


@pytest.mark.parametrize(
    ("overrides", "missing", "expected"),
    [
        (["students.0.max_length=1024"], None, "students.0.max_length 1024 exceeds the context"),
        (["students.0.lora={r: 8}"], "peft", "students.0.lora needs the peft package: pip install peft"),
        (["students.0.lora={quantize_4bit: true}"], "bitsandbytes", "pip install bitsandbytes"),
        (["students.0.launch={strategy: zero3}"], "deepspeed", "pip install deepspeed"),
        (["students.0.liger=true"], "liger_kernel", "pip install liger-kernel"),
    ],
)
def test_student_settings_are_checked_before_training(
    overrides, missing, expected, tiny_recipe, monkeypatch, capsys
):
    real = checks.importlib.util.find_spec
    monkeypatch.setattr(
        checks.importlib.util, "find_spec", lambda name: None if name == missing else real(name)
    )
    assert main(["sft", str(tiny_recipe), *overrides]) == 2
    assert expected in one_line_error(capsys)


def test_qlora_without_cuda_is_refused(tiny_recipe_dict, monkeypatch):
    monkeypatch.setattr(checks.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(checks, "has_cuda", lambda: False)
    tiny_recipe_dict["students"][0]["lora"] = {"quantize_4bit": True}
    with pytest.raises(DistillError, match="quantize_4bit: 4-bit .* needs a CUDA GPU"):
        checks.check_students(Recipe.model_validate(tiny_recipe_dict).students)


def test_served_teacher_is_evaluated_through_its_server_which_must_answer(tiny_recipe, capsys):
    served = [
        "teacher.backend=openai",
        "teacher.openai.base_url=http://127.0.0.1:9/v1",
        "teacher.model=served-r1",
    ]
    assert main(["eval", str(tiny_recipe), *served]) == 2
    assert "teacher (served-r1): cannot reach http://127.0.0.1:9/v1/models" in one_line_error(capsys)
    weights = "eval.teacher_model=/no/such/weights"
    assert main(["eval", str(tiny_recipe), *served, weights]) == 2
    assert "set eval.teacher_model" in one_line_error(capsys)
    assert main(["validate", str(tiny_recipe), *served, "teacher.openai.base_url=localhost:8000"]) == 2
    assert "expected an http(s) URL" in one_line_error(capsys)


def test_run_dir_problems(tmp_path, tiny_recipe_dict, capsys):
    recipe = Recipe.model_validate({**tiny_recipe_dict, "run_dir": str(tmp_path / "a-file")})
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(DistillError, match="is a file, not a folder"):
        preflight(recipe, {"publish"})
    recipe.run_dir = str(tmp_path / "a-file" / "below")
    with pytest.raises(DistillError, match="cannot be created there"):
        preflight(recipe, {"publish"})
    run = tmp_path / "corrupt"
    run.mkdir()
    (run / "manifest.json").write_bytes(b'{"stages": ')
    recipe.run_dir = str(run)
    before = snapshot(run)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe.model_dump(mode="json")))
    assert main(["run", str(path)]) == 2
    assert "manifest.json: unreadable run manifest" in one_line_error(capsys)
    assert snapshot(run) == before


def test_validate_runs_the_preflight_and_schema_only_skips_it(tiny_recipe, tmp_path, capsys):
    missing = f"data.source={tmp_path / 'missing.jsonl'}"
    assert main(["validate", str(tiny_recipe), missing]) == 2
    assert "missing.jsonl: file not found" in one_line_error(capsys)
    assert main(["validate", "--schema-only", str(tiny_recipe), missing]) == 0
    assert "preflight" not in capsys.readouterr().out


def test_library_errors_are_one_line_unless_debug(tiny_recipe, monkeypatch, capsys):
    import distill.pipeline

    def boom(*args, **kwargs):
        raise RuntimeError("\nconnection reset by peer\nsecond line of detail")

    monkeypatch.setattr(distill.pipeline, "run_pipeline", boom)
    assert main(["generate", str(tiny_recipe)]) == 1
    err = capsys.readouterr().err
    assert err == (
        "distill: error: RuntimeError: connection reset by peer (rerun with --debug for the traceback)\n"
    )
    assert main(["generate", str(tiny_recipe), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("DISTILL_DEBUG", "1")
    assert main(["generate", str(tiny_recipe)]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_a_library_parse_error_that_escapes_is_still_bad_input(tiny_recipe, monkeypatch, capsys):
    import distill.pipeline

    def undecodable(*args, **kwargs):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(distill.pipeline, "run_pipeline", undecodable)
    assert main(["--debug", "generate", str(tiny_recipe)]) == 2
    assert "UnicodeDecodeError" in capsys.readouterr().err


def test_pending_stages_follow_the_manifest(tiny_recipe_dict):
    recipe = Recipe.model_validate(tiny_recipe_dict)
    assert pending_stages(recipe) == ALL_STAGES
    assert pending_stages(recipe, only="eval") == {"eval"}
    recipe.filter.traces = "traces.jsonl"
    assert pending_stages(recipe) == ALL_STAGES - {"generate"}
    assert not Path(tiny_recipe_dict["run_dir"]).exists()  # reading the manifest creates nothing


def test_preflight_of_no_stage_checks_nothing(tiny_recipe_dict):
    tiny_recipe_dict["data"]["source"] = "/no/such/file.jsonl"
    report = preflight(Recipe.model_validate(tiny_recipe_dict), set())
    assert report.stages == [] and report.notes == []


@pytest.mark.parametrize(
    ("benchmarks", "expected"),
    [
        (
            "[math500, amc32]",
            "filter.decontaminate.benchmarks: unknown benchmark 'amc32' (did you mean 'amc23'?); "
            "known: math500, aime24, aime25, amc23, gsm8k, gpqa_diamond",
        ),
        (
            "[aime24]",
            "filter.decontaminate.benchmarks: aime24: {empty}/aime24/test.jsonl not found and the Hub is "
            "offline",
        ),
    ],
)
def test_decontamination_names_are_checked_before_any_stage(
    benchmarks, expected, tiny_recipe, tmp_path, monkeypatch, capsys
):
    empty = tmp_path / "no-benchmarks"
    empty.mkdir()
    monkeypatch.setenv("DISTILL_BENCHMARKS", str(empty))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["run", str(tiny_recipe), f"filter.decontaminate.benchmarks={benchmarks}"]) == 2
    assert expected.format(empty=empty) in one_line_error(capsys)


def test_a_check_that_cannot_be_made_is_reported_or_fails_when_strict(tmp_path, tiny_recipe_dict, capsys):
    """A teacher whose config declares no context: validate says what it could not check; too_long: error
    fails before any stage instead of passing silently (issue 19)."""
    from distill.models import resolve_model

    teacher = tmp_path / "no-context"
    shutil.copytree(resolve_model("tiny-random-llama"), teacher)
    config = json.loads((teacher / "config.json").read_text())
    del config["max_position_embeddings"]
    (teacher / "config.json").write_text(json.dumps(config))
    tiny_recipe_dict["teacher"]["model"] = str(teacher)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict, sort_keys=False))
    assert main(["validate", str(path), "data.too_long=drop"]) == 0
    out = capsys.readouterr().out
    assert "preflight: not checked - prompt lengths against the teacher's context" in out
    assert main(["run", str(path), "data.too_long=error"]) == 2
    line = one_line_error(capsys)
    assert "data.too_long: error, but the prompt lengths cannot be checked before generating" in line
    assert not Path(tiny_recipe_dict["run_dir"]).exists()
