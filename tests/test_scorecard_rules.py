"""The verdict rules of the scorecard at their edges (cases found by ``make mutation``).

Reductions are stand-ins with the fields the rules read (``kind``, ``lo``, ``hi``, ``bound``), so
every expected verdict is known from the documented rule.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from jointtask_lib import scorecard as S


def red(kind="estimate", lo=None, hi=None, bound=None):
    return SimpleNamespace(kind=kind, lo=lo, hi=hi, bound=bound, value=None)


def test_factor_interval_of_every_kind():
    assert S.factor_interval(None) is None
    assert S.factor_interval(red("inconclusive")) is None
    assert S.factor_interval(red("above", bound=3.0)) == (3.0, math.inf)
    assert S.factor_interval(red("below", bound=0.8)) == (0.0, 0.8)
    assert S.factor_interval(red(lo=1.2, hi=2.0)) == (1.2, 2.0)
    # half a CI is no CI
    assert S.factor_interval(red(lo=1.2, hi=None)) is None
    assert S.factor_interval(red(lo=None, hi=2.0)) is None
    with pytest.raises(ValueError, match=r"'kind' of a reduction must be estimate, above, below or inconclusive; "
                                         r"got 'sideways'"):
        S.factor_interval(red("sideways"))


@pytest.mark.parametrize("r, cls", [
    (None, "undecided"), (red("inconclusive"), "undecided"), (red(lo=1.01, hi=9.0), "benefit"),
    (red(lo=1.0, hi=9.0), "undecided"), (red(lo=0.5, hi=1.49), "no benefit"), (red(lo=0.5, hi=1.5), "undecided"),
    (red("below", bound=1.2), "no benefit"), (red("above", bound=1.0), "undecided"),
])
def test_classify_factor_classes(r, cls):
    assert S.classify_factor(r) == cls


def test_verdicts_pass_the_tolerance_through():
    r = red(lo=0.8, hi=1.8)  # no benefit only when the equivalence margin is above 1.8
    assert S.verdict_benefit(r) == "inconclusive" and S.verdict_no_benefit(r) == "inconclusive"
    assert S.verdict_benefit(r, tol=2.0) == "not reproduced"
    assert S.verdict_no_benefit(r, tol=2.0) == "reproduced"


def test_magnitude_check_statuses_and_sentences():
    assert S.magnitude_check(red(lo=2.0, hi=5.0), None) == ("no paper value", "no paper value to compare with")
    assert S.magnitude_check(red(lo=2.0, hi=5.0), 3.6) == ("consistent", "paper 3.6x is consistent with our CI [2, 5]")
    assert S.magnitude_check(red(lo=2.0, hi=5.0), (2.0, 7.0)) == ("consistent", "paper 2-7x is consistent with our CI [2, 5]")
    # touching counts as consistent, on both sides
    assert S.magnitude_check(red(lo=2.0, hi=3.6), 3.6)[0] == "consistent"
    assert S.magnitude_check(red(lo=7.0, hi=9.0), (2.0, 7.0))[0] == "consistent"
    assert S.magnitude_check(red(lo=1.1, hi=2.0), 3.6) == ("ours smaller", "paper 3.6x lies above our CI [1.1, 2]: ours is smaller")
    assert S.magnitude_check(red(lo=8.0, hi=9.0), (2.0, 7.0)) == ("ours larger", "paper 2-7x lies below our CI [8, 9]: ours is larger")
    assert S.magnitude_check(red("above", bound=4.0), 3.6) == ("ours larger", "paper 3.6x lies below our > 4: ours is larger")
    assert S.magnitude_check(red("below", bound=2.0), 3.6) == ("ours smaller", "paper 3.6x lies above our < 2: ours is smaller")
    assert S.magnitude_check(red("below", bound=5.0), 3.6) == ("consistent", "paper 3.6x is consistent with our < 5")
    assert S.magnitude_check(red("inconclusive"), 3.6) == ("not comparable",
                                                           "paper 3.6x: not comparable (we have no CI or bound)")
    for bad in (0.0, -1.0, math.inf, (3.0, 2.0), (0.0, 2.0), (1.0, math.inf)):
        with pytest.raises(ValueError, match="'paper' must be a positive number"):
            S.magnitude_check(red(lo=2.0, hi=5.0), bad)


def _exp(value, lo, hi, skipped=()):
    return SimpleNamespace(value=value, lo=lo, hi=hi, skipped=skipped)


def test_verdict_sublinear():
    assert S.verdict_sublinear(_exp(0.5, 0.3, 0.8)) == "reproduced"
    assert S.verdict_sublinear(_exp(1.5, 1.2, 1.8)) == "not reproduced"
    assert S.verdict_sublinear(_exp(0.9, 0.7, 1.0)) == "inconclusive"  # touching 1 decides nothing
    assert S.verdict_sublinear(_exp(0.5, 0.3, 0.8, skipped=(20,))) == "inconclusive"
    assert S.verdict_sublinear(_exp(0.5, None, None)) == "inconclusive"
    assert S.verdict_sublinear(_exp(None, None, None)) == "inconclusive"
    assert S.verdict_sublinear(None) == "inconclusive"


@pytest.mark.parametrize("rho, p, sign, alpha, verdict", [
    (0.9, 0.01, 1, 0.05, "reproduced"),
    (0.9, 0.05, 1, 0.05, "inconclusive"),  # p must be strictly below alpha
    (0.9, 0.049, 1, 0.05, "reproduced"),
    (0.9, 0.03, 1, 0.02, "inconclusive"),  # alpha is used
    (0.9, 0.03, 1, 0.04, "reproduced"),
    (-0.9, 0.01, 1, 0.05, "not reproduced"),
    (-0.9, 0.01, -1, 0.05, "reproduced"),
    (0.9, 0.01, -1, 0.05, "not reproduced"),
    (0.0, 0.01, 1, 0.05, "inconclusive"),  # no sign at all
    (float("nan"), 0.01, 1, 0.05, "inconclusive"),
    (float("inf"), 0.01, 1, 0.05, "inconclusive"),
    (None, 0.01, 1, 0.05, "inconclusive"),
    (0.9, None, 1, 0.05, "inconclusive"),
    (0.9, float("nan"), 1, 0.05, "inconclusive"),
])
def test_verdict_correlation(rho, p, sign, alpha, verdict):
    assert S.verdict_correlation(rho, p, expected_sign=sign, alpha=alpha) == verdict


def test_verdict_correlation_defaults_and_bad_sign():
    assert S.verdict_correlation(0.5, 0.04) == "reproduced"  # expected_sign=1, alpha=0.05
    assert S.verdict_correlation(0.5, 0.06) == "inconclusive"
    for bad in (0, 2, -2):
        with pytest.raises(ValueError, match=rf"^'expected_sign' must be 1 or -1; got {bad}$"):
            S.verdict_correlation(0.5, 0.01, expected_sign=bad)
