"""Learning transitions: the smallest model that learns a task, with confidence intervals.

What we measure
---------------
Paper A (Both et al. 2025) summarises "how hard is this task for small models?" by one number,
the *learning transition*: the model size at which the task is learned.  Below it the model stays
near chance; above it the model solves the task.  Joint training helps if it moves the transition
down, and the *reduction factor* ``transition(single task) / transition(joint)`` says by how much
(4 means: a model 4 times smaller learns the task when trained jointly).

The estimator, step by step
---------------------------
1. **Fit a curve.**  Accuracy against the logarithm of the model size ``s`` usually looks like an
   S-shaped (logistic) curve, so we fit, by least squares over *all* observations (every size and
   every seed)::

       acc(s) = floor + (top - floor) / (1 + exp(-slope * (log s - log s0)))

   ``floor`` is the lower plateau (small models), ``top`` the upper plateau (the *asymptote*:
   what big models reach), ``s0`` the size halfway between the two (:attr:`LogisticFit.midpoint`),
   ``slope`` the steepness per unit of natural-log size.  Constraints: ``0 <= floor <= top <= 1``
   and ``slope > 0`` (accuracy does not fall with size).  If the chance accuracy of the task is
   known and passed as ``chance``, the floor is *fixed* to it (one parameter fewer: use this when
   the smallest models really sit at chance).  The fit first scans a grid of ``(s0, slope)``
   values -- for each the best floor and top have a closed form -- and then polishes the best
   grid point with :func:`scipy.optimize.curve_fit`.  The grid makes the fit global (no bad local
   optimum from a bad starting guess, even for noisy or non-monotone data) and fast.

   The steepest curve allowed rises from 2% to 98% of its range within one (median) step of the
   size grid.  When accuracy jumps between two adjacent sizes, the data cannot say where in
   between the jump is; this cap places it near the middle (in log size) instead of anywhere.
   *No analysis can resolve a transition finer than the sizes that were trained.*  With only 3
   sizes and a free floor the curve (4 parameters) is not identified; pass ``chance`` or train
   more sizes (the result carries a note).

2. **Read off the transition.**  The task counts as learned at the size where the fitted curve
   reaches ``level x asymptote`` (default ``level = 0.8``: "80% of the asymptotic accuracy").
   Note: it is ``level x top``, *not* ``floor + level x (top - floor)``.  Inverting the logistic
   gives the closed form (:func:`transition_point`)::

       g = (level*top - floor) / (top - floor)
       log s* = log s0 + log(g / (1 - g)) / slope

   With ``floor = 0`` this is ``log s0 + log(level / (1 - level)) / slope``.

3. **Never invent a number: bounds.**  The answer is one of three kinds:

   * ``"estimate"``: a size inside the range of sizes tried, e.g. ``1.2e4 [0.9e4, 1.6e4]``;
   * ``"above"``: not learned by any size tried, reported as ``> largest size``;
   * ``"below"``: already learned at the smallest size tried, reported as ``< smallest size``.

   The rules, applied in this order (``T = level x A`` is the threshold accuracy):

   a. *Which asymptote A.*  If you pass ``asymptote`` (e.g. 1.0, the known best accuracy), that
      is A.  Otherwise A is the fitted ``top`` -- but only if the fitted plateau shows real
      learning: ``top >= min_asymptote`` (default: halfway between chance and perfect,
      ``chance + (1 - chance) / 2``, i.e. 0.5 when ``chance`` is not given) and, when ``chance`` is
      given, ``T > chance``.  Otherwise A falls back to 1.0.  Why: a run whose accuracy sits at
      chance (say 0.1) at every size has a fitted top of about 0.1, and "80% of 0.1" is reached
      everywhere -- that would report a transition for a task that was never learned.  Measured
      against A = 1.0 such a run is (correctly) "not learned".  For tasks with a high chance level
      (binary outputs: 0.5) always pass ``chance``, or a flat run near 0.5 could pass the default
      ``min_asymptote`` of 0.5.
   b. *Observed data first.*  If the observed mean accuracy (mean over seeds) reaches ``T`` at no
      size, the result is ``"above"``, whatever the curve says.  If it reaches ``T`` at every size,
      the result is ``"below"``.
   c. *Then the curve.*  Otherwise the transition is the fitted crossing ``s*``; if ``s*`` lies
      beyond the largest size tried (or the curve never reaches ``T``) the result is ``"above"``,
      if it lies below the smallest size tried (or the curve is above ``T`` everywhere) it is
      ``"below"``.  We do not extrapolate.

4. **Confidence interval: bootstrap over seeds.**  The seeds are the independent repetitions,
   so we resample *seeds* with replacement (all sizes of a drawn seed come together), refit, and
   apply the same rules to every replicate.  The CI is read off the sorted replicate transitions
   (in log size).  The plain *percentile* interval (2.5% and 97.5% points for a 95% CI) is too
   narrow with few seeds -- with 5 seeds a nominal 95% interval covers the truth only about 85% of
   the time, because the bootstrap spread divides by n instead of n - 1 and uses normal instead of
   t quantiles.  By default (``ci_method="expanded"``) we therefore widen it, with the
   small-sample correction behind Hesterberg's (2015) *expanded percentile interval*: each end's
   distance from the median replicate is multiplied by ``kappa = sqrt(n / (n - 1)) * t(n-1) / z``
   (n seeds; t and z the Student and normal quantiles).  For a 95% CI: kappa = 9.2 with 2 seeds
   (two seeds say little), 2.69 with 3, 1.58 with 5, 1.22 with 10.  (Hesterberg reads more
   extreme percentiles instead; scaling the 2.5% / 97.5% points keeps the ends stable with a
   few hundred replicates.)  In our simulations (7 sizes, independent noise, 200-300 data sets
   each) a nominal 95% CI covered the true transition: plain percentile 84% with 5 seeds and 88%
   with 10; expanded 91% with 3 seeds, 94% with 5, 94.5% with 10.
   ``ci_method="percentile"`` gives the plain interval.

   Replicates that come out as bounds are ranked as ``-inf`` ("below") or ``+inf`` ("above");
   a CI end that falls on such a replicate, or that the widening pushes outside the sizes tried,
   is reported as a bound (``< smallest`` / ``> largest``) instead of a number (``lo_kind`` /
   ``hi_kind``).  The share of bound replicates is reported (``frac_below``, ``frac_above``).
   Replicates with fewer than 3 distinct sizes (possible when seeds miss sizes) are dropped and
   counted.

   With a single seed (or ``seeds=None``) there is nothing to resample between runs, so we use a
   *residual bootstrap*: fitted curve + residuals drawn with replacement (inflated by
   ``sqrt(n / (n - p))`` for the ``p`` fitted parameters), clipped to [0, 1]; the widening uses
   ``kappa = t(n - p) / z``.  That interval only reflects how well the curve is pinned down by
   the points (with independent noise it covered 95% in our simulation), not run-to-run
   variation: a seed that learns late moves *all* its sizes, which residuals cannot see.  On
   real runs it is likely too narrow; ``bootstrap == "residuals"`` and a note in the result say
   so.  With few seeds (fewer than 5) the seed bootstrap is coarse: 3 seeds allow only 10
   distinct resamples (each distinct resample is fitted once, which also makes it fast).

5. **Reduction factor.**  :func:`reduction_factor` estimates both transitions, divides, and
   bootstraps the ratio with independent seed resampling in each condition (or the same seed
   draws for both with ``paired=True``, when seed ``k`` means the same thing in both runs).
   Bounds propagate, conservatively: each transition is replaced by the whole range it is known
   to lie in -- ``> X`` by ``(X, inf)``, ``< X`` by ``(0, X)``, an estimate by its CI
   ``[lo, hi]`` (a CI end that is itself a bound opens that side: ``0`` or ``inf``; without a
   CI, the point estimate) -- and the factor gets the bound that holds for *every* pair of
   values in the two ranges.  So if the single-task run is ``> X`` and the joint run an estimate
   ``J [J_lo, J_hi]``, the factor is ``> X / J_hi`` (not ``X / J``: the joint transition may be as
   large as ``J_hi``); if ``J_hi`` is itself a bound ("> largest size tried"), the joint model may
   not have learned within the sizes tried either, and the factor is ``"inconclusive"``.  Likewise
   single ``= S [S_lo, S_hi]``, joint ``< Y`` gives ``> S_lo / Y``; single ``< X``, joint ``J``
   gives ``< X / J_lo``; single ``S``, joint ``> Y`` gives ``< S_hi / Y``; and both bounds in the
   same direction give ``"inconclusive"`` (``reason`` says why).  The CI of the ratio uses the
   expanded correction of the condition with
   fewer seeds.  A replicate where both are bounds in the same direction says nothing about
   the ratio; it is counted as ``-inf`` for the lower CI end and ``+inf`` for the upper one (it
   can only widen the interval).

Everything is deterministic given ``rng``.

In code (long format: one entry per trained model)::

    t = estimate_transition(sizes, accs, seeds, chance=1 / 97)
    print(t)                        # e.g. 1.2e4 [0.9e4, 1.6e4]   or   > 5.1e4 (largest tried)
    print(t.describe(detail=True))  # ... (80% of asymptote 0.99 [fitted]; 95% CI, ...)
    r = reduction_factor(single=(sizes, acc_single, seeds), joint=(sizes, acc_joint, seeds))
    print(r)                        # e.g. 4.02 [2.91, 5.60]
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.special import expit

from .records import LEVEL, learned_bar
from .validate import check_choice, check_float, check_int

__all__ = [
    "LogisticFit",
    "Transition",
    "Reduction",
    "fit_logistic",
    "transition_point",
    "estimate_transition",
    "reduction_factor",
    "Exponent",
    "scaling_exponent",
]

DEFAULT_LEVEL = LEVEL  # "learned": level x asymptote (:func:`jointtask_lib.records.learned_bar`)
CI_METHODS = ("expanded", "percentile")

# Fitting grid: N_X0 midpoints x N_SLOPE slopes are scanned before curve_fit polishes the best.
_N_X0 = 49
_N_SLOPE = 16
# Steepest slope: 2% -> 98% of the rise (logit +-4) within one median step of log size.
_MAX_SLOPE_PER_STEP = 8.0
# Shallowest slope: the 2% -> 98% rise spans 16 times the whole range tried (nearly a line).
_MIN_SLOPE_PER_RANGE = 0.5
_FEW_SEEDS = 5


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogisticFit:
    """A fitted curve ``acc(s) = floor + (top - floor) * sigmoid(slope * (log s - log s0))``.

    ``success`` is False when the final curve_fit polish did not run or did not converge (too few
    points, or an optimiser failure); the parameters are then those of the best grid point, which
    is still a least-squares fit to grid precision.  ``rmse`` is the root-mean-square residual
    over all ``n_obs`` observations.  ``floor_fixed`` says the floor was fixed to ``chance``.
    ``size_min`` / ``size_max`` are the smallest and largest sizes the curve was fitted on.
    """

    floor: float
    top: float
    s0: float
    slope: float
    success: bool
    rmse: float
    n_obs: int
    floor_fixed: bool
    size_min: float
    size_max: float

    @property
    def midpoint(self) -> float:
        """The size where the curve is halfway between floor and top (same as ``s0``)."""
        return self.s0

    def predict(self, sizes: Any) -> np.ndarray:
        """Fitted accuracy at the given sizes."""
        x = np.log(np.asarray(sizes, dtype=float))
        return self.floor + (self.top - self.floor) * expit(self.slope * (x - math.log(self.s0)))


@dataclass(frozen=True)
class Transition:
    """A learning transition: an estimate with a CI, or a bound.  ``str()`` renders it.

    ``kind``: ``"estimate"`` (``value`` is a size in the range tried, ``lo``/``hi`` the CI),
    ``"above"`` (not learned within the sizes tried: ``bound`` = largest size, ``value`` None) or
    ``"below"`` (learned at the smallest size already: ``bound`` = smallest size, ``value`` None).
    For an estimate, ``lo_kind``/``hi_kind`` say whether each CI end is a number (``"estimate"``)
    or a bound (``"below"``: ``lo`` is then the smallest size and means "< lo"; ``"above"``: the
    end is the largest size and means "> hi").  ``lo``/``hi`` are None for bounds and when no
    bootstrap was run.

    ``threshold`` is the accuracy ``level x asymptote`` the task must reach; ``asymptote_source``
    says where the asymptote came from: ``"given"``, ``"fit"`` (the fitted top) or ``"fallback"``
    (1.0, because the fitted plateau showed no real learning; see the module docstring).
    ``bootstrap`` is ``"seeds"``, ``"residuals"`` (one seed) or ``"none"``; ``n_boot`` counts the
    replicates used (dropped ones excluded).  ``replicates`` holds every replicate's transition
    size, ``0.0`` meaning "below the smallest size", ``inf`` "above the largest" and ``nan``
    "dropped".
    """

    value: float | None
    lo: float | None
    hi: float | None
    kind: str
    bound: float | None
    level: float
    n_seeds: int
    fit: LogisticFit
    threshold: float
    asymptote: float
    asymptote_source: str
    size_range: tuple[float, float]
    lo_kind: str | None = None
    hi_kind: str | None = None
    ci: float = 0.95
    ci_method: str = "expanded"
    bootstrap: str = "none"
    n_boot: int = 0
    frac_above: float | None = None
    frac_below: float | None = None
    notes: tuple[str, ...] = ()
    replicates: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def describe(self, detail: bool = False) -> str:
        """``"1.2e4 [0.9e4, 1.6e4]"``, ``"> 5.1e4 (largest tried)"`` or ``"< 1.0e3 (smallest tried)"``.

        With ``detail=True`` the level, asymptote and bootstrap are appended in parentheses.
        """
        if self.kind == "above":
            text = f"> {_fmt_size(self.bound)} (largest tried)"
        elif self.kind == "below":
            text = f"< {_fmt_size(self.bound)} (smallest tried)"
        else:
            e = _exponent(self.value)
            text = _fmt_size(self.value, e)
            if self.lo is not None and self.hi is not None:
                text += f" [{_fmt_end(self.lo, self.lo_kind, e)}, {_fmt_end(self.hi, self.hi_kind, e)}]"
        if detail:
            src = {"given": "given", "fit": "fitted", "fallback": "fallback, no real learning"}
            src = src[self.asymptote_source]
            bits = [f"{self.level:.0%} of asymptote {self.asymptote:.3g} [{src}]"]
            if self.bootstrap != "none":
                over = f"{self.n_seeds} seeds" if self.bootstrap == "seeds" else "residuals, 1 seed"
                bits.append(f"{self.ci:.0%} CI, bootstrap over {over}, {self.n_boot} replicates")
            text += " (" + "; ".join(bits) + ")"
        return text

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class Reduction:
    """Reduction factor ``transition(single) / transition(joint)``; ``str()`` renders it.

    ``kind``: ``"estimate"`` (``value`` with CI ``lo``/``hi``; an unbounded CI end is ``0.0`` or
    ``inf``), ``"above"`` (factor ``> bound``), ``"below"`` (factor ``< bound``) or
    ``"inconclusive"`` (both transitions are bounds in the same direction, or the CI of the
    estimated one reaches the bound of the other; ``reason`` says which).  ``single`` and
    ``joint`` are the two transitions.  ``frac_indeterminate`` is the share of bootstrap
    replicates where both were bounds in the same direction.  A bound is conservative: it uses
    the CI of the estimated transition (see the module docstring).
    """

    value: float | None
    lo: float | None
    hi: float | None
    kind: str
    bound: float | None
    single: Transition
    joint: Transition
    ci: float = 0.95
    n_boot: int = 0
    paired: bool = False
    frac_indeterminate: float | None = None
    notes: tuple[str, ...] = ()
    reason: str = ""

    def describe(self, labels: tuple[str, str] = ("single-task", "joint")) -> str:
        """``"4.02 [2.91, 5.60]"``, ``"> 3.10 (single-task not learned ...)"``, ``"inconclusive (...)"``.

        ``labels`` name the two conditions in the reasons (numerator first), e.g.
        ``("joint", "continual")`` for a factor transition(joint) / transition(continual)."""
        s, j = self.single.kind, self.joint.kind
        ls, lj = labels
        if self.kind == "estimate":
            text = _fmt_factor(self.value)
            if self.lo is not None and self.hi is not None:
                text += f" [{_fmt_factor(self.lo)}, {_fmt_factor(self.hi)}]"
            return text
        why = {"above": "{} not learned within sizes tried", "below": "{} learned at the smallest size tried"}
        reason = self.reason
        for default, name in (("single-task ", ls), ("joint ", lj)):
            if reason.startswith(default):
                reason = name + " " + reason[len(default):]
                break
        reasons = "; ".join(r for r in (why[s].format(ls) if s in why else "",
                                        why[j].format(lj) if j in why else "", reason) if r)
        if self.kind == "inconclusive":
            return f"inconclusive ({reasons})"
        sign = ">" if self.kind == "above" else "<"
        return f"{sign} {_fmt_factor(self.bound)} ({reasons})"

    def __str__(self) -> str:
        return self.describe()


# ----------------------------------------------------------------------------------------------
# Formatting
# ----------------------------------------------------------------------------------------------


def _exponent(x: float) -> int:
    e = math.floor(math.log10(x))
    if round(x / 10.0**e, 1) >= 10.0:
        e += 1
    return e


def _fmt_size(x: float, e: int | None = None) -> str:
    """``12000 -> "1.2e4"``; with a shared exponent ``e`` (if it reads well): ``9000 -> "0.9e4"``."""
    if e is None or not 0.1 <= x / 10.0**e < 10.0:
        e = _exponent(x)
    return f"{x / 10.0**e:.1f}e{e}"


def _fmt_end(x: float, kind: str | None, e: int) -> str:
    if kind == "below":
        return f"< {_fmt_size(x)}"
    if kind == "above":
        return f"> {_fmt_size(x)}"
    return _fmt_size(x, e)


def _fmt_factor(x: float) -> str:
    if x == 0.0 or math.isinf(x):
        return f"{x:g}"
    if x < 10:
        return f"{x:.2f}"
    if x < 100:
        return f"{x:.1f}"
    return f"{x:.3g}"


# ----------------------------------------------------------------------------------------------
# Validation and data preparation
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    """Observations grouped by size level and by seed, as sufficient statistics."""

    x_levels: np.ndarray  # sorted distinct log sizes, shape (L,)
    lev: np.ndarray  # level index of each observation, shape (n,)
    y: np.ndarray  # accuracies, shape (n,)
    seed_of: np.ndarray  # seed index of each observation, shape (n,)
    n_seeds: int
    labels: tuple
    W_seed: np.ndarray  # (S, L) observation counts per seed and size
    Y_seed: np.ndarray  # (S, L) accuracy sums per seed and size
    YY_seed: np.ndarray  # (S,) sums of squared accuracies per seed


def _prepare(sizes: Any, accs: Any, seeds: Any = None, *, where: str | None = None) -> _Data:
    pre = f"{where}: " if where else ""
    s = _as_1d_float(sizes, "sizes", pre)
    a = _as_1d_float(accs, "accs", pre)
    if a.size != s.size:
        raise ValueError(f"{pre}'accs' must have the same length as 'sizes' ({s.size}); got {a.size}")
    if s.size == 0:
        raise ValueError(f"{pre}'sizes' must not be empty (need at least 3 distinct sizes)")
    bad = ~np.isfinite(s) | (s <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{pre}'sizes' must be positive finite numbers (model sizes); got {float(s[i])!r} at index {i}"
        )
    bad = ~np.isfinite(a) | (a < 0) | (a > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{pre}'accs' must be accuracies in [0, 1] (fractions, not percentages); "
            f"got {float(a[i])!r} at index {i}"
        )
    if seeds is None:
        seed_of = np.zeros(s.size, dtype=np.intp)
        labels: tuple = (None,)
    else:
        sd = np.asarray(seeds)
        if sd.ndim != 1 or sd.size != s.size:
            raise ValueError(
                f"{pre}'seeds' must be None or a 1-D sequence with the same length as 'sizes' ({s.size}); "
                f"got shape {sd.shape}"
            )
        try:
            lab, seed_of = np.unique(sd, return_inverse=True)
        except TypeError as exc:
            raise ValueError(
                f"{pre}'seeds' must be labels of one comparable type (e.g. all ints); {exc}"
            ) from None
        labels = tuple(lab.tolist())
        seed_of = seed_of.reshape(-1).astype(np.intp)
    x = np.log(s)
    x_levels, lev = np.unique(x, return_inverse=True)
    lev = lev.reshape(-1).astype(np.intp)
    if x_levels.size < 3:
        raise ValueError(
            f"{pre}'sizes' must contain at least 3 distinct sizes to fit a logistic curve; got {x_levels.size}"
        )
    S, L = len(labels), x_levels.size
    W = np.zeros((S, L))
    Y = np.zeros((S, L))
    np.add.at(W, (seed_of, lev), 1.0)
    np.add.at(Y, (seed_of, lev), a)
    YY = np.bincount(seed_of, weights=a * a, minlength=S)
    return _Data(x_levels, lev, a, seed_of, S, labels, W, Y, YY)


def _as_1d_float(v: Any, name: str, pre: str) -> np.ndarray:
    try:
        arr = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{pre}'{name}' must be a 1-D sequence of numbers; got {type(v).__name__}") from None
    if arr.ndim != 1:
        raise ValueError(f"{pre}'{name}' must be a 1-D sequence of numbers; got shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class _Params:
    level: float
    chance: float | None
    asymptote: float | None
    min_asymptote: float
    n_boot: int
    ci: float
    ci_method: str


def _check_params(level, chance, asymptote, min_asymptote, n_boot, ci, ci_method) -> _Params:
    level = check_float("level", level, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    if chance is not None:
        chance = check_float("chance", chance, lo=0.0, hi=1.0, hi_open=True)
    if asymptote is not None:
        asymptote = check_float("asymptote", asymptote, lo=0.0, hi=1.0, lo_open=True)
    if min_asymptote is None:
        c = 0.0 if chance is None else chance
        min_asymptote = c + (1.0 - c) / 2.0
    else:
        min_asymptote = check_float("min_asymptote", min_asymptote, lo=0.0, hi=1.0)
    if chance is not None:
        a = 1.0 if asymptote is None else asymptote
        if level * a <= chance:
            raise ValueError(
                f"'level' x 'asymptote' must exceed 'chance' ({chance}), or reaching the threshold says "
                f"nothing; got level={level} x asymptote={a} = {level * a}"
            )
    if isinstance(n_boot, np.integer):
        n_boot = int(n_boot)
    n_boot = check_int("n_boot", n_boot, lo=0)
    ci = check_float("ci", ci, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    ci_method = check_choice("ci_method", ci_method, CI_METHODS)
    return _Params(level, chance, asymptote, min_asymptote, n_boot, ci, ci_method)


def _as_generator(rng: Any) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0):
        return np.random.default_rng(rng)
    raise ValueError(f"'rng' must be a non-negative integer seed, None or a numpy Generator; got {rng!r}")


# ----------------------------------------------------------------------------------------------
# Fitting
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ctx:
    """Bounds and the precomputed scan grid for one set of sizes (shared by all replicates)."""

    x_levels: np.ndarray
    chance: float | None
    lb: np.ndarray
    ub: np.ndarray
    x0_grid: np.ndarray  # (K,)
    slope_grid: np.ndarray  # (K,)
    G: np.ndarray  # (K, L) sigmoid of every grid point at every size
    G2: np.ndarray  # (K, L)


def _make_ctx(x_levels: np.ndarray, chance: float | None) -> _Ctx:
    xmin, xmax = float(x_levels[0]), float(x_levels[-1])
    xr = xmax - xmin
    step = float(np.median(np.diff(x_levels)))
    s_lo, s_hi = _MIN_SLOPE_PER_RANGE / xr, _MAX_SLOPE_PER_STEP / step
    x0_lo, x0_hi = xmin - xr, xmax + xr
    X0, SL = np.meshgrid(np.linspace(x0_lo, x0_hi, _N_X0), np.geomspace(s_lo, s_hi, _N_SLOPE), indexing="ij")
    X0, SL = X0.ravel(), SL.ravel()
    G = expit(SL[:, None] * (x_levels[None, :] - X0[:, None]))
    if chance is None:  # parameters: floor, u, x0, slope   (top = floor + (1 - floor) * u)
        lb = np.array([0.0, 0.0, x0_lo, s_lo])
        ub = np.array([1.0, 1.0, x0_hi, s_hi])
    else:  # parameters: u, x0, slope   (floor = chance)
        lb = np.array([0.0, x0_lo, s_lo])
        ub = np.array([1.0, x0_hi, s_hi])
    return _Ctx(x_levels, chance, lb, ub, X0, SL, G, G * G)


def _grid_best(ctx: _Ctx, w: np.ndarray, Y: np.ndarray, syy: float) -> tuple[float, float, float, float, float]:
    """Best (floor, top, x0, slope, sse) over the grid; floor/top exact for each grid point.

    For fixed ``(x0, slope)`` the model ``a + b g`` is linear in ``a = floor``, ``b = top - floor``,
    with ``a >= 0, b >= 0, a + b <= 1``: a convex quadratic over a triangle, minimised by the
    unconstrained solution if it is feasible, else on the best of the three edges.
    """
    G, G2 = ctx.G, ctx.G2
    n, sy = float(w.sum()), float(Y.sum())
    sg, sgg, sgy = G @ w, G2 @ w, G @ Y
    with np.errstate(divide="ignore", invalid="ignore"):
        if ctx.chance is not None:
            c = ctx.chance
            sy_c, sgy_c, syy_c = sy - n * c, sgy - c * sg, syy - 2 * c * sy + n * c * c
            b = np.clip(np.where(sgg > 0, sgy_c / sgg, 0.0), 0.0, 1.0 - c)
            sse = syy_c - 2 * b * sgy_c + b * b * sgg
            k = int(np.argmin(sse))
            return c, c + float(b[k]), float(ctx.x0_grid[k]), float(ctx.slope_grid[k]), float(sse[k])

        def sse_of(a, b):
            return syy - 2 * a * sy - 2 * b * sgy + n * a * a + 2 * a * b * sg + b * b * sgg

        det = n * sgg - sg * sg
        ok = det > 1e-12 * n * n
        a_u = np.where(ok, (sgg * sy - sg * sgy) / det, np.nan)
        b_u = np.where(ok, (n * sgy - sg * sy) / det, np.nan)
        feas = ok & (a_u >= 0) & (b_u >= 0) & (a_u + b_u <= 1)
        cands = [(np.where(feas, a_u, 0.0), np.where(feas, b_u, 0.0), feas)]
        # edge a = 0
        b0 = np.clip(np.where(sgg > 0, sgy / sgg, 0.0), 0.0, 1.0)
        cands.append((np.zeros_like(b0), b0, None))
        # edge b = 0 (flat curve)
        a1 = np.full_like(sg, min(max(sy / n, 0.0), 1.0))
        cands.append((a1, np.zeros_like(a1), None))
        # edge a + b = 1
        d = n - 2 * sg + sgg
        b2 = np.clip(np.where(d > 0, (n - sy - sg + sgy) / d, 0.0), 0.0, 1.0)
        cands.append((1.0 - b2, b2, None))
        best_sse = np.full(sg.shape, np.inf)
        best_a = np.zeros_like(sg)
        best_b = np.zeros_like(sg)
        for a, b, mask in cands:
            e = sse_of(a, b)
            if mask is not None:
                e = np.where(mask, e, np.inf)
            better = e < best_sse
            best_sse = np.where(better, e, best_sse)
            best_a = np.where(better, a, best_a)
            best_b = np.where(better, b, best_b)
    k = int(np.argmin(best_sse))
    a, b = float(best_a[k]), float(best_b[k])
    return a, a + b, float(ctx.x0_grid[k]), float(ctx.slope_grid[k]), float(best_sse[k])


def _model_free(x, floor, u, x0, slope):
    return floor + (1.0 - floor) * u * expit(slope * (x - x0))


def _jac_free(x, floor, u, x0, slope):
    g = expit(slope * (x - x0))
    dg = g * (1.0 - g)
    amp = (1.0 - floor) * u
    return np.stack([1.0 - u * g, (1.0 - floor) * g, -amp * slope * dg, amp * (x - x0) * dg], axis=1)


def _fit_stats(ctx: _Ctx, w: np.ndarray, Y: np.ndarray, syy: float) -> LogisticFit:
    """Least-squares fit from per-size counts ``w``, accuracy sums ``Y`` and the sum of squares."""
    n = float(w.sum())
    floor, top, x0, slope, sse = _grid_best(ctx, w, Y, syy)
    present = w > 0
    xs, ws = ctx.x_levels[present], w[present]
    means = Y[present] / ws
    c = ctx.chance
    if c is None:
        u = (top - floor) / (1.0 - floor) if floor < 1.0 else 0.0
        p0 = np.array([floor, u, x0, slope])
        f, jac = _model_free, _jac_free
    else:
        u = (top - c) / (1.0 - c)
        p0 = np.array([u, x0, slope])

        def f(x, u, x0, slope):
            return _model_free(x, c, u, x0, slope)

        def jac(x, u, x0, slope):
            return _jac_free(x, c, u, x0, slope)[:, 1:]

    success = False
    if xs.size >= p0.size:  # curve_fit needs at least as many points as parameters
        span = ctx.ub - ctx.lb
        p0 = np.clip(p0, ctx.lb + 1e-6 * span, ctx.ub - 1e-6 * span)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                popt, _ = curve_fit(
                    f, xs, means, p0=p0, sigma=1.0 / np.sqrt(ws), bounds=(ctx.lb, ctx.ub),
                    jac=jac, method="dogbox", x_scale="jac", max_nfev=400, check_finite=False,
                )
        except (RuntimeError, ValueError):
            popt = None
        if popt is not None and np.all(np.isfinite(popt)):
            pred = f(xs, *popt)
            # total SSE = within-size part (fixed) + sum_l w_l (mean_l - pred_l)^2
            within = syy - float(np.sum(ws * means * means))
            sse_fit = within + float(np.sum(ws * (means - pred) ** 2))
            if sse_fit <= sse + 1e-9 * max(1e-6, abs(sse)):
                success = True
                sse = sse_fit
                if c is None:
                    floor, u, x0, slope = map(float, popt)
                else:
                    floor = c
                    u, x0, slope = map(float, popt)
                top = floor + (1.0 - floor) * u
    return LogisticFit(
        floor=float(floor), top=float(min(top, 1.0)), s0=float(math.exp(x0)), slope=float(slope),
        success=success, rmse=float(math.sqrt(max(sse, 0.0) / n)), n_obs=int(n),
        floor_fixed=c is not None, size_min=float(math.exp(xs[0])), size_max=float(math.exp(xs[-1])),
    )


def fit_logistic(sizes: Any, accs: Any, *, chance: float | None = None) -> LogisticFit:
    """Least-squares logistic fit of accuracy against log model size.

    ``acc(s) = floor + (top - floor) / (1 + exp(-(log s - log s0) * slope))`` with
    ``0 <= floor <= top <= 1`` and ``slope > 0``.  ``sizes`` and ``accs`` are equal-length 1-D
    sequences (one entry per observation; several seeds per size are fine).  If ``chance`` is
    given the floor is fixed to it.  A global grid scan over ``(s0, slope)`` (closed-form floor
    and top) is polished with :func:`scipy.optimize.curve_fit`; see the module docstring.
    """
    data = _prepare(sizes, accs)
    if chance is not None:
        chance = check_float("chance", chance, lo=0.0, hi=1.0, hi_open=True)
    ctx = _make_ctx(data.x_levels, chance)
    return _fit_stats(ctx, data.W_seed.sum(0), data.Y_seed.sum(0), float(data.YY_seed.sum()))


def transition_point(
    fit: LogisticFit, level: float = DEFAULT_LEVEL, *, asymptote: float | None = None
) -> float:
    """The size where the fitted curve reaches ``level x asymptote`` (``asymptote`` defaults to ``fit.top``).

    Closed form: ``log s* = log s0 + log(g / (1 - g)) / slope`` with
    ``g = (level*A - floor) / (top - floor)``.  Returns ``0.0`` if the threshold is at or below
    the floor (the curve is above it at every size: the transition is below any size) and
    ``inf`` if it is at or above ``top`` (never reached).  No range check: that, and the rules
    against reporting a transition for a task that was never learned, are in
    :func:`estimate_transition`.
    """
    level = check_float("level", level, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    if asymptote is not None:
        asymptote = check_float("asymptote", asymptote, lo=0.0, hi=1.0, lo_open=True)
    a = fit.top if asymptote is None else asymptote
    x = _log_crossing(fit.floor, fit.top, math.log(fit.s0), fit.slope, level * a)
    with np.errstate(over="ignore"):
        return float(np.exp(x))


def _log_crossing(floor: float, top: float, x0: float, slope: float, t: float) -> float:
    if t <= floor:
        return -math.inf
    if t >= top:
        return math.inf
    g = (t - floor) / (top - floor)
    return x0 + math.log(g / (1.0 - g)) / slope


# ----------------------------------------------------------------------------------------------
# One evaluation (point estimate or bootstrap replicate)
# ----------------------------------------------------------------------------------------------


def _evaluate(ctx: _Ctx, p: _Params, w: np.ndarray, Y: np.ndarray, syy: float):
    """Fit and apply the rules.  Returns (log transition or +-inf, fit, asymptote, source, threshold)."""
    fit = _fit_stats(ctx, w, Y, syy)
    bar = learned_bar(p.level, asymptote=p.asymptote, plateau=fit.top, chance=p.chance,
                      min_asymptote=p.min_asymptote)
    a, t = bar.asymptote, bar.threshold
    src = "fit" if bar.source == "plateau" else bar.source
    present = w > 0
    means = Y[present] / w[present]
    xs = ctx.x_levels[present]
    learned = bar.learned(means)
    if not learned.any():
        return math.inf, fit, a, src, t
    if learned.all():
        return -math.inf, fit, a, src, t
    lt = _log_crossing(fit.floor, fit.top, math.log(fit.s0), fit.slope, t)
    if lt > xs[-1]:
        lt = math.inf
    elif lt < xs[0]:
        lt = -math.inf
    return lt, fit, a, src, t


def _quantile(v: np.ndarray, q: float, lower: bool) -> float:
    """Linear-interpolation quantile of sorted ``v`` that never interpolates into +-inf.

    If a neighbouring order statistic is infinite, the outer one is returned (the lower one for
    the lower CI end, the upper one for the upper end), so a bound never turns into a number.
    """
    pos = q * (v.size - 1)
    i, j = math.floor(pos), math.ceil(pos)
    vi, vj = float(v[i]), float(v[j])
    if math.isfinite(vi) and math.isfinite(vj):
        return vi + (pos - i) * (vj - vi)
    return vi if lower else vj


@dataclass(frozen=True)
class _Boot:
    logs: np.ndarray  # (n_boot,) log transition per replicate, +-inf for bounds, nan for dropped
    method: str
    n_groups: int | None = None  # resampled seeds (None for residuals)
    df: int | None = None  # degrees of freedom for the expanded-percentile correction


def _kappa(p: _Params, n_groups: int | None, df: int | None) -> float:
    """Widening factor of the ``"expanded"`` CI (1.0 for ``"percentile"``).

    ``kappa = sqrt(n / (n - 1)) * t_{n-1} / z`` with ``t``, ``z`` the ``(1 + ci) / 2`` quantiles
    of Student's t and the normal distribution, ``n`` the number of resampled seeds.  It undoes
    the two small-sample biases of the percentile interval (the bootstrap spread divides by n; it
    behaves like a normal instead of a t quantile), the correction behind Hesterberg's (2015,
    "What teachers should know about the bootstrap", Am. Stat. 69(4)) expanded percentile
    interval.  For residual resampling the residuals are already inflated, so
    ``kappa = t_{df} / z`` with ``df = n_obs - n_params``.
    """
    if p.ci_method == "percentile" or df is None or df < 1:
        return 1.0
    q = (1.0 + p.ci) / 2.0
    k = float(stats.t.ppf(q, df) / stats.norm.ppf(q))
    if n_groups is not None:
        k *= math.sqrt(n_groups / (n_groups - 1))
    return k


def _ci_logs(v: np.ndarray, p: _Params, kappa: float) -> tuple[float, float]:
    """CI ends (log scale, +-inf = bound) from sorted replicates ``v`` (which may hold +-inf).

    Percentile ends, then each side's distance from the replicate median multiplied by ``kappa``.
    An infinite percentile end stays a bound; if the median itself is a bound, the finite end is
    kept unscaled.
    """
    alpha = (1.0 - p.ci) / 2.0
    q_lo, q_hi = _quantile(v, alpha, lower=True), _quantile(v, 1.0 - alpha, lower=False)
    med = _quantile(v, 0.5, lower=True)
    if math.isfinite(med):
        if math.isfinite(q_lo):
            q_lo = med - kappa * (med - q_lo)
        if math.isfinite(q_hi):
            q_hi = med + kappa * (q_hi - med)
    return q_lo, q_hi


def _bootstrap(data: _Data, ctx: _Ctx, p: _Params, fit: LogisticFit, gen: np.random.Generator,
               draws: np.ndarray | None = None) -> _Boot:
    logs = np.full(p.n_boot, np.nan)
    if p.n_boot == 0:
        return _Boot(logs, "none")
    if data.n_seeds >= 2:
        if draws is None:
            draws = gen.integers(0, data.n_seeds, size=(p.n_boot, data.n_seeds))
        # A replicate depends only on how often each seed was drawn; with few seeds the same
        # multiset recurs often (3 seeds: 10 distinct), so each distinct one is fitted once.
        cache: dict[bytes, float] = {}
        for b in range(p.n_boot):
            cnt = np.bincount(draws[b], minlength=data.n_seeds)
            key = cnt.tobytes()
            if key not in cache:
                c = cnt.astype(float)
                w, Y = c @ data.W_seed, c @ data.Y_seed
                cache[key] = (
                    math.nan if np.count_nonzero(w) < 3 else _evaluate(ctx, p, w, Y, float(c @ data.YY_seed))[0]
                )
            logs[b] = cache[key]
        return _Boot(logs, "seeds", data.n_seeds, data.n_seeds - 1)
    # one seed: residual bootstrap
    yhat = fit.predict(np.exp(ctx.x_levels))[data.lev]
    r = data.y - yhat
    n = r.size
    n_par = 3 if ctx.chance is not None else 4
    if n <= n_par:  # the curve passes through every point: residuals carry no information
        return _Boot(logs, "none")
    r = r * math.sqrt(n / (n - n_par))
    L = ctx.x_levels.size
    w = np.bincount(data.lev, minlength=L).astype(float)
    idx = gen.integers(0, n, size=(p.n_boot, n))
    for b in range(p.n_boot):
        ys = np.clip(yhat + r[idx[b]], 0.0, 1.0)
        Y = np.bincount(data.lev, weights=ys, minlength=L)
        logs[b] = _evaluate(ctx, p, w, Y, float(ys @ ys))[0]
    return _Boot(logs, "residuals", None, n - n_par)


def _estimate(data: _Data, p: _Params, gen: np.random.Generator, draws: np.ndarray | None = None
              ) -> tuple[Transition, _Boot]:
    ctx = _make_ctx(data.x_levels, p.chance)
    w, Y, syy = data.W_seed.sum(0), data.Y_seed.sum(0), float(data.YY_seed.sum())
    lt, fit, a, src, t = _evaluate(ctx, p, w, Y, syy)
    smin, smax = float(math.exp(data.x_levels[0])), float(math.exp(data.x_levels[-1]))
    notes = []
    if p.chance is None and data.x_levels.size < 4:
        notes.append("3 sizes and a free floor: 4 parameters, 3 points, the curve is not identified; "
                     "pass chance or add sizes")
    if not fit.success:
        notes.append("curve_fit polish did not run or converge; parameters are the best grid point")
    if src == "fallback":
        notes.append(f"fitted plateau {fit.top:.3g} shows no real learning; threshold measured against 1.0")
    boot = _bootstrap(data, ctx, p, fit, gen, draws)
    if boot.method == "none" and p.n_boot > 0:
        notes.append("one seed and no more observations than curve parameters: no CI")
    if boot.method == "residuals":
        notes.append(
            "one seed: residual bootstrap; the CI ignores run-to-run variation and is likely too narrow"
        )
    elif boot.method == "seeds" and data.n_seeds < _FEW_SEEDS:
        notes.append(f"only {data.n_seeds} seeds: the seed-bootstrap CI is coarse and likely too narrow")
    valid = boot.logs[~np.isnan(boot.logs)]
    n_used = int(valid.size)
    if boot.method != "none" and n_used < p.n_boot:
        notes.append(f"{p.n_boot - n_used} bootstrap replicates dropped (fewer than 3 distinct sizes)")
    frac_above = float(np.mean(valid == np.inf)) if n_used else None
    frac_below = float(np.mean(valid == -np.inf)) if n_used else None
    lo = hi = lo_kind = hi_kind = None
    if math.isfinite(lt):
        kind, value, bound = "estimate", float(math.exp(lt)), None
        if n_used:
            v = np.sort(valid)
            q_lo, q_hi = _ci_logs(v, p, _kappa(p, boot.n_groups, boot.df))
            lo, lo_kind = _end(q_lo, smin, smax)
            hi, hi_kind = _end(q_hi, smin, smax)
    elif lt > 0:
        kind, value, bound = "above", None, smax
    else:
        kind, value, bound = "below", None, smin
    with np.errstate(over="ignore"):
        reps = tuple(float(z) for z in np.exp(boot.logs))
    tr = Transition(
        value=value, lo=lo, hi=hi, kind=kind, bound=bound, level=p.level, n_seeds=data.n_seeds, fit=fit,
        threshold=float(t), asymptote=float(a), asymptote_source=src, size_range=(smin, smax),
        lo_kind=lo_kind, hi_kind=hi_kind, ci=p.ci, ci_method=p.ci_method, bootstrap=boot.method, n_boot=n_used,
        frac_above=frac_above, frac_below=frac_below, notes=tuple(notes), replicates=reps,
    )
    return tr, boot


def _end(q: float, smin: float, smax: float) -> tuple[float, str]:
    """A CI end in log size -> (size, kind); ends outside the range tried become bounds."""
    if q > math.log(smax):
        return smax, "above"
    if q < math.log(smin):
        return smin, "below"
    return float(math.exp(q)), "estimate"


# ----------------------------------------------------------------------------------------------
# Public estimators
# ----------------------------------------------------------------------------------------------


def estimate_transition(
    sizes: Any,
    accs: Any,
    seeds: Any = None,
    *,
    level: float = DEFAULT_LEVEL,
    chance: float | None = None,
    asymptote: float | None = None,
    min_asymptote: float | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    ci_method: str = "expanded",
    rng: Any = 0,
) -> Transition:
    """Learning transition with a bootstrap CI, or a bound when the data do not pin one down.

    ``sizes``, ``accs``, ``seeds``: long-format, one entry per (size, seed) observation, equal
    lengths; accuracies are fractions in [0, 1]; seeds are any labels (``None``: one seed).
    ``level``: fraction of the asymptote that counts as learned (default 0.8).
    ``chance``: chance accuracy; fixes the fitted floor to it and guards the threshold.
    ``asymptote``: the accuracy to take 80% of (e.g. 1.0); default the fitted plateau.
    ``min_asymptote``: smallest fitted plateau that counts as learning (default halfway from
    chance to 1); below it the asymptote falls back to 1.0.
    ``n_boot`` replicates (0: no CI), ``ci`` coverage, ``rng`` seed or Generator.

    Point estimate from the fit to all observations; CI by resampling seeds (residuals if there
    is one seed).  The rules for ``"above"`` / ``"below"`` bounds are in the module docstring.
    """
    data = _prepare(sizes, accs, seeds)
    p = _check_params(level, chance, asymptote, min_asymptote, n_boot, ci, ci_method)
    return _estimate(data, p, _as_generator(rng))[0]


def _unpack(cond: Any, name: str) -> _Data:
    if not isinstance(cond, (tuple, list)) or len(cond) not in (2, 3):
        got = type(cond).__name__ + (f" of length {len(cond)}" if isinstance(cond, (tuple, list)) else "")
        raise ValueError(f"'{name}' must be a tuple (sizes, accs) or (sizes, accs, seeds); got {got}")
    return _prepare(*cond, where=name)


def reduction_factor(
    single: Any,
    joint: Any,
    *,
    level: float = DEFAULT_LEVEL,
    chance: float | None = None,
    asymptote: float | None = None,
    min_asymptote: float | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    ci_method: str = "expanded",
    rng: Any = 0,
    paired: bool = False,
) -> Reduction:
    """Reduction factor ``transition(single) / transition(joint)`` with a bootstrap CI.

    ``single`` and ``joint`` are ``(sizes, accs)`` or ``(sizes, accs, seeds)`` tuples in the long
    format of :func:`estimate_transition`; the keyword arguments apply to both.  Seeds are
    resampled independently in the two conditions, or with the same draws of seed labels when
    ``paired=True`` (both conditions must then have the same seed labels, at least 2).  Each
    condition's replicate transition follows the rules of :func:`estimate_transition`; bound
    propagation and the handling of bound replicates are described in the module docstring.
    """
    ds, dj = _unpack(single, "single"), _unpack(joint, "joint")
    p = _check_params(level, chance, asymptote, min_asymptote, n_boot, ci, ci_method)
    if not isinstance(paired, bool):
        raise ValueError(f"'paired' must be true or false; got {paired!r}")
    gen = _as_generator(rng)
    if paired:
        if ds.labels != dj.labels or ds.n_seeds < 2:
            raise ValueError(
                "'paired' requires both conditions to have the same seed labels (at least 2); "
                f"got single={list(ds.labels)}, joint={list(dj.labels)}"
            )
        draws = gen.integers(0, ds.n_seeds, size=(p.n_boot, ds.n_seeds))
        (ts, bs), (tj, bj) = _estimate(ds, p, gen, draws), _estimate(dj, p, gen, draws)
    else:
        g1, g2 = gen.spawn(2)
        (ts, bs), (tj, bj) = _estimate(ds, p, g1), _estimate(dj, p, g2)

    notes: list[str] = []
    lo = hi = value = bound = frac_ind = None
    reason = ""
    n_used = 0
    if ts.kind == "estimate" and tj.kind == "estimate":
        kind, value = "estimate", ts.value / tj.value
        with np.errstate(divide="ignore"):
            ls, lj = np.log(np.array(ts.replicates)), np.log(np.array(tj.replicates))
        keep = ~(np.isnan(ls) | np.isnan(lj))
        with np.errstate(invalid="ignore"):
            r = ls[keep] - lj[keep]
        n_used = int(r.size)
        if n_used:
            ind = np.isnan(r)
            frac_ind = float(ind.mean())
            # expanded-percentile correction of the less replicated condition (the wider one)
            worse = min((bs, bj), key=lambda bt: np.inf if bt.df is None else bt.df)
            kappa = _kappa(p, worse.n_groups, worse.df)
            q_lo = _ci_logs(np.sort(np.where(ind, -np.inf, r)), p, kappa)[0]
            q_hi = _ci_logs(np.sort(np.where(ind, np.inf, r)), p, kappa)[1]
            with np.errstate(over="ignore"):
                lo, hi = float(np.exp(q_lo)), float(np.exp(q_hi))
    elif ts.kind == tj.kind:
        kind = "inconclusive"
    else:
        kind, bound, reason, more = _propagate_bounds(ts, tj)
        notes += more
    notes += [f"single: {n}" for n in ts.notes] + [f"joint: {n}" for n in tj.notes]
    return Reduction(
        value=value, lo=lo, hi=hi, kind=kind, bound=bound, single=ts, joint=tj, ci=p.ci, n_boot=n_used,
        paired=paired, frac_indeterminate=frac_ind, notes=tuple(notes), reason=reason,
    )


def _interval(t: Transition) -> tuple[float, float]:
    """The range a transition is known to lie in: ``(bound, inf)`` for "above", ``(0, bound)`` for
    "below", the CI for an estimate (a CI end that is a bound opens that side to ``0`` / ``inf``;
    without a CI, the point estimate on both sides)."""
    if t.kind == "above":
        return t.bound, math.inf
    if t.kind == "below":
        return 0.0, t.bound
    lo = t.value if t.lo is None else (0.0 if t.lo_kind == "below" else t.lo)
    hi = t.value if t.hi is None else (math.inf if t.hi_kind == "above" else t.hi)
    return lo, hi


def _propagate_bounds(ts: Transition, tj: Transition) -> tuple[str, float | None, str, list[str]]:
    """(kind, bound, reason, notes) of the factor when exactly one transition is a bound, or the
    two are bounds in opposite directions (the rule is in the module docstring)."""
    s_lo, s_hi = _interval(ts)
    j_lo, j_hi = _interval(tj)
    notes = [f"no CI for the {name} transition: the bound uses its point estimate"
             for name, t in (("single", ts), ("joint", tj)) if t.kind == "estimate" and t.lo is None]
    if ts.kind == "above" or tj.kind == "below":  # factor >= s_lo / j_hi
        if j_hi == math.inf:
            return "inconclusive", None, "joint CI reaches beyond the largest size tried", notes
        if s_lo == 0.0:
            return "inconclusive", None, "single-task CI reaches below the smallest size tried", notes
        return "above", s_lo / j_hi, "", notes
    # ts below or tj above: factor <= s_hi / j_lo
    if j_lo == 0.0:
        return "inconclusive", None, "joint CI reaches below the smallest size tried", notes
    if s_hi == math.inf:
        return "inconclusive", None, "single-task CI reaches beyond the largest size tried", notes
    return "below", s_hi / j_lo, "", notes


# ----------------------------------------------------------------------------------------------
# How a transition moves with the task size (modulus n, or k of S_k)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exponent:
    """Slope ``b`` of ``log transition = a + b log x`` across task sizes ``x`` (e.g. moduli):
    ``b < 1`` means the transition grows sub-linearly with ``x``.  ``used`` are the sizes whose
    transitions entered the fit (estimates only); ``skipped`` pairs every other size with why
    (a bound, or no transition).  ``lo``/``hi``: the bootstrap CI (``-inf``/``inf`` when
    indeterminate replicates reach that end), ``None`` without replicates."""

    value: float | None
    lo: float | None
    hi: float | None
    used: tuple[float, ...]
    skipped: tuple[tuple[float, str], ...]
    ci: float = 0.95
    n_boot: int = 0
    frac_indeterminate: float | None = None
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.value is None:
            return "n/a (" + "; ".join(self.notes) + ")"
        text = f"{self.value:.2f}"
        if self.lo is not None and self.hi is not None:
            text += f" [{_fmt_slope(self.lo)}, {_fmt_slope(self.hi)}]"
        if self.skipped:
            text += " (without " + ", ".join(f"{x:g}: {why}" for x, why in self.skipped) + ")"
        return text

    def __str__(self) -> str:
        return self.describe()


def _fmt_slope(x: float) -> str:
    return f"{x:g}" if math.isinf(x) else f"{x:.2f}"


def scaling_exponent(xs: Any, transitions: Any, *, ci: float = 0.95, ci_method: str = "expanded") -> Exponent:
    """The exponent ``b`` of ``transition ~ x**b`` over task sizes ``xs`` (one
    :class:`Transition` -- or ``None`` -- per size), by least squares on log-log axes.

    Only estimates enter; a bound (``> largest tried``) or a missing transition is skipped and
    listed (a skipped bound can move the true exponent either way, so read the value with it).
    At least two sizes with estimates are needed.  CI: the transitions' own bootstrap replicates,
    combined index by index (the sizes are independent experiments), refitted; a replicate in
    which some transition is a bound is indeterminate and counts as ``-inf`` for the lower end and
    ``+inf`` for the upper (it can only widen the CI, as in :func:`reduction_factor`).  With
    ``ci_method="expanded"`` each end is widened by the small-sample factor of the condition
    with the fewest seeds (module docstring, step 4).
    """
    check_float("ci", ci, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    check_choice("ci_method", ci_method, CI_METHODS)
    xs = [check_float("xs", x, lo=0.0, lo_open=True) for x in xs]
    transitions = list(transitions)
    if len(xs) != len(transitions):
        raise ValueError(f"'xs' and 'transitions' must have equal lengths; got {len(xs)} and {len(transitions)}")
    used, skipped = [], []
    for x, t in zip(xs, transitions):
        if t is None:
            skipped.append((x, "no transition"))
        elif t.kind != "estimate":
            skipped.append((x, t.describe()))
        else:
            used.append((x, t))
    notes: list[str] = []
    if len({x for x, _ in used}) < 2:
        notes.append(f"{len(used)} size(s) with an estimated transition; at least 2 are needed")
        return Exponent(None, None, None, tuple(x for x, _ in used), tuple(skipped), ci, notes=tuple(notes))
    lx = np.log([x for x, _ in used])
    value = float(np.polyfit(lx, np.log([t.value for _, t in used]), 1)[0])
    reps = [np.asarray(t.replicates, dtype=float) for _, t in used]
    n_rep = min(r.size for r in reps)
    lo = hi = frac = None
    n_used = 0
    if n_rep:
        R = np.stack([r[:n_rep] for r in reps], axis=1)  # (n_rep, n_sizes)
        R = R[~np.isnan(R).any(axis=1)]
        n_used = int(R.shape[0])
    if n_used:
        ind = ~(np.isfinite(R) & (R > 0)).all(axis=1)
        frac = float(ind.mean())
        with np.errstate(divide="ignore"):
            LR = np.log(np.where(ind[:, None], 1.0, R))
        xc = lx - lx.mean()
        b = (LR - LR.mean(axis=1, keepdims=True)) @ xc / float(xc @ xc)
        p = _Params(level=DEFAULT_LEVEL, chance=None, asymptote=None, min_asymptote=0.5, n_boot=n_used,
                    ci=ci, ci_method=ci_method)
        if all(t.bootstrap == "seeds" for _, t in used):
            g = min(t.n_seeds for _, t in used)
            kappa = _kappa(p, g, g - 1)
        else:
            kappa = 1.0
            notes.append("some transitions used a residual bootstrap: the CI is not widened")
        lo = float(_ci_logs(np.sort(np.where(ind, -np.inf, b)), p, kappa)[0])
        hi = float(_ci_logs(np.sort(np.where(ind, np.inf, b)), p, kappa)[1])
    else:
        notes.append("no bootstrap replicates: no CI")
    return Exponent(value, lo, hi, tuple(x for x, _ in used), tuple(skipped), ci, n_used, frac, tuple(notes))
