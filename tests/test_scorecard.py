"""Scorecard rows, verdict rules and rendering.

The reduction factors judged here are *real* outputs of :func:`jointtask_lib.transition.reduction_factor`
on synthetic accuracy curves (a bound keeps its number in ``Reduction.bound`` and leaves ``value``
``None``, which a fake object would hide); the expected verdicts follow from the CI or bound, read
off the result and compared with the thresholds here.
"""

import math
from dataclasses import replace

import numpy as np
import pytest

from jointtask_lib.cli import main as cli_main
from jointtask_lib.scorecard import (
    NO_BENEFIT_BELOW, apply_rules, claim, factor_stats, is_extension, classify_factor, factor_interval, load_claims, magnitude_check, render_markdown,
    unique_claims, verdict_benefit, verdict_greater, verdict_no_benefit, verdict_sublinear, write_claims,
)
from jointtask_lib.transition import Exponent, reduction_factor

SIZES = np.logspace(3, 6, 7)
N_SEEDS = 4


def curve(s, floor, top, s0, slope):
    return floor + (top - floor) / (1.0 + np.exp(-slope * (np.log(s) - np.log(s0))))


def cond(params, sd, seed):
    s = np.repeat(SIZES, N_SEEDS)
    seeds = np.tile(np.arange(N_SEEDS), len(SIZES))
    rng = np.random.default_rng(seed)
    y = np.full(s.size, params) if np.isscalar(params) else curve(s, *params)
    return s, np.clip(y + rng.normal(0.0, sd, s.size), 0.0, 1.0), seeds


NEVER = 0.1  # at chance (mod 10) at every size
LEARNED_LATE = (0.1, 0.97, 1.2e5, 1.6)
LEARNED_EARLY = (0.1, 0.97, 2.5e4, 1.6)


@pytest.fixture(scope="module")
def reds():
    kw = dict(n_boot=200, chance=0.1)
    return {
        # single-task never learned, joint learned: a lower bound "> X"
        "bound": reduction_factor(cond(NEVER, 0.01, 1), cond(LEARNED_EARLY, 0.04, 2), **kw),
        # both learned: an estimate near 1.2e5 / 2.5e4 (~4.8)
        "both": reduction_factor(cond(LEARNED_LATE, 0.03, 3), cond(LEARNED_EARLY, 0.03, 4), **kw),
        # both failed: nothing can be said
        "failed": reduction_factor(cond(NEVER, 0.01, 5), cond(NEVER, 0.01, 6), **kw),
        # single learned, joint never: an upper bound "< X" below 1
        "worse": reduction_factor(cond(LEARNED_EARLY, 0.04, 7), cond(NEVER, 0.01, 8), **kw),
    }


def test_bound_from_real_reduction_is_judged_by_its_bound(reds):
    r = reds["bound"]
    assert r.kind == "above" and r.value is None and r.bound is not None
    assert r.bound == pytest.approx(SIZES[-1] / r.joint.hi)  # conservative: the joint CI's upper end
    assert r.bound > 1.0
    assert factor_interval(r) == (pytest.approx(r.bound), np.inf)
    assert verdict_benefit(r) == "reproduced"
    assert verdict_no_benefit(r) == "not reproduced"
    status, text = magnitude_check(r, (2.0, 7.0))
    assert status == ("ours larger" if r.bound > 7.0 else "consistent")
    assert f"> {r.bound:.3g}" in text
    assert magnitude_check(r, 10 * r.bound)[0] == "consistent"


def test_both_learned_real_estimate(reds):
    r = reds["both"]
    assert r.kind == "estimate" and r.lo < r.value < r.hi
    expected = "reproduced" if r.lo > 1.0 else ("not reproduced" if r.hi < NO_BENEFIT_BELOW else "inconclusive")
    assert r.lo > 1.0 and verdict_benefit(r) == expected == "reproduced"
    assert verdict_no_benefit(r) == "not reproduced"
    true = 1.2e5 / 2.5e4
    assert r.lo <= true <= r.hi
    assert magnitude_check(r, true)[0] == "consistent"
    assert magnitude_check(r, 100.0)[0] == "ours smaller"
    assert magnitude_check(r, (0.1, 0.5))[0] == "ours larger"


def test_both_failed_is_inconclusive(reds):
    r = reds["failed"]
    assert r.kind == "inconclusive" and r.value is None and r.bound is None
    assert factor_interval(r) is None
    assert verdict_benefit(r) == verdict_no_benefit(r) == "inconclusive"
    assert magnitude_check(r, 3.6)[0] == "not comparable"


def test_joint_worse_upper_bound(reds):
    r = reds["worse"]
    assert r.kind == "below" and r.value is None and r.bound < 1.0
    assert verdict_benefit(r) == "not reproduced" and verdict_no_benefit(r) == "reproduced"


