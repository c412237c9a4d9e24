"""Tests for jointtask_lib.analysis.scores: scores over seeds, the random null, the table, and the
seed-level permutation test behind the analysis verdicts.  Expected values are computed
independently (hand formulas, brute-force enumeration, direct calls of the single-matrix scores)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from jointtask_lib.analysis import scores as SC
from jointtask_lib.analysis.embeddings import (
    chance_level,
    divisibility_scores,
    order_score,
    parity_score,
    score_with_ci,
)


def orthonormal(k: int, d: int, seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, k)))
    return q.T


def parity_split(n: int, d: int = 8) -> np.ndarray:
    a, b = orthonormal(2, d)
    return np.array([a if v % 2 == 0 else b for v in range(n)])


def ordered_line(n: int, d: int = 8) -> np.ndarray:
    """Points on a line not through the origin, in value order, embedded in R^d."""
    v = np.arange(n) / (n - 1)
    return np.c_[np.ones(n), v] @ orthonormal(2, d, seed=3)


# ---------------------------------------------------------------------------------------------
# score names, per-seed scores, null, table
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, names", [
    (10, ["parity", "div 5", "order"]),
    (12, ["parity", "div 3", "div 4", "div 6", "order"]),
    (20, ["parity", "div 4", "div 5", "div 10", "order"]),
    (7, ["parity", "order"]),
    (4, ["parity", "order"]),  # 2 is the only proper divisor of 4: it is parity
])
def test_score_names_drop_q2_and_list_every_other_divisor(n, names):
    assert SC.score_names(n) == names


def test_embedding_scores_match_single_matrix_scores_on_known_structure():
    n = 10
    rng = np.random.default_rng(0)
    E = np.stack([parity_split(n), ordered_line(n), rng.standard_normal((n, 8))])
    got = SC.embedding_scores(E, n)
    assert list(got) == ["parity", "div 5", "order"]
    assert all(v.shape == (3,) for v in got.values())
    for i in range(3):
        assert got["parity"][i] == parity_score(E[i])
        assert got["div 5"][i] == divisibility_scores(E[i], n)[5]
        assert got["order"][i] == order_score(E[i])
    # the known structures: a perfect parity split, a perfectly ordered line
    assert got["parity"][0] == pytest.approx(1.0, abs=1e-12)
    assert got["order"][1] == pytest.approx(1.0, abs=1e-12)
    # a parity split has residues mod 5 spread over both parity groups: no div-5 clustering
    assert got["div 5"][0] < 0.0
    with pytest.raises(ValueError, match="'E'"):
        SC.embedding_scores(E[0], n)


def test_null_summary_is_chance_level_of_each_score():
    n, d, k, seed = 10, 6, 40, 3
    null = SC.null_summary(n, d, n_samples=k, seed=seed)
    assert list(null) == SC.score_names(n)
    # every score is computed on the same random draws as chance_level with the same seed
    par = chance_level(parity_score, n, d, k, seed)
    div = chance_level(divisibility_scores, n, d, k, seed)[5]
    order = chance_level(order_score, n, d, k, seed)
    assert null["parity"] == pytest.approx((par["mean"], par["q95"]))
    assert null["div 5"] == pytest.approx((div["mean"], div["q95"]))
    assert null["order"] == pytest.approx((order["mean"], order["q95"]))
    # and by hand from the draws themselves
    rng = np.random.default_rng(seed)
    vals = np.array([parity_score(rng.standard_normal((n, d))) for _ in range(k)])
    assert null["parity"][0] == pytest.approx(vals.mean()) and null["parity"][1] == pytest.approx(np.quantile(vals, 0.95))
    assert SC.null_summary(n, d, n_samples=k, seed=seed) == null  # deterministic
    with pytest.raises(ValueError, match="'n_samples'"):
        SC.null_summary(n, d, n_samples=0)


def test_small_residue_classes_have_a_negative_null():
    """The docstrings say random embeddings give a *negative* divisibility score when the classes
    are small (2 members: q = 5 at n = 10) and about 0 for parity: check it."""
    null = SC.null_summary(10, 16, n_samples=200, seed=0)
    assert null["div 5"][0] < -0.1
    assert abs(null["parity"][0]) < 0.03


def test_summarise_and_scores_table():
    vals = {"parity": np.array([0.1, 0.3]), "order": np.array([0.5, 0.5])}
    summ = SC.summarise(vals, n_boot=300, seed=2)
    assert summ["parity"] == score_with_ci(vals["parity"], n_boot=300, seed=2)
    assert summ["order"] == pytest.approx((0.5, 0.5, 0.5))
    table = SC.scores_table({"single": summ, "joint": {"parity": (0.7, 0.6, 0.8), "order": (0.9, 0.85, 0.95)}},
                            {"parity": (-0.01, 0.06), "order": (0.42, 0.73)}, digits=2)
    lines = table.splitlines()
    assert lines[0].split() == ["condition", "parity", "order"]
    single = next(line for line in lines if line.startswith("single"))
    m, lo, hi = summ["parity"]
    assert f"{m:.2f} [{lo:.2f}, {hi:.2f}]" in single and "0.50 [0.50, 0.50]" in single
    joint = next(line for line in lines if line.startswith("joint"))
    assert "0.70 [0.60, 0.80]" in joint and "0.90 [0.85, 0.95]" in joint
    assert lines[-1].startswith("random embeddings")
    assert "-0.01 (95%: 0.06)" in lines[-1] and "0.42 (95%: 0.73)" in lines[-1]
    assert "random" not in SC.scores_table({"single": summ})


# ---------------------------------------------------------------------------------------------
# the permutation test over seeds
# ---------------------------------------------------------------------------------------------


def brute_force_p(a, b) -> tuple[float, float]:
    """One-sided p-values by relabelling every ordering of the pooled values (all (m+k)!
    permutations, each assignment counted m! k! times — a different enumeration from the
    library's combinations)."""
    pooled = list(a) + list(b)
    m = len(a)
    obs = np.mean(a) - np.mean(b)
    ge = le = tot = 0
    for perm in itertools.permutations(pooled):
        d = np.mean(perm[:m]) - np.mean(perm[m:])
        ge += d >= obs - 1e-12
        le += d <= obs + 1e-12
        tot += 1
    return ge / tot, le / tot


@pytest.mark.parametrize("a, b", [
    ([3.0, 4.0], [1.0, 2.0]),
    ([0.2, 0.5, 0.4], [0.1, 0.3, 0.35]),
    ([1.0, 1.0, 2.0], [1.0, 2.0]),          # ties across conditions
    ([0.0, 0.0], [0.0, 0.0]),               # all identical
    ([5.0, 1.0, 2.0], [4.0, 3.0, 0.5, 0.7]),
])
def test_permutation_test_matches_brute_force(a, b):
    t = SC.permutation_test(a, b)
    pg, pl = brute_force_p(a, b)
    assert t["p_greater"] == pytest.approx(pg) and t["p_less"] == pytest.approx(pl)
    assert t["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert t["exact"] and t["n_splits"] == math.comb(len(a) + len(b), len(a))
    assert t["p_min"] == pytest.approx(1 / t["n_splits"])


def test_permutation_test_known_values():
    # two seeds each, perfectly separated: the best possible p is 1/C(4,2) = 1/6
    t = SC.permutation_test([3.0, 4.0], [1.0, 2.0])
    assert t["p_greater"] == pytest.approx(1 / 6) and t["p_less"] == pytest.approx(1.0)
    # three seeds each, perfectly separated: 1/C(6,3) = 1/20
    assert SC.permutation_test([4, 5, 6], [1, 2, 3])["p_greater"] == pytest.approx(1 / 20)
    # identical conditions: every split ties the observed difference, p = 1 both ways
    t = SC.permutation_test([0.3, 0.3], [0.3, 0.3])
    assert t["p_greater"] == 1.0 and t["p_less"] == 1.0


def test_permutation_test_monte_carlo_path(monkeypatch):
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 6), rng.normal(0.0, 1.0, 6)
    exact = SC.permutation_test(a, b)
    monkeypatch.setattr(SC, "MAX_EXACT_SPLITS", 10)
    mc = SC.permutation_test(a, b, n_perm=4000, seed=1)
    assert not mc["exact"]
    assert mc["p_greater"] == pytest.approx(exact["p_greater"], abs=0.02)
    assert mc["p_min"] == pytest.approx(1 / 4001)
    # never 0, even for a separation no random split reaches
    sep = SC.permutation_test([10.0] * 6, [0.0] * 6, n_perm=200, seed=0)
    assert sep["p_greater"] >= 1 / 201
    assert SC.permutation_test(a, b, n_perm=500, seed=3) == SC.permutation_test(a, b, n_perm=500, seed=3)


def test_permutation_test_bad_input():
    with pytest.raises(ValueError, match="'a' and 'b'"):
        SC.permutation_test([], [1.0])
    with pytest.raises(ValueError, match="'a' and 'b'"):
        SC.permutation_test([1.0, float("nan")], [1.0])
    with pytest.raises(ValueError, match="'alpha'"):
        SC.verdict_seeds([1.0, 2.0], [0.0, 1.0], alpha=0.0)


def test_verdict_seeds_rules():
    # two seeds per condition can never reach p <= 0.05, however far apart they are
    assert SC.verdict_seeds([10.0, 11.0], [0.0, 1.0])[0] == "inconclusive"
    assert SC.verdict_seeds([4, 5, 6], [1, 2, 3])[0] == "reproduced"
    assert SC.verdict_seeds([1, 2, 3], [4, 5, 6])[0] == "not reproduced"
    assert SC.verdict_seeds([1, 5, 3], [4, 2, 6])[0] == "inconclusive"
    assert SC.verdict_seeds([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])[0] == "inconclusive"  # ties: never a verdict
    # a looser alpha lets the 2-seed separation through (1/6 <= 0.2)
    assert SC.verdict_seeds([10.0, 11.0], [0.0, 1.0], alpha=0.2)[0] == "reproduced"


def test_verdict_seeds_false_positive_rate_and_old_rule():
    """Under the null (both conditions from one distribution) the test says "reproduced" at most
    alpha of the time; the old rule (bootstrap CIs disjoint) fires about 1/6 of the time at 2 seeds."""
    rng = np.random.default_rng(7)
    draws = 1200
    rep3 = sum(SC.verdict_seeds(rng.normal(size=3), rng.normal(size=3))[0] == "reproduced" for _ in range(draws))
    assert rep3 / draws <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / draws)
    rep2 = old = 0
    for _ in range(draws):
        a, b = rng.normal(size=2), rng.normal(size=2)
        rep2 += SC.verdict_seeds(a, b)[0] == "reproduced"
        old += score_with_ci(a, n_boot=200)[1] > score_with_ci(b, n_boot=200)[2]
    assert rep2 == 0
    assert abs(old / draws - 1 / 6) < 0.04


