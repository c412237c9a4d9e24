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
HEADLINE_CURVE = TransitionCurve(transition=4.68e3, slope=10.0, lapse=0.054, tau=0.375)


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


# ------------------------------------------------------------------------------------------------
# Widths -> parameters, and the ``jointtask power`` command
# ------------------------------------------------------------------------------------------------


def params_of_widths(widths, *, sweep: str = "", preset: str = "quick",
                     mix: tuple[str, ...] = ("ADD",), task_overrides: dict | None = None) -> tuple[int, ...]:
    """Exact parameter counts of the models of sweep ``sweep`` (default: the joint-training sweep,
    ``params/sweeps/joint_training.yaml``) at ``preset`` with width (``n_embed``) ``widths``, for
    the mix ``mix`` (the joint mixes of a family share its vocabulary, so their counts are equal).
    ``task_overrides``: task fields changed first (e.g. ``{"op_args": {}}``: the task before MED had
    its own 3 arguments, whose context — and so position embeddings — was shorter)."""
    from dataclasses import replace

    from ..paths import repo_root
    from ..sweep import load_sweep

    path = sweep or str(repo_root() / "params" / "sweeps" / "joint_training.yaml")
    sw = load_sweep(path, preset)
    base = next((s for s in sw.specs if tuple(s.task.ops) == tuple(mix)), sw.specs[0])
    if task_overrides:
        from ..tasks import TaskConfig

        base = replace(base, task=TaskConfig.from_dict({**base.task.to_dict(), **task_overrides}))
    return tuple(replace(base, arch=replace(base.arch, n_embed=int(w))).n_params() for w in widths)


