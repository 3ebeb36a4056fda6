"""GRPO rewards: plain functions with TRL's reward signature ``f(completions, **columns) -> list[float]``.

TRL calls each function with the batch's completions (text, or chat messages for conversational prompts),
every extra dataset column as a list (our prompts carry ``answer``; code prompts ``tests``, ``entry_point``,
``starter_code``, ``language``) and ``completion_ids``. Correctness is
decided by THE verifier (distill.verify) with its hard per-answer deadline, so a pathological answer scores
0 after ``timeout`` seconds instead of stalling training. ``build_reward_funcs`` binds a recipe's options and
gives each function the name TRL logs it under (``rewards/<name>/mean``).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from typing import Any

from distill.config.grpo_options import REWARD_NAMES
from distill.verify import Limits, Verdict, code_problem, default_runner, verify_code_many, verify_many

# One <think> block opening the completion, non-empty reasoning, then a non-empty final answer.
_THINK_FORMAT = re.compile(r"^\s*<think>(?P<reasoning>.*?)</think>(?P<final>.*)$", re.DOTALL)
_WORD = re.compile(r"\w+")


def completion_text(completion: Any) -> str:
    """A completion as text: TRL passes strings, or a list of chat messages for conversational prompts."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return ""


def verdicts(
    completions: list[Any], answer: list[Any], fallback: str = "none", workers: int = 1, timeout: float = 10.0
) -> list[Verdict]:
    """The verifier's verdict on each completion against its reference answer (hard deadline per answer)."""
    items = [
        (str(gold) if gold is not None else "", completion_text(c))
        for gold, c in zip(answer, completions, strict=True)
    ]
    return _cached_verdicts(tuple(items), fallback, workers, timeout)


# accuracy and cosine both need the verdicts of the same batch: verify it once.
@functools.lru_cache(maxsize=4)
def _cached_verdicts(items: tuple[tuple[str, str], ...], fallback: str, workers: int, timeout: float):
    return verify_many(list(items), fallback, workers=workers, timeout=timeout, progress=False)


def accuracy_reward(
    completions: list[Any],
    answer: list[Any],
    fallback: str = "none",
    workers: int = 1,
    timeout: float = 10.0,
    **_: Any,
) -> list[float]:
    """1.0 when the verifier accepts the answer, else 0.0 (wrong, no answer, timeout, unparseable gold)."""
    return [1.0 if v.correct else 0.0 for v in verdicts(completions, answer, fallback, workers, timeout)]


def format_reward(completions: list[Any], **_: Any) -> list[float]:
    """1.0 for exactly one leading ``<think>...</think>`` with reasoning in it, followed by a final answer."""
    scores = []
    for completion in completions:
        text = completion_text(completion)
        match = _THINK_FORMAT.match(text)
        ok = (
            match is not None
            and text.count("<think>") == 1
            and text.count("</think>") == 1
            and bool(match["reasoning"].strip())
            and bool(match["final"].strip())
        )
        scores.append(1.0 if ok else 0.0)
    return scores


def cosine_value(length: int, max_len: int, low: float, high: float) -> float:
    """``high`` at length 0 falling along a half cosine to ``low`` at ``max_len`` (and beyond)."""
    progress = min(length / max(max_len, 1), 1.0)
    return low + 0.5 * (high - low) * (1.0 + math.cos(progress * math.pi))


def cosine_reward(
    completions: list[Any],
    answer: list[Any],
    completion_ids: list[list[int]] | None = None,
    max_len: int = 1024,
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    fallback: str = "none",
    workers: int = 1,
    timeout: float = 10.0,
    **_: Any,
) -> list[float]:
    """Length-aware correctness (Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning"): a correct
    answer earns more the shorter it is; a wrong one is penalised more the shorter it is, so the model is
    pushed to think longer only when thinking is what it lacks. Length is in completion tokens when TRL gives
    ``completion_ids``, else in words."""
    results = verdicts(completions, answer, fallback, workers, timeout)
    scores = []
    for index, (completion, verdict) in enumerate(zip(completions, results, strict=True)):
        if completion_ids is not None:
            length = len(completion_ids[index])
        else:
            length = len(_WORD.findall(completion_text(completion)))
        if verdict.correct:
            scores.append(cosine_value(length, max_len, min_value_correct, max_value_correct))
        else:  # swapped ends: the shortest wrong answer gets min_value_wrong
            scores.append(cosine_value(length, max_len, max_value_wrong, min_value_wrong))
    return scores


def repetition_reward(
    completions: list[Any], ngram: int = 3, max_penalty: float = -1.0, **_: Any
) -> list[float]:
    """``max_penalty`` times the share of repeated word n-grams (0 for text without repeats or too short)."""
    scores = []
    for completion in completions:
        words = [w.lower() for w in _WORD.findall(completion_text(completion))]
        grams = [tuple(words[i : i + ngram]) for i in range(len(words) - ngram + 1)]
        if not grams:
            scores.append(0.0)
            continue
        scores.append((1.0 - len(set(grams)) / len(grams)) * max_penalty)
    return scores


def _at(column: list[Any] | None, index: int) -> Any:
    return column[index] if column is not None else None


