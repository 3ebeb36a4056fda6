"""How far a judge agrees with the verifier where both decided: raw agreement and Cohen's kappa.

Cohen's kappa corrects agreement for chance: with ``p_o`` the share of items both label alike and ``p_e`` the
share two independent raters with the same label rates would agree on (sum over labels of the product of
each rater's share), ``kappa = (p_o - p_e) / (1 - p_e)``: 1 is perfect agreement, 0 no better than chance, below
0 worse. When both raters give one and the same label to everything ``p_e`` is 1 and kappa is undefined (None).
"""

from __future__ import annotations

from collections import Counter
from typing import Any


def cohen_kappa(first: list[Any], second: list[Any]) -> float | None:
    if len(first) != len(second):
        raise ValueError("both raters must label the same items")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    counts_a, counts_b = Counter(first), Counter(second)
    expected = sum(counts_a[label] * counts_b[label] for label in counts_a) / (n * n)
    if expected >= 1:
        return None
    return (observed - expected) / (1 - expected)


def agreement(judge: list[bool], verifier: list[bool]) -> dict[str, Any]:
    """Counts, the agreement share and kappa of paired boolean verdicts (judge vs verifier)."""
    n = len(judge)
    both = Counter(zip(judge, verifier, strict=True))
    kappa = cohen_kappa(judge, verifier)
    return {
        "n": n,
        "agree": both[(True, True)] + both[(False, False)],
        "judge_yes_verifier_no": both[(True, False)],
        "judge_no_verifier_yes": both[(False, True)],
        "agreement": round((both[(True, True)] + both[(False, False)]) / n, 4) if n else None,
        "cohen_kappa": None if kappa is None else round(kappa, 4),
    }
