"""Run dirs outlive refactors: every shipped recipe's stage fingerprints equal the ones recorded in
fingerprints.json (computed with the code of 866f9b0, before the layout of issue 20), so a run made with
earlier code is still up to date. One recorded change since: the filter stage of the six r1/GRPO-R1-Zero
recipes, whose decontamination sets are now named (`[math500, aime24, ...]`) instead of typed as paths. A change here reruns users' stages: update the file only on purpose and
say which stage changes and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.pipeline import plan
from distill.recipe import load_recipe
from distill.runs import fingerprint

REPO = Path(__file__).resolve().parents[2]
RECORDED = json.loads((Path(__file__).with_name("fingerprints.json")).read_text())


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_stage_fingerprints_are_unchanged(name, monkeypatch):
    monkeypatch.chdir(REPO)  # recipes name their files relative to the checkout
    recipe = load_recipe(REPO / "recipes" / name)
    if recipe.filter.decontaminate.benchmarks and not (REPO.parent / "shared" / "benchmarks").is_dir():
        pytest.skip("its decontamination files (../shared/benchmarks) are part of the filter fingerprint")
    found = {spec.name: fingerprint(spec.config, spec.upstream) for spec in plan(recipe)}
    assert found == RECORDED[name]


def test_a_benchmark_name_digests_the_file_it_resolves_to(tmp_path, tiny_recipe_dict):
    """filter.decontaminate.benchmarks by name: editing the local copy eval.data_dir holds reruns the filter,
    as editing a benchmark file named by path does."""
    from distill.recipe import Recipe

    copy = tmp_path / "benchmarks" / "math500" / "test.jsonl"
    copy.parent.mkdir(parents=True)
    copy.write_text('{"problem": "What is 1 + 1?", "answer": "2"}\n')
    tiny_recipe_dict["filter"]["decontaminate"] = {"benchmarks": ["math500"]}
    tiny_recipe_dict["eval"]["data_dir"] = str(copy.parents[1])

    def filter_fingerprint() -> str:
        spec = next(s for s in plan(Recipe.model_validate(tiny_recipe_dict)) if s.name == "filter")
        return fingerprint(spec.config, spec.upstream)

    before = filter_fingerprint()
    assert filter_fingerprint() == before
    copy.write_text('{"problem": "What is 2 + 2?", "answer": "4"}\n')
    assert filter_fingerprint() != before
