"""The GPU check (bench/gpu_check.sh, issue 25): its arithmetic, its bookkeeping, and the dry run on CPU.

The real run needs a CUDA machine; here the fast tier checks the FLOPs/MFU maths against hand counts and a
built model, the card table, the result files a killed step leaves, the FSDP2 verdict, the process-tree
kill behind the time budgets; the integration tier builds the wheel folder and runs the dry run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "gpu_check"))

import fsdp_check  # noqa: E402
import hardware  # noqa: E402
import report  # noqa: E402
import shapes  # noqa: E402
import steps  # noqa: E402
import wheels  # noqa: E402


def test_qwen_shapes_count_the_published_parameters_and_a_built_model_agrees():
    assert shapes.total_params(shapes.QWEN25_15B) == pytest.approx(1.54e9, rel=0.005)
    assert shapes.total_params(shapes.QWEN25_05B) == pytest.approx(0.49e9, rel=0.01)
    from transformers import Qwen2Config, Qwen2ForCausalLM

    s = shapes.SMOKE
    config = Qwen2Config(
        vocab_size=s.vocab,
        hidden_size=s.hidden,
        intermediate_size=s.intermediate,
        num_hidden_layers=s.layers,
        num_attention_heads=s.heads,
        num_key_value_heads=s.kv_heads,
        tie_word_embeddings=True,
    )
    assert sum(p.numel() for p in Qwen2ForCausalLM(config).parameters()) == shapes.total_params(s)


def test_flops_per_token_by_hand():
    # d=4, 2 heads (head_dim 2), 1 kv head (kv dim 2), ff 8, vocab 10, 1 layer.
    shape = shapes.Shape(
        hidden=4, layers=1, heads=2, kv_heads=1, intermediate=8, vocab=10, tie_embeddings=True
    )
    layer = (4 * 4 * 2 + 4 * 2 * 2 + 4 + 2 * 2) + 3 * 4 * 8  # q,o + k,v + biases + mlp = 152
    assert shapes.layer_matmul_params(shape) == layer
    assert shapes.matmul_params(shape) == layer + 10 * 4
    context = shapes.attention_context([2, 4])  # a token of the 2-example sees 2, of the 4-example 4
    assert context == pytest.approx((2 * 2 + 4 * 4) / 6)
    assert shapes.flops_per_token(shape, context) == pytest.approx(6 * 192 + 12 * 1 * 4 * context)
    mfu = shapes.mfu(1e6, shape, context, 989.0)
    assert mfu == pytest.approx(1e6 * shapes.flops_per_token(shape, context) / 989e12)
    assert shapes.mfu(1e6, shape, context, None) is None


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA H200 NVL", 835.0),
        ("Tesla T4", None),
    ],
)
def test_card_peak_by_name(name, peak):
    assert hardware.peak_tflops(name)[0] == peak


def test_a_step_killed_at_its_budget_keeps_its_figures(tmp_path):
    folder = tmp_path / "steps"
    result = steps.StepResult(folder / "sft_throughput.json", "sft_throughput")
    result.update(variants=[{"name": "4096", "status": "ok", "tokens_per_second": 1000.0}])
    (folder / "sft_throughput.status").write_text(json.dumps({"rc": 124, "seconds": 180, "budget": 180}))
    (folder / "fsdp2.status").write_text(json.dumps({"rc": 3, "seconds": 4, "budget": 50}))
    step = report.load_step(folder, "sft_throughput")
    assert step["status"] == "timeout" and step["variants"][0]["tokens_per_second"] == 1000.0
    assert report.load_step(folder, "fsdp2")["status"] == "failed"  # crashed before writing anything
    assert report.load_step(folder, "rl")["status"] == "not run"


def test_summary_and_results_fill(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    (work / "steps").mkdir(parents=True)
    out.mkdir()
    env = {"status": "ok", "gpu_name": "NVIDIA H200", "gpu_memory_gib": 139.8, "peak_bf16_tflops": 989.0}
    (work / "steps" / "env.json").write_text(json.dumps(env))
    variant = {"name": "8192-gc", "max_length": 8192, "batch_size": 1, "gradient_checkpointing": True}
    variant.update(liger=False, status="ok", tokens_per_second=40000.0, mfu=0.4123, gpu_memory_peak_gib=31.5)
    (work / "steps" / "sft_throughput.json").write_text(json.dumps({"status": "ok", "variants": [variant]}))
    (out / "junit.xml").write_text(
        '<testsuites><testsuite><testcase classname="tests.a" name="test_ok" time="1.5"/>'
        '<testcase classname="tests.a" name="test_bad" time="0.1"><failure message="boom"/></testcase>'
        "</testsuite></testsuites>"
    )
    text = report.summary(report.collect(work, out))
    assert "| 8192-gc | 1 x 8192 | on | off | 40,000 | 41.2% | 31.5 | ok |" in text
    assert "1 failed, 1 passed" in text and "failed: tests.a::test_bad - boom" in text
    results_md = tmp_path / "RESULTS.md"
    results_md.write_text(f"# head\n{report.BEGIN}\nplaceholder\n{report.END}\ntail\n")
    (out / "results.json").write_text(json.dumps(report.collect(work, out)))
    report.fill(results_md, out / "results.json")
    filled = results_md.read_text()
    assert "placeholder" not in filled and "NVIDIA H200" in filled and filled.endswith("tail\n")


def test_fsdp_verdict_refuses_ddp_and_a_flat_loss():
    history = [{"loss": v} for v in (3.0, 2.9, 2.8, 2.0, 1.5, 1.2)]
    ok, _, figures = fsdp_check.verdict({"wrapper": "FSDP2", "distributed_type": "FSDP"}, history)
    assert ok and figures["loss_last3"] < figures["loss_first3"]
    ok, why, _ = fsdp_check.verdict(
        {"wrapper": "DistributedDataParallel", "distributed_type": "MULTI_GPU"}, history
    )
    assert not ok and "not FSDP2" in why and "not FSDP" in why
    flat = [{"loss": 2.0}] * 6
    ok, why, _ = fsdp_check.verdict({"wrapper": "FSDP2", "distributed_type": "FSDP"}, flat)
    assert not ok and "did not fall" in why


def test_kill_tree_reaches_children_in_another_session(tmp_path):
    # accelerate starts its workers with start_new_session: a process-group kill would leave them running.
    marker = tmp_path / "pid"
    code = f"import subprocess,time; p=subprocess.Popen(['sleep','60'], start_new_session=True); open('{marker}','w').write(str(p.pid)); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 20
    while not marker.exists() or not marker.read_text():
        assert time.time() < deadline
        time.sleep(0.05)
    grandchild = int(marker.read_text())
    assert grandchild in steps.descendants(proc.pid)
    steps.kill_tree(proc)
    time.sleep(0.2)
    state = Path(f"/proc/{grandchild}/stat")
    assert not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_wheel_markers_and_tags_for_cpython_312():
    from packaging.requirements import Requirement

    assert wheels.applies(Requirement('fasttext-predict>=0.9; python_version < "3.14"'), set())
    assert not wheels.applies(Requirement('importlib-metadata; python_version < "3.8"'), set())
    assert wheels.applies(Requirement('sympy; extra == "math"'), {"math"})
    assert not wheels.applies(Requirement('sympy; extra == "math"'), set())
    assert wheels.universal(Path("trl-1.16.0-py3-none-any.whl"))
    assert not wheels.universal(Path("multiprocess-0.70.19-py312-none-any.whl"))
    image = wheels.image_packages()
    assert image["transformers"] == "5.17.0" and "pyarrow" in image and "trl" not in image


@pytest.mark.integration
def test_fsdp2_step_fails_on_a_cpu_where_accelerate_falls_back_to_ddp(tmp_path):
    """The real FSDP2 step, run where FSDP2 cannot apply: it must say so, not pass (~1 min)."""
    env = {**os.environ, "DISTILL_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, str(REPO / "bench/gpu_check/fsdp_check.py"), "--work", str(tmp_path / "w")]
    done = subprocess.run([*command, "--json", str(tmp_path / "fsdp2.json")], env=env, timeout=600)
    result = json.loads((tmp_path / "fsdp2.json").read_text())
    assert done.returncode == 1 and result["status"] == "failed", result
    assert result["wrapper"] == "DistributedDataParallel" and "not FSDP2" in result["reason"]
    assert result["steps"] == 30 and result["loss_last3"] < result["loss_first3"]  # it did train


@pytest.mark.integration
def test_dry_run_installs_the_wheels_offline_and_validates_every_step(tmp_path):
    """`make gpu-wheels` (PyPI; cached in .cache/gpu-wheels) then `bench/gpu_check.sh --dry-run`."""
    folder = tmp_path / "wheels"
    made = subprocess.run(
        [sys.executable, str(REPO / "bench/gpu_check/wheels.py"), "download", str(folder)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["total_mb"] <= 60 and {"trl", "datasets", "math-verify"} <= set(manifest["wheels"])
    assert not any(name in manifest["wheels"] for name in ("torch", "transformers", "vllm"))
    env = {
        **os.environ,
        "WHEELS": str(folder),
        "GPU_CHECK_WORK": str(tmp_path / "work"),
        "PYTHON": sys.executable,
    }
    env["DISTILL_CACHE"] = str(tmp_path / "cache")
    done = subprocess.run(
        ["bash", str(REPO / "bench/gpu_check.sh"), "--dry-run", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert f"{len(manifest['wheels'])} wheels" in out and "install offline" in out
    assert "[imports] trl: ok" in out and "[imports] distill.cli: ok" in out
    for step in ("[sft-bench] recipe", "[fsdp] recipe", "[rl] grpo recipe"):
        line = next(line for line in out.splitlines() if line.startswith(step))
        assert line.endswith("distill validate -> ok"), line
    assert "would run 8192-gc-liger" in out and "--launch fsdp2 --nproc 1" in out
    assert (tmp_path / "out" / "summary.md").exists()
