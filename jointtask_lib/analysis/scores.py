"""Scores of trained models over seeds, and the seed-level test behind the verdicts (06, 07).

The embedding scores themselves (parity, divisibility by each divisor of n, order; their
formulas and their random-embedding null) are defined in :mod:`jointtask_lib.analysis.embeddings`.
Here they are computed for every seed of a condition, summarised as a mean with a bootstrap CI
over seeds (descriptive only), and compared with the null of random Gaussian embeddings.

Deciding "condition A scores higher than condition B" from two or three seeds each
---------------------------------------------------------------------------------------
A percentile bootstrap over 2-3 seeds returns (nearly) ``[min, max]`` of the seeds, so "the CIs
do not overlap" would only ask whether every seed of A beats every seed of B — which happens by
chance with probability ``1 / C(m + k, m)``: 1/6 with two seeds each.  The verdicts therefore use
an **exact permutation test over seeds** (:func:`permutation_test`): under the null hypothesis
"the condition does not matter" every assignment of the ``m + k`` observed values to the two
conditions is equally likely; the one-sided p-value is the share of the ``C(m + k, m)``
assignments whose difference of means is at least the observed one.  It is exact for any number
of seeds, and it is honest about few seeds: the smallest p it can return is
``1 / C(m + k, m)`` — 1/6 with two seeds per condition, so no claim can reach ``p <= 0.05``
(every such verdict is *inconclusive*); 1/20 with three seeds each.

Runs of two conditions with the same seed may share their initialisation (same width and
vocabulary).  The test treats the seeds of the two conditions as independent; similar
same-seed runs make a wholesale separation of the conditions *less* likely, not more, so this
does not inflate the rate of false verdicts.  (A paired sign-flip test would need five seeds
before it could reach ``p <= 0.05``.)

:func:`verdict_seeds` turns the test into a verdict for the claim "A > B";
:func:`analysis_verdict` adds the conditions under which an analysis verdict may be given at all
(the models learned the task; a structure score beats random embeddings).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np

from ..validate import check_float, check_int
from .embeddings import chance_level, divisibility_scores, order_score, parity_score, proper_divisors, score_with_ci

__all__ = ["score_names", "embedding_scores", "summarise", "null_summary", "scores_table", "permutation_test",
           "verdict_seeds", "analysis_verdict", "describe_test"]

# Above this many assignments the permutation test samples them (Monte Carlo) instead.
MAX_EXACT_SPLITS = 200_000


def score_names(n: int) -> list[str]:
    """``["parity", "div 5", ..., "order"]``: parity, every proper divisor ``q > 2`` of ``n``, order.
    (Divisibility by 2 *is* parity, so it is not repeated.)"""
    return ["parity"] + [f"div {q}" for q in proper_divisors(n) if q != 2] + ["order"]


def _one(E: np.ndarray, n: int) -> dict[str, float]:
    out = {"parity": parity_score(E, n)}
    for q, v in divisibility_scores(E, n).items():
        if q != 2:
            out[f"div {q}"] = v
    out["order"] = order_score(E, n)
    return out


def embedding_scores(E: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """``{score: [S]}`` for a stack of embeddings ``E`` ``[S, n, d]`` (one per seed)."""
    E = np.asarray(E, float)
    if E.ndim != 3:
        raise ValueError(f"'E' must have shape [seeds, n, d]; got {E.shape}")
    per = [_one(e, n) for e in E]
    return {k: np.array([p[k] for p in per]) for k in score_names(n)}


def summarise(values: Mapping[str, np.ndarray], *, n_boot: int = 1000, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """``{score: (mean, lo, hi)}``: mean over seeds with a 95% percentile-bootstrap CI (descriptive;
    with 2-3 seeds it is about the range of the seeds — the verdicts use :func:`permutation_test`)."""
    return {k: score_with_ci(v, n_boot=n_boot, seed=seed) for k, v in values.items()}


def null_summary(n: int, d: int, n_samples: int = 200, seed: int = 0) -> dict[str, tuple[float, float]]:
    """``{score: (mean, 95th percentile)}`` of every score for random ``[n, d]`` embeddings
    (:func:`~jointtask_lib.analysis.embeddings.chance_level`, deterministic from ``seed``)."""
    if n_samples < 1:
        raise ValueError(f"'n_samples' must be >= 1; got {n_samples}")
    res = chance_level(lambda E, nn: _one(E, nn), n, d, n_samples=n_samples, seed=seed)
    return {k: (float(res[k]["mean"]), float(res[k]["q95"])) for k in score_names(n)}


def scores_table(summaries: Mapping[str, Mapping[str, tuple[float, float, float]]],
                 null: Mapping[str, tuple[float, float]] | None = None, digits: int = 2) -> str:
    """A text table: one row per condition, one column per score ``mean [lo, hi]``; a last row
    with the null's ``mean (q95)``."""
    from ..tables import format_table

    conds = list(summaries)
    names = list(next(iter(summaries.values()))) if conds else []
    rows = [[c] + [f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" for m, lo, hi in
                   (summaries[c][s] for s in names)] for c in conds]
    if null:
        rows.append(["random embeddings"] + [f"{null[s][0]:.{digits}f} (95%: {null[s][1]:.{digits}f})"
                                             for s in names])
    return format_table(["condition"] + names, rows)


