"""Pairwise judged comparison: a student's answers against a baseline's on the same open-ended prompts.

Every prompt is asked twice, once with the student as response A and once as response B, so that a judge that
favours a position cannot favour a model. Per prompt, the two verdicts are read from the student's side:

- **win** / **loss**: both orders prefer the same side (or one order does and the other calls a tie);
- **tie**: both call a tie, or the two orders contradict each other (the judge followed the position, not the
  answer: counted as ``inconsistent`` too);
- a prompt with an unparsed reply in either order is left out of the rates and counted as ``judge_unparsed``.

The **win rate** is the mean per-prompt score (win 1, tie 1/2, loss 0). Its 95% interval and those of the
win, tie and loss shares are Wilson score intervals over the m prompts judged (eval/stats.py), the unit being
the prompt, as for pass@1. **Position bias**: of the parsed verdicts that named a winner, the share that named
position A (0.5 is unbiased). **Length**: the mean answer length of each side in words and their gap; the win
rate on the prompts where the student's answer is not longer than the baseline's is reported beside it, a
crude length control (AlpacaEval's regression-based length-controlled win rate is not computed).
"""

from __future__ import annotations

from typing import Any

from eval.stats import rounded, wilson_interval

_SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def ask_both_orders(
    judge, prompts: list[dict], student: dict[str, str], baseline: dict[str, str]
) -> list[dict]:
    """Per prompt: the verdict with the student as A, the one with the student as B, and the outcome."""
    ids = [p["id"] for p in prompts if p["id"] in student and p["id"] in baseline]
    text = {p["id"]: p["prompt"] for p in prompts}
    first = [{"problem": text[i], "response_a": student[i], "response_b": baseline[i]} for i in ids]
    second = [{"problem": text[i], "response_a": baseline[i], "response_b": student[i]} for i in ids]
    results = judge.ask("pairwise", first + second)
    out = []
    for index, prompt_id in enumerate(ids):
        as_a, as_b = results[index], results[len(ids) + index]
        out.append(
            {
                "id": prompt_id,
                "student_as_a": as_a.value,
                "student_as_b": as_b.value,
                "outcome": outcome(as_a.value, as_b.value),
                "student_words": len(student[prompt_id].split()),
                "baseline_words": len(baseline[prompt_id].split()),
                "reasoning": [as_a.reasoning, as_b.reasoning],
            }
        )
    return out


def outcome(student_as_a: str | None, student_as_b: str | None) -> str:
    """win | loss | tie | inconsistent | unparsed, from the student's side (module docstring)."""
    if student_as_a is None or student_as_b is None:
        return "unparsed"
    first = {"A": "win", "B": "loss", "tie": "tie"}[student_as_a]
    second = {"B": "win", "A": "loss", "tie": "tie"}[student_as_b]
    if first == second:
        return first
    if "tie" in (first, second):
        return first if second == "tie" else second
    return "inconsistent"


def summarize(pairs: list[dict]) -> dict[str, Any]:
    """Win/tie/loss shares with Wilson 95% intervals, the win rate, position bias and the length gap."""
    judged = [p for p in pairs if p["outcome"] != "unparsed"]
    m = len(judged)
    counts = {k: sum(p["outcome"] == k for p in judged) for k in ("win", "loss", "tie", "inconsistent")}
    ties = counts["tie"] + counts["inconsistent"]
    out: dict[str, Any] = {
        "prompts": len(pairs),
        "judged": m,
        "judge_unparsed": len(pairs) - m,
        "wins": counts["win"],
        "ties": ties,
        "losses": counts["loss"],
        "inconsistent": counts["inconsistent"],
        "position_a_share": position_a_share(pairs),
        "interval": "Wilson score interval over prompts (95%)",
    }
    if m:
        for name, n in (("win", counts["win"]), ("tie", ties), ("loss", counts["loss"])):
            out[f"{name}_share"] = round(n / m, 4)
            out[f"{name}_ci95"] = rounded(wilson_interval(n / m, m))
        rate = sum(_SCORE.get(p["outcome"], 0.5) for p in judged) / m
        out["win_rate"], out["win_rate_ci95"] = round(rate, 4), rounded(wilson_interval(rate, m))
    out.update(length_gap(judged))
    return out


def position_a_share(pairs: list[dict]) -> float | None:
    named = [v for p in pairs for v in (p["student_as_a"], p["student_as_b"]) if v in ("A", "B")]
    return round(sum(v == "A" for v in named) / len(named), 4) if named else None


def length_gap(judged: list[dict]) -> dict[str, Any]:
    if not judged:
        return {}
    student = sum(p["student_words"] for p in judged) / len(judged)
    baseline = sum(p["baseline_words"] for p in judged) / len(judged)
    not_longer = [p for p in judged if p["student_words"] <= p["baseline_words"]]
    rate = sum(_SCORE.get(p["outcome"], 0.5) for p in not_longer) / len(not_longer) if not_longer else None
    return {
        "student_mean_words": round(student, 2),
        "baseline_mean_words": round(baseline, 2),
        "length_gap_words": round(student - baseline, 2),
        "win_rate_when_not_longer": None if rate is None else round(rate, 4),
        "prompts_not_longer": len(not_longer),
    }


def judged_markdown(rows: list[dict[str, Any]]) -> str:
    """The judged benchmarks' section of comparison.md."""
    lines = [
        "## Judged benchmarks (pairwise, both orders)",
        "",
        "| benchmark | student | baseline | judged | win | tie | loss | win rate (95% CI) | position A share "
        "| length gap (words) | unparsed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["summary"]
        ci = s.get("win_rate_ci95")
        rate = f"{s['win_rate']:.1%} [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else "-"
        lines.append(
            f"| {r['benchmark']} | {r['student']} | {r['baseline']} | {s['judged']} | {s['wins']} | {s['ties']} | "
            f"{s['losses']} | {rate} | {s['position_a_share']} | {s.get('length_gap_words', '-')} | "
            f"{s['judge_unparsed']} |"
        )
    lines += ["", f"Judge: {rows[0]['judge']}. Ties include contradicting orders; win rate = wins + ties/2."]
    return "\n".join(lines) + "\n"
