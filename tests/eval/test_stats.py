"""pass@k, standard errors, intervals, paired differences and maj@k against hand-computed values, scipy's
Wilson interval (tests only) and brute-force enumeration."""

import itertools
import math
import random
from fractions import Fraction

import pytest

from eval import stats


def test_pass_at_k_unbiased_estimator():
    assert stats.pass_at_k(4, 0, 1) == 0.0
    assert stats.pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert stats.pass_at_k(4, 1, 4) == 1.0
    assert stats.pass_at_k(10, 3, 2) == pytest.approx(1 - 21 / 45)  # 1 - C(7,2)/C(10,2)
    assert stats.pass_at_k(32, 1, 8) == pytest.approx(8 / 32)
    with pytest.raises(ValueError):
        stats.pass_at_k(4, 5, 1)


def test_k_values_are_powers_of_two_up_to_n():
    assert stats.k_values(1) == [1]
    assert stats.k_values(4) == [1, 2, 4]
    assert stats.k_values(32) == [1, 2, 4, 8, 16, 32]
    assert stats.k_values(6) == [1, 2, 4, 6]


def _scipy_wilson(correct: int, total: int) -> tuple[float, float]:
    binomtest = pytest.importorskip("scipy.stats").binomtest
    ci = binomtest(correct, total).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def test_standard_error_is_the_sample_sd_over_problems():
    estimate = stats.mean_estimate([1.0, 0.0, 0.5, 0.5])
    # deviations .5 -.5 0 0 -> sample variance 0.5/3; SE = sqrt(0.5/3/4)
    assert estimate.mean == 0.5
    assert estimate.stderr == pytest.approx(math.sqrt(0.5 / 3 / 4))
    assert stats.mean_estimate([0.3]).stderr is None


@pytest.mark.parametrize("problems", [5, 20, 500])
def test_wilson_interval_at_none_and_all_correct(problems):
    none = stats.mean_estimate([0.0] * problems).ci95
    every = stats.mean_estimate([1.0] * problems).ci95
    # by hand at p = 0: [0, z^2 / (m + z^2)]; at p = 1: [m / (m + z^2), 1]
    z2 = stats.Z95**2
    assert none == (0.0, pytest.approx(z2 / (problems + z2)))
    assert every == (pytest.approx(problems / (problems + z2)), 1.0)
    assert none[1] > 0 and every[0] < 1  # never a zero-width claim of certainty
    assert none == pytest.approx(_scipy_wilson(0, problems), abs=1e-6)
    assert every == pytest.approx(_scipy_wilson(problems, problems), abs=1e-6)


def test_wilson_interval_of_20_problems_all_wrong_is_0_to_16_1_percent():
    low, high = stats.mean_estimate([0.0] * 20).ci95
    assert low == 0.0 and high == pytest.approx(0.16113, abs=1e-5)  # 3.8415 / 23.8415


def test_one_problem_has_no_interval():
    assert stats.mean_estimate([0.25]).ci95 is None
    assert stats.paired_difference({"a": 1.0}, {"a": 0.0}).ci95 is None
    assert not stats.paired_difference({"a": 1.0}, {"a": 0.0}).significant


def test_wilson_interval_of_5_problems_by_hand_and_scipy():
    # 3 of 5: centre (0.6 + 1.92/5) / (1 + 3.84/5); half = 1.96/(1.768) sqrt(0.24/5 + 3.84/100)
    low, high = stats.mean_estimate([1, 1, 1, 0, 0]).ci95
    z2 = stats.Z95**2
    centre = (0.6 + z2 / 10) / (1 + z2 / 5)
    half = stats.Z95 / (1 + z2 / 5) * math.sqrt(0.24 / 5 + z2 / 100)
    assert (low, high) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert (low, high) == pytest.approx(_scipy_wilson(3, 5), abs=1e-6)
    assert (low, high) == pytest.approx((0.2307, 0.8824), abs=1e-4)
    # per-problem rates with the same mean: the same interval (the bound on their variance is the same)
    assert stats.mean_estimate([0.75, 0.5, 0.5, 0.5, 0.75]).ci95 == pytest.approx((low, high))


def test_wilson_agrees_with_the_normal_interval_at_500_problems():
    scores = [1.0] * 230 + [0.0] * 270
    estimate = stats.mean_estimate(scores)
    normal = (estimate.mean - stats.Z95 * estimate.stderr, estimate.mean + stats.Z95 * estimate.stderr)
    assert estimate.ci95 == pytest.approx(normal, abs=0.002)
    assert estimate.ci95 == pytest.approx(_scipy_wilson(230, 500), abs=1e-6)


def test_wilson_is_conservative_when_samples_of_a_problem_disagree():
    scores = [0.25, 0.5, 0.75, 0.5] * 125  # little spread across 500 problems
    estimate = stats.mean_estimate(scores)
    low, high = estimate.ci95
    assert (
        low < estimate.mean - stats.Z95 * estimate.stderr
        and high > estimate.mean + stats.Z95 * estimate.stderr
    )


