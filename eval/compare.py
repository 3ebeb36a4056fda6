"""The comparison (md/csv/json/png) across evaluated rows, the paired differences, and the release gate."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from distill.runs import atomic_path, atomic_write_json, atomic_write_text
from eval.pairwise import judged_markdown
from eval.stats import DIFFERENCE_METHOD, INTERVAL_METHOD

REFERENCE_NOTE = (
    "published pass@1 = the model's own published figure (eval/reference.yaml, with its source and "
    "settings); inside/outside = whether it lies in our 95% CI."
)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _interval(ci: list[float] | None, problems: int | None = None) -> str:
    if ci is None:
        return "no interval (1 problem)" if problems == 1 else "n/a"
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]"


def _published(row: dict[str, Any]) -> str:
    ref = row.get("reference")
    if not ref:
        return ""
    where = {True: "inside", False: "outside", None: "no interval"}[ref.get("inside_ci95")]
    return f"{_pct(ref['score'])} ({where} our CI)"


def comparison_markdown(rows: list[dict[str, Any]], diffs: list[dict[str, Any]], extraction: str) -> str:
    if not rows:
        return "_no results_\n"
    published = any(row.get("reference") for row in rows)
    lines = [
        "| model | task | pass@1 % | 95% CI | pass@n % | maj@n % | n | problems | truncated % |"
        + (" published pass@1 % |" if published else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if published else ""),
    ]
    for row in rows:
        n = row["samples_per_problem"]
        lines.append(
            f"| {row['model']} | {row['task']} | {_pct(row['pass_at_1'])} | "
            f"{_interval(row['ci95'], row['problems'])} | {_pct(row['pass_at_k'][str(n)])} | "
            f"{_pct(row['maj_at_n'])} | {n} | {row['problems']} | {_pct(row['truncated_share'])} |"
            + (f" {_published(row)} |" if published else "")
        )
    lines += ["", INTERVAL_METHOD, *_k_table(rows)]
    if diffs:
        lines += [
            "",
            "| student | versus | task | difference (points) | 95% CI | significant |",
            "|---|---|---|---|---|---|",
        ]
        for d in diffs:
            mark = "yes" if d["significant"] else "no"
            lines.append(
                f"| {d['student']} | {d['versus']}: {d['reference']} | {d['task']} | "
                f"{100 * d['difference']:+.1f} | {_interval_signed(d['ci95'], d.get('problems'))} | {mark} |"
            )
        lines += ["", DIFFERENCE_METHOD]
    first = rows[0]
    lines += [
        "",
        f"pass@1 = mean over problems of the share of n samples answered correctly (temperature "
        f"{first['temperature']}, top_p {first['top_p']}, at most {first['max_tokens']} new tokens, seed "
        f"{first['seed']}, lm-eval {first['lm_eval_version']}). pass@k: unbiased estimator; maj@k: a majority "
        "vote over k of the n samples is right, averaged exactly over all subsets (ties split evenly, "
        "unanswered samples do not vote). truncated = answers that used the whole token budget.",
        f"Answer extraction: {extraction}.",
        *_preset_lines(first),
    ]
    if published:
        lines.append(REFERENCE_NOTE)
    return "\n".join(lines) + "\n"


def _preset_lines(row: dict[str, Any]) -> list[str]:
    lines = []
    if row.get("generation_prefix"):
        lines.append(f"Every answer starts from the prefill {row['generation_prefix']!r}.")
    if row.get("preset"):
        changed = row.get("preset_deviations") or {}
        detail = "; ".join(f"{key} {v['used']!r} instead of {v['preset']!r}" for key, v in changed.items())
        lines.append(
            f"Settings: preset {row['preset']} (distill/config/eval_presets.py)"
            + (f", deviating in {detail}." if detail else ", unchanged.")
        )
    return lines


def _k_table(rows: list[dict[str, Any]]) -> list[str]:
    """pass@k / maj@k for every reported k (the same k for both), one row per model and task."""
    ks = sorted({int(k) for row in rows for k in row["pass_at_k"]})
    if ks == [1] or not ks:
        return []
    lines = [
        "",
        "| model | task | " + " | ".join(f"k={k} pass / maj %" for k in ks) + " |",
        "|---|---|" + "---|" * len(ks),
    ]
    for row in rows:
        maj = row.get("maj_at_k", {})
        cells = [
            f"{_pct(row['pass_at_k'].get(str(k)))} / {_pct(maj.get(str(k)))}"
            if str(k) in row["pass_at_k"]
            else ""
            for k in ks
        ]
        lines.append(f"| {row['model']} | {row['task']} | " + " | ".join(cells) + " |")
    return lines


def _interval_signed(ci: list[float] | None, problems: int | None = None) -> str:
    if ci is None:
        return "no interval (1 problem)" if problems == 1 else "n/a"
    return f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def write_comparison(rows, diffs, out_dir: Path, extraction: str, judged: dict | None = None) -> list[Path]:
    """comparison.{md,json,csv,png}. ``judged``: eval.judged's {judged: rows, judge_cost} (eval/judged.py),
    written beside the verified rows: a section of the md, a key of the json, rows of the csv."""
    md, js, cs, png = (out_dir / f"comparison.{ext}" for ext in ("md", "json", "csv", "png"))
    judged_rows = (judged or {}).get("judged") or []
    text = comparison_markdown(rows, diffs, extraction)
    atomic_write_text(md, text + ("\n" + judged_markdown(judged_rows) if judged_rows else ""))
    methods = {"pass_at_1_ci95": INTERVAL_METHOD, "difference_ci95": DIFFERENCE_METHOD}
    payload = {"rows": rows, "differences": diffs, "extraction": extraction, "methods": methods}
    atomic_write_json(js, {**payload, **(judged or {})})
    atomic_write_text(cs, comparison_csv(rows, judged_rows))
    write_chart(rows, png)
    return [md, js, cs, png]


def _csv_interval(ci: list[float] | None) -> str:
    return "" if ci is None else f"{ci[0]}-{ci[1]}"


def comparison_csv(rows: list[dict[str, Any]], judged_rows: list[dict[str, Any]] = ()) -> str:
    """One line per evaluated row and task; a judged benchmark's line per student has role ``judged``, its
    win rate and interval in the judged columns (pass_at_1 empty: nothing was verified)."""
    buffer = io.StringIO()
    flat = [
        {
            **row,
            "ci95": _csv_interval(row["ci95"]),
            "pass_at_k": json.dumps(row["pass_at_k"]),
            **{key: json.dumps(row[key]) for key in ("maj_at_k", "reference") if key in row},
        }
        for row in rows
    ]
    flat += [judged_csv_row(row) for row in judged_rows]
    fields = list(dict.fromkeys(key for row in flat for key in row)) or ["model"]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(flat)
    return buffer.getvalue()


def judged_csv_row(row: dict[str, Any]) -> dict[str, Any]:
    summary = row["summary"]
    return {
        "model": row["student"],
        "role": "judged",
        "task": row["benchmark"],
        "baseline": row["baseline"],
        "judge": row["judge"],
        "win_rate": summary.get("win_rate"),
        "win_rate_ci95": _csv_interval(summary.get("win_rate_ci95")),
        **{key: summary.get(key) for key in _JUDGED_COLUMNS},
    }


_JUDGED_COLUMNS = (
    "prompts",
    "judged",
    "wins",
    "ties",
    "losses",
    "judge_unparsed",
    "position_a_share",
    "length_gap_words",
    "win_rate_when_not_longer",
)

ROLE_COLOURS = {"teacher": "#7f7f7f", "base": "#c7c7c7", "student": "#1f77b4", "model": "#ff7f0e"}


def write_chart(rows: list[dict[str, Any]], path: Path) -> Path:
    """One bar chart per benchmark: pass@1 with its 95% CI as error bars, rows side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(row["task"] for row in rows))
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(max(4.5, 3.2 * len(tasks)), 4), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=False):
        task_rows = [row for row in rows if row["task"] == task]
        scores = [100 * row["pass_at_1"] for row in task_rows]
        low = [
            s - 100 * (r["ci95"] or [r["pass_at_1"]] * 2)[0] for s, r in zip(scores, task_rows, strict=True)
        ]
        high = [
            100 * (r["ci95"] or [r["pass_at_1"]] * 2)[1] - s for s, r in zip(scores, task_rows, strict=True)
        ]
        colours = [ROLE_COLOURS.get(row.get("role", "model"), "#ff7f0e") for row in task_rows]
        positions = range(len(task_rows))
        axis.bar(positions, scores, yerr=[low, high], capsize=4, color=colours)
        axis.set_xticks(list(positions), [_short(row["model"]) for row in task_rows], rotation=30, ha="right")
        axis.set_title(f"{task} (n={task_rows[0]['samples_per_problem']})")
        axis.set_ylabel("pass@1 % (95% CI)")
        axis.set_ylim(0, 100)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def _short(label: str, limit: int = 24) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def release_gate(rows, diffs, students: list[str], gate, tasks: list[str]) -> dict[str, Any]:
    """Per student: ship or not, and every reason why not, from the same rows the comparison shows."""
    checked = gate.tasks or tasks
    decisions = {}
    for name in students:
        reasons = []
        for task in checked:
            row = next((r for r in rows if r["model"] == name and r["task"] == task), None)
            if row is None:
                reasons.append(f"no result on {task}")
                continue
            reasons += _task_reasons(row, _diff_for(diffs, name, task), gate)
        decisions[name] = {"ship": not reasons, "reasons": reasons}
    return {"tasks": checked, "settings": gate.model_dump(mode="json"), "decisions": decisions}


