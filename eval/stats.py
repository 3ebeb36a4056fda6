"""The numbers the eval stage reports, computed from per-problem results (one place, hand-checked in tests).

Per problem we keep n (samples drawn), c (samples answered correctly) and whether the majority answer was
right. pass@1 is the mean over problems of c/n; its standard error treats *problems* as the unit (the n
samples of one problem are not independent draws of the benchmark): SE = sd(c_i/n_i) / sqrt(problems), with
the sample standard deviation (ddof=1). The 95% interval is pass@1 +/- 1.96 SE, clipped to [0, 1].

Two models are compared *paired over problems*: d_i = p_i(A) - p_i(B) on the problems both answered; the
difference is the mean of d_i, its SE = sd(d_i) / sqrt(problems), and it is significant when its 95%
interval excludes 0. Pairing removes the between-problem variance both models share, so it detects smaller
differences than comparing two independent intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959964


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimator (Chen et al. 2021) from n samples with c correct; needs k <= n."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def k_values(n: int) -> list[int]:
    """The k reported for n samples: powers of two below n, and n itself (n=32 -> 1 2 4 8 16 32)."""
    ks = [k for k in (2**i for i in range(11)) if k < n]
    return [*ks, n]


@dataclass(frozen=True)
class Estimate:
    mean: float
    stderr: float | None  # None with fewer than two problems: no spread to estimate
    problems: int

    @property
    def ci95(self) -> tuple[float, float] | None:
        if self.stderr is None:
            return None
        return (max(0.0, self.mean - Z95 * self.stderr), min(1.0, self.mean + Z95 * self.stderr))


def mean_estimate(values: Sequence[float]) -> Estimate:
    """Mean with the standard error over items (sample sd, ddof=1)."""
    count = len(values)
    if count == 0:
        raise ValueError("mean_estimate needs at least one value")
    mean = sum(values) / count
    if count < 2:
        return Estimate(mean, None, count)
    variance = sum((v - mean) ** 2 for v in values) / (count - 1)
    return Estimate(mean, math.sqrt(variance / count), count)


@dataclass(frozen=True)
class Difference:
    mean: float
    stderr: float | None
    problems: int

    @property
    def ci95(self) -> tuple[float, float] | None:
        if self.stderr is None:
            return None
        return (self.mean - Z95 * self.stderr, self.mean + Z95 * self.stderr)

    @property
    def significant(self) -> bool:
        """True when the 95% interval excludes 0 (a zero-variance nonzero difference counts too)."""
        if self.stderr is None:
            return False
        if self.stderr == 0:
            return self.mean != 0
        low, high = self.ci95
        return low > 0 or high < 0


def rounded(interval: tuple[float, float] | None, places: int = 4) -> list[float] | None:
    """An interval as the reports write it: a rounded [low, high] list, or None when there is none."""
    return None if interval is None else [round(interval[0], places), round(interval[1], places)]


def paired_difference(a: dict[str, float], b: dict[str, float]) -> Difference | None:
    """Paired difference of per-problem scores ``a - b`` over the problems both have; None if none shared."""
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    deltas = [a[key] - b[key] for key in shared]
    estimate = mean_estimate(deltas)
    return Difference(estimate.mean, estimate.stderr, estimate.problems)


def pass_at_k_mean(counts: Sequence[tuple[int, int]], k: int) -> float:
    """Mean pass@k over problems given (n, c) per problem."""
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
