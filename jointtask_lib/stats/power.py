"""The power planner: how often would a design call a true effect, and how often a false one?

A *design* is a number of seeds per condition and a list of sizes (widths, as parameter counts):
every seed trains one run at every size, in both conditions.  A *curve* (:class:`TransitionCurve`)
says how likely a run of the single-task condition is to learn at each size; the joint condition's
curve is the same, shifted to sizes ``factor`` times smaller.  :func:`plan_power` draws ``reps``
experiments from the curve and analyses each exactly as the scorecard does
(:func:`jointtask_lib.stats.pooled.pooled_reduction`'s likelihood-ratio test and profile CI):

* ``power``: the share of experiments with a true ``factor`` whose one-sided p is below ``alpha``;
* ``false_positive_rate``: the same share when the true factor is 1 (no benefit);
* ``coverage``: the share whose ``ci`` profile-likelihood interval holds the true factor.

Each is a Monte-Carlo estimate with standard error ``sqrt(x (1 - x) / reps)`` (``mc_se``).

:data:`HEADLINE_CURVE` is the ADD-alone curve fitted (pooled model, lapse and seed effect
included) to the 50 measured runs in ``benchmarks/measured/headline_seeds_cpu.json`` by
``benchmarks/headline_stats.py``; ``tests/test_stats.py`` refits it and checks these numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..validate import check_float, check_int
from .pooled import LAPSE_MAX, TAU_MAX, TransitionCurve, ci_critical, lrt_and_deviance, simulate

#: ADD alone at the quick preset (modulus 10, 2 arguments, 5,000 steps), fitted to the measured
#: headline runs: transition (parameters), slope per unit log(parameters), lapse, seed sd (log
#: parameters).  Recomputed by benchmarks/headline_stats.py (key ``fitted_curve``).
HEADLINE_CURVE = TransitionCurve(transition=4.59e3, slope=10.5, lapse=0.056, tau=0.376)


@dataclass(frozen=True)
class PowerResult:
    """Result of :func:`plan_power` (see the module docstring).  ``mc_se``: Monte-Carlo standard
    errors of the three rates."""

    power: float
    false_positive_rate: float
    coverage: float
    mc_se: dict
    factor: float
    seeds: int
    n_params: tuple[int, ...]
    reps: int
    alpha: float
    ci: float
    curve: dict

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (f"{self.seeds} seeds x {len(self.n_params)} sizes, true factor {self.factor:g}: power "
                f"{self.power:.2f}, false-positive rate {self.false_positive_rate:.3f}, {self.ci:.0%} CI "
                f"coverage {self.coverage:.2f} ({self.reps} simulated experiments each; Monte-Carlo se "
                f"{self.mc_se['power']:.3f} / {self.mc_se['false_positive_rate']:.3f} / "
                f"{self.mc_se['coverage']:.3f}; one-sided alpha {self.alpha:g})")


def _check_design(factor, seeds, n_params, reps, alpha, ci):
    check_float("factor", factor, lo=1.0, hi=50.0)
    check_int("seeds", seeds, lo=2, hi=1000)
    sizes = tuple(n_params)
    if len(sizes) < 2 or len(set(sizes)) != len(sizes):
        raise ValueError(f"'widths' must list at least 2 distinct sizes; got {list(sizes)}")
    for v in sizes:
        check_float("widths", v, lo=0.0, lo_open=True)
    check_int("reps", reps, lo=10, hi=100_000)
    check_float("alpha", alpha, lo=0.0, hi=0.5, lo_open=True)
    check_float("ci", ci, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    return sizes


def plan_power(
    *,
    factor: float,
    seeds: int,
    n_params,
    curve: TransitionCurve = HEADLINE_CURVE,
    reps: int = 200,
    alpha: float = 0.025,
    ci: float = 0.95,
    lapse: float | str = "fit",
    seed_effect: bool = True,
    rng=0,
) -> PowerResult:
    """Power, false-positive rate and CI coverage of a design, by simulation (module docstring).

    ``factor``: the true reduction factor (>= 1); ``seeds``: seeds per condition; ``n_params``:
    the sizes (parameter counts), one run per seed and size; ``curve``: the single-task curve;
    ``reps``: simulated experiments per rate; ``alpha``: one-sided level; ``ci``: CI level;
    ``lapse`` / ``seed_effect``: the analysis model's settings (as in the scorecard).  ``rng``:
    seed (same seed, same result).
    """
    sizes = _check_design(factor, seeds, n_params, reps, alpha, ci)
    if not isinstance(curve, TransitionCurve):
        raise ValueError(f"'curve' must be a TransitionCurve; got {type(curve).__name__}")
    if curve.lapse > LAPSE_MAX or curve.tau > TAU_MAX:
        raise ValueError(f"'lapse' must be at most {LAPSE_MAX} and 'seed_sd' at most {TAU_MAX}; got "
                         f"{curve.lapse} and {curve.tau}")
    gen = np.random.default_rng(rng)
    hits = fps = cover = 0
    for _ in range(reps):
        a, b = simulate(curve, factor, sizes, seeds, gen)
        p, dev, df = lrt_and_deviance(a, b, factor, lapse=lapse, seed_effect=seed_effect)
        hits += p < alpha
        cover += dev <= ci_critical(ci, df)
        a0, b0 = simulate(curve, 1.0, sizes, seeds, gen)
        p0, _, _ = lrt_and_deviance(a0, b0, 1.0, lapse=lapse, seed_effect=seed_effect)
        fps += p0 < alpha
    rates = {"power": hits / reps, "false_positive_rate": fps / reps, "coverage": cover / reps}
    se = {k: math.sqrt(max(v * (1 - v), 1.0 / reps) / reps) for k, v in rates.items()}
    return PowerResult(power=rates["power"], false_positive_rate=rates["false_positive_rate"],
                       coverage=rates["coverage"], mc_se=se, factor=float(factor), seeds=int(seeds),
                       n_params=tuple(int(v) for v in sizes), reps=int(reps), alpha=float(alpha), ci=float(ci),
                       curve=asdict(curve))
