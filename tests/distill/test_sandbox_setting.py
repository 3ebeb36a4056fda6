"""The recipe chooses the code sandbox's runner (filter.code.sandbox, grpo.code.sandbox): the programs of the
filter and of GRPO's `code` reward run in the runner it names; it changes no fingerprint."""

from __future__ import annotations

import pytest

from distill.config.base import runtime_free
from distill.grpo import rewards
from distill.recipe import FilterConfig, GRPOTeacherConfig
from distill.verify import default_runner
from teacher.filter import code_step

SOLUTION = "```python\ndef add(a, b):\n    return a + b\n```"
TESTS = "assert add(1, 2) == 3\nassert add(2, 2) == 4"


@pytest.fixture
def asked(monkeypatch):
    """The runner kinds asked for, the real runner of that kind returned."""
    kinds: list[str | None] = []

    def spy(network_isolation: bool = True, sandbox: str | None = None):
        kinds.append(sandbox)
        return default_runner(network_isolation, sandbox)

    monkeypatch.setattr(rewards, "default_runner", spy)
    monkeypatch.setattr(code_step, "default_runner", spy)
    return kinds


def test_the_grpo_code_reward_runs_in_the_named_runner(asked):
    options = GRPOTeacherConfig(model="m", code={"sandbox": "local"}).reward_options()["code"]
    assert rewards.code_reward([SOLUTION], tests=[TESTS], entry_point=["add"], **options) == [1.0]
    assert asked == ["local"]
    default = GRPOTeacherConfig(model="m", code={}).reward_options()["code"]
    rewards.code_reward([SOLUTION], tests=[TESTS], entry_point=["add"], **default)
    assert asked == ["local", None]  # auto: DISTILL_SANDBOX or the machine decides


def test_the_filter_runs_programs_in_the_named_runner(asked):
    cfg = FilterConfig.model_validate({"workers": 1, "code": {"sandbox": "local"}})
    rows = [{"completion": SOLUTION, "tests": TESTS, "entry_point": "add"}]
    verdicts = code_step.verify_code_rows(rows, cfg, [0])
    assert verdicts[0]["correct"] is True and asked == ["local"]


def test_the_runner_changes_no_fingerprint():
    plain = FilterConfig.model_validate({"code": {}})
    named = FilterConfig.model_validate({"code": {"sandbox": "bwrap"}})
    assert runtime_free(plain) == runtime_free(named)
    assert "sandbox" not in plain.model_dump()["code"]  # unset: not in the recipe digest either
