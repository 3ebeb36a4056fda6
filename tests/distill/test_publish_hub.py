"""Publishing to a stand-in Hub (tests/hub_server.py) with the real huggingface_hub client.

The run folder is built from real pieces -- the tiny model's safetensors, a filter stage's verified.parquet,
eval rows and a gate decision -- recorded through the Run API, so `distill publish` reads exactly what the
earlier stages would have left. Read-back goes through huggingface_hub's own downloader and card loaders.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from huggingface_hub import DatasetCard, ModelCard, constants, hf_hub_download

from distill.cli import main
from distill.recipe import load_recipe
from distill.runs import Run
from tests.hub_server import StandInHub

TOKEN = "hf_standin_write_token_0123456789"
ROW = {
    "role": "student",
    "task": "math500",
    "pass_at_1": 0.5,
    "maj_at_n": 0.6,
    "stderr": 0.1,
    "ci95": [0.3, 0.7],
    "samples_per_problem": 4,
    "problems": 10,
    "temperature": 0.6,
    "top_p": 0.95,
    "max_tokens": 64,
    "backend": "hf",
    "dtype": "float32",
    "seed": 0,
}


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    """A stand-in Hub the client talks to, with Xet off and no saved login on this machine."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the test session runs offline otherwise
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("distill.publish.hub.RETRY_FIRST_DELAY_S", 0.05)

    def start(**faults) -> StandInHub:
        hub = StandInHub(**faults).__enter__()
        started.append(hub)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        return hub

    started: list[StandInHub] = []
    yield start
    for hub in started:
        hub.__exit__(None, None, None)


def _record(run: Run, stage: str, folder: Path, write, metrics=None) -> None:
    work = run.begin(stage, "fp", folder)
    outputs = write(work)
    run.finish(stage, outputs, metrics or {})


