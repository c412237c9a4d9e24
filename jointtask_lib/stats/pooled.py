"""The pooled transition model: one likelihood for all runs of two conditions.

Each run (one model: a condition, a seed, a size) gives one outcome: it *learned* the operation
when its accuracy reaches an absolute bar (``threshold``, default 0.8 = 80% of perfect accuracy),
the same bar for both conditions.  All runs of both conditions, every seed and every size, enter
one logistic model of ``s = log(parameters)``::

    P(learned) = (1 - lapse) * expit(slope * (s - m + joint * log(factor) + tau * u_curve))

* ``m`` is the single-task transition (in log parameters: where a run that does not lapse learns
  with probability 1/2); the joint condition's transition is ``m - log(factor)``, so ``factor`` is
  the reduction factor transition(single) / transition(joint) -- ``exp(c / b)`` of the usual
  ``logit = a + b s + c joint`` form;
* ``lapse`` is the chance that a run fails at any size (ADD alone fails at random widths above
  its transition at the quick preset); fitted by default (``lapse="fit"``) or fixed;
* ``u_curve ~ N(0, 1)`` is one random shift per (condition, seed) curve, of size ``tau`` in log
  parameters: a run's data seed is shared across its sizes, so one unlucky seed moves a whole
  curve; the likelihood integrates it out (Gauss-Hermite quadrature), so the runs of one curve
  are not counted as independent evidence.  ``seed_effect=False`` drops it.

Fitting is by maximum likelihood with :func:`scipy.optimize.minimize` (L-BFGS-B with the
analytic gradient, box bounds, several starts), with BLAS held to one thread
(:func:`threadpoolctl.threadpool_limits`): on a busy machine L-BFGS-B's tiny BLAS calls otherwise
cost ~30x more in thread hand-offs than the whole likelihood.  Outputs (:class:`PooledReduction`):

* the factor with a **profile-likelihood CI** (the factors whose likelihood-ratio statistic
  against the best fit is below the chi-square(1) quantile); an end that reaches the search bound
  (``FACTOR_BOUND``) is reported open (``lo_open`` / ``hi_open``);
* the **likelihood-ratio test** of factor = 1: ``p`` is one-sided (alternative: factor > 1, joint
  training lowers the transition), from the signed root of the statistic; ``p_two_sided`` too;
* ``p_equiv``: the one-sided test of "factor >= ``equivalence``" (default 1.5): small when the data
  rule out a benefit of 1.5x or more -- the evidence a "no benefit" control needs;
* small samples: with the seed effect, the signed root is referred to Student's t and the
  profile deviance to F(1, df), with df = number of curves - 2 (:func:`reference_df`), because the
  independent units are the curves.  The plain normal / chi-square reference let the one-sided
  2.5% test reject 6% of null experiments at 3 seeds per condition (and the CI cover 88%; measured
  before the slope cap below) when
  simulated from the curve fitted to the measured runs; with the t / F reference the rates are
  within the bounds (tests/test_stats.py; benchmarks/measured/stats_validation_cpu.json);
* beside them, two model-free checks, reported and not used for verdicts:
  :func:`exact_stratified_test` -- within each size, the 2x2 table condition x learned;
  conditional on its margins the number of joint runs that learned is hypergeometric, and the sum
  over sizes has the exact distribution of the convolution (the exact conditional test behind the
  Cochran-Mantel-Haenszel statistic); it treats runs as independent -- and
  :func:`curve_permutation_test`, which permutes whole (condition, seed) curves and so respects the
  seed dependence, at the price of a coarse p (3 vs 3 seeds: 20 relabellings, smallest p 0.05).

Validated by simulation in ``tests/test_stats.py`` (false-positive rate, CI coverage with seed
effects, power rising with seeds) and at more replicates by ``benchmarks/stats_validation.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special, stats
from threadpoolctl import threadpool_limits

from ..records import LEVEL, is_learned
from ..validate import check_choice, check_float

#: The default success bar: a run learned when its accuracy is at least 80% of perfect accuracy.
DEFAULT_THRESHOLD = LEVEL  # the absolute bar: learned = accuracy >= 0.8 x 1.0 (records.is_learned)
#: Factors are searched in [1 / FACTOR_BOUND, FACTOR_BOUND]; a CI end reaching it is open.
FACTOR_BOUND = 50.0
#: Bounds of the nuisance parameters (slope per unit log parameters, curve shift sd, lapse).  A
#: slope of 10 already takes a run from 10% to 90% within 0.44 in log parameters -- one step of the
#: width grids used here -- so steeper curves cannot be told apart by the data; capping it keeps
#: the quadrature over the seed shift accurate (at slope 40 x seed sd 0.4, 12 Gauss-Hermite nodes
#: misjudged the likelihood-ratio statistic by up to 2x and the false-positive rate at 20 seeds
#: rose to 5%).
SLOPE_BOUNDS = (0.2, 10.0)
TAU_MAX = 2.0
LAPSE_MAX = 0.4
#: Gauss-Hermite nodes for the random curve shift.
N_NODES = 20

_NODES, _W = np.polynomial.hermite_e.hermegauss(N_NODES)
_LOGW = np.log(_W / _W.sum())
# parameter vector: m (centred log parameters), log slope, log factor, tau, lapse


@dataclass(frozen=True)
class TransitionCurve:
    """A transition curve in parameters: P(learned) = (1 - lapse) expit(slope (log n - log
    transition + tau u)), ``u ~ N(0, 1)`` per (condition, seed) curve.  ``transition`` is the
    single-task condition's; the joint condition's is ``transition / factor``."""

    transition: float
    slope: float
    lapse: float = 0.0
    tau: float = 0.0

    def __post_init__(self):
        check_float("transition", self.transition, lo=0.0, lo_open=True)
        check_float("slope", self.slope, lo=0.0, lo_open=True)
        check_float("lapse", self.lapse, lo=0.0, hi=1.0, hi_open=True)
        check_float("tau", self.tau, lo=0.0)


@dataclass(frozen=True)
class ExactTest:
    """The width-stratified exact conditional test (one-sided: joint runs learn more often).
    ``p`` = P(T >= observed), ``min_p`` = the smallest p this design could give (all learned runs
    in the joint condition wherever the margins allow), ``strata`` the number of sizes used."""

    p: float
    min_p: float
    observed: int
    expected: float
    strata: int


@dataclass(frozen=True)
class PooledReduction:
    """Result of :func:`pooled_reduction`.  ``factor`` = transition(single) / transition(joint)
    (NaN when no run or every run learned: nothing to fit); ``lo``/``hi`` its profile-likelihood
    CI at level ``ci`` (an open end is the search bound, flagged ``lo_open``/``hi_open``);
    ``p`` the one-sided likelihood-ratio p-value for factor > 1; ``p_equiv`` for factor <
    ``equivalence``; ``exact`` the width-stratified exact test; ``transition_single`` /
    ``transition_joint`` in parameters; ``n_runs`` and ``seeds`` (distinct seeds per condition)."""

    factor: float
    lo: float
    hi: float
    lo_open: bool
    hi_open: bool
    p: float
    p_two_sided: float
    p_equiv: float
    equivalence: float
    exact: ExactTest
    perm: "PermutationTest"
    transition_single: float
    transition_joint: float
    slope: float
    lapse: float
    tau: float
    threshold: float
    ci: float
    n_runs: int
    n_learned: tuple[int, int]
    seeds: tuple[int, int]
    sizes: tuple[float, ...]
    loglik: float
    loglik_null: float
    df: float
    test: str = "pooled logistic LRT"
    notes: tuple[str, ...] = field(default=())

    #: kind, for the scorecard's rules (a pooled factor is always an estimate with a CI)
    kind = "estimate"

    @property
    def value(self) -> float:
        return self.factor

    @property
    def min_p(self) -> float:
        """The smallest p-value the likelihood-ratio test can give: it is continuous, so 0."""
        return 0.0

    def ci_text(self) -> str:
        lo = f"< {_fmt(self.lo)}" if self.lo_open else _fmt(self.lo)
        hi = f"> {_fmt(self.hi)}" if self.hi_open else _fmt(self.hi)
        return f"[{lo}, {hi}]"

    def describe(self) -> str:
        """``"2.10 [1.20, 3.80], one-sided p = 0.007 (pooled logistic LRT, 50 runs)"``."""
        if not math.isfinite(self.factor):
            return f"no estimate ({'; '.join(self.notes)}; {self.n_runs} runs)"
        return (f"{_fmt(self.factor)} {self.ci_text()}, one-sided p = {_fmt_p(self.p)} "
                f"({self.test}, {self.n_runs} runs)")

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("exact", "perm")}
        d["exact"] = dict(self.exact.__dict__)
        d["perm"] = dict(self.perm.__dict__)
        d["notes"] = list(self.notes)
        return d

    def __str__(self) -> str:
        return self.describe()


def _fmt(v: float) -> str:
    return "inf" if v == math.inf else f"{v:.3g}" if v >= 100 else f"{v:.2f}"


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcomes:
    """Runs of two conditions as binary outcomes: ``s`` log parameters (centred by ``centre``),
    ``y`` learned (0/1), ``z`` joint (0/1), ``curve`` index of the (condition, seed) curve."""

    s: np.ndarray
    y: np.ndarray
    z: np.ndarray
    curve: np.ndarray
    centre: float
    seeds: tuple[int, int]

    @property
    def n_curves(self) -> int:
        return int(self.curve.max()) + 1 if self.curve.size else 0


def _unpack(cond, name: str):
    if not isinstance(cond, (tuple, list)) or len(cond) not in (2, 3):
        raise ValueError(f"'{name}' must be a tuple (sizes, accs) or (sizes, accs, seeds); got {type(cond).__name__}")
    sizes = np.asarray(cond[0], dtype=float)
    accs = np.asarray(cond[1], dtype=float)
    seeds = np.asarray(cond[2]) if len(cond) == 3 else np.arange(sizes.size)
    if not (sizes.ndim == accs.ndim == seeds.ndim == 1 and sizes.size == accs.size == seeds.size):
        raise ValueError(f"'{name}': sizes, accs and seeds must be 1-D and of one length")
    if sizes.size == 0:
        raise ValueError(f"'{name}' has no runs")
    if not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise ValueError(f"'{name}': every size (parameter count) must be a positive number")
    if not np.all(np.isfinite(accs)) or np.any(accs < 0) or np.any(accs > 1):
        raise ValueError(f"'{name}': every accuracy must lie in [0, 1]")
    return sizes, accs, seeds


def outcomes(single, joint, *, threshold: float = DEFAULT_THRESHOLD) -> Outcomes:
    """The two conditions' runs as :class:`Outcomes` (learned = accuracy >= ``threshold``).
    ``single`` / ``joint``: ``(sizes, accs, seeds)`` in the long format of
    :func:`jointtask_lib.experiments.accuracy_points`; without seeds every run is its own curve."""
    check_float("threshold", threshold, lo=0.0, hi=1.0, lo_open=True)
    a, b = _unpack(single, "single"), _unpack(joint, "joint")
    s, y, z, curve = [], [], [], []
    n_seeds = []
    offset = 0
    for zi, (sizes, accs, seeds) in enumerate((a, b)):
        labels = {v: i for i, v in enumerate(dict.fromkeys(seeds.tolist()))}
        n_seeds.append(len(labels))
        s.append(np.log(sizes))
        y.append(is_learned(accs, threshold).astype(float))
        z.append(np.full(sizes.size, float(zi)))
        curve.append(np.array([offset + labels[v] for v in seeds.tolist()], dtype=int))
        offset += len(labels)
    s_all = np.concatenate(s)
    centre = float(s_all.mean())
    return Outcomes(s_all - centre, np.concatenate(y), np.concatenate(z), np.concatenate(curve), centre,
                    (n_seeds[0], n_seeds[1]))


# ------------------------------------------------------------------------------------------------
# Likelihood and fits
# ------------------------------------------------------------------------------------------------


class _Model:
    """Negative log-likelihood of :class:`Outcomes` under the pooled model, and its fits."""

    def __init__(self, d: Outcomes, *, lapse, seed_effect: bool):
        self.d = d
        self.nodes = _NODES if seed_effect else np.zeros(1)
        self.logw = _LOGW if seed_effect else np.zeros(1)
        self.fixed = {}
        if not seed_effect:
            self.fixed[3] = 0.0
        if lapse != "fit":
            self.fixed[4] = float(lapse)
        smin, smax = float(d.s.min()), float(d.s.max())
        lb = math.log(FACTOR_BOUND)
        self.bounds = [(smin - 3.0, smax + 3.0), (math.log(SLOPE_BOUNDS[0]), math.log(SLOPE_BOUNDS[1])),
                       (-lb, lb), (0.0, TAU_MAX), (0.0, LAPSE_MAX)]
        # one-hot (curves x runs) to sum run log-likelihoods within a curve
        self.M = np.zeros((d.n_curves, d.s.size))
        self.M[d.curve, np.arange(d.s.size)] = 1.0

    def nll(self, theta: np.ndarray) -> float:
        return self.nll_grad(theta)[0]

    def nll_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative log-likelihood and its gradient in (m, log slope, log factor, tau, lapse)."""
        m, logb, phi, tau, lam = (float(v) for v in theta)
        d = self.d
        b = math.exp(logb)
        lin = (d.s - m + d.z * phi)[:, None] + tau * self.nodes[None, :]
        eta = b * lin
        lp = special.log_expit(eta)
        lq0 = special.log_expit(-eta)
        if lam > 0:
            lp = lp + math.log1p(-lam)
            lq = np.logaddexp(math.log(lam), math.log1p(-lam) + lq0)
        else:
            lq = lq0
        y = d.y[:, None]
        ll = y * lp + (1 - y) * lq
        per_curve = self.M @ ll + self.logw[None, :]
        lse = special.logsumexp(per_curve, axis=1)
        post = np.exp(per_curve - lse[:, None])          # posterior weight of each node, per curve
        W = post[d.curve]                                 # (runs, nodes)
        sig = special.expit(eta)
        q = np.exp(lq)                                    # P(not learned)
        dq = -(1 - lam) * sig * (1 - sig)                 # dq / d eta
        dll_deta = y * (1 - sig) + (1 - y) * dq / np.maximum(q, 1e-300)
        dll_dlam = y * (-1.0 / (1 - lam)) + (1 - y) * sig / np.maximum(q, 1e-300)
        g = W * dll_deta
        grad = np.array([
            -b * g.sum(),                                 # m
            float(np.sum(g * eta)),                       # log slope
            b * float(np.sum(g * d.z[:, None])),          # log factor
            b * float(np.sum(g * self.nodes[None, :])),   # tau
            float(np.sum(W * dll_dlam)),                  # lapse
        ])
        return -float(np.sum(lse)), -grad

    def fit(self, fixed_phi: float | None = None, start: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Minimum of the negative log-likelihood (``log factor`` fixed at ``fixed_phi`` when
        given): ``(nll, theta)``.  Several starts; the best kept."""
        fixed = dict(self.fixed)
        if fixed_phi is not None:
            fixed[2] = float(fixed_phi)
        free = [i for i in range(5) if i not in fixed]
        d = self.d
        starts = []
        if start is not None:
            starts.append(np.array(start, float))
        for q in ((0.5,) if start is not None else (0.5, 0.25, 0.75)):
            starts.append(np.array([float(np.quantile(d.s, q)), math.log(3.0), 0.0, 0.3, 0.05]))
        best = (math.inf, None)
        for x0 in starts:
            x0 = x0.copy()
            for i, v in fixed.items():
                x0[i] = v
            x0 = np.clip(x0, [b[0] for b in self.bounds], [b[1] for b in self.bounds])

            def f(x, x0=x0):
                th = x0.copy()
                th[free] = x
                v, g = self.nll_grad(th)
                return v, g[free]

            res = optimize.minimize(f, x0[free], jac=True, method="L-BFGS-B",
                                    bounds=[self.bounds[i] for i in free])
            th = x0.copy()
            th[free] = res.x
            val = float(res.fun)
            if val < best[0] - 1e-9:
                best = (val, th)
        return best


def _one_blas_thread(fn):
    """Run ``fn`` with BLAS limited to one thread (see the module docstring)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*a, **k):
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*a, **k)

    return wrapper