def _diff_for(diffs, student: str, task: str) -> dict[str, dict]:
    return {d["versus"]: d for d in diffs if d["student"] == student and d["task"] == task}


def _task_reasons(row: dict[str, Any], diff: dict[str, dict], gate) -> list[str]:
    task, score = row["task"], row["pass_at_1"]
    minimum = gate.min_score.get(task, 0.0) if isinstance(gate.min_score, dict) else gate.min_score
    reasons = []
    if score < minimum:
        reasons.append(f"{task}: pass@1 {score:.3f} < min_score {minimum}")
    base, teacher = diff.get("base"), diff.get("teacher")
    if gate.beats_base_by is not None:
        if base is None:
            reasons.append(f"{task}: no base-model result to compare with")
        elif base["difference"] < gate.beats_base_by:
            reasons.append(
                f"{task}: {base['difference']:+.3f} over the base model < beats_base_by {gate.beats_base_by}"
            )
    if gate.no_regression and base is not None and base["significant"] and base["difference"] < 0:
        reasons.append(f"{task}: significantly below the base model ({base['difference']:+.3f})")
    if gate.within_teacher is not None:
        if teacher is None:
            reasons.append(f"{task}: no teacher result to compare with")
        elif teacher["difference"] < -gate.within_teacher:
            reasons.append(
                f"{task}: {teacher['difference']:+.3f} versus the teacher, more than within_teacher "
                f"{gate.within_teacher} below"
            )
    if gate.require_beats_teacher and not (teacher and teacher["significant"] and teacher["difference"] > 0):
        reasons.append(f"{task}: not significantly above the teacher (paired 95% CI)")
    return reasons


def write_gate(gate: dict[str, Any], path: Path) -> Path:
    atomic_write_json(path, gate)
    return path
