"""A recipe that starts at `filter` (no teacher, no data): published-style traces -> SFT -> eval -> publish
through the real CLI on the tiny random model (offline, well under a minute)."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

SYSTEM = "You are a careful calculator. Answer with the final number in \\boxed{N}."


def chat_traces(path: Path) -> Path:
    """Mixture-of-Thoughts-style rows (messages) with a reference answer column; two answers are wrong."""
    rows = []
    for n in range(8):
        said = n + 10 if n in (3, 6) else n + 5
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"What is {n} + 5?"},
            {"role": "assistant", "content": f"<think>\n{n} plus 5\n</think>\n\n\\boxed{{{said}}}"},
        ]
        rows.append({"messages": messages, "answer": str(n + 5), "source": "addition"})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_recipe_without_generate_runs_filter_sft_eval_publish(tmp_path, tiny_recipe_dict):
    traces = chat_traces(tmp_path / "chat.jsonl")
    recipe = {k: v for k, v in tiny_recipe_dict.items() if k not in ("data", "teacher")}
    recipe["filter"] = {"traces": str(traces), "workers": 0}
    path = tmp_path / "byo.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    result = subprocess.run(
        [sys.executable, "-m", "distill.cli", "run", str(path)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "format messages (detected)" in result.stdout
    run_dir = Path(recipe["run_dir"])
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    student = recipe["students"][0]["name"]
    assert sorted(stages) == sorted(["filter", f"sft:{student}", "eval", "publish"])  # no generate stage
    assert all(stage["status"] == "done" for stage in stages.values())
    assert stages["filter"]["metrics"]["rows_out"] == 6
    assert stages["filter"]["metrics"]["source"]["format"] == "messages"
    import pyarrow.parquet as pq

    train = pq.read_table(run_dir / "filter" / "train.parquet").to_pylist()
    assert train[0]["prompt"][0] == {"role": "system", "content": SYSTEM}
    assert train[0]["completion"][0]["content"] == "<think>\n0 plus 5\n</think>\n\n\\boxed{5}"
    card = (run_dir / "release" / student / "README.md").read_text()
    assert f"**trace data**: {traces} (local file or folder, format messages, 8 source rows read)" in card
