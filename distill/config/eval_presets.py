"""`eval.preset`: named settings for reproducing published reasoning evaluations.

A preset is only a shorthand for plain `eval` keys: it expands (distill/config/eval.py, before validation)
into the keys below, and any key the recipe also sets wins. `distill validate --resolved` prints the
expansion; every row records the preset and each key where the run deviates from it (`preset_deviations`),
so a table never claims "DeepSeek's settings" for a run that changed them. It lives in the core because
both the `eval` config section (the expansion) and the eval stage (the deviations) need it.

Keys a preset may set: temperature, top_p, max_tokens, samples_per_problem, samples (per task, applied only
to tasks the recipe evaluates), system_prompt, prompt (the user turn, a Jinja template over the problem's
fields; None keeps each task's own), generation_prefix (text the assistant turn starts with, e.g. the
`<think>\\n` prefill). What a preset cannot change: the benchmark files and the answer extraction (ours,
math-verify on the last \\boxed{}; stated under every table) - the largest remaining source of differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

R1_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class Preset:
    keys: dict[str, Any]
    source: str
    notes: str = ""
    samples: dict[str, int] = field(default_factory=dict)  # per-task n, for the tasks a recipe evaluates


PRESETS: dict[str, Preset] = {
    # DeepSeek-AI, "DeepSeek-R1: Incentivizing Reasoning Capability in LLMs via Reinforcement Learning"
    # (arXiv:2501.12948), section 3.1 "Evaluation Setup": maximum generation length 32,768 tokens; pass@1
    # from k samples at temperature 0.6 and top-p 0.95, "k typically between 4 and 64, depending on the test
    # set size"; AIME 2024 reported with cons@64 (64 samples). The model cards' usage recommendations: no
    # system prompt, the instruction "Please reason step by step, and put your final answer within
    # \boxed{}." in the user turn, and the response forced to start with "<think>\n".
    "deepseek-r1": Preset(
        keys={
            "temperature": 0.6,
            "top_p": 0.95,
            "max_tokens": 32768,
            "samples_per_problem": 4,
            "system_prompt": None,
            "prompt": None,  # our math tasks already ask exactly R1_INSTRUCTION after the problem
            "generation_prefix": "<think>\n",
        },
        samples={"aime24": 64, "aime25": 64},
        source="DeepSeek-R1 paper (arXiv:2501.12948) sec. 3.1 and the DeepSeek-R1-Distill model cards",
        notes="n = 64 on AIME (cons@64 in Table 5); 4 elsewhere (the paper's lower bound, its exact k per "
        "set is not stated)",
    ),
    # huggingface/open-r1 README, "Reproducing Deepseek's evaluation results": lighteval's vllm backend with
    # --use-chat-template, generation_parameters {max_new_tokens: 32768, temperature: 0.6, top_p: 0.95},
    # max_model_length 32768, no system prompt and no prefill (the model's own chat template decides);
    # lighteval's math_500 task reports pass@1 from n = 1 sample, its AIME tasks pass@1 from 32 samples
    # (math_pass@1:32_samples) in the versions open-r1 used.
    "lighteval": Preset(
        keys={
            "temperature": 0.6,
            "top_p": 0.95,
            "max_tokens": 32768,
            "samples_per_problem": 1,
            "system_prompt": None,
            "prompt": None,
            "generation_prefix": None,
        },
        samples={"aime24": 32, "aime25": 32},
        source="huggingface/open-r1 README (lighteval settings) and lighteval's math_500/aime24 tasks",
        notes="lighteval versions differ in n for AIME (1, 32 or 64) and in extraction; ours stays ours",
    ),
    # mlfoundations/evalchemy, eval/chat_benchmarks/AIME24/eval_instruct.py (commit 181a8ef): the prompt
    # "Problem: {problem}\nMark your solution with \boxed\nAnswer:" as the only user turn, temperature 0.7,
    # max_new_tokens 32768, n_repeat 5 runs (seeds offset per run), no system prompt, no prefill; top_p is
    # not set (1.0). MATH-500 and GPQA-Diamond run with fewer repeats.
    "evalchemy": Preset(
        keys={
            "temperature": 0.7,
            "top_p": 1.0,
            "max_tokens": 32768,
            "samples_per_problem": 1,
            "system_prompt": None,
            "prompt": "Problem: {{problem}}\nMark your solution with \\boxed\nAnswer:",
            "generation_prefix": None,
        },
        samples={"aime24": 5, "aime25": 5, "amc23": 5},
        source="mlfoundations/evalchemy eval/chat_benchmarks/AIME24/eval_instruct.py (commit 181a8ef)",
        notes="n_repeat is 5 at that commit (later versions use 10); the prompt applies to our math tasks, "
        "not to multiple choice (GPQA keeps its own)",
    ),
}


def expand(name: str, tasks: list[str]) -> dict[str, Any]:
    """The plain `eval` keys preset ``name`` sets for a recipe evaluating ``tasks``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[name]
    samples = {task: n for task, n in preset.samples.items() if task in tasks}
    return {**preset.keys, "samples": samples}


def apply(data: dict[str, Any]) -> dict[str, Any]:
    """The raw `eval` section with its preset's keys filled in where the recipe does not set them."""
    name = data.get("preset")
    if name is None:
        return data
    expanded = expand(name, list(data.get("tasks") or []))
    out = {**expanded, **data}
    out["samples"] = {**expanded["samples"], **(data.get("samples") or {})}
    return out


def deviations(cfg) -> dict[str, dict[str, Any]]:
    """Each key where the evaluated settings differ from the preset's: {key: {preset, used}}."""
    if cfg.preset is None:
        return {}
    out = {}
    for key, value in expand(cfg.preset, cfg.tasks).items():
        used = getattr(cfg, key)
        if key == "samples":
            used = {task: cfg.n_for(task) for task in cfg.tasks}
            value = {
                task: value.get(task, PRESETS[cfg.preset].keys["samples_per_problem"]) for task in cfg.tasks
            }
        if used != value:
            out[key] = {"preset": value, "used": used}
    return out