# ---------------------------------------------------------------------------------------------
# the seed-level test and the verdict rules
# ---------------------------------------------------------------------------------------------


def permutation_test(a, b, *, n_perm: int = 20000, seed: int = 0) -> dict:
    """Two-sample permutation test of ``mean(a) - mean(b)`` (values per seed of two conditions).

    Pools the ``m + k`` values and recomputes the difference of means for every way of calling
    ``m`` of them "A" (all ``C(m + k, m)`` assignments if there are at most
    ``MAX_EXACT_SPLITS``, otherwise ``n_perm`` random ones, p-values then ``(1 + count) / (1 +
    n_perm)``).  One-sided p-values: ``p_greater`` = share with a difference ``>=`` the observed
    one (small when A > B), ``p_less`` = share ``<=`` it; ties count (so identical conditions
    give 1).  ``p_min`` is the smallest p-value the test can return with these sample sizes.
    Returns ``{"diff", "p_greater", "p_less", "p_min", "n_a", "n_b", "n_splits", "exact"}``.
    """
    a = np.asarray(a, float).ravel()
    b = np.asarray(b, float).ravel()
    if a.size < 1 or b.size < 1:
        raise ValueError(f"'a' and 'b' must each hold at least one value; got {a.size} and {b.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("'a' and 'b' must hold finite numbers")
    check_int("n_perm", n_perm, lo=1)
    m, k = a.size, b.size
    pooled = np.concatenate([a, b])
    total = pooled.sum()
    diff = float(a.mean() - b.mean())
    n_splits = math.comb(m + k, m)
    exact = n_splits <= MAX_EXACT_SPLITS
    if exact:
        sel = np.zeros((n_splits, m + k), dtype=bool)
        for i, combo in enumerate(itertools.combinations(range(m + k), m)):
            sel[i, list(combo)] = True
    else:
        rng = np.random.default_rng(seed)
        sel = np.zeros((n_perm, m + k), dtype=bool)
        for i in range(n_perm):
            sel[i, rng.choice(m + k, size=m, replace=False)] = True
    sum_a = sel.astype(float) @ pooled
    diffs = sum_a / m - (total - sum_a) / k
    tol = 1e-9 * max(1.0, float(np.max(np.abs(pooled))))  # equal differences up to round-off are ties
    ge = int(np.sum(diffs >= diff - tol))
    le = int(np.sum(diffs <= diff + tol))
    if exact:
        p_greater, p_less, p_min = ge / n_splits, le / n_splits, 1.0 / n_splits
    else:
        p_greater, p_less, p_min = (ge + 1) / (n_perm + 1), (le + 1) / (n_perm + 1), 1.0 / (n_perm + 1)
    return {"diff": diff, "p_greater": float(p_greater), "p_less": float(p_less), "p_min": float(p_min),
            "n_a": m, "n_b": k, "n_splits": n_splits, "exact": exact}


def verdict_seeds(a, b, *, alpha: float = 0.05, **kw) -> tuple[str, dict]:
    """Verdict on the claim "condition A scores higher than condition B" from per-seed values.

    *reproduced* when the one-sided exact permutation p-value for A > B is ``<= alpha``; *not
    reproduced* when the one-sided p-value for A < B is ``<= alpha``; otherwise *inconclusive*
    — always so when ``1 / C(m + k, m) > alpha`` (two seeds per condition: 1/6), because the test
    cannot then reach ``alpha``.  Returns ``(verdict, test)`` (:func:`permutation_test`).
    """
    check_float("alpha", alpha, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    t = permutation_test(a, b, **kw)
    if t["p_greater"] <= alpha:
        return "reproduced", t
    if t["p_less"] <= alpha:
        return "not reproduced", t
    return "inconclusive", t


def permutation_stats(t: dict, *, family: str = "") -> dict:
    """The statistics columns of a scorecard row (:func:`jointtask_lib.scorecard.claim`) decided by
    :func:`verdict_seeds`: the test, its one-sided p for the claim (A > B) and against it, the
    smallest p it can reach with these seeds, the number of runs (seeds of both conditions)."""
    how = "exact" if t["exact"] else "sampled"
    out = {"test": f"{how} permutation over seeds ({t['n_a']} vs {t['n_b']})", "p": float(t["p_greater"]),
           "p_against": float(t["p_less"]), "min_p": float(t["p_min"]), "n_runs": int(t["n_a"] + t["n_b"])}
    return out | ({"family": family} if family else {})


def analysis_verdict(verdict: str, *, learned: bool, what: str = "the target operation",
                     above_null: bool | None = None) -> tuple[str, list[str]]:
    """The verdict an analysis claim may carry, and why it was overridden (a list of reasons).

    * ``learned=False`` (the compared models never reached the accuracy threshold — the width is
      a fallback): *inconclusive*, since "how does the model compute it" is asked of models that
      do not compute it;
    * ``above_null=False`` with a *reproduced* test (the higher score is not above the 95th
      percentile of random embeddings): *inconclusive*, since "more structure than a single-task
      model" is not "structured".
    """
    reasons = []
    if not learned:
        reasons.append(f"the compared models never learned {what} (no width reached the accuracy threshold; "
                       "compared at the largest width) - no verdict on how they compute it")
    if verdict == "reproduced" and above_null is False:
        reasons.append("the higher score is not above the random-embedding null's 95th percentile")
    return ("inconclusive" if reasons else verdict), reasons


def describe_test(t: dict, a: str = "A", b: str = "B", *, alpha: float = 0.05) -> str:
    """One sentence on a :func:`permutation_test` result, for notes and notebook prose."""
    how = (f"exact one-sided permutation test over seeds ({t['n_a']} vs {t['n_b']} seeds, all {t['n_splits']} "
           f"assignments)" if t["exact"] else
           f"Monte Carlo one-sided permutation test over seeds ({t['n_a']} vs {t['n_b']} seeds)")
    text = f"{how}: p({a} > {b}) = {t['p_greater']:.3f}, p({a} < {b}) = {t['p_less']:.3f}"
    if t["p_min"] > alpha:
        text += (f"; the smallest p possible with these seeds is {t['p_min']:.3f} > {alpha}, so no verdict "
                 "can be reached (more seeds are needed; 3 per condition suffice)")
    return text