def code_reward(
    completions: list[Any],
    tests: list[Any] | None = None,
    entry_point: list[Any] | None = None,
    starter_code: list[Any] | None = None,
    language: list[Any] | None = None,
    all_or_nothing: bool = False,
    timeout: float = 10.0,
    memory_mb: int = 1024,
    workers: int = 1,
    sandbox: str = "auto",
    **_: Any,
) -> list[float | None]:
    """Share of the prompt's ``tests`` the answer's program passes (1.0 or 0.0 with ``all_or_nothing``),
    run in the sandbox (distill.verify.code) with a wall deadline per program; no code, a timeout or a crash
    scores 0. A prompt without tests (a math row in a mixed set) gets None, which TRL leaves out of the sum."""
    limits = Limits(wall_seconds=timeout, memory_mb=memory_mb)
    scores: list[float | None] = [None] * len(completions)
    todo = [i for i in range(len(completions)) if _at(tests, i) not in (None, "", [])]
    problems = [
        code_problem(
            {
                "tests": tests[i],
                "entry_point": _at(entry_point, i),
                "starter_code": _at(starter_code, i),
                "language": _at(language, i),
            },
            limits,
        )
        for i in todo
    ]
    items = [(problem, completion_text(completions[i])) for problem, i in zip(problems, todo, strict=True)]
    runner = default_runner(sandbox=sandbox if sandbox != "auto" else None)  # auto: DISTILL_SANDBOX decides
    for index, verdict in zip(todo, verify_code_many(items, runner, workers=max(1, workers)), strict=True):
        scores[index] = float(verdict.correct) if all_or_nothing else verdict.share
    return scores


def judge_reward(
    completions: list[Any],
    prompts: list[Any] | None = None,
    judge: dict[str, Any] | None = None,
    timeout: float = 10.0,
    **_: Any,
) -> list[float]:
    """The recipe's judge's rubric score (distill/judge, template ``rubric``) scaled to [0, 1]: for prompts no
    verifier can check. Each call has the verifier's deadline (``timeout`` seconds): a late answer, an
    unparsed reply (judge_unparsed) or a failed call scores 0 and is counted (``judge_usage``). ``judge`` is
    the job's {config, urls, cache} (distill/grpo/run.py); replies are cached in the run's judge cache."""
    client = _judge_client(judge)
    problems = [_prompt_text(p) for p in (prompts or [""] * len(completions))]
    items = [
        {"problem": q, "response": completion_text(c)} for q, c in zip(problems, completions, strict=True)
    ]
    low, high = client.template("rubric").scale
    results = client.ask("rubric", items, deadline=timeout)
    return [(r.value - low) / (high - low) if r.status == "ok" else 0.0 for r in results]


_JUDGES: dict[str, Any] = {}  # one client per judge job in this process (its usage is the process's)


def _judge_client(spec: dict[str, Any] | None):
    import json
    from pathlib import Path

    from distill.config.judge import JudgeConfig
    from distill.judge import Judge, JudgeCache

    if not spec:
        raise ValueError("the judge reward needs the recipe's judge section (grpo stage job)")
    key = json.dumps(spec, sort_keys=True)
    if key not in _JUDGES:
        cache = JudgeCache(Path(spec["cache"]) if spec.get("cache") else None)
        _JUDGES[key] = Judge(JudgeConfig.model_validate(spec["config"]), spec["urls"], cache)
    return _JUDGES[key]


def judge_usage() -> dict[str, Any] | None:
    """Calls, cache hits, tokens, unparsed replies and timeouts of the judge reward in this process."""
    return next((client.report() for client in _JUDGES.values()), None)


def _prompt_text(prompt: Any) -> str:
    """The last user turn of a conversational prompt, or the prompt text itself."""
    if isinstance(prompt, list):
        users = [m.get("content") or "" for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1]) if users else ""
    return str(prompt or "")


def language_reward(completions: list[Any], prompts: list[Any] | None = None, **_: Any) -> list[float]:
    """R1's language-consistency reward (DeepSeek-R1, section 2.3.3): the share of the chain of thought (the
    ``<think>`` block, else the whole completion) written in the prompt's language, by the filter's detector
    (distill/language.py): the share of its letters in the prompt's script, 0 when both languages can be
    identified and differ. Text too short to tell (under 20 letters of prose: "47 + 38 = 85") scores 1.0, the
    neutral value: it mixes nothing."""
    from distill.language import language_share

    problems = [_prompt_text(p) for p in (prompts or [""] * len(completions))]
    scores = []
    for problem, completion in zip(problems, completions, strict=True):
        text = completion_text(completion)
        match = _THINK_FORMAT.match(text)
        share = language_share(problem, match["reasoning"] if match else text)
        scores.append(1.0 if share is None else round(share, 4))
    return scores


_FUNCTIONS: dict[str, Callable[..., list[float]]] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "cosine": cosine_reward,
    "repetition": repetition_reward,
    "judge": judge_reward,
    "code": code_reward,
    "language": language_reward,
}


def build_reward_funcs(
    names: list[str], options: dict[str, dict[str, Any]]
) -> list[Callable[..., list[float]]]:
    """The named rewards with their options bound; each keeps its short name, which TRL logs."""
    funcs = []
    for name in names:
        if name not in _FUNCTIONS:
            raise ValueError(f"unknown reward {name!r}; expected one of {', '.join(REWARD_NAMES)}")
        funcs.append(_bind(_FUNCTIONS[name], name, options.get(name, {})))
    return funcs


def _bind(func: Callable[..., list[float]], name: str, options: dict[str, Any]) -> Callable[..., list[float]]:
    # A plain function, not functools.partial: TRL names a partial after the wrapped function.
    def reward(completions: list[Any], **columns: Any) -> list[float]:
        return func(completions, **{**columns, **options})

    reward.__name__ = reward.__qualname__ = name
    reward.__doc__ = func.__doc__
    return reward