def test_newcombe_paired_interval_matches_its_2x2_formula():
    # 0/1 scores on 30 problems: both right 10, A only 8, B only 2, neither 10
    a = [1] * 10 + [1] * 8 + [0] * 2 + [0] * 10
    b = [1] * 10 + [0] * 8 + [1] * 2 + [0] * 10
    diff = stats.paired_difference({str(i): x for i, x in enumerate(a)}, {str(i): y for i, y in enumerate(b)})
    (la, ua), (lb, ub) = _scipy_wilson(18, 30), _scipy_wilson(12, 30)
    pa, pb = 0.6, 0.4
    e, f, g, h = 18, 12, 12, 18  # A right, A wrong, B right, B wrong
    phi = (10 * 10 - 8 * 2) / math.sqrt(e * f * g * h)
    low = 0.2 - math.sqrt((pa - la) ** 2 - 2 * phi * (pa - la) * (ub - pb) + (ub - pb) ** 2)
    high = 0.2 + math.sqrt((ua - pa) ** 2 - 2 * phi * (ua - pa) * (pb - lb) + (pb - lb) ** 2)
    assert diff.mean == pytest.approx(0.2)
    assert diff.ci95 == pytest.approx((low, high), abs=1e-6)
    assert diff.significant == (low > 0)


def test_paired_difference_uses_shared_problems_only():
    student = {"a": 1.0, "b": 0.5, "c": 0.0}
    teacher = {"a": 0.5, "b": 0.5, "c": 0.0, "d": 1.0}
    diff = stats.paired_difference(student, teacher)
    assert diff.problems == 3
    assert diff.mean == pytest.approx(1 / 6)
    assert diff.stderr == pytest.approx(1 / 6)  # sd of d = .5, 0, 0 over sqrt(3)
    assert diff.significant is False
    assert stats.paired_difference(student, {"z": 1.0}) is None


def test_equal_models_at_the_extremes_keep_a_width():
    """Both fail every problem: every d_i = 0, where a bootstrap or the normal interval says [0, 0]."""
    zero = {str(i): 0.0 for i in range(20)}
    diff = stats.paired_difference(zero, dict(zero))
    assert diff.ci95 == (pytest.approx(-0.16113, abs=1e-5), pytest.approx(0.16113, abs=1e-5))
    assert not diff.significant


def test_a_consistent_difference_is_significant_and_a_noisy_one_is_not():
    better = stats.paired_difference({str(i): 1.0 for i in range(20)}, {str(i): 0.5 for i in range(20)})
    assert better.significant and better.ci95[0] > 0
    few = stats.paired_difference({str(i): 1.0 for i in range(3)}, {str(i): 0.5 for i in range(3)})
    assert not few.significant  # 3 problems cannot tell 100% from 50%
    noisy = stats.paired_difference({"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0})
    assert noisy.mean == 0 and not noisy.significant
    clear = stats.paired_difference(
        {str(i): v for i, v in enumerate([1, 1, 1, 1, 0.75, 1, 1, 0.75])},
        {str(i): v for i, v in enumerate([0, 0.25, 0, 0, 0, 0.25, 0, 0])},
    )
    assert clear.significant and clear.ci95[0] > 0


def test_intervals_cover_at_small_sizes():
    """Coverage by simulation: 10 problems of true solve rate 0.9 (each all right or all wrong)."""
    rng = random.Random(0)
    trials, covered = 2000, 0
    for _ in range(trials):
        low, high = stats.mean_estimate([float(rng.random() < 0.9) for _ in range(10)]).ci95
        covered += low <= 0.9 <= high
    assert covered / trials >= 0.92


def _brute_maj(votes, k) -> float:
    total = Fraction(0)
    right = {answer for answer, correct in votes if correct and answer is not None}
    for subset in itertools.combinations(range(len(votes)), k):
        counts: dict[str, int] = {}
        for i in subset:
            if votes[i][0] is not None:
                counts[votes[i][0]] = counts.get(votes[i][0], 0) + 1
        if counts:
            top = max(counts.values())
            tied = [answer for answer, count in counts.items() if count == top]
            total += Fraction(sum(answer in right for answer in tied), len(tied))
    return float(total / math.comb(len(votes), k))


def test_maj_at_k_equals_brute_force_enumeration():
    rng = random.Random(7)
    for _ in range(150):
        n = rng.randint(1, 9)
        votes = [(a, a == "2") for a in (rng.choice([None, "1", "2", "3"]) for _ in range(n))]
        for k in range(1, n + 1):
            assert stats.maj_at_k(votes, k) == pytest.approx(_brute_maj(votes, k), abs=1e-12), (votes, k)


def test_maj_at_k_by_hand():
    votes = [("7", True), ("7", True), ("3", False), (None, False)]
    assert stats.maj_at_k(votes, 1) == pytest.approx(0.5)  # a random single sample: 2 of 4 right
    # pairs (6): 77 -> 1; 7,3 twice -> tie 1/2 each; 7,None twice -> 1; 3,None -> 0; so (1 + 1 + 2) / 6
    assert stats.maj_at_k(votes, 2) == pytest.approx(4 / 6)
    assert stats.maj_at_k(votes, 4) == 1.0
    assert stats.maj_at_k([(None, False)] * 3, 2) == 0.0
    with pytest.raises(ValueError):
        stats.maj_at_k(votes, 5)
