"""Shared builders for student tests: SFT rows with <think> reasoning and a tiny student config."""

from __future__ import annotations

from distill.recipe import StudentConfig

SYSTEM = "You are a careful calculator."


def think_rows(n: int = 8) -> list[dict]:
    """TRL prompt/completion rows whose completions carry <think> reasoning and a boxed answer."""
    rows = []
    for i in range(n):
        prompt = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"What is {i} + {i % 3}?"},
        ]
        answer = f"<think>{i} plus {i % 3} is {i + i % 3}</think> \\boxed{{{i + i % 3}}}"
        rows.append(
            {
                "prompt": prompt,
                "completion": [{"role": "assistant", "content": answer}],
                "prompt_id": str(i),
                "sample_idx": 0,
            }
        )
    return rows


def student_cfg(**overrides) -> StudentConfig:
    base = {
        "name": "tiny",
        "model": "tiny-random-llama",
        "epochs": 2,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "max_length": 64,
        "report_to": [],
    }
    return StudentConfig(**{**base, **overrides})