def reference_df(n_curves: int, seed_effect: bool = True) -> float:
    """Degrees of freedom of the reference distribution: with a seed effect, the evidence is the
    number of independent curves, not of runs, so the signed root of the likelihood-ratio statistic
    is referred to Student's t with ``n_curves - 2`` df (the CI to F(1, n_curves - 2)) -- the usual
    small-sample correction for few clusters; without it (``inf``) the normal / chi-square(1)
    reference is anti-conservative at 3-5 seeds per condition (tests/test_stats.py,
    benchmarks/stats_validation.py).  ``seed_effect=False`` (runs independent): ``inf``."""
    return max(1.0, float(n_curves - 2)) if seed_effect else math.inf


def _sf(r: float, df: float) -> float:
    return float(stats.norm.sf(r) if math.isinf(df) else stats.t.sf(r, df))


def ci_critical(ci: float, df: float) -> float:
    """Profile-deviance cut-off of a ``ci`` interval: chi-square(1) (``df = inf``) or F(1, df)."""
    return float(stats.chi2.ppf(ci, 1) if math.isinf(df) else stats.f.ppf(ci, 1, df))


def _no_variation(d: Outcomes) -> bool:
    return bool(np.all(d.y == d.y[0]))


def profile_deviance(model: _Model, nll_best: float, theta_best: np.ndarray, phi: float) -> float:
    """``2 (loglik(best) - loglik(best with log factor = phi))`` (>= 0)."""
    val, _ = model.fit(fixed_phi=phi, start=theta_best)
    return max(0.0, 2.0 * (val - nll_best))