def test_verdict_seeds_stays_conservative_when_same_seed_runs_are_alike():
    """The docstring: same-seed runs sharing an initialisation do not inflate false verdicts."""
    rng = np.random.default_rng(11)
    draws = 1500
    for shared in (0.5, 0.9):
        hits = 0
        for _ in range(draws):
            u = rng.normal(size=3) * math.sqrt(shared)
            a = u + rng.normal(size=3) * math.sqrt(1 - shared)
            b = u + rng.normal(size=3) * math.sqrt(1 - shared)
            hits += SC.verdict_seeds(a, b)[0] == "reproduced"
        assert hits / draws <= 0.05


def test_analysis_verdict_gates():
    assert SC.analysis_verdict("reproduced", learned=True, above_null=True) == ("reproduced", [])
    v, why = SC.analysis_verdict("reproduced", learned=False, what="ADD")
    assert v == "inconclusive" and len(why) == 1 and "never learned ADD" in why[0]
    v, why = SC.analysis_verdict("not reproduced", learned=False)
    assert v == "inconclusive"
    v, why = SC.analysis_verdict("reproduced", learned=True, above_null=False)
    assert v == "inconclusive" and "95th percentile" in why[0]
    # the null gate only blocks a "reproduced"
    assert SC.analysis_verdict("not reproduced", learned=True, above_null=False) == ("not reproduced", [])
    assert SC.analysis_verdict("inconclusive", learned=True) == ("inconclusive", [])


def test_describe_test_states_the_method_and_the_floor():
    text = SC.describe_test(SC.permutation_test([3.0, 4.0], [1.0, 2.0]), "joint", "single")
    assert "exact one-sided permutation test" in text and "all 6 assignments" in text
    assert "p(joint > single) = 0.167" in text and "smallest p possible" in text
    text3 = SC.describe_test(SC.permutation_test([4, 5, 6], [1, 2, 3]), "joint", "single")
    assert "p(joint > single) = 0.050" in text3 and "smallest p possible" not in text3
