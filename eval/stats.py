"""The numbers the eval stage reports, computed from per-problem results (one place, hand-checked in tests).

Per problem i (of m) we keep n_i samples, c_i correct, and the samples' extracted answers. pass@1 is the mean
p = (1/m) sum c_i/n_i: *problems* are the unit (the n samples of one problem are not independent draws of the
benchmark).

**pass@1's 95% interval: Wilson score interval with n = m problems** (Wilson 1927). The interval is every q
with |p - q| <= z sqrt(q (1 - q) / m), i.e.

    centre = (p + z^2 / 2m) / (1 + z^2 / m),  half = z / (1 + z^2 / m) sqrt(p (1 - p) / m + z^2 / 4m^2).

Why it holds at every size: a per-problem rate X_i = c_i/n_i lies in [0, 1], so Var(X_i) <= q (1 - q) for a
mean q (equality when each problem is all right or all wrong); the mean of m problems therefore has variance
at most q (1 - q) / m, the Bernoulli variance Wilson inverts. Solving for q (instead of plugging in p as the
normal interval does) keeps the interval inside [0, 1] without clipping and gives it width at p = 0 and p = 1:
0 of 20 problems -> [0, 16.1%], where the old "p +/- 1.96 SE" said [0, 0]. With large m and 0/1 problems it
agrees with the normal interval; when a problem's samples disagree (0 < c_i < n_i) it is conservative (wider
than p +/- 1.96 sd/sqrt(m), which the row still reports as ``stderr``). Deterministic, no resampling.
A row of one problem has no interval ("no interval": one problem says nothing about a benchmark).

**Paired differences: Newcombe's hybrid score interval for paired data** (Newcombe 1998, Stat. Med. 17:2635,
method 10). For A - B on the m problems both answered, with Wilson limits (l_A, u_A), (l_B, u_B) and phi the
correlation of the per-problem rates (0 when one side has no spread):

    low  = d - sqrt((p_A - l_A)^2 - 2 phi (p_A - l_A)(u_B - p_B) + (u_B - p_B)^2)
    high = d + sqrt((u_A - p_A)^2 - 2 phi (u_A - p_A)(p_B - l_B) + (p_B - l_B)^2)

With 0/1 per-problem scores phi is Newcombe's phi of the 2x2 table. A bootstrap over problems (or the old
"mean +/- 1.96 sd(d)/sqrt(m)") collapses to [0, 0] when every d_i is equal, e.g. two models that both fail all
20 problems; this interval keeps the width the two Wilson intervals carry. The difference is *significant*
when its interval excludes 0; pairing (phi > 0) narrows it, as models share the problems' difficulty.

**maj@k** (:func:`maj_at_k`): the expected correctness of a majority vote over k of the n samples drawn
without replacement, averaged exactly over all C(n, k) subsets (no sampling); ties between answers with the
same top count are broken uniformly at random, i.e. a tied subset scores the share of its tied answers that
are correct; samples with no extracted answer do not vote (a subset with no votes scores 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

Z95 = 1.959964

INTERVAL_METHOD = (
    "95% CI of pass@1: Wilson score interval with n = the number of problems (valid at 0% and 100% and for "
    "few problems; conservative when a problem's samples disagree); a row of one problem has no interval."
)
DIFFERENCE_METHOD = (
    "Differences are paired over the problems both rows answered; 95% CI: Newcombe's hybrid score interval "
    "for paired data (1998, method 10), built from the two Wilson intervals and the correlation of the "
    "per-problem scores; significant = the CI excludes 0."
)


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


def wilson_interval(p: float, m: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a mean ``p`` of ``m`` values in [0, 1] (see the module docstring)."""
    if m < 1 or not 0.0 <= p <= 1.0:
        raise ValueError(f"wilson_interval needs m >= 1 and 0 <= p <= 1, got p={p} m={m}")
    z2 = z * z
    centre = (p + z2 / (2 * m)) / (1 + z2 / m)
    half = z / (1 + z2 / m) * math.sqrt(p * (1 - p) / m + z2 / (4 * m * m))
    # exact limits at the edges (floating point leaves ~1e-17 otherwise)
    return (0.0 if p == 0 else max(0.0, centre - half), 1.0 if p == 1 else min(1.0, centre + half))


@dataclass(frozen=True)
class Estimate:
    mean: float
    stderr: float | None  # sd over problems / sqrt(problems); None with fewer than two problems
    problems: int

    @property
    def ci95(self) -> tuple[float, float] | None:
        """Wilson score interval over problems; None ("no interval") for a single problem."""
        if self.problems < 2:
            return None
        return wilson_interval(min(1.0, max(0.0, self.mean)), self.problems)


def mean_estimate(values: Sequence[float]) -> Estimate:
    """Mean with the standard error over items (sample sd, ddof=1); its ci95 is the Wilson interval."""
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
    stderr: float | None  # sd(d_i) / sqrt(problems), for reference; the interval does not use it
    problems: int
    ci95: tuple[float, float] | None = None  # Newcombe's paired interval; None for a single problem

    @property
    def significant(self) -> bool:
        """True when the 95% interval excludes 0."""
        if self.ci95 is None:
            return False
        low, high = self.ci95
        return low > 0 or high < 0