@_one_blas_thread
def pooled_reduction(
    single,
    joint,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    lapse: float | str = "fit",
    seed_effect: bool = True,
    ci: float = 0.95,
    equivalence: float = 1.5,
    with_ci: bool = True,
) -> PooledReduction:
    """The pooled reduction factor transition(single) / transition(joint) with its CI and tests.

    ``single`` / ``joint``: ``(sizes, accs, seeds)`` -- sizes in parameters, accuracy in [0, 1],
    the seed of each run (the runs of one condition and seed form one curve) -- as
    :func:`jointtask_lib.experiments.accuracy_points` returns them.  ``threshold``: the absolute
    bar for "learned".  ``lapse``: ``"fit"`` or a fixed rate in [0, 0.4].  ``seed_effect``:
    integrate a random shift per curve.  ``ci``: level of the profile-likelihood interval.
    ``equivalence``: the smallest benefit a "no benefit" result must rule out (``p_equiv``).
    ``with_ci=False`` skips the interval (faster; ``lo``/``hi`` are NaN) -- for simulations.
    The model and the tests are described in the module docstring.
    """
    if lapse != "fit":
        check_float("lapse", lapse, lo=0.0, hi=LAPSE_MAX)
    if not isinstance(seed_effect, bool):
        raise ValueError(f"'seed_effect' must be true or false; got {seed_effect!r}")
    check_float("ci", ci, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    check_float("equivalence", equivalence, lo=1.0, lo_open=True, hi=FACTOR_BOUND)
    d = outcomes(single, joint, threshold=threshold)
    exact = exact_stratified_test(d)
    perm = curve_permutation_test(d)
    n_learned = (int(d.y[d.z == 0].sum()), int(d.y[d.z == 1].sum()))
    common = dict(equivalence=float(equivalence), exact=exact, perm=perm, threshold=float(threshold), ci=float(ci),
                  n_runs=int(d.s.size), n_learned=n_learned, seeds=d.seeds,
                  sizes=tuple(float(v) for v in np.unique(np.round(np.exp(d.s + d.centre), 6))))
    if _no_variation(d):
        nan = math.nan
        why = "every run learned" if d.y[0] == 1 else "no run learned"
        return PooledReduction(factor=nan, lo=0.0, hi=math.inf, lo_open=True, hi_open=True, p=1.0,
                               p_two_sided=1.0, p_equiv=1.0, transition_single=nan, transition_joint=nan,
                               slope=nan, lapse=nan, tau=nan, loglik=0.0, loglik_null=0.0, df=math.inf,
                               notes=(f"{why} at the bar {threshold:g}: the factor is not identified",), **common)
    model = _Model(d, lapse=lapse, seed_effect=seed_effect)
    nll1, th = model.fit()
    nll0, th0 = model.fit(fixed_phi=0.0, start=th)
    if nll0 < nll1:  # the constrained fit found a better optimum than the free one: restart from it
        nll1b, thb = model.fit(start=th0)
        nll1, th = (nll1b, thb) if nll1b < nll0 else (nll0, th0)
    phi = float(th[2])
    dev0 = max(0.0, 2.0 * (nll0 - nll1))
    df = reference_df(d.n_curves, seed_effect)
    r = math.copysign(math.sqrt(dev0), phi)
    p = _sf(r, df)
    p2 = min(1.0, 2.0 * _sf(abs(r), df))
    le = math.log(equivalence)
    deve = profile_deviance(model, nll1, th, le)
    p_equiv = _sf(-math.copysign(math.sqrt(deve), phi - le), df)
    lb = math.log(FACTOR_BOUND)
    notes = []
    if with_ci:
        crit = ci_critical(ci, df)

        def g(x):
            return profile_deviance(model, nll1, th, x) - crit

        lo_open = g(-lb) < 0
        hi_open = g(lb) < 0
        lo = -lb if lo_open else optimize.brentq(g, -lb, phi, xtol=2e-3) if phi > -lb else -lb
        hi = lb if hi_open else optimize.brentq(g, phi, lb, xtol=2e-3) if phi < lb else lb
        lo, hi = math.exp(lo), math.exp(hi)
    else:
        lo = hi = math.nan
        lo_open = hi_open = False
    if abs(phi) >= lb - 1e-6:
        notes.append("the factor reached the search bound: the two conditions are separated at every size")
    if th[1] >= math.log(SLOPE_BOUNDS[1]) - 1e-6:
        notes.append("the transition is a step at the sizes tried (slope at its bound)")
    m = float(th[0]) + d.centre
    return PooledReduction(
        factor=math.exp(phi), lo=lo, hi=hi, lo_open=bool(lo_open), hi_open=bool(hi_open), p=p, p_two_sided=p2,
        p_equiv=p_equiv, transition_single=math.exp(m), transition_joint=math.exp(m - phi),
        slope=math.exp(float(th[1])), lapse=float(th[4]), tau=float(th[3]), loglik=-nll1, loglik_null=-nll0,
        df=df, notes=tuple(notes), **common)


@_one_blas_thread
def lrt_and_deviance(single, joint, factor: float, *, threshold: float = DEFAULT_THRESHOLD, lapse="fit",
                     seed_effect: bool = True) -> tuple[float, float, float]:
    """``(one-sided LRT p for factor > 1, profile deviance at factor, reference df)`` -- what a
    simulation needs, without searching for the CI's ends: ``factor`` lies inside the
    profile-likelihood CI at level ``ci`` exactly when its deviance is at most
    ``ci_critical(ci, df)``.  No variation in the outcomes (nothing to fit): ``(1.0, 0.0, df)`` --
    no rejection, the CI is everything."""
    d = outcomes(single, joint, threshold=threshold)
    df = reference_df(d.n_curves, seed_effect)
    if _no_variation(d):
        return 1.0, 0.0, df
    model = _Model(d, lapse=lapse, seed_effect=seed_effect)
    nll1, th = model.fit()
    nll0, th0 = model.fit(fixed_phi=0.0, start=th)
    if nll0 < nll1:
        nll1b, thb = model.fit(start=th0)
        nll1, th = (nll1b, thb) if nll1b < nll0 else (nll0, th0)
    phi = float(th[2])
    dev0 = max(0.0, 2.0 * (nll0 - nll1))
    p = _sf(math.copysign(math.sqrt(dev0), phi), df)
    dev = dev0 if factor == 1.0 else profile_deviance(model, nll1, th, math.log(factor))
    return p, dev, df


# ------------------------------------------------------------------------------------------------
# The model-free check
# ------------------------------------------------------------------------------------------------


def exact_stratified_test(d: Outcomes) -> ExactTest:
    """Width-stratified exact conditional test that joint runs learn more often than single-task
    runs of the same size (one-sided).  In each size with runs of both conditions, given how many
    runs learned, the number of joint runs among them is hypergeometric under "no difference";
    the total over sizes has the convolution of those distributions (:class:`scipy.stats.hypergeom`),
    so ``p = P(T >= observed)`` exactly.  Sizes with runs of one condition only carry no
    information and are skipped."""
    keys = np.round(d.s, 9)
    dist = np.array([1.0])
    lo_total = 0
    observed = 0
    expected = 0.0
    strata = 0
    for k in np.unique(keys):
        sel = keys == k
        n1 = int(np.sum(d.z[sel] == 1))
        n0 = int(np.sum(d.z[sel] == 0))
        if n1 == 0 or n0 == 0:
            continue
        K = int(d.y[sel].sum())
        t = int(d.y[sel & (d.z == 1)].sum())
        rv = stats.hypergeom(n0 + n1, K, n1)
        lo, hi = max(0, n1 - (n0 + n1 - K)), min(K, n1)
        pmf = rv.pmf(np.arange(lo, hi + 1))
        dist = np.convolve(dist, pmf)
        lo_total += lo
        observed += t
        expected += K * n1 / (n0 + n1)
        strata += 1
    if strata == 0:
        return ExactTest(p=1.0, min_p=1.0, observed=0, expected=0.0, strata=0)
    idx = observed - lo_total
    p = float(min(1.0, dist[idx:].sum()))
    return ExactTest(p=p, min_p=float(dist[-1]), observed=observed, expected=expected, strata=strata)


@dataclass(frozen=True)
class PermutationTest:
    """Permutation test over whole (condition, seed) curves (one-sided: joint curves learn at
    more sizes).  ``p`` = share of relabellings with a statistic at least the observed one;
    ``min_p`` = the smallest p the design can give (1 / number of relabellings when ``exact``, else
    1 / (``n_perm`` + 1)); ``n_perm`` relabellings used (all of them when ``exact``)."""

    p: float
    min_p: float
    observed: float
    n_perm: int
    exact: bool


#: Enumerate every relabelling up to this many; beyond, draw ``PERM_DRAWS`` at random.
PERM_EXACT_MAX = 200_000
PERM_DRAWS = 20_000


def curve_permutation_test(d: Outcomes, *, rng=0) -> PermutationTest:
    """Model-free test that respects seed dependence: each (condition, seed) curve is one unit;
    the statistic is the number of learned runs summed over the joint condition's curves; under
    "no difference" the curves are exchangeable, so the p-value is the share of all ways to choose
    which curves are "joint" (same counts) with a statistic at least the observed one.  Exact
    (every relabelling) up to :data:`PERM_EXACT_MAX` relabellings, else :data:`PERM_DRAWS` random
    ones (p = (1 + hits) / (1 + draws)).  Valid when the curves were run at the same sizes."""
    counts = np.bincount(d.curve, weights=d.y, minlength=d.n_curves)
    is_joint = np.zeros(d.n_curves, bool)
    is_joint[np.unique(d.curve[d.z == 1])] = True
    n1, G = int(is_joint.sum()), d.n_curves
    obs = float(counts[is_joint].sum())
    total = math.comb(G, n1)
    if total <= PERM_EXACT_MAX:
        import itertools

        idx = np.array(list(itertools.combinations(range(G), n1)), dtype=np.int64).reshape(total, n1)
        sums = counts[idx].sum(axis=1)
        hits = int(np.sum(sums >= obs - 1e-9))
        return PermutationTest(p=hits / total, min_p=1.0 / total, observed=obs, n_perm=total, exact=True)
    gen = np.random.default_rng(rng)
    perms = gen.permuted(np.tile(np.arange(G), (PERM_DRAWS, 1)), axis=1)[:, :n1]
    sums = counts[perms].sum(axis=1)
    hits = int(np.sum(sums >= obs - 1e-9))
    return PermutationTest(p=(1 + hits) / (1 + PERM_DRAWS), min_p=1.0 / (1 + PERM_DRAWS), observed=obs,
                           n_perm=PERM_DRAWS, exact=False)


# ------------------------------------------------------------------------------------------------
# Simulation (shared by the planner and the tests)
# ------------------------------------------------------------------------------------------------


def simulate(curve: TransitionCurve, factor: float, n_params, seeds: int, rng) -> tuple[tuple, tuple]:
    """One simulated experiment: ``seeds`` curves per condition, one run at every size of
    ``n_params``, outcomes drawn from ``curve`` (the joint condition's transition divided by
    ``factor``).  Returns ``(single, joint)`` in the long format of :func:`pooled_reduction`
    (accuracy 1.0 for a learned run, 0.0 otherwise)."""
    x = np.log(np.asarray(n_params, float))
    out = []
    for z in (0, 1):
        shift = curve.tau * rng.standard_normal(seeds)
        eta = curve.slope * (x[None, :] - math.log(curve.transition) + z * math.log(factor) + shift[:, None])
        p = (1 - curve.lapse) * special.expit(eta)
        y = (rng.random(p.shape) < p).astype(float)
        sizes = np.tile(np.asarray(n_params, float), seeds)
        out.append((sizes, y.ravel(), np.repeat(np.arange(seeds), x.size)))
    return out[0], out[1]
