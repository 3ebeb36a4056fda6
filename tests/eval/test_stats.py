"""pass@k, standard errors, intervals and paired differences against hand-computed values."""

import math

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


def test_mean_standard_error_and_interval_over_problems():
    estimate = stats.mean_estimate([1.0, 0.0, 0.5, 0.5])
    # deviations .5 -.5 0 0 -> sample variance 0.5/3; SE = sqrt(0.5/3/4)
    assert estimate.mean == 0.5
    assert estimate.stderr == pytest.approx(math.sqrt(0.5 / 3 / 4))
    low, high = estimate.ci95
    assert low == pytest.approx(0.099924, abs=1e-6) and high == pytest.approx(
        0.900076, abs=1e-6
    )  # 1.96 x 0.20412
    assert stats.mean_estimate([0.9, 1.0, 1.0]).ci95[1] == 1.0  # clipped to [0, 1]
    assert stats.mean_estimate([0.3]).ci95 is None  # one problem: no spread, no interval


def test_paired_difference_uses_shared_problems_only():
    student = {"a": 1.0, "b": 0.5, "c": 0.0}
    teacher = {"a": 0.5, "b": 0.5, "c": 0.0, "d": 1.0}
    diff = stats.paired_difference(student, teacher)
    # d = .5, 0, 0 -> mean 1/6; sample variance ((1/3)^2 + 2 (1/6)^2) / 2 = 1/12; SE = sqrt(1/12/3) = 1/6
    assert diff.problems == 3
    assert diff.mean == pytest.approx(1 / 6)
    assert diff.stderr == pytest.approx(1 / 6)
    assert diff.significant is False
    assert stats.paired_difference(student, {"z": 1.0}) is None


def test_a_consistent_difference_is_significant_and_a_noisy_one_is_not():
    better = stats.paired_difference({str(i): 1.0 for i in range(5)}, {str(i): 0.5 for i in range(5)})
    assert better.stderr == 0 and better.significant
    noisy = stats.paired_difference({"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0})
    assert noisy.mean == 0 and not noisy.significant
    clear = stats.paired_difference(
        {str(i): v for i, v in enumerate([1, 1, 1, 1, 0.75, 1, 1, 0.75])},
        {str(i): v for i, v in enumerate([0, 0.25, 0, 0, 0, 0.25, 0, 0])},
    )
    assert clear.significant and clear.ci95[0] > 0