def make_evaluated_run(tmp_path: Path, tiny_recipe_dict: dict, tiny_model_dir: Path, ship=True) -> Path:
    """A recipe file and a run folder whose filter, sft and eval stages are done."""
    recipe_dict = {**tiny_recipe_dict, "release": {"namespace": "alice", "private": True, "license": "mit"}}
    student = recipe_dict["students"][0]["name"]
    row = {**ROW, "model": student}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict, sort_keys=False))
    recipe = load_recipe(path)
    run = Run(recipe.run_path(), recipe.model_dump(mode="json"), recipe.digest())

    def filter_outputs(work: Path):
        rows = [
            {
                "prompt_id": f"p{i}",
                "sample_idx": 0,
                "completion": f"<think>x</think> {i}",
                "correct": i % 2 == 0,
            }
            for i in range(6)
        ]
        table = pa.Table.from_pylist([{**r, "kept": r["correct"], "removed_by": None} for r in rows])
        pq.write_table(table, work / "verified.parquet")
        (work / "report.md").write_text("# Filter report\n\n6 traces in, 3 kept.\n")
        (work / "report.png").write_bytes(b"\x89PNG fake chart")
        return [work / "verified.parquet", work / "report.md", work / "report.png"]

    def sft_outputs(work: Path):
        shutil.copytree(tiny_model_dir, work / "final")
        (work / "final" / "trainer_state.json").write_text("{}")  # bookkeeping: must not be released
        return [work / "final"]

    def eval_outputs(work: Path):
        rows = [row, {**row, "model": "teacher", "role": "teacher", "pass_at_1": 0.2}]
        (work / "comparison.json").write_text(json.dumps({"rows": rows, "differences": []}))
        decision = {"ship": ship, "reasons": [] if ship else ["math500: pass@1 0.500 below min_score 0.9"]}
        (work / "gate.json").write_text(json.dumps({"decisions": {student: decision}}))
        (work / "comparison.md").write_text(
            "| model | task | pass@1 % |\n|---|---|---|\n| student | math500 | 50 |\n"
        )
        (work / "comparison.png").write_bytes(b"\x89PNG fake comparison")
        return [work / "comparison.json"]

    _record(run, "filter", run.root / "filter", filter_outputs, {"rows_in": 6, "rows_out": 3})
    _record(run, f"sft:{student}", run.root / "students" / student, sft_outputs, {"steps": 2})
    _record(run, "eval", run.root / "eval", eval_outputs)
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _release_files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _sha(p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def _stored(hub: StandInHub, repo: str, kind: str = "models") -> dict[str, str]:
    return {path: _sha(data) for path, data in hub.files(repo, kind).items()}


@pytest.fixture
def evaluated(tmp_path, tiny_recipe_dict, tiny_model_dir):
    path = make_evaluated_run(tmp_path, tiny_recipe_dict, tiny_model_dir)
    return path, load_recipe(path).run_path(), tiny_recipe_dict["students"][0]["name"]


def test_publish_pushes_student_and_dataset_with_cards_then_rerun_is_a_no_op(
    hub_env, evaluated, capsys, tmp_path
):
    hub = hub_env()
    recipe, run_dir, student = evaluated
    assert main(["publish", str(recipe)]) == 0
    release = run_dir / "release"
    dataset = f"{load_recipe(recipe).name}-traces"

    # The Hub holds exactly the rendered folders; weights went through LFS; bookkeeping stayed home.
    assert _stored(hub, f"alice/{student}") == _release_files(release / student)
    assert _stored(hub, f"alice/{dataset}", "datasets") == _release_files(release / dataset)
    stored = hub.files(f"alice/{student}")
    assert "model.safetensors" in stored and "trainer_state.json" not in stored
    assert hub.puts and hub.repos[("models", f"alice/{student}")]["private"] is True
    (commit,) = hub.commits(f"alice/{student}")
    assert (
        f"run {load_recipe(recipe).name}" in commit["message"]
        and load_recipe(recipe).digest() in commit["message"]
    )

    # Cards, read back through huggingface_hub's downloader and loaders.
    card_path = hf_hub_download(
        f"alice/{student}", "README.md", endpoint=hub.endpoint, cache_dir=tmp_path / "c"
    )
    card = ModelCard.load(card_path)
    assert card.data.license == "mit" and f"alice/{dataset}" in card.data.datasets
    (pass1, maj) = card.data.eval_results
    assert (pass1.metric_type, pass1.metric_value, pass1.dataset_type) == (
        "pass@1",
        0.5,
        "HuggingFaceH4/MATH-500",
    )
    assert pass1.metric_args["samples_per_problem"] == 4 and maj.metric_type == "maj@4"
    for section in ("## Lineage", "## How to reproduce", "distill publish", "Recipe snapshot", "| torch |"):
        assert section in card.text
    data_card = DatasetCard.load(
        hf_hub_download(
            f"alice/{dataset}",
            "README.md",
            repo_type="dataset",
            endpoint=hub.endpoint,
            cache_dir=tmp_path / "c",
        )
    )
    assert [c["config_name"] for c in data_card.data.configs] == ["default", "all"]
    assert "6 traces in, 3 kept" in data_card.text
    kept = pq.read_table(release / dataset / "data" / "train-00000-of-00001.parquet")
    assert kept.num_rows == 3 and all(kept.column("correct").to_pylist())

    # --force changes the recipe (release.force) and the command, so only the card changes: one new commit,
    # no weights sent again. Repeating it changes nothing: no upload, no empty commit.
    puts = sum(hub.puts.values())
    assert main(["publish", str(recipe), "--force"]) == 0
    assert len(hub.commits(f"alice/{student}")) == 2 and sum(hub.puts.values()) == puts
    assert main(["publish", str(recipe), "--force"]) == 0
    assert len(hub.commits(f"alice/{student}")) == 2 and sum(hub.puts.values()) == puts

    # The token reached neither the run folder, the printed output, nor anything the Hub stored.
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert not [p for p in run_dir.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert not [b for b in hub.bodies if TOKEN.encode() in b]
    for kind, repo in hub.repos:
        assert all(TOKEN.encode() not in data for data in hub.files(repo, kind).values())


def test_transient_faults_end_in_the_same_release(hub_env, evaluated):
    hub = hub_env(fault_rate=0.25, max_faults=6, seed=1)  # fewer faults than retries: it must finish
    recipe, run_dir, student = evaluated
    assert main(["publish", str(recipe)]) == 0
    assert sum(hub.injected.values()) >= 3
    assert _stored(hub, f"alice/{student}") == _release_files(run_dir / "release" / student)
    assert len(hub.commits(f"alice/{student}")) == 1  # a commit whose answer was lost is not repeated


def test_killed_mid_upload_then_rerun_completes_without_reuploading(hub_env, evaluated):
    hub = hub_env(put_delay_s=1.5)
    recipe, run_dir, student = evaluated
    cli = [sys.executable, "-m", "distill.cli", "publish", str(recipe)]
    first = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.time() + 60
    while not hub.puts and time.time() < deadline:  # one LFS upload done, more under way
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    model_repo = ("models", f"alice/{student}")
    assert hub.puts and (model_repo not in hub.repos or not hub.commits(model_repo[1]))  # killed mid-release
    done_before = dict(hub.puts)
    hub.put_delay_s = 0
    second = subprocess.run(cli, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert second.returncode == 0, second.stderr[-2000:]
    assert all(hub.puts[oid] == 1 for oid in done_before)  # finished uploads were not sent again
    dataset = f"{load_recipe(recipe).name}-traces"
    assert _stored(hub, f"alice/{student}") == _release_files(run_dir / "release" / student)
    assert _stored(hub, f"alice/{dataset}", "datasets") == _release_files(run_dir / "release" / dataset)


def test_gate_holds_back_a_failing_student_unless_forced(
    hub_env, tmp_path, tiny_recipe_dict, tiny_model_dir, capsys
):
    hub = hub_env()
    recipe = make_evaluated_run(tmp_path, tiny_recipe_dict, tiny_model_dir, ship=False)
    student = tiny_recipe_dict["students"][0]["name"]
    assert main(["publish", str(recipe)]) == 0
    assert "held back by the gate: math500" in capsys.readouterr().out
    assert ("models", f"alice/{student}") not in hub.repos
    assert main(["publish", str(recipe), "--force"]) == 0
    card = hub.files(f"alice/{student}")["README.md"].decode()
    assert "did not pass its release gate** (math500: pass@1 0.500 below min_score 0.9)" in card


def test_dry_run_renders_and_lists_but_sends_nothing(hub_env, evaluated, capsys):
    hub = hub_env()
    recipe, run_dir, student = evaluated
    assert main(["publish", str(recipe), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would push model repo alice/{student}" in out and "model.safetensors" in out
    assert "dry run: nothing uploaded" in out
    assert not hub.bodies and (run_dir / "release" / student / "README.md").exists()
    plan = json.loads((run_dir / "release" / "release.json").read_text())
    assert {r["repo"] for r in plan["repos"]} == {
        f"alice/{student}",
        f"alice/{load_recipe(recipe).name}-traces",
    }


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("no_token", "publishing needs a Hugging Face token with write access: set HF_TOKEN"),
        ("bad_token", "checking the token with http://127.0.0.1"),
        ("invalid_namespace", "release.namespace: 'bad name!/"),
        ("no_write_access", "HTTP 403"),
        ("missing_model", "the trained model folder is missing; rerun `distill sft`"),
        ("no_namespace", "release.namespace: not set"),
    ],
)
def test_bad_input_is_one_line(hub_env, evaluated, capsys, monkeypatch, problem, expected):
    hub_env()
    recipe, run_dir, student = evaluated
    overrides = {
        "invalid_namespace": ["release.namespace=bad name!"],
        "no_write_access": ["release.namespace=bob"],
        "no_namespace": ["release.namespace=null"],
    }.get(problem, [])
    if problem == "no_token":
        monkeypatch.delenv("HF_TOKEN")
    if problem == "bad_token":
        monkeypatch.setenv("HF_TOKEN", "hf_not_a_known_token_000")
    if problem == "missing_model":
        shutil.rmtree(run_dir / "students" / student / "final")
    assert main(["publish", str(recipe), *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err
    assert "hf_not_a_known_token_000" not in err and TOKEN not in err


def test_push_to_a_branch_creates_it_and_leaves_main_alone(hub_env, evaluated):
    hub = hub_env()
    recipe, run_dir, student = evaluated
    assert main(["publish", str(recipe), "release.revision=candidate"]) == 0
    assert "model.safetensors" in hub.files(f"alice/{student}", revision="candidate")
    assert hub.files(f"alice/{student}") == {}  # main still holds only the initial commit
