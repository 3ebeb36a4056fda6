"""Wall time, device-hours and (with ``report.prices``) an estimated price per stage.

Device count per stage comes from the recipe's launch settings: a student's or the GRPO teacher's
``launch.nproc x launch.nnodes``; the vLLM teacher's and eval's ``tensor_parallel_size x data_parallel_size``;
one device for the transformers/hf backends; none for an API teacher, a served eval, filter and publish (they
run on the host's CPUs). An API teacher is priced by the prompt and completion tokens the server reported.
The judge's calls (filter.judge, the GRPO judge reward, eval.judged) are counted per stage from what each stage
recorded (distill/judge/cost.py), priced with ``judge.price_per_million``.
"""

from __future__ import annotations

from typing import Any


def devices(name: str, recipe: dict[str, Any]) -> int:
    family, _, student = name.partition(":")
    if family == "sft":
        found = [s for s in recipe.get("students") or [] if s.get("name") == student]
        launch = (found[0] if found else {}).get("launch") or {}
        return int(launch.get("nproc", 1)) * int(launch.get("nnodes", 1))
    if family == "grpo":
        launch = (recipe.get("grpo") or {}).get("launch") or {}
        return int(launch.get("nproc", 1)) * int(launch.get("nnodes", 1))
    section = (recipe.get("teacher") if family == "generate" else recipe.get("eval")) or {}
    if family not in ("generate", "eval") or section.get("backend") in ("openai", "served"):
        return 0
    if section.get("backend") == "vllm":
        vllm = section.get("vllm") or {}
        return int(vllm.get("tensor_parallel_size", 1)) * int(vllm.get("data_parallel_size", 1))
    return 1


def cost_rows(stages: list[dict[str, Any]], recipe: dict[str, Any]) -> list[dict[str, Any]]:
    prices = (recipe.get("report") or {}).get("prices") or {}
    api_teacher = (recipe.get("teacher") or {}).get("backend") == "openai"
    rows = []
    for stage in stages:
        seconds = stage.get("seconds")
        count = devices(stage["name"], recipe)
        row: dict[str, Any] = {"stage": stage["name"], "seconds": seconds, "devices": count}
        row["device_hours"] = round(seconds * count / 3600, 4) if seconds is not None else None
        price = None
        if prices.get("device_hour") is not None and row["device_hours"] is not None:
            price = row["device_hours"] * prices["device_hour"]
        if stage["family"] == "generate" and api_teacher:
            metrics = stage.get("metrics") or {}
            row["prompt_tokens"] = metrics.get("prompt_tokens")
            row["completion_tokens"] = metrics.get("completion_tokens")
            token_price = _token_price(row, prices)
            if token_price is not None:
                price = (price or 0.0) + token_price
        row["price"] = round(price, 4) if price is not None else None
        rows.append(row)
    return rows


def _token_price(row: dict[str, Any], prices: dict[str, Any]) -> float | None:
    parts = [
        (row.get("prompt_tokens"), prices.get("input_per_million")),
        (row.get("completion_tokens"), prices.get("output_per_million")),
    ]
    known = [(tokens or 0) / 1e6 * price for tokens, price in parts if price is not None]
    return sum(known) if known else None


def price_per_point(rows: list[dict[str, Any]], comparison: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Total price over pass@1 points gained over the base model, per student and benchmark (needs a base
    row in the comparison, i.e. eval.include_base, and prices)."""
    total = sum(r["price"] for r in rows if r.get("price") is not None)
    if not comparison or not any(r.get("price") is not None for r in rows):
        return []
    base = {r["task"]: r["pass_at_1"] for r in comparison.get("rows", []) if r.get("role") == "base"}
    out = []
    for row in comparison.get("rows", []):
        if row.get("role") != "student" or row["task"] not in base:
            continue
        gained = (row["pass_at_1"] - base[row["task"]]) * 100
        per_point = round(total / gained, 4) if gained > 0 else None
        out.append({"model": row["model"], "task": row["task"], "points": gained, "per_point": per_point})
    return out


def judge_usage(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The judge's report a stage recorded: eval's ``judge_cost``, filter's ``judge.cost``, GRPO's ``judge``."""
    if metrics.get("judge_cost"):
        return metrics["judge_cost"]
    judge = metrics.get("judge") or {}
    return judge.get("cost") or (judge if "total" in judge else None)


def judge_rows(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per stage that called the judge: model, calls, cache hits, tokens, failures, estimated price."""
    rows = []
    for stage in stages:
        usage = judge_usage(stage.get("metrics") or {})
        if usage:
            rows.append({"stage": stage["name"], "model": usage.get("model"), **usage["total"]})
    return rows