def rounded(interval: tuple[float, float] | None, places: int = 4) -> list[float] | None:
    """An interval as the reports write it: a rounded [low, high] list, or None when there is none."""
    return None if interval is None else [round(interval[0], places), round(interval[1], places)]


def _correlation(xs: Sequence[float], ys: Sequence[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return 0.0 if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def newcombe_paired(xs: Sequence[float], ys: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """Newcombe's (1998) hybrid score interval for mean(xs) - mean(ys), paired item by item."""
    m = len(xs)
    pa, pb = sum(xs) / m, sum(ys) / m
    (la, ua), (lb, ub) = wilson_interval(_unit(pa), m, z), wilson_interval(_unit(pb), m, z)
    phi = _correlation(xs, ys)
    d = pa - pb
    low = (pa - la) ** 2 - 2 * phi * (pa - la) * (ub - pb) + (ub - pb) ** 2
    high = (ua - pa) ** 2 - 2 * phi * (ua - pa) * (pb - lb) + (pb - lb) ** 2
    return (max(-1.0, d - math.sqrt(max(0.0, low))), min(1.0, d + math.sqrt(max(0.0, high))))


def _unit(p: float) -> float:
    return min(1.0, max(0.0, p))


def paired_difference(a: dict[str, float], b: dict[str, float]) -> Difference | None:
    """Paired difference of per-problem scores ``a - b`` over the problems both have; None if none shared."""
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    xs, ys = [a[key] for key in shared], [b[key] for key in shared]
    estimate = mean_estimate([x - y for x, y in zip(xs, ys, strict=True)])
    interval = newcombe_paired(xs, ys) if len(shared) > 1 else None
    return Difference(estimate.mean, estimate.stderr, estimate.problems, interval)


def pass_at_k_mean(counts: Sequence[tuple[int, int]], k: int) -> float:
    """Mean pass@k over problems given (n, c) per problem."""
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)


def maj_at_k(votes: Sequence[tuple[str | None, bool]], k: int) -> float:
    """Exact maj@k of one problem: the mean, over all C(n, k) subsets of its n samples, of a majority vote's
    correctness (rules in the module docstring). ``votes`` holds (answer, correct) per sample; answer None
    for a sample with nothing extracted. Computed by dynamic programming over answer classes, not by listing
    subsets: for each top count t, every class takes x < t samples or exactly t (a tie at the top)."""
    n = len(votes)
    if not 1 <= k <= n:
        raise ValueError(f"maj_at_k needs 1 <= k <= n, got n={n} k={k}")
    sizes: dict[str, int] = {}
    right: dict[str, bool] = {}
    for answer, correct in votes:
        if answer is not None:
            sizes[answer] = sizes.get(answer, 0) + 1
            right[answer] = right.get(answer, False) or bool(correct)
    unanswered = n - sum(sizes.values())
    classes = [(size, right[answer]) for answer, size in sizes.items()]
    total = sum(
        _top_at(t, classes, unanswered, k) for t in range(1, min(k, max(sizes.values(), default=0)) + 1)
    )
    return total / math.comb(n, k)


def _top_at(t: int, classes: list[tuple[int, bool]], unanswered: int, k: int) -> float:
    """Sum over k-subsets whose top answer count is exactly t of (correct tied answers / tied answers)."""
    ties_max = k // t
    # ways[s][j]: subsets of s samples with j classes at t; hits[s][j]: their total of correct classes at t
    ways = [[0] * (ties_max + 1) for _ in range(k + 1)]
    hits = [[0] * (ties_max + 1) for _ in range(k + 1)]
    ways[0][0] = 1
    for size, correct in classes:
        new_ways = [[0] * (ties_max + 1) for _ in range(k + 1)]
        new_hits = [[0] * (ties_max + 1) for _ in range(k + 1)]
        for s in range(k + 1):
            for j in range(ties_max + 1):
                w, h = ways[s][j], hits[s][j]
                if not w:
                    continue
                for x in range(min(size, t - 1, k - s) + 1):
                    choose = _comb(size, x)
                    new_ways[s + x][j] += w * choose
                    new_hits[s + x][j] += h * choose
                if size >= t and s + t <= k and j < ties_max:
                    choose = _comb(size, t)
                    new_ways[s + t][j + 1] += w * choose
                    new_hits[s + t][j + 1] += (h + w * correct) * choose
        ways, hits = new_ways, new_hits
    total = 0.0
    for s in range(k + 1):
        fill = _comb(unanswered, k - s)  # the rest of the subset: samples that cast no vote
        if fill:
            total += sum(hits[s][j] * fill / j for j in range(1, ties_max + 1))
    return total


@lru_cache(maxsize=4096)
def _comb(n: int, k: int) -> int:
    return math.comb(n, k) if 0 <= k <= n else 0


def maj_at_k_mean(problems: Sequence[Sequence[tuple[str | None, bool]]], k: int) -> float:
    """Mean maj@k over problems (each a list of (answer, correct) votes with at least k samples)."""
    return sum(maj_at_k(votes, k) for votes in problems) / len(problems)
