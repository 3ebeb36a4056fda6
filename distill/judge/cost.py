"""What the judge cost: calls made and answered from the cache, tokens, unparsed replies, timeouts and failures
per use, and an estimated price when the recipe gives ``judge.price_per_million: {input, output}``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JudgeUsage:
    calls: int = 0  # answered by the server (each counted once, however many retries it took)
    cached: int = 0  # answered from the run's cache: no request made
    prompt_tokens: int = 0
    completion_tokens: int = 0
    unparsed: int = 0  # judge_unparsed: a reply whose verdict line did not parse (never a pass)
    timeouts: int = 0  # past the caller's deadline (a GRPO reward scores 0)
    failed: int = 0  # retries exhausted
    retries: Counter[str] = field(default_factory=Counter)

    def report(self, prices: Any = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "calls": self.calls,
            "cached": self.cached,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "judge_unparsed": self.unparsed,
            "timeouts": self.timeouts,
            "failed": self.failed,
        }
        if self.retries:
            out["retries"] = dict(sorted(self.retries.items()))
        if prices is not None:
            out["estimated_usd"] = estimated_usd(self.prompt_tokens, self.completion_tokens, prices)
        return out


def estimated_usd(prompt_tokens: int, completion_tokens: int, prices: Any) -> float:
    """Tokens the server really processed (cache hits cost nothing) at the recipe's per-million prices."""
    return round((prompt_tokens * prices.input + completion_tokens * prices.output) / 1e6, 6)


def total_report(usages: dict[str, JudgeUsage], prices: Any = None) -> dict[str, Any]:
    """Per use and in all: what goes to the manifest and the stage reports."""
    total = JudgeUsage()
    for usage in usages.values():
        for name in (
            "calls",
            "cached",
            "prompt_tokens",
            "completion_tokens",
            "unparsed",
            "timeouts",
            "failed",
        ):
            setattr(total, name, getattr(total, name) + getattr(usage, name))
        total.retries.update(usage.retries)
    return {"total": total.report(prices), **{use: u.report(prices) for use, u in sorted(usages.items())}}
