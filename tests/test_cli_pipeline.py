"""One tiny end-to-end pipeline through the real CLI (tiny random model, offline, ~1 minute)."""

import json
import os
import subprocess
from pathlib import Path

from huggingface_hub import ModelCard
from suite import run_distill

from tests.hub_server import StandInHub


def test_tiny_pipeline_runs_then_skips_then_forces(tiny_recipe, tiny_recipe_dict, monkeypatch):
    secret = "hf_SECRETtoken1234567890"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    run_dir = tiny_recipe_dict["run_dir"]
    first = run_distill("run", tiny_recipe)
    assert first.returncode == 0, first.stderr[-3000:]
    manifest = json.loads(Path(run_dir, "manifest.json").read_text())
    stages = manifest["stages"]
    assert [s["status"] for s in stages.values()] == ["done"] * 5
    assert stages["generate"]["metrics"]["samples"] == 8
    assert "| model | task | pass@1 % | 95% CI |" in Path(run_dir, "eval", "comparison.md").read_text()
    assert Path(run_dir, "eval", "comparison.png").exists()
    release = Path(run_dir, "release", tiny_recipe_dict["students"][0]["name"])
    card = (release / "README.md").read_text()
    assert "model-index" in card and "## Lineage" in card
    assert (release / "model.safetensors").stat().st_size > 0

    second = run_distill("run", tiny_recipe)
    assert second.returncode == 0
    assert second.stdout.count("up to date, skipped") == 5

    forced = run_distill("run", tiny_recipe, "--force", "eval")
    assert forced.returncode == 0
    assert "eval: running" in forced.stdout and "generate: up to date" in forced.stdout
    assert "publish: running" in forced.stdout  # downstream of a rerun stage reruns too

    # The same run pushed to a stand-in Hub: the quickstart's own card and dataset, read back as the Hub has them.
    student = tiny_recipe_dict["students"][0]["name"]
    with StandInHub(tokens={secret: {"name": "alice", "orgs": []}}) as hub:
        env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
        env.update(HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET="1")
        pushed = run_distill(
            "publish", tiny_recipe, "release.namespace=alice", "release.dry_run=false", env=env
        )
        assert pushed.returncode == 0, pushed.stderr[-3000:]
        card = ModelCard(hub.files(f"alice/{student}")["README.md"].decode())
        assert card.data.eval_results[0].dataset_name == "addition_heldout"
        assert "alice/quickstart-traces" in card.data.datasets and "## Lineage" in card.text
        assert "data/train-00000-of-00001.parquet" in hub.files("alice/quickstart-traces", "datasets")
        assert not [body for body in hub.bodies if secret.encode() in body]

    # Secrets come from the environment only: none of them may reach the run directory or the release.
    leaked = subprocess.run(["grep", "-rl", secret, run_dir], capture_output=True, text=True).stdout
    assert leaked == ""


def test_stage_needing_missing_upstream_fails_cleanly(tiny_recipe):
    result = run_distill("sft", tiny_recipe)
    assert result.returncode == 2
    assert "needs filter first" in result.stderr and "Traceback" not in result.stderr


def test_editing_the_prompt_file_reruns_generation(tmp_path, tiny_recipe_dict):
    import yaml

    from distill.pipeline import plan
    from distill.recipe import load_recipe

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "a", "problem": "What is 1 + 1?", "answer": "2"}\n')
    tiny_recipe_dict["data"]["source"] = str(prompts)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict))
    before = plan(load_recipe(path))[0].config
    prompts.write_text('{"id": "a", "problem": "What is 1 + 2?", "answer": "3"}\n')
    assert plan(load_recipe(path))[0].config != before