def test_the_two_reduction_verdicts_never_agree(reds):
    opposite = {"reproduced": "not reproduced", "not reproduced": "reproduced", "inconclusive": "inconclusive"}
    base = reds["both"]
    cases = list(reds.values()) + [replace(base, lo=lo, hi=hi) for lo, hi in
                                   [(1.1, 1.4), (0.8, 1.2), (0.9, 3.0), (2.0, 9.0), (0.2, 0.6), (1.0, 1.5)]]
    for r in cases + [None]:
        assert verdict_no_benefit(r) == opposite[verdict_benefit(r)]


def test_narrow_small_benefit_is_a_benefit_not_both(reds):
    # A CI [1.1, 1.4] used to confirm both "benefit" (lo > 1) and "no benefit" (hi < 1.5).
    r = replace(reds["both"], value=1.25, lo=1.1, hi=1.4)
    assert classify_factor(r) == "benefit"
    assert verdict_benefit(r) == "reproduced" and verdict_no_benefit(r) == "not reproduced"
    status, text = magnitude_check(r, 3.6)
    assert status == "ours smaller" and "3.6x" in text


@pytest.mark.parametrize("lo, hi, cls", [
    (1.0, 1.3, "no benefit"),   # touches 1: no benefit shown; below 1.5: a 1.5x benefit ruled out
    (1.0, 1.5, "undecided"),    # touches both thresholds: decides nothing
    (1.0, 1.0, "no benefit"),   # zero-width at 1
    (1.0000001, 2.0, "benefit"),
    (0.5, 1.5, "undecided"),
    (0.5, 1.49, "no benefit"),
])
def test_thresholds_are_strict(reds, lo, hi, cls):
    r = replace(reds["both"], value=(lo + hi) / 2, lo=lo, hi=hi)
    assert classify_factor(r) == cls


def test_estimate_without_ci_decides_nothing(reds):
    r = replace(reds["both"], lo=None, hi=None)
    assert factor_interval(r) is None and verdict_benefit(r) == "inconclusive"
    assert magnitude_check(r, 3.6)[0] == "not comparable"
    assert magnitude_check(r, None) == ("no paper value", "no paper value to compare with")
    with pytest.raises(ValueError, match="'paper'"):
        magnitude_check(r, (7.0, 2.0))
    with pytest.raises(ValueError, match="'tol'"):
        classify_factor(r, tol=1.0)


def test_verdict_greater_and_ties():
    assert verdict_greater(0.9, (0.8, 1.0), 0.3, (0.2, 0.4)) == "reproduced"
    assert verdict_greater(0.3, (0.2, 0.4), 0.9, (0.8, 1.0)) == "not reproduced"
    assert verdict_greater(0.5, (0.3, 0.7), 0.4, (0.2, 0.6)) == "inconclusive"
    # ties: identical intervals, zero-width intervals at the same value, touching intervals
    assert verdict_greater(0.5, (0.3, 0.7), 0.5, (0.3, 0.7)) == "inconclusive"
    assert verdict_greater(0.5, (0.5, 0.5), 0.5, (0.5, 0.5)) == "inconclusive"
    assert verdict_greater(0.3, (0.2, 0.5), 0.7, (0.5, 0.8)) == "inconclusive"
    assert verdict_greater(0.7, (0.5, 0.8), 0.3, (0.2, 0.5)) == "inconclusive"
    # zero-width but separated still decides
    assert verdict_greater(0.6, (0.6, 0.6), 0.5, (0.5, 0.5)) == "reproduced"
    assert verdict_greater(0.4, (0.4, 0.4), 0.5, (0.5, 0.5)) == "not reproduced"


def test_verdict_sublinear():
    def e(v, lo, hi, skipped=()):
        return Exponent(v, lo, hi, used=(10.0, 20.0), skipped=skipped)

    assert verdict_sublinear(e(0.5, 0.3, 0.8)) == "reproduced"
    assert verdict_sublinear(e(1.5, 1.2, 1.9)) == "not reproduced"
    assert verdict_sublinear(e(0.9, 0.6, 1.0)) == "inconclusive"  # touches 1
    assert verdict_sublinear(e(0.5, 0.3, 0.8, skipped=((45.0, "> 5e4"),))) == "inconclusive"
    assert verdict_sublinear(Exponent(None, None, None, (), ())) == "inconclusive"
    assert verdict_sublinear(None) == "inconclusive"


def _row(id="A1", **kw):
    base = dict(id=id, paper="A", claim="joint | lowers", paper_value="2-7x", ours="3.1x [1.9, 5.0]",
                verdict="reproduced", preset="quick", notebook="03_joint_training", note="n=10",
                magnitude="paper 2-7x is consistent with our CI [1.9, 5]")
    base.update(kw)
    return claim(**base)