def _positive_ints(field: str, text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"'{field}' must be comma-separated positive integers, e.g. 8,10,12; got {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise ValueError(f"'{field}' must be comma-separated positive integers, e.g. 8,10,12; got {text!r}")
    return vals


def register_cli(sub) -> None:
    p = sub.add_parser(
        "power", help="power, false-positive rate and CI coverage of a design (seeds x widths), by simulation",
        description="Simulate experiments from a transition curve (default: ADD alone at the quick preset, "
                    "fitted to the measured headline runs) and analyse each with the pooled transition model, "
                    "as the scorecard does. Prints power (true factor --factor), false-positive rate (true "
                    "factor 1) and the coverage of the 95%% CI.")
    p.add_argument("--factor", type=float, default=2.0, help="true reduction factor to detect (>= 1; default 2)")
    p.add_argument("--seeds", type=int, required=True, help="seeds per condition (>= 2)")
    p.add_argument("--widths", default="", help="comma-separated widths (n_embed), e.g. 8,10,12,16")
    p.add_argument("--params", default="", help="comma-separated parameter counts instead of --widths")
    p.add_argument("--sweep", default="", help="sweep file whose model turns widths into parameter counts "
                                                "(default params/sweeps/joint_training.yaml)")
    p.add_argument("--preset", default="quick", help="preset of --sweep (default quick)")
    p.add_argument("--transition", type=float, default=HEADLINE_CURVE.transition,
                   help=f"single-task transition in parameters (default {HEADLINE_CURVE.transition:g}, fitted)")
    p.add_argument("--slope", type=float, default=HEADLINE_CURVE.slope,
                   help=f"logistic slope per unit log(parameters) (default {HEADLINE_CURVE.slope:g}, fitted)")
    p.add_argument("--lapse", type=float, default=HEADLINE_CURVE.lapse,
                   help=f"chance a run fails at any size (default {HEADLINE_CURVE.lapse:g}, fitted)")
    p.add_argument("--seed-sd", type=float, default=HEADLINE_CURVE.tau,
                   help=f"sd of a seed curve's shift in log(parameters) (default {HEADLINE_CURVE.tau:g}, fitted)")
    p.add_argument("--reps", type=int, default=200, help="simulated experiments per rate (default 200)")
    p.add_argument("--alpha", type=float, default=0.025, help="one-sided level (default 0.025)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    def run(a) -> int:
        import json

        from ..validate import check_choice

        check_float("factor", a.factor, lo=1.0, hi=50.0)
        check_int("seeds", a.seeds, lo=2, hi=1000)
        check_int("reps", a.reps, lo=10, hi=100_000)
        check_float("alpha", a.alpha, lo=0.0, hi=0.5, lo_open=True)
        check_float("lapse", a.lapse, lo=0.0, hi=LAPSE_MAX)
        check_float("seed_sd", a.seed_sd, lo=0.0, hi=TAU_MAX)
        check_choice("preset", a.preset, ("smoke", "quick", "paper"))
        if bool(a.widths) == bool(a.params):
            raise ValueError("give exactly one of 'widths' (e.g. --widths 8,10,12) or 'params' (parameter counts)")
        curve = TransitionCurve(transition=a.transition, slope=a.slope, lapse=a.lapse, tau=a.seed_sd)
        if a.widths:
            widths = _positive_ints("widths", a.widths)
            if len(set(widths)) < 2:
                raise ValueError(f"'widths' must list at least 2 distinct widths; got {a.widths!r}")
            n_params = params_of_widths(widths, sweep=a.sweep, preset=a.preset)
        else:
            widths = None
            n_params = _positive_ints("params", a.params)
        res = plan_power(factor=a.factor, seeds=a.seeds, n_params=n_params, curve=curve, reps=a.reps,
                         alpha=a.alpha, rng=a.seed)
        if a.json:
            print(json.dumps(res.to_dict() | {"widths": list(widths) if widths else None}))
        else:
            print(res.describe())
            print(f"sizes: {', '.join(f'{n:,}' for n in n_params)} parameters"
                  + (f" (widths {', '.join(map(str, widths))})" if widths else ""))
            print(f"curve: transition {curve.transition:.3g} parameters, slope {curve.slope:.3g}, lapse "
                  f"{curve.lapse:.3g}, seed sd {curve.tau:.3g}")
        return 0

    p.set_defaults(func=run)


def power_curve(*, factor: float, seeds, n_params, curve: TransitionCurve = HEADLINE_CURVE, reps: int = 200,
                alpha: float = 0.025, rng=0) -> list[PowerResult]:
    """:func:`plan_power` for each number of seeds in ``seeds`` (same curve and sizes; seed
    ``rng + k`` for the k-th design, so each design is reproducible on its own)."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("'seeds' must list at least one number of seeds, e.g. [3, 5, 10]")
    return [plan_power(factor=factor, seeds=s, n_params=n_params, curve=curve, reps=reps, alpha=alpha,
                       rng=int(rng) + k) for k, s in enumerate(seeds)]


def plot_power_curve(results: list[PowerResult], *, title: str = ""):
    """Power and false-positive rate against seeds per condition (Monte-Carlo 95% bars), with
    the one-sided level and 0.8 / 0.9 power marked.  Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    s = [r.seeds for r in results]
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for key, label, style in (("power", f"power (true factor {results[0].factor:g})", "o-"),
                              ("false_positive_rate", "false-positive rate (true factor 1)", "s--")):
        y = np.array([getattr(r, key) for r in results])
        e = 1.96 * np.array([r.mc_se[key] for r in results])
        ax.errorbar(s, y, yerr=e, fmt=style, capsize=3, label=label)
    ax.axhline(results[0].alpha, color="grey", lw=0.8, ls=":")
    ax.text(s[-1], results[0].alpha, f" alpha {results[0].alpha:g}", va="bottom", ha="right", fontsize=8)
    for level in (0.8, 0.9):
        ax.axhline(level, color="grey", lw=0.6, ls="-.")
    ax.set_xticks(s)
    ax.set_xlabel("seeds per condition (one run per seed and width)")
    ax.set_ylabel("share of simulated experiments")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title or "How many seeds do I need?", fontsize=10)
    ax.legend(fontsize=8, loc="center right", frameon=False)
    fig.tight_layout()
    return fig
