"""Separation scores of trained models' number embeddings, summarised over seeds (notebook 06).

The scores themselves (parity, divisibility by each divisor of n, order; their formulas and their
random-embedding null) are defined in :mod:`jointtask_lib.analysis.embeddings`.  Here they are
computed for every seed of a condition, summarised as a mean with a bootstrap CI over seeds, and
compared with the null of random Gaussian embeddings of the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .embeddings import chance_level, divisibility_scores, order_score, parity_score, proper_divisors, score_with_ci

__all__ = ["score_names", "embedding_scores", "summarise", "null_summary", "scores_table"]


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
    """``{score: (mean, lo, hi)}``: mean over seeds with a 95% percentile-bootstrap CI."""
    return {k: score_with_ci(v, n_boot=n_boot, seed=seed) for k, v in values.items()}


def null_summary(n: int, d: int, n_samples: int = 200, seed: int = 0) -> dict[str, tuple[float, float]]:
    """``{score: (mean, 95th percentile)}`` of every score for random ``[n, d]`` embeddings."""
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