def test_claims_round_trip_and_markdown(tmp_path):
    rows = [_row(),
            claim(id="B1", paper="B", claim="mixed ≈ single", paper_value="yes", ours="no",
                  verdict="not reproduced", preset="quick", notebook="09_icl")]
    write_claims(tmp_path, "03_joint_training", rows[:1])
    write_claims(tmp_path, "09_icl", rows[1:])
    assert load_claims(tmp_path) == rows
    md = render_markdown(load_claims(tmp_path))
    # B1's "not reproduced" rests on no test and no stated power: the scorecard makes it inconclusive
    assert "2 claims of the papers: 1 reproduced, 0 not reproduced, 1 inconclusive." in md
    assert "joint \\| lowers" in md and "## Paper B" in md and "- **A1**: n=10" in md
    assert "| paper's number vs ours |" in md and "consistent with our CI [1.9, 5]" in md
    assert "| no | CI rule (no test) | — | — | — | ❔ inconclusive | — |" in md  # no magnitude: a dash
    assert "the notebook's rule said not reproduced" in md
    assert cli_main(["report", "--results", str(tmp_path)]) == 0
    assert (tmp_path / "SCORECARD.md").read_text() == md


def test_duplicate_claim_ids(tmp_path):
    a, b = _row("A-joint-ADD+PROD-n10"), _row("A-joint-ADD+PROD-n10")
    c = _row("other")
    assert unique_claims([a, c, b]) == [a, c]  # identical repeats merge, order kept
    write_claims(tmp_path, "03_joint_training", [a, c, b])
    assert [r["id"] for r in load_claims(tmp_path)] == ["A-joint-ADD+PROD-n10", "other"]
    with pytest.raises(ValueError, match="'A-joint-ADD\\+PROD-n10' appears twice with different content.*verdict"):
        write_claims(tmp_path, "03_joint_training", [a, _row("A-joint-ADD+PROD-n10", verdict="inconclusive")])
    write_claims(tmp_path, "04_transfer", [_row("other", notebook="04_transfer")])
    with pytest.raises(ValueError, match="'other' is in both 03_joint_training.json and 04_transfer.json"):
        load_claims(tmp_path)


def test_bad_verdict_rejected():
    with pytest.raises(ValueError, match="'verdict' must be one of reproduced, not reproduced, inconclusive"):
        claim(id="x", paper="A", claim="c", paper_value="v", ours="o", verdict="yes", preset="quick", notebook="n")


# ------------------------------------------------------------------------------------------------
# Scorecard-wide rules (apply_rules): level, Holm, power, extensions
# ------------------------------------------------------------------------------------------------


def _t(id, verdict, p=None, p_against=None, min_p=0.0, family="pairings", power=None, **kw):
    return claim(id=id, paper="A", claim=id, paper_value="v", ours="o", verdict=verdict, preset="quick",
                 notebook="03_joint_training", test="t", p=p, p_against=p_against, min_p=min_p, family=family,
                 power=power, **kw)


def test_rule_min_attainable_p_above_alpha_decides_nothing():
    # exact 3 v 3 permutation test: 20 relabellings, smallest p 0.05 > 0.025
    out = apply_rules([_t("a", "reproduced", p=0.05, min_p=0.05, family="embedding scores")])
    assert out[0]["verdict"] == "inconclusive" and "cannot reach alpha" in out[0]["rules"][0]
    assert out[0]["verdict_notebook"] == "reproduced"


def test_rule_holm_within_family_by_hand():
    rows = [_t("a", "reproduced", p=0.01), _t("b", "reproduced", p=0.012), _t("c", "inconclusive", p=0.2),
            _t("d", "reproduced", p=0.02, family="controls")]
    out = {r["id"]: r for r in apply_rules(rows)}
    # pairings: sorted 0.01, 0.012, 0.2 -> 3 x 0.01 = 0.03, max(0.03, 2 x 0.012) = 0.03, 0.2: a and b lose their verdict
    assert out["a"]["p_holm"] == pytest.approx(0.03) and out["b"]["p_holm"] == pytest.approx(0.03)
    assert out["a"]["verdict"] == out["b"]["verdict"] == "inconclusive"
    # controls: alone in its family, 0.02 <= 0.025 stands
    assert out["d"]["p_holm"] == pytest.approx(0.02) and out["d"]["verdict"] == "reproduced"
    one = apply_rules([_t("a", "reproduced", p=0.01)])[0]
    assert one["verdict"] == "reproduced" and one["rules"] == []


