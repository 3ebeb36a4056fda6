"""Student methods (issue 22): on_policy (TRL DistillationTrainer) and kd (GKDTrainer, lmbda 0) with a tiny
same-tokenizer teacher; init from another student; the method fields' fingerprints; the preflight's
one-line errors (tokenizer mismatch, missing teacher, no traces, unknown method) before any stage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from student_helpers import student_cfg, think_rows

from distill.cli import main
from distill.models import resolve_model
from distill.records import write_parquet

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    """A "teacher" with the tiny student's tokenizer: the tiny model with its weights perturbed."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = resolve_model("tiny-random-llama")
    out = tmp_path_factory.mktemp("teacher")
    model = AutoModelForCausalLM.from_pretrained(base)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def _digest(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def _train(tmp_path, teacher_dir, method: str, **overrides):
    from student.sft import train_student

    train = write_parquet(think_rows(8), tmp_path / "train.parquet")
    cfg = student_cfg(
        method=method,
        max_steps=8,
        max_length=128,
        learning_rate=1e-2,
        on_policy={"max_completion_length": 16},
    )
    cfg = cfg.model_copy(update=overrides)
    return train_student(
        resolve_model("tiny-random-llama"), train, tmp_path / "out", cfg, teacher=str(teacher_dir)
    )


@pytest.mark.parametrize("method", ["on_policy", "kd"])
def test_divergence_falls_and_the_teacher_is_untouched(tmp_path, teacher_dir, method, monkeypatch):
    import torch

    import student.methods.common as common

    loaded = []
    real = common.load_teacher

    def keep(path, student, cpu):
        loaded.append(real(path, student, cpu))
        return loaded[-1]

    for module in ("student.methods.on_policy", "student.methods.kd"):
        monkeypatch.setattr(f"{module}.load_teacher", keep)
    monkeypatch.setenv("DISTILL_TRAIN_IN_PROCESS", "1")  # the teacher object is looked at below
    before = _digest(teacher_dir)
    metrics = _train(tmp_path, teacher_dir, method)
    assert metrics["method"] == method and metrics["steps"] == 8 and metrics["world_size"] == 1
    assert metrics["last_loss"] < metrics["first_loss"]
    assert metrics["teacher_tokens_scored"] > 0 and metrics["tokens_per_second"] > 0
    assert metrics["completion_length_mean"] > 0 and 0 <= metrics["truncated_share_mean"] <= 1
    # The teacher: scored only (no gradient, eval mode), its weights bit-identical on disk and in memory.
    (teacher,) = loaded
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert _digest(teacher_dir) == before
    from transformers import AutoModelForCausalLM

    fresh = AutoModelForCausalLM.from_pretrained(teacher_dir).state_dict()
    assert all(torch.equal(fresh[k], v) for k, v in teacher.state_dict().items())
    final = tmp_path / "out" / "final"
    assert AutoModelForCausalLM.from_pretrained(final).config.num_hidden_layers == 2
    # Per step (to report_to and the metrics file): the divergence, lengths, truncation, scored tokens.
    steps = [e for e in json.loads((tmp_path / "out" / "distill_metrics.json").read_text())["log_history"]]
    steps = [e for e in steps if "divergence_per_token" in e]
    assert len(steps) == 8 and all(e["teacher_tokens_scored"] > 0 for e in steps)
    assert metrics["divergence_first10"] == pytest.approx(sum(e["loss"] for e in steps) / 8, abs=1e-3)


def test_a_teacher_with_a_longer_padded_table_is_cut_to_the_students(tmp_path, teacher_dir):
    """Qwen2.5 7B pads its table to 152,064 rows, 1.5B to 151,936: the same tokenizer, both accepted."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from student.methods.common import load_teacher

    padded = tmp_path / "padded"
    model = AutoModelForCausalLM.from_pretrained(teacher_dir)
    rows = model.get_output_embeddings().weight.shape[0]
    model.resize_token_embeddings(rows + 64, mean_resizing=False)
    model.save_pretrained(padded)
    AutoTokenizer.from_pretrained(teacher_dir).save_pretrained(padded)
    student = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))
    teacher = load_teacher(str(padded), student, cpu=True)
    head = teacher.get_output_embeddings().weight
    assert head.shape[0] == rows
    assert torch.equal(head, AutoModelForCausalLM.from_pretrained(teacher_dir).get_output_embeddings().weight)


# --- the stage graph: init, distill_from, fingerprints ------------------------------------------------


def _two_students(tiny_recipe_dict: dict, **second) -> dict:
    first = dict(tiny_recipe_dict["students"][0], name="a", max_steps=2)
    tiny_recipe_dict["students"] = [
        {
            "name": "b",
            "model": "tiny-random-llama",
            "method": "on_policy",
            "init": "a",
            "max_length": 256,
            **second,
        },
        first,
    ]
    return tiny_recipe_dict


def test_init_orders_the_students_and_enters_the_fingerprint(tiny_recipe_dict):
    from distill.pipeline import plan
    from distill.recipe import Recipe
    from distill.runs import fingerprint

    recipe = Recipe.model_validate(_two_students(tiny_recipe_dict))
    nodes = {s.name: s for s in plan(recipe) if s.family == "sft"}
    assert list(nodes) == ["sft:a", "sft:b"]  # b starts from a's weights: a runs first
    assert nodes["sft:b"].upstream == ["filter", "sft:a"]
    assert nodes["sft:b"].config["teacher_model"] == "tiny-random-llama"
    # A changed first student gives it a new completion id, and so the second a new fingerprint (rerun).
    b = nodes["sft:b"]
    assert fingerprint(b.config, ["f1", "a1"]) != fingerprint(b.config, ["f1", "a2"])
    # Default-valued method fields stay out of an SFT student's fingerprint (recorded runs stay up to date),
    # and the options of a method it does not use are ignored.
    assert {"method", "init", "distill_from", "on_policy", "kd"}.isdisjoint(nodes["sft:a"].config)
    tiny_recipe_dict["students"][1]["on_policy"] = {"beta": 0.5}
    again = {s.name: s for s in plan(Recipe.model_validate(tiny_recipe_dict))}
    assert again["sft:a"].config == nodes["sft:a"].config
    tiny_recipe_dict["students"][0]["on_policy"] = {"beta": 0.5}
    assert {s.name: s for s in plan(Recipe.model_validate(tiny_recipe_dict))}["sft:b"].config != b.config


def test_distill_from_another_student_and_grpo_are_upstream(tiny_recipe_dict):
    from distill.pipeline import plan
    from distill.recipe import Recipe

    recipe = Recipe.model_validate(_two_students(tiny_recipe_dict, init=None, distill_from="student:a"))
    b = next(s for s in plan(recipe) if s.name == "sft:b")
    assert b.upstream == ["filter", "sft:a"] and b.config["teacher_model"] == "student:a"


def test_init_starts_from_the_other_students_weights(tiny_recipe, tiny_recipe_dict, capsys):
    """a (SFT) then b (on_policy, init a) through the pipeline: b's first step starts at a's final weights
    (a learning rate too small to move fp32 weights visibly keeps b equal to a, and unlike the base)."""
    import torch
    from transformers import AutoModelForCausalLM

    recipe = _two_students(
        tiny_recipe_dict,
        learning_rate=1e-12,
        max_steps=1,
        batch_size=2,
        on_policy={"max_completion_length": 4},
    )
    recipe["students"][1].update(learning_rate=1e-2, report_to=[])
    recipe["students"][0]["report_to"] = []
    tiny_recipe.write_text(yaml.safe_dump(recipe, sort_keys=False))
    for stage in ("generate", "filter", "sft"):
        assert main([stage, str(tiny_recipe)]) == 0, capsys.readouterr().err
    students = Path(recipe["run_dir"]) / "students"
    a, b = (AutoModelForCausalLM.from_pretrained(students / n / "final").state_dict() for n in "ab")
    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama")).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(not torch.allclose(a[k], base[k], atol=1e-4) for k in a)
    manifest = json.loads((Path(recipe["run_dir"]) / "manifest.json").read_text())
    assert manifest["stages"]["sft:b"]["metrics"]["init"] == "student a"
    assert manifest["stages"]["sft:b"]["metrics"]["method"] == "on_policy"


# --- one-line errors before any stage starts ----------------------------------------------------------


def _refused(tiny_recipe: Path, recipe: dict, capsys, *match: str) -> None:
    tiny_recipe.write_text(yaml.safe_dump(recipe, sort_keys=False))
    assert main(["run", str(tiny_recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for text in match:
        assert text in err, err
    assert not (Path(recipe["run_dir"]) / "manifest.json").exists()  # nothing started


def test_a_teacher_with_another_tokenizer_is_refused_naming_both(tiny_recipe, tiny_recipe_dict, capsys):
    tiny_recipe_dict["students"][0].update(method="on_policy", distill_from="smollm2-135m-instruct")
    _refused(
        tiny_recipe,
        tiny_recipe_dict,
        capsys,
        "students.0.distill_from",
        "smollm2-135m-instruct",
        "tiny-random-llama",
        "do not share a tokenizer",
    )


def test_a_missing_teacher_is_refused(tiny_recipe, tiny_recipe_dict, capsys, tmp_path):
    tiny_recipe_dict["students"][0].update(method="kd", distill_from=str(tmp_path / "no-such-teacher"))
    _refused(tiny_recipe, tiny_recipe_dict, capsys, "students.0.distill_from", "no-such-teacher")


def test_a_served_teacher_has_no_logits(tiny_recipe, tiny_recipe_dict, capsys):
    tiny_recipe_dict["teacher"].update(backend="openai", openai={"base_url": "http://127.0.0.1:9/v1"})
    tiny_recipe_dict["students"][0].update(method="on_policy")
    _refused(tiny_recipe, tiny_recipe_dict, capsys, "students.0.distill_from", "backend openai")


def test_kd_without_kept_traces_is_refused(tiny_recipe, tiny_recipe_dict, capsys):
    for section in ("teacher", "data"):
        tiny_recipe_dict.pop(section)
    tiny_recipe_dict["students"][0].update(method="kd", distill_from="tiny-random-llama")
    _refused(tiny_recipe, tiny_recipe_dict, capsys, "students need traces")


def test_an_unknown_method_is_refused(tiny_recipe, tiny_recipe_dict, capsys):
    tiny_recipe_dict["students"][0].update(method="dpo")
    _refused(tiny_recipe, tiny_recipe_dict, capsys, "students.0.method", "sft", "on_policy", "kd")


def test_init_must_name_another_student(tiny_recipe, tiny_recipe_dict, capsys):
    tiny_recipe_dict["students"][0].update(init="nobody")
    _refused(tiny_recipe, tiny_recipe_dict, capsys, "students.0.init", "nobody")


def test_plan_counts_the_teachers_weights_and_the_sampling_cache():
    from student import plan

    student = student_cfg(
        model="Qwen/Qwen2.5-Math-1.5B",
        method="on_policy",
        batch_size=4,
        max_length=4096,
        bf16=True,
        launch={"strategy": "zero3", "nproc": 8, "gpu_memory_gb": 80},
    )
    shape, _ = plan.model_shape(student.model)
    teacher, _ = plan.model_shape("Qwen/Qwen2.5-7B-Instruct")
    alone = plan.estimate(shape, student, "ddp", 8)
    with_teacher = plan.estimate(shape, student, "ddp", 8, teacher=teacher)
    weights = 2 * plan.parameter_count(teacher)  # bf16, inference only: no gradients, no optimizer state
    cache = 2 * shape.num_hidden_layers * shape.kv_dim * 2 * 4 * 4096
    assert with_teacher.teacher == pytest.approx(weights + cache) and alone.teacher == 0
    # TRL's chunked loss never materialises the logits: on_policy's logits term is Liger-sized.
    sft = plan.estimate(shape, student.model_copy(update={"method": "sft"}), "ddp", 8)
    assert with_teacher.logits < sft.logits / 100
    sharded = plan.estimate(shape, student, "zero3", 8, teacher=teacher)
    assert sharded.teacher == pytest.approx(weights / 8 + cache)  # ZeRO-3 shards the teacher like the student
    kd = student.model_copy(update={"method": "kd"})
    teacher_logits = 4 * 4096 * shape.vocab_size * 6  # GKD: the teacher's full logits + log-softmax
    assert plan.estimate(shape, kd, "ddp", 8, teacher=teacher).teacher == pytest.approx(
        weights + teacher_logits
    )
    text = plan.render_plan(student, teacher_ref="Qwen/Qwen2.5-7B-Instruct")
    assert "teacher Qwen/Qwen2.5-7B-Instruct (7.62B, bf16, inference only" in text
    # A GPU between the two totals: the student alone fits, with its teacher it does not, and plan says so.
    between = (plan.estimate(shape, student, "zero3", 8).total + sharded.total) / 2 / plan.GIB
    small = student.model_copy(
        update={"launch": student.launch.model_copy(update={"gpu_memory_gb": between})}
    )
    assert plan.check_fits(small) is None
    assert "zero3 on 8 GPU(s) needs" in plan.check_fits(small, teacher=teacher)


def test_model_card_states_method_teacher_divergence_steps_and_init():
    from distill.publish.cards import method_facts, model_card

    student = student_cfg(name="s2", method="on_policy", init="s1", distill_from="student:s1")
    metrics = {
        "divergence_first10": 0.31,
        "divergence_last10": 0.04,
        "steps": 60,
        "teacher": "/run/students/s1",
    }
    facts = method_facts(student, metrics)
    card = model_card(
        "org/s2",
        base_model=None,
        teacher="smollm2-135m-instruct",
        rows=[],
        benchmarks={},
        lineage={"teacher": "smollm2-135m-instruct", **facts},
        comparison_md="| table |\n",
        license="apache-2.0",
        method=facts,
    )
    intro = card.split("# s2\n")[1].split("## Evaluation")[0]
    assert "on-policy" in intro and "**student:s1**" in intro and "60 steps" in intro
    assert "reverse KL per token, 0.31 (first 10 steps) -> 0.04 (last 10)" in intro
    assert "the final weights of student s1" in intro
    assert "on-policy-distillation" in card.split("---\n")[1]
    sft = method_facts(student_cfg(), {})
    assert sft == {"method": "sft"}
    plain = model_card(
        "org/s",
        base_model=None,
        teacher="t",
        rows=[],
        benchmarks={},
        lineage={},
        comparison_md="",
        license="mit",
        method=sft,
    )
    assert "fine-tuned on them with TRL." in plain and "- sft" in plain


def test_a_grpo_teacher_is_upstream_of_an_on_policy_student():
    """teacher.model: grpo -> the logits come from the GRPO checkpoint: the grpo node runs first and a new
    GRPO teacher reruns the student; the preflight checks the tokenizer of the model GRPO starts from."""
    from distill.pipeline import plan
    from distill.recipe import load_recipe
    from student.plan_teacher import teacher_model
    from student.preflight import _teacher_model

    recipe = load_recipe(REPO / "recipes" / "grpo-quickstart.yaml", ["students.0.method=on_policy"])
    node = next(s for s in plan(recipe) if s.family == "sft")
    assert node.upstream == ["filter", "grpo"] and node.config["teacher_model"] == "grpo"
    assert _teacher_model(recipe, recipe.students[0], "w") == ("grpo", recipe.grpo.model)
    assert teacher_model(recipe, recipe.students[0]) == recipe.grpo.model
    from student.spec import teacher_path

    assert teacher_path(recipe, recipe.students[0], Path("/r")) == "/r/teacher/final"


def test_on_policy_prompts_from_data_samples_every_data_prompt(tmp_path, teacher_dir, tiny_recipe_dict):
    """prompts: data — every prompt of the data section as generate renders it (not only those with kept
    traces); it enters the fingerprint with the data file's content; without a data section, one line."""
    from distill.errors import DistillError
    from distill.pipeline import plan
    from distill.prompts import chat_prompts
    from distill.recipe import Recipe
    from distill.runs import fingerprint
    from student.methods.on_policy import PROMPTS_FILE

    def student_fp(data: dict) -> str:
        spec = next(s for s in plan(Recipe.model_validate(data)) if s.name.startswith("sft:"))
        return fingerprint(spec.config, spec.upstream)

    source = tmp_path / "prompts.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"p{i}", "problem": f"{i} + 2?", "answer": i + 2}) + "\n" for i in range(3))
    )
    tiny_recipe_dict["data"].update(source=str(source), limit=None)
    tiny_recipe_dict["students"][0].update(method="on_policy", distill_from=str(teacher_dir))
    traces_fp = student_fp(tiny_recipe_dict)
    tiny_recipe_dict["students"][0]["on_policy"] = {"prompts": "data"}
    recipe = Recipe.model_validate(tiny_recipe_dict)
    assert student_fp(tiny_recipe_dict) != traces_fp
    before = student_fp(tiny_recipe_dict)
    source.write_text(
        source.read_text() + json.dumps({"id": "extra", "problem": "1 + 1?", "answer": 2}) + "\n"
    )
    assert student_fp(tiny_recipe_dict) != before  # a change to the data file reruns the student
    prompts = chat_prompts(recipe.data)
    assert prompts["extra"][-1] == {"role": "user", "content": "1 + 1?"}
    if recipe.data.system_prompt:
        assert prompts["extra"][0] == {"role": "system", "content": recipe.data.system_prompt}
    metrics = _train(tmp_path, teacher_dir, "on_policy", max_steps=2)  # traces: the kept traces' prompts
    assert metrics["prompts"] == len({r["prompt_id"] for r in think_rows(8)})
    from student.methods.on_policy import prepare_prompts

    cfg = student_cfg(method="on_policy", on_policy={"prompts": "data", "completions_per_prompt": 2})
    job = prepare_prompts(resolve_model("tiny-random-llama"), tmp_path / "x", tmp_path / "d", cfg, prompts)
    import datasets

    rows = datasets.Dataset.from_file(str(tmp_path / "d" / PROMPTS_FILE)).to_list()
    assert job["data"]["prompts"] == len(prompts) and len(rows) == 2 * len(prompts)
    no_data = {k: v for k, v in tiny_recipe_dict.items() if k not in ("data", "teacher")}
    no_data["filter"] = {**tiny_recipe_dict.get("filter", {}), "traces": str(tmp_path / "t.jsonl")}
    with pytest.raises(DistillError, match="on_policy.prompts: data, but the recipe has no `data` section"):
        plan(Recipe.model_validate(no_data))
