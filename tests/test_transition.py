"""Learning transitions: logistic fit, transition point, bounds, bootstrap CIs, reduction factor.

Expected values are computed here from the generating curves (closed form, or a root finder on
the true curve), never read back from the library.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.optimize import brentq

from jointtask_lib.transition import (
    LogisticFit,
    Reduction,
    Transition,
    estimate_transition,
    fit_logistic,
    reduction_factor,
    scaling_exponent,
    transition_point,
)

SIZES = np.logspace(3, 6, 7)  # 1e3 .. 1e6, log step ln(10)/2 ~ 1.15


def curve(s, floor, top, s0, slope):
    """The generating curve, written out independently of the library."""
    return floor + (top - floor) / (1.0 + np.exp(-slope * (np.log(s) - np.log(s0))))


def true_transition(floor, top, s0, slope, level=0.8):
    """Size where the true curve reaches level*top, by root finding on the curve itself."""
    target = level * top
    return math.exp(brentq(lambda x: curve(math.exp(x), floor, top, s0, slope) - target, -50, 80, xtol=1e-13))


def long_format(sizes, n_seeds):
    return np.repeat(sizes, n_seeds), np.tile(np.arange(n_seeds), len(sizes))


def noisy(sizes_long, params, sd, rng):
    return np.clip(curve(sizes_long, *params) + rng.normal(0.0, sd, sizes_long.size), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Noise-free curves: exact recovery
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "top,s0,slope",
    [(1.0, 3e4, 2.0), (0.95, 2e4, 1.0), (0.9, 1e5, 3.0), (0.99, 5e3, 1.5)],
)
def test_noise_free_floor_zero_matches_closed_form(top, s0, slope):
    # Closed form from the brief: level*top reached at log s = log s0 + log(level/(1-level))/slope.
    expected = math.exp(math.log(s0) + math.log(0.8 / 0.2) / slope)
    assert expected == pytest.approx(true_transition(0.0, top, s0, slope), rel=1e-9)
    accs = curve(SIZES, 0.0, top, s0, slope)
    for chance in (None, 0.0):
        fit = fit_logistic(SIZES, accs, chance=chance)
        assert fit.success
        assert fit.top == pytest.approx(top, abs=1e-4)
        assert fit.slope == pytest.approx(slope, rel=1e-3)
        assert fit.midpoint == pytest.approx(s0, rel=1e-3)
        assert fit.rmse < 1e-4
        assert transition_point(fit) == pytest.approx(expected, rel=1e-3)
        t = estimate_transition(SIZES, accs, chance=chance, n_boot=0)
        assert t.kind == "estimate"
        assert t.value == pytest.approx(expected, rel=1e-3)
        assert t.threshold == pytest.approx(0.8 * top, abs=1e-4)
        assert t.lo is None and t.hi is None and t.bootstrap == "none"


def test_noise_free_with_floor_and_other_levels():
    params = (0.1, 0.95, 2e4, 1.7)
    accs = curve(SIZES, *params)
    fit = fit_logistic(SIZES, accs)
    assert fit.floor == pytest.approx(0.1, abs=1e-4)
    for level in (0.5, 0.8, 0.9):
        assert transition_point(fit, level) == pytest.approx(true_transition(*params, level=level), rel=1e-3)
    # fixed floor = chance: the same curve, one parameter fewer
    fit_c = fit_logistic(SIZES, accs, chance=0.1)
    assert fit_c.floor_fixed and fit_c.floor == 0.1
    assert transition_point(fit_c) == pytest.approx(true_transition(*params), rel=1e-3)
    # given asymptote: 0.8 * 1.0 = 0.8 on the curve
    target = brentq(lambda x: curve(math.exp(x), *params) - 0.8, 0, 30)
    assert transition_point(fit, asymptote=1.0) == pytest.approx(math.exp(target), rel=1e-3)
    t = estimate_transition(SIZES, accs, asymptote=1.0, n_boot=0)
    assert t.asymptote_source == "given" and t.value == pytest.approx(math.exp(target), rel=1e-3)


def test_repeated_seeds_noise_free_gives_same_fit():
    params = (0.0, 0.97, 4e4, 2.0)
    s, seeds = long_format(SIZES, 3)
    t = estimate_transition(s, curve(s, *params), seeds, n_boot=50)
    assert t.value == pytest.approx(true_transition(*params), rel=1e-3)
    # every seed is identical: every replicate equals the point estimate
    assert t.lo == pytest.approx(t.value, rel=1e-3) and t.hi == pytest.approx(t.value, rel=1e-3)


@settings(max_examples=60, deadline=None)
@given(
    floor=st.floats(0.0, 0.4),
    rise=st.floats(0.2, 0.6),
    log_s0=st.floats(5.0, 12.0),
    slope=st.floats(0.3, 5.0),
    level=st.floats(0.05, 0.95),
)
def test_transition_point_inverts_the_curve(floor, rise, log_s0, slope, level):
    top = floor + rise
    fit = LogisticFit(floor, top, math.exp(log_s0), slope, True, 0.0, 7, False, 1e3, 1e6)
    s = transition_point(fit, level)
    if level * top <= floor:
        assert s == 0.0
    else:
        assert 0.0 < s < math.inf
        assert curve(s, floor, top, math.exp(log_s0), slope) == pytest.approx(level * top, abs=1e-9)
        assert fit.predict([s])[0] == pytest.approx(level * top, abs=1e-9)


def test_transition_point_degenerate_thresholds():
    fit = LogisticFit(0.5, 0.9, 1e4, 2.0, True, 0.0, 7, False, 1e3, 1e6)
    assert transition_point(fit, 0.5) == 0.0  # 0.45 <= floor: above threshold everywhere
    assert transition_point(fit, 0.8, asymptote=1.0) == pytest.approx(
        math.exp(math.log(1e4) + math.log(0.3 / 0.1) / 2.0)
    )
    assert transition_point(fit, 0.95, asymptote=1.0) == math.inf  # 0.95 > top: never reached


# ----------------------------------------------------------------------------------------------
# Noisy curves: coverage of the CI
# ----------------------------------------------------------------------------------------------


def test_ci_covers_true_transition():
    # 40 independent noisy data sets (5 seeds each) with a 95% CI.  In a 300-trial simulation of
    # this setting (n_boot=200) the expanded CI covered the truth 93.7% of the time (plain
    # percentile: ~85%).
    # At 93.7%, P(>= 35 of 40) ~ 0.97; at 85%, ~0.4.
    params = (0.1, 0.9, 3e4, 1.5)
    truth = true_transition(*params)
    s, seeds = long_format(SIZES, 5)
    hits, widths = 0, []
    for trial in range(40):
        accs = noisy(s, params, 0.04, np.random.default_rng(100 + trial))
        t = estimate_transition(s, accs, seeds, n_boot=100, rng=trial)
        assert t.kind == "estimate" and t.bootstrap == "seeds" and t.n_seeds == 5
        assert t.lo_kind == t.hi_kind == "estimate"
        assert t.lo <= t.value <= t.hi
        hits += t.lo <= truth <= t.hi
        widths.append(t.hi / t.lo)
    assert hits >= 35
    assert np.median(widths) < 2.0  # informative, not trivially wide


def test_expanded_interval_is_wider_than_percentile():
    params = (0.1, 0.9, 3e4, 1.5)
    s, seeds = long_format(SIZES, 5)
    accs = noisy(s, params, 0.04, np.random.default_rng(3))
    e = estimate_transition(s, accs, seeds, n_boot=200, rng=1)
    p = estimate_transition(s, accs, seeds, n_boot=200, rng=1, ci_method="percentile")
    assert e.replicates == p.replicates and e.value == p.value
    assert e.lo < p.lo <= p.hi < e.hi
    # the plain percentile interval is the 2.5% / 97.5% points of the replicates
    logs = np.log(np.array(p.replicates))
    q_lo, med, q_hi = np.quantile(logs, [0.025, 0.5, 0.975])
    assert math.log(p.lo) == pytest.approx(q_lo, abs=1e-12)
    assert math.log(p.hi) == pytest.approx(q_hi, abs=1e-12)
    # expanded: distances from the median widened by sqrt(n/(n-1)) t_{n-1} / z, n = 5 seeds
    kappa = math.sqrt(5 / 4) * stats.t.ppf(0.975, 4) / stats.norm.ppf(0.975)
    assert kappa == pytest.approx(1.584, abs=1e-3)
    assert math.log(e.lo) == pytest.approx(med - kappa * (med - q_lo), abs=1e-12)
    assert math.log(e.hi) == pytest.approx(med + kappa * (q_hi - med), abs=1e-12)


def test_single_seed_uses_residual_bootstrap():
    params = (0.05, 0.95, 2e4, 1.5)
    accs = noisy(SIZES, params, 0.02, np.random.default_rng(0))
    t = estimate_transition(SIZES, accs, n_boot=100)
    assert t.kind == "estimate" and t.bootstrap == "residuals" and t.n_seeds == 1
    assert any("residual" in n for n in t.notes)
    assert t.lo < t.value < t.hi
    assert true_transition(*params) / 3 < t.value < true_transition(*params) * 3


def test_non_monotone_curve_gives_estimate_inside_range():
    params = (0.05, 0.95, 3e4, 1.5)
    truth = true_transition(*params)
    s, seeds = long_format(SIZES, 3)
    accs = curve(s, *params)
    accs[s == SIZES[5]] -= 0.25  # a dip at one size above the transition
    accs[s == SIZES[2]] += 0.10  # and a bump below it
    t = estimate_transition(s, accs, seeds, n_boot=100)
    assert t.kind == "estimate"
    assert SIZES[0] <= t.value <= SIZES[-1]
    # brackets: the truth lies between SIZES[3] and SIZES[4]; the estimate stays near them
    assert SIZES[3] <= truth <= SIZES[4]
    assert SIZES[2] <= t.value <= SIZES[5]


# ----------------------------------------------------------------------------------------------
# Bounds: never invent a number
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chance", [None, 0.1])
def test_all_at_chance_is_not_learned(chance):
    s, seeds = long_format(SIZES, 3)
    rng = np.random.default_rng(0)
    for accs in (np.full(s.size, 0.1), np.clip(0.1 + rng.normal(0, 0.01, s.size), 0, 1)):
        t = estimate_transition(s, accs, seeds, chance=chance, n_boot=100)
        assert t.kind == "above" and t.value is None and t.lo is None and t.hi is None
        assert t.bound == pytest.approx(SIZES[-1])
        assert t.asymptote_source == "fallback" and t.threshold == pytest.approx(0.8)
        assert t.frac_above == 1.0
        assert str(t) == "> 1.0e6 (largest tried)"


def test_partial_plateau_below_min_asymptote_is_not_learned():
    # a real but weak rise to 0.35: 80% of 0.35 is reached, yet the task is not learned
    s, seeds = long_format(SIZES, 3)
    accs = curve(s, 0.01, 0.35, 3e4, 2.0)
    t = estimate_transition(s, accs, seeds, n_boot=50)
    assert t.kind == "above" and t.asymptote_source == "fallback"
    # the user can lower the bar explicitly
    t2 = estimate_transition(s, accs, seeds, n_boot=0, min_asymptote=0.3)
    assert t2.kind == "estimate" and t2.value == pytest.approx(true_transition(0.01, 0.35, 3e4, 2.0), rel=1e-3)


def test_given_asymptote_not_reached_is_above():
    s, seeds = long_format(SIZES, 3)
    accs = curve(s, 0.0, 0.7, 3e4, 2.0)  # plateau 0.7 < 0.8 * 1.0
    t = estimate_transition(s, accs, seeds, asymptote=1.0, n_boot=50)
    assert t.kind == "above" and t.bound == pytest.approx(SIZES[-1]) and t.threshold == 0.8


def test_all_succeed_is_below():
    s, seeds = long_format(SIZES, 3)
    rng = np.random.default_rng(1)
    for accs in (np.full(s.size, 0.97), np.clip(0.97 + rng.normal(0, 0.01, s.size), 0, 1)):
        t = estimate_transition(s, accs, seeds, n_boot=50)
        assert t.kind == "below" and t.value is None and t.bound == pytest.approx(SIZES[0])
        assert str(t) == "< 1.0e3 (smallest tried)"


def test_transition_below_range_is_below():
    params = (0.0, 0.97, 1e3 / 30, 2.0)  # true transition ~67, far below 1e3
    assert true_transition(*params) < SIZES[0]
    t = estimate_transition(SIZES, curve(SIZES, *params), n_boot=20)
    assert t.kind == "below" and t.bound == pytest.approx(SIZES[0])


def test_transition_beyond_range_is_above():
    # the curve is still rising at the largest size: its true transition is ~4x beyond it
    params = (0.0, 0.97, 1e6, 2.0)
    assert true_transition(*params) > SIZES[-1]
    s, seeds = long_format(SIZES, 3)
    t = estimate_transition(s, curve(s, *params), seeds, n_boot=20)
    assert t.kind == "above" and t.bound == pytest.approx(SIZES[-1]) and t.value is None
    # same with a given asymptote of 1.0 and noise
    accs = noisy(s, params, 0.02, np.random.default_rng(2))
    assert estimate_transition(s, accs, seeds, asymptote=1.0, n_boot=20).kind == "above"


def test_ci_end_becomes_bound_when_replicates_leave_the_range():
    # true transition (7.7e5) just inside the largest size (1e6); with noisy seeds about a third
    # of the replicates are "above": the upper CI end must be a bound, not a number
    params = (0.05, 0.95, 4e5, 2.0)
    truth = true_transition(*params)
    assert SIZES[-2] < truth < SIZES[-1]
    s, seeds = long_format(SIZES, 5)
    t = estimate_transition(s, noisy(s, params, 0.08, np.random.default_rng(13)), seeds, n_boot=200, rng=0)
    assert t.kind == "estimate" and SIZES[0] <= t.value <= SIZES[-1]
    assert t.frac_above > 0.1
    reps = np.array(t.replicates)
    assert np.mean(reps == np.inf) == pytest.approx(t.frac_above)
    assert t.hi_kind == "above" and t.hi == pytest.approx(SIZES[-1])
    assert t.lo_kind == "estimate" and SIZES[0] <= t.lo <= t.value
    assert str(t).endswith(", > 1.0e6]")


def test_ci_end_widened_out_of_range_becomes_bound():
    # no replicate leaves the range, but the small-sample widening carries the upper end past
    # the largest size: still reported as a bound, never as an extrapolated number
    params = (0.05, 0.95, 3e5, 2.0)
    s, seeds = long_format(SIZES, 5)
    accs = noisy(s, params, 0.08, np.random.default_rng(11))
    t = estimate_transition(s, accs, seeds, n_boot=200, rng=0)
    assert t.kind == "estimate" and t.frac_above == 0.0
    assert max(t.replicates) <= SIZES[-1]
    assert t.hi_kind == "above" and t.hi == pytest.approx(SIZES[-1])
    p = estimate_transition(s, accs, seeds, n_boot=200, rng=0, ci_method="percentile")
    assert p.hi_kind == "estimate" and p.hi <= SIZES[-1]


def test_missing_runs_are_allowed():
    params = (0.05, 0.95, 3e4, 1.5)
    s, seeds = long_format(SIZES, 4)
    accs = noisy(s, params, 0.03, np.random.default_rng(5))
    keep = np.ones(s.size, bool)
    keep[[0, 9, 17]] = False  # three (size, seed) runs missing
    t = estimate_transition(s[keep], accs[keep], seeds[keep], n_boot=100)
    assert t.kind == "estimate" and t.n_seeds == 4
    assert true_transition(*params) / 2 < t.value < true_transition(*params) * 2


# ----------------------------------------------------------------------------------------------
# Reduction factor
# ----------------------------------------------------------------------------------------------


def test_reduction_noise_free_recovers_factor_4():
    single, joint = (0.02, 0.97, 8e4, 1.8), (0.02, 0.97, 2e4, 1.8)
    factor = true_transition(*single) / true_transition(*joint)
    assert factor == pytest.approx(4.0, rel=1e-9)
    s, seeds = long_format(SIZES, 3)
    r = reduction_factor((s, curve(s, *single), seeds), (s, curve(s, *joint), seeds), n_boot=50)
    assert isinstance(r, Reduction) and r.kind == "estimate"
    assert r.value == pytest.approx(4.0, rel=1e-3)
    assert r.lo == pytest.approx(4.0, rel=1e-3) and r.hi == pytest.approx(4.0, rel=1e-3)
    assert isinstance(r.single, Transition)
    assert r.single.value == pytest.approx(true_transition(*single), rel=1e-3)


def test_reduction_noisy_ci_contains_factor_4():
    single, joint = (0.05, 0.95, 1.2e5, 1.5), (0.05, 0.95, 3e4, 1.5)
    s, seeds = long_format(SIZES, 5)
    hits = 0
    for trial in range(3):
        rng = np.random.default_rng(200 + trial)
        r = reduction_factor(
            (s, noisy(s, single, 0.03, rng), seeds),
            (s, noisy(s, joint, 0.03, rng), seeds),
            n_boot=100,
            rng=trial,
        )
        assert r.kind == "estimate" and r.lo < r.value < r.hi
        assert 2.0 < r.value < 8.0
        hits += r.lo <= 4.0 <= r.hi
    assert hits == 3
    # paired resampling runs on the same seed labels and gives an estimate too
    rp = reduction_factor((s, noisy(s, single, 0.03, rng), seeds), (s, noisy(s, joint, 0.03, rng), seeds),
                          n_boot=50, paired=True)
    assert rp.paired and rp.kind == "estimate" and rp.lo <= rp.value <= rp.hi


def test_reduction_bound_propagation():
    s, seeds = long_format(SIZES, 3)
    smin, smax = SIZES[0], SIZES[-1]
    est_a, est_b = (0.02, 0.97, 3e4, 1.8), (0.02, 0.97, 1e4, 1.8)
    chance = np.full(s.size, 0.1)  # never learned
    perfect = np.full(s.size, 0.98)  # learned at every size
    A, B = curve(s, *est_a), curve(s, *est_b)
    ta, tb = true_transition(*est_a), true_transition(*est_b)
    kw = dict(n_boot=20)

    r = reduction_factor((s, chance, seeds), (s, B, seeds), **kw)  # single > smax, joint = tb
    assert r.kind == "above" and r.bound == pytest.approx(smax / tb, rel=1e-3) and r.value is None
    assert str(r).startswith("> ")
    r = reduction_factor((s, A, seeds), (s, chance, seeds), **kw)  # single = ta, joint > smax
    assert r.kind == "below" and r.bound == pytest.approx(ta / smax, rel=1e-3)
    r = reduction_factor((s, A, seeds), (s, perfect, seeds), **kw)  # single = ta, joint < smin
    assert r.kind == "above" and r.bound == pytest.approx(ta / smin, rel=1e-3)
    r = reduction_factor((s, perfect, seeds), (s, B, seeds), **kw)  # single < smin, joint = tb
    assert r.kind == "below" and r.bound == pytest.approx(smin / tb, rel=1e-3)
    r = reduction_factor((s, chance, seeds), (s, perfect, seeds), **kw)  # > smax / smin
    assert r.kind == "above" and r.bound == pytest.approx(smax / smin)
    for pair in [(chance, chance), (perfect, perfect)]:
        r = reduction_factor((s, pair[0], seeds), (s, pair[1], seeds), **kw)
        assert r.kind == "inconclusive" and r.value is None and r.bound is None
        assert str(r).startswith("inconclusive")


def test_reduction_bound_uses_the_estimated_side_ci():
    # "single > X, joint = J [J_lo, J_hi]" must give "> X / J_hi", not "> X / J".
    s, seeds = long_format(SIZES, 4)
    smin, smax = SIZES[0], SIZES[-1]
    rng = np.random.default_rng(11)
    never = np.clip(0.1 + rng.normal(0, 0.01, s.size), 0, 1)
    always = np.clip(0.97 + rng.normal(0, 0.01, s.size), 0, 1)
    J = noisy(s, (0.1, 0.97, 3e4, 1.6), 0.05, rng)
    kw = dict(n_boot=200, chance=0.1)

    r = reduction_factor((s, never, seeds), (s, J, seeds), **kw)
    tj = r.joint
    assert tj.kind == "estimate" and tj.hi_kind == "estimate" and tj.hi > tj.value
    assert r.kind == "above" and r.bound == pytest.approx(smax / tj.hi) and r.bound < smax / tj.value

    r = reduction_factor((s, J, seeds), (s, always, seeds), **kw)  # single = S, joint < smin
    ts = r.single
    assert ts.lo_kind == "estimate" and ts.lo < ts.value
    assert r.kind == "above" and r.bound == pytest.approx(ts.lo / smin)

    r = reduction_factor((s, always, seeds), (s, J, seeds), **kw)  # single < smin, joint = J
    assert r.kind == "below" and r.bound == pytest.approx(smin / r.joint.lo)

    r = reduction_factor((s, J, seeds), (s, never, seeds), **kw)  # single = S, joint > smax
    assert r.kind == "below" and r.bound == pytest.approx(r.single.hi / smax)


def test_reduction_inconclusive_when_the_ci_reaches_the_other_bound():
    s, seeds = long_format(SIZES, 4)
    never = np.clip(0.1 + np.random.default_rng(9).normal(0, 0.01, s.size), 0, 1)
    always = np.full(s.size, 0.97)
    kw = dict(n_boot=200, chance=0.1)
    late = noisy(s, (0.1, 0.97, 4e5, 1.5), 0.08, np.random.default_rng(0))  # learned near the largest size
    r = reduction_factor((s, never, seeds), (s, late, seeds), **kw)
    assert r.joint.kind == "estimate" and r.joint.hi_kind == "above"  # its CI reaches "> largest"
    assert r.kind == "inconclusive" and r.bound is None and r.value is None
    assert "joint CI reaches beyond the largest size tried" in str(r)
    r = reduction_factor((s, late, seeds), (s, never, seeds), **kw)  # single S [.., > smax], joint > smax
    assert r.kind == "inconclusive" and "single-task CI reaches beyond" in r.reason
    assert r.describe(labels=("joint", "continual")) == (
        "inconclusive (continual not learned within sizes tried; joint CI reaches beyond the largest size tried)")
    early = noisy(s, (0.1, 0.97, 8e2, 1.5), 0.08, np.random.default_rng(1))  # learned near the smallest
    r = reduction_factor((s, early, seeds), (s, always, seeds), **kw)  # single S [< smin, ..], joint < smin
    assert r.single.kind == "estimate" and r.single.lo_kind == "below"
    assert r.kind == "inconclusive" and "single-task CI reaches below the smallest size tried" in str(r)
    r = reduction_factor((s, always, seeds), (s, early, seeds), **kw)  # single < smin, joint [< smin, ..]
    assert r.kind == "inconclusive" and "joint CI reaches below" in r.reason


def test_scaling_exponent_recovers_a_known_power():
    # s0 = 40 * n**0.6 with equal floor/top/slope: the transition is proportional to s0, so the
    # exponent of transition ~ n**b is exactly 0.6.
    moduli = [10, 20, 26, 43, 45]
    s, seeds = long_format(SIZES, 3)
    ts = [estimate_transition(s, curve(s, 0.1, 0.97, 400 * n ** 0.6, 1.8), seeds, chance=0.1, n_boot=50)
          for n in moduli]
    e = scaling_exponent(moduli, ts)
    assert e.value == pytest.approx(0.6, abs=1e-3) and e.used == tuple(float(n) for n in moduli)
    assert e.lo == pytest.approx(0.6, abs=1e-3) and e.hi == pytest.approx(0.6, abs=1e-3)
    # noisy: the CI contains the truth
    rng = np.random.default_rng(5)
    ts = [estimate_transition(s, noisy(s, (0.1, 0.97, 400 * n ** 0.6, 1.8), 0.04, rng), seeds, chance=0.1,
                              n_boot=200, rng=i) for i, n in enumerate(moduli)]
    e = scaling_exponent(moduli, ts)
    assert e.lo < e.value < e.hi and e.lo <= 0.6 <= e.hi
    assert str(e).startswith(f"{e.value:.2f} [")


def test_scaling_exponent_skips_bounds_and_needs_two_estimates():
    s, seeds = long_format(SIZES, 3)
    est = [estimate_transition(s, curve(s, 0.1, 0.97, s0, 1.8), seeds, chance=0.1, n_boot=20) for s0 in (1e4, 4e4)]
    never = estimate_transition(s, np.full(s.size, 0.1), seeds, chance=0.1, n_boot=20)
    e = scaling_exponent([10, 20, 45], est + [never])
    assert e.value == pytest.approx(math.log(4) / math.log(2), rel=1e-3)
    assert e.skipped == ((45.0, str(never)),) and "without 45: >" in str(e)
    e = scaling_exponent([10, 45], [est[0], never])
    assert e.value is None and "at least 2" in str(e)
    e = scaling_exponent([10, 20], [est[0], None])
    assert e.value is None and e.skipped == ((20.0, "no transition"),)
    with pytest.raises(ValueError, match="'xs' and 'transitions'"):
        scaling_exponent([10], est)
    with pytest.raises(ValueError, match="'ci_method'"):
        scaling_exponent([10, 20], est, ci_method="bca")


# ----------------------------------------------------------------------------------------------
# Rendering, determinism, validation
# ----------------------------------------------------------------------------------------------


def test_describe_format():
    params = (0.1, 0.9, 3e4, 1.5)
    s, seeds = long_format(SIZES, 5)
    t = estimate_transition(s, noisy(s, params, 0.04, np.random.default_rng(0)), seeds, n_boot=100)
    text = str(t)
    assert text == t.describe()
    import re

    m = re.fullmatch(r"(\d\.\d)e(\d+) \[(\d\.\d)e(\d+), (\d\.\d)e(\d+)\]", text)
    assert m, text
    val = float(m.group(1)) * 10 ** int(m.group(2))
    assert val == pytest.approx(t.value, rel=0.05)
    assert float(m.group(3)) * 10 ** int(m.group(4)) == pytest.approx(t.lo, rel=0.06)
    assert "80% of asymptote" in t.describe(detail=True) and "5 seeds" in t.describe(detail=True)


def test_deterministic_given_rng():
    params = (0.1, 0.9, 3e4, 1.5)
    s, seeds = long_format(SIZES, 4)
    accs = noisy(s, params, 0.05, np.random.default_rng(9))
    a = estimate_transition(s, accs, seeds, n_boot=60, rng=42)
    b = estimate_transition(s, accs, seeds, n_boot=60, rng=42)
    c = estimate_transition(s, accs, seeds, n_boot=60, rng=43)
    assert a == b and a.replicates == b.replicates
    assert a.value == c.value and a.replicates != c.replicates
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    t1 = estimate_transition(s, accs, seeds, n_boot=50, rng=g1)
    assert t1 == estimate_transition(s, accs, seeds, n_boot=50, rng=g2)
    r1 = reduction_factor((s, accs, seeds), (s, accs, seeds), n_boot=50, rng=1)
    r2 = reduction_factor((s, accs, seeds), (s, accs, seeds), n_boot=50, rng=1)
    assert r1 == r2 and r1.value == pytest.approx(1.0)


GOOD_S = np.repeat(SIZES[:4], 2)
GOOD_A = np.tile([0.1, 0.2], 4)


@pytest.mark.parametrize(
    "args,kwargs,pattern",
    [
        ((GOOD_S, GOOD_A[:-1]), {}, r"'accs' must have the same length as 'sizes' \(8\); got 7"),
        ((GOOD_S, GOOD_A, [0, 1, 2]), {}, r"'seeds' must be None or a 1-D sequence with the same length"),
        (([1e3, 1e3, 1e4, 1e4], [0.1, 0.2, 0.3, 0.4]), {}, r"'sizes' must contain at least 3 distinct.*got 2"),
        (([1e3, 0.0, 1e4], [0.1, 0.2, 0.3]), {}, r"'sizes' must be positive finite numbers.*index 1"),
        (([1e3, -5, 1e4], [0.1, 0.2, 0.3]), {}, r"'sizes' must be positive"),
        (([1e3, 1e4, 1e5], [0.1, 1.2, 0.3]), {}, r"'accs' must be accuracies in \[0, 1\].*index 1"),
        (([1e3, 1e4, 1e5], [-0.1, 0.2, 0.3]), {}, r"'accs' must be accuracies in \[0, 1\]"),
        (([1e3, 1e4, 1e5], [np.nan, 0.2, 0.3]), {}, r"'accs' must be accuracies in \[0, 1\]"),
        (([1e3, 1e4, 1e5], [10, 20, 30]), {}, r"'accs' must be accuracies in \[0, 1\] \(fractions, not percent"),
        ((GOOD_S, GOOD_A), {"level": 0.0}, r"'level' must be in \(0\.0, 1\.0\); got 0\.0"),
        ((GOOD_S, GOOD_A), {"level": 1.0}, r"'level' must be in \(0\.0, 1\.0\)"),
        ((GOOD_S, GOOD_A), {"level": 1.5}, r"'level' must be in \(0\.0, 1\.0\)"),
        ((GOOD_S, GOOD_A), {"chance": 1.0}, r"'chance' must be in \[0\.0, 1\.0\)"),
        ((GOOD_S, GOOD_A), {"asymptote": 0.0}, r"'asymptote' must be in \(0\.0, 1\.0\]"),
        ((GOOD_S, GOOD_A), {"level": 0.5, "chance": 0.5}, r"'level' x 'asymptote' must exceed 'chance'"),
        ((GOOD_S, GOOD_A), {"min_asymptote": 1.5}, r"'min_asymptote' must be in \[0\.0, 1\.0\]"),
        ((GOOD_S, GOOD_A), {"n_boot": -1}, r"'n_boot' must be an integer >= 0"),
        ((GOOD_S, GOOD_A), {"n_boot": 10.0}, r"'n_boot' must be an integer"),
        ((GOOD_S, GOOD_A), {"ci": 1.0}, r"'ci' must be in \(0\.0, 1\.0\)"),
        ((GOOD_S, GOOD_A), {"ci_method": "bca"}, r"'ci_method' must be one of expanded, percentile"),
        ((GOOD_S, GOOD_A), {"rng": -1}, r"'rng' must be a non-negative integer seed"),
    ],
)
def test_bad_input_raises_naming_the_argument(args, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        estimate_transition(*args, n_boot=kwargs.pop("n_boot", 0), **kwargs)


def test_bad_input_other_entry_points():
    with pytest.raises(ValueError, match=r"'sizes' must contain at least 3 distinct sizes"):
        fit_logistic([1e3, 1e4], [0.1, 0.9])
    fit = LogisticFit(0.0, 1.0, 1e4, 1.0, True, 0.0, 7, False, 1e3, 1e6)
    with pytest.raises(ValueError, match=r"'level' must be in \(0\.0, 1\.0\)"):
        transition_point(fit, 1.0)
    good = (GOOD_S, GOOD_A)
    with pytest.raises(ValueError, match=r"'single' must be a tuple \(sizes, accs\) or \(sizes, accs, seeds\)"):
        reduction_factor(GOOD_S, good)
    with pytest.raises(ValueError, match=r"joint: 'accs' must have the same length as 'sizes'"):
        reduction_factor(good, (GOOD_S, GOOD_A[:3]))
    with pytest.raises(ValueError, match=r"'paired' requires both conditions to have the same seed labels"):
        reduction_factor(
            (GOOD_S, GOOD_A, np.tile([0, 1], 4)), (GOOD_S, GOOD_A, np.tile([0, 2], 4)), paired=True
        )