def test_rule_not_reproduced_needs_a_contrary_test_or_power():
    rows = [_t("x", "not reproduced", p=0.9, p_against=0.001),
            _t("y", "not reproduced", p=0.9, p_against=0.2, family="controls"),
            _t("z", "not reproduced", p=0.9, p_against=0.2, power=0.85, family="transfer"),
            _t("w", "not reproduced", p=0.9, p_against=0.2, power=0.5, family="sublayer usage")]
    out = {r["id"]: r for r in apply_rules(rows)}
    assert out["x"]["verdict"] == "not reproduced"
    assert out["y"]["verdict"] == "inconclusive" and "power: not stated" in out["y"]["rules"][0]
    assert out["z"]["verdict"] == "not reproduced"
    assert out["w"]["verdict"] == "inconclusive" and "power: 0.50" in out["w"]["rules"][0]


def test_extensions_are_scored_apart_and_not_counted():
    rows = [_t("A-joint-x", "reproduced", p=0.001),
            _t("A-synergy-prediction", "reproduced", p=0.005, family="output structure"),
            _t("mine", "reproduced", p=0.001, extension=True)]
    assert [is_extension(r) for r in rows] == [False, True, True]
    md = render_markdown(rows)
    assert "1 claims of the papers: 1 reproduced, 0 not reproduced, 0 inconclusive (and 2 extensions" in md
    head, ext = md.split("## Extensions")
    assert "A-synergy-prediction" in ext and "invented" in ext and "| A-synergy-prediction |" not in head
    # Holm among the extensions: 2 x 0.001 = 0.002, then max(0.002, 1 x 0.005) = 0.005
    out = {r["id"]: r for r in apply_rules(rows)}
    assert out["mine"]["p_holm"] == pytest.approx(0.002)
    assert out["A-synergy-prediction"]["p_holm"] == pytest.approx(0.005)


def test_row_shows_test_p_ci_and_runs():
    r = _t("A-joint-y", "reproduced", p=0.004, ci="[1.3, 3.9]", n_runs=50)
    md = render_markdown([r])
    assert "| t | 0.004 (0.004) | [1.3, 3.9] | 50 | ✅ reproduced |" in md


def test_claim_validates_statistics():
    with pytest.raises(ValueError, match="'family' must be one of"):
        _t("a", "reproduced", p=0.1, family="everything")
    with pytest.raises(ValueError, match="'p'"):
        _t("a", "reproduced", p=1.5)


def test_factor_stats_from_a_pooled_factor():
    from jointtask_lib.stats import pooled_reduction

    s = np.repeat([1e3, 2e3, 4e3, 8e3, 16e3], 4)
    seeds = np.tile(np.arange(4), 5)
    single = (s, (s >= 8e3).astype(float), seeds)
    joint = (s, (s >= 2e3).astype(float) * np.r_[np.ones(19), 0.0], seeds)
    red = pooled_reduction(single, joint)
    st = factor_stats(red, expect="benefit", family="pairings")
    assert st["p"] == red.p and st["p_against"] == red.p_equiv and st["n_runs"] == 40
    assert st["test"].startswith("pooled logistic LRT (t, 6 df)") and st["ci"] == red.ci_text()
    none = factor_stats(red, expect="none", family="controls")
    assert none["p"] == red.p_equiv and none["p_against"] == red.p
    # the same rule judges it: CI above 1 <=> benefit
    assert (classify_factor(red) == "benefit") == (red.lo > 1 and not red.lo_open)
    assert factor_interval(red) == ((0.0 if red.lo_open else red.lo), (math.inf if red.hi_open else red.hi))


def test_not_reproduced_factor_row_states_its_power():
    from jointtask_lib.stats import pooled_reduction

    s = np.repeat([1e3, 2e3, 4e3, 8e3, 16e3], 5)
    seeds = np.tile(np.arange(5), 5)
    # the joint condition learns *later*: a significant contrary result for a benefit claim
    single = (s, (s >= 2e3).astype(float) * np.r_[np.ones(24), 0.0], seeds)
    joint = (s, (s >= 8e3).astype(float), seeds)
    red = pooled_reduction(single, joint)
    v = verdict_benefit(red)
    st = factor_stats(red, expect="benefit", family="pairings", verdict=v, power_reps=10)
    assert v == "not reproduced" and 0.0 <= st["power"] <= 1.0
    row = claim(id="A-joint-z", paper="A", claim="c", paper_value="v", ours="o", verdict=v, preset="quick",
                notebook="03_joint_training", **st)
    out = apply_rules([row])[0]
    assert out["verdict"] == "not reproduced"  # the equivalence test is significant
    assert "against:" in render_markdown([row]) and "power at the paper's effect" in render_markdown([row])
