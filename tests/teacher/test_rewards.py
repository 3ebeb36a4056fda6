"""GRPO rewards on crafted completions: correct, incorrect, malformed, empty, and the verifier's deadline."""

import time

import pytest
from suite import hangs_past_alarms

from distill.grpo.rewards import (
    REWARD_NAMES,
    accuracy_reward,
    build_reward_funcs,
    completion_text,
    cosine_reward,
    cosine_value,
    format_reward,
    repetition_reward,
)

GOOD = "<think>\n7 + 5 = 12\n</think>\nThe answer is \\boxed{12}."


def chat(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_accuracy_correct_incorrect_malformed_empty():
    completions = [GOOD, "<think>7+5=13</think> \\boxed{13}", "\\boxed{12", "", "<think>\\boxed{12}", None]
    scores = accuracy_reward(completions, answer=["12"] * 6, workers=0)
    # unclosed box, empty text, an unclosed think (reasoning never leaks into the answer), None: all 0
    assert scores == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_accuracy_reads_chat_messages_and_numeric_gold():
    assert accuracy_reward([chat(GOOD)], answer=[12], workers=0) == [1.0]
    assert completion_text(chat("a") + [{"role": "assistant", "content": "b"}]) == "ab"


def test_accuracy_fallback_last_number_only_when_asked():
    assert accuracy_reward(["so it is 12"], answer=["12"], workers=0) == [0.0]
    assert accuracy_reward(["so it is 12"], answer=["12"], fallback="last_number", workers=0) == [1.0]


def test_accuracy_symbolic_answer_goes_through_math_verify():
    scores = accuracy_reward(
        ["\\boxed{\\frac{\\sqrt{8}}{2}}", "\\boxed{\\sqrt{3}}"], answer=["\\sqrt{2}"] * 2
    )
    assert scores == [1.0, 0.0]


def test_accuracy_stuck_verification_scores_zero_within_the_deadline(monkeypatch):
    import distill.verify.answers as verify

    monkeypatch.setattr(verify, "answers_match", hangs_past_alarms)  # forked workers inherit the patch
    started = time.monotonic()
    scores = accuracy_reward(["\\boxed{x}", "\\boxed{a}"], answer=["hang", "a"], workers=1, timeout=0.5)
    assert time.monotonic() - started < 5
    assert scores == [0.0, 1.0]


def test_format_reward():
    completions = [
        GOOD,
        "no think at all \\boxed{12}",
        "<think>reasoning only, truncated",
        "<think></think> \\boxed{12}",  # empty reasoning
        "<think>x</think>",  # no final answer
        "<think>a</think><think>b</think> 12",  # two blocks
        "",
        chat(GOOD),
    ]
    assert format_reward(completions) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_cosine_value_ends_and_middle():
    assert cosine_value(0, 100, 0.5, 1.0) == pytest.approx(1.0)
    assert cosine_value(100, 100, 0.5, 1.0) == pytest.approx(0.5)
    assert cosine_value(50, 100, 0.5, 1.0) == pytest.approx(0.75)
    assert cosine_value(500, 100, 0.5, 1.0) == pytest.approx(0.5)  # beyond max_len: clamped


def test_cosine_reward_prefers_short_correct_and_long_wrong():
    completions = ["\\boxed{12}", "\\boxed{12}", "\\boxed{13}", "\\boxed{13}", ""]
    ids = [[0] * 10, [0] * 90, [0] * 10, [0] * 90, []]
    scores = cosine_reward(completions, answer=["12"] * 5, completion_ids=ids, max_len=100, workers=0)
    short_right, long_right, short_wrong, long_wrong, empty = scores
    assert 0.5 <= long_right < short_right <= 1.0
    assert -1.0 <= short_wrong < long_wrong <= -0.5
    assert empty == pytest.approx(-1.0)


def test_repetition_reward():
    loop = "the answer is " * 20
    scores = repetition_reward(["one two three four five", loop, "", chat(loop)], ngram=3, max_penalty=-1.0)
    assert scores[0] == 0.0 and scores[2] == 0.0
    assert -1.0 <= scores[1] < -0.8 and scores[3] == scores[1]


def test_build_reward_funcs_binds_options_and_names():
    funcs = build_reward_funcs(
        ["accuracy", "repetition"], {"accuracy": {"fallback": "last_number", "workers": 0}}
    )
    assert [f.__name__ for f in funcs] == ["accuracy", "repetition"]
    assert funcs[0](completions=["it is 12"], answer=["12"], completion_ids=[[1]], trainer_state=None) == [
        1.0
    ]
    with pytest.raises(ValueError, match="unknown reward 'acc'"):
        build_reward_funcs(["acc"], {})
    assert set(REWARD_NAMES) == {"accuracy", "format", "cosine", "repetition", "code", "judge", "language"}


def test_language_reward_is_the_share_of_the_reasoning_in_the_prompts_language():
    # R1's language-consistency reward on planted texts: English, half Chinese, French (same script, other
    # language), too short to tell, and only the <think> block counts.
    (language,) = build_reward_funcs(["language"], {})
    prompt = [
        {
            "role": "user",
            "content": "A train travels at sixty miles per hour for three hours. How far does it go?",
        }
    ]
    english = "<think>The train moves sixty miles each hour, so over three hours it covers the distance.</think> \\boxed{180}"
    mixed = "<think>The train moves sixty miles each hour 火车每小时行驶六十英里所以三个小时</think> 180"
    french = "<think>Le train roule soixante miles chaque heure, donc en trois heures il parcourt la distance.</think> 180"
    short = "<think>60 x 3 = 180</think> 180"
    outside = "<think>The train moves sixty miles each hour, so three hours make it.</think> 火车每小时行驶六十英里所以三个小时"
    scores = language([english, mixed, french, short, outside], prompts=[prompt] * 5)
    assert scores[0] == 1.0 and 0.3 < scores[1] < 0.8 and scores[2] == 0.0
    assert scores[3] == 1.0  # nothing to judge: neutral
    assert scores[4] == 1.0  # the answer after </think> is not the chain of thought
