"""Figures.  Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so
it works headless (no display, any backend) and never leaks into pyplot's global figure list.

In a notebook, :func:`show_figure` saves a figure (``paths.save_figure``) and displays it as PNG,
whatever the matplotlib backend is (so no figure is ever embedded as SVG).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, NullLocator

from .paths import PNG_METADATA, save_figure
from .tables import dist_axes
from .tasks import entropy_bits

DPI = 110


def plot_output_distributions(
    dists: Mapping[tuple[str, str], np.ndarray],
    *,
    title: str = "Output distribution of each operation (one level, uniform random operands)",
    panel_size: tuple[float, float] = (1.9, 1.15),
) -> Figure:
    """A grid of bar charts: one row per op, one column per task (modulus or S_k).

    ``dists`` maps ``(op, label)`` to a probability vector over the values (see
    :func:`jointtask_lib.tables.output_distributions`).  Each panel shows the entropy ``H`` in
    bits; the dashed line is the uniform distribution.
    """
    if not dists:
        raise ValueError("'dists' must hold at least one (op, label) distribution")
    ops, labels = dist_axes(dists)
    nr, nc = len(ops), len(labels)
    fig = Figure(figsize=(0.9 + panel_size[0] * nc, 0.8 + panel_size[1] * nr), dpi=DPI, layout="constrained")
    axes = fig.subplots(nr, nc, squeeze=False, sharex="col", sharey="row")
    for i, op in enumerate(ops):
        row_max = max(float(np.max(dists[(op, lb)])) for lb in labels if (op, lb) in dists)
        axes[i, 0].set_ylim(0, 1.3 * row_max)  # head-room for the entropy label (rows share y)
        for j, label in enumerate(labels):
            ax = axes[i, j]
            p = dists.get((op, label))
            if p is None:
                ax.set_axis_off()
                continue
            n = len(p)
            ax.bar(np.arange(n), p, width=0.85, color="C0" if n else "C1")
            ax.axhline(1.0 / n, color="0.4", lw=0.8, ls="--")
            ax.text(0.97, 0.93, f"H={entropy_bits(p):.2f}", transform=ax.transAxes, ha="right",
                    va="top", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.set_xticks([0, n - 1] if n > 1 else [0])
            if i == 0:
                ax.set_title(label, fontsize=9)
            if j == 0:
                ax.set_ylabel(op, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.supxlabel("value (index)", fontsize=8)
    return fig


def plot_normalised_entropy(dists: Mapping[tuple[str, str], np.ndarray], *,
                            title: str = "How structured is each operation?") -> Figure:
    """``H / log2(number of values)`` per op (1 = uniform, lower = more structured), one line per
    op across the tasks (columns of :func:`plot_output_distributions`)."""
    if not dists:
        raise ValueError("'dists' must hold at least one (op, label) distribution")
    ops, labels = dist_axes(dists)
    fig = Figure(figsize=(1.6 + 1.1 * len(labels), 3.4), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(labels))
    markers = "osD^v<>px*h"
    for k, op in enumerate(ops):
        y = [entropy_bits(dists[(op, lb)]) / math.log2(len(dists[(op, lb)]))
             if (op, lb) in dists and len(dists[(op, lb)]) > 1 else np.nan for lb in labels]
        ax.plot(x, y, marker=markers[k % len(markers)], label=op, lw=1.2, ms=4)
    ax.set_xticks(x, labels)
    lo = np.nanmin([ln.get_ydata() for ln in ax.get_lines()]) if ax.get_lines() else 0.0
    ax.set_ylim(max(0.0, np.floor(10 * lo - 0.5) / 10), 1.02)
    ax.set_ylabel("H / log2(n values)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    return fig


def figure_png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes, without the metadata that varies between runs."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata=PNG_METADATA, dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def show_figure(fig: Figure, name: str, results_dir: str | os.PathLike, *, save: bool = True,
                pdf: bool = False) -> None:
    """Save ``fig`` to ``<results_dir>/figures/<name>.png`` (if ``save``) and display it as PNG
    in a notebook (a no-op outside IPython)."""
    if save:
        save_figure(fig, name, results_dir, pdf=pdf)
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:  # pragma: no cover - IPython is a dependency of ipykernel
        return
    if get_ipython() is None:
        return
    display(Image(data=figure_png(fig)))


def _seed_mean_band(xs, ys, ci: float = 0.95):
    """Per distinct x: (x, mean over seeds, lo, hi) with the Student-t interval over seeds
    (:func:`jointtask_lib.experiments.seed_mean_ci`, clipped to [0, 1]); one seed: no interval."""
    from scipy import stats

    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    out = []
    for x in np.unique(xs):
        v = ys[xs == x]
        m = float(v.mean())
        if len(v) < 2:
            out.append((x, m, m, m))
            continue
        h = float(stats.t.ppf(0.5 + ci / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
        out.append((x, m, max(0.0, m - h), min(1.0, m + h)))
    return out


def _tick_label(p: float, ticks: Mapping | None) -> str:
    txt = f"{p:,.0f}" if p < 1e4 else f"{p / 1e3:.0f}k" if p < 1e6 else f"{p / 1e6:.1f}M"
    if ticks is not None and p in ticks:
        txt += f"\nd={ticks[p]}"
    return txt


def plot_transition_curves(points: Mapping, transitions: Mapping, *, level: float = 0.8,
                           title: str = "", ncols: int = 3, ticks: Mapping | None = None) -> Figure:
    """Accuracy vs parameters, one panel per label: seeds as points, the mean over seeds with its
    95% Student-t CI over seeds (not over prompts), the fitted logistic curve, and the transition
    (with its CI) as a vertical line and band.  ``points[label]`` is the ``(sizes, accs, seeds)``
    of :func:`jointtask_lib.experiments.accuracy_points`.

    Every trained size gets a labelled tick (minor ticks off); ``ticks`` maps a parameter count to
    the width ``d`` it was trained at (:func:`jointtask_lib.experiments.width_ticks`), written
    under the count.  The legend sits outside the panels, off the data."""
    labels = list(points)
    n = max(1, len(labels))
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig = Figure(figsize=(4.0 * ncols + 1.6, 3.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    handles: dict = {}
    for ax, label in zip(axes, labels):
        xs, ys, seeds = points[label]
        for s in sorted(set(np.asarray(seeds).tolist())):
            sel = np.asarray(seeds) == s
            ax.plot(np.asarray(xs)[sel], np.asarray(ys)[sel], "o", alpha=0.35, ms=3, color="C0",
                    label="one seed")
        if len(xs):
            band = _seed_mean_band(xs, ys)
            bx, bm, blo, bhi = (np.array(c) for c in zip(*band))
            ax.errorbar(bx, bm, yerr=[bm - blo, bhi - bm], fmt="s-", color="C1", ms=4, lw=1.0, capsize=2,
                        label="mean over seeds (95% CI over seeds)")
        t = transitions.get(label)
        if t is not None and len(xs):
            grid = np.geomspace(min(xs), max(xs), 200)
            ax.plot(grid, t.fit.predict(grid), "-", color="k", lw=1.2, label="logistic fit")
            if t.kind == "estimate":
                ax.axvline(t.value, color="C3", lw=1.2, label=f"transition ({level:.0%})")
                if t.lo is not None and t.hi is not None and np.isfinite(t.lo) and np.isfinite(t.hi):
                    ax.axvspan(max(t.lo, min(xs)), min(t.hi, max(xs)), color="C3", alpha=0.12)
            ax.set_title(f"{label}: {t.describe()}", fontsize=9)
        else:
            ax.set_title(str(label), fontsize=9)
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        if len(xs):
            u = sorted(set(float(x) for x in xs))
            ax.set_xticks(u, [_tick_label(x, ticks) for x in u], fontsize=6)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("parameters" + (" (and width d)" if ticks else ""))
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        for h, lb in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lb, h)
    for ax in axes[len(labels):]:
        ax.set_visible(False)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


#: Paper A's headline range of reduction factors ("2-7 times fewer parameters").
PAPER_A_BAND = (2.0, 7.0)


def plot_reductions(reductions: Mapping, *, expect: Mapping | None = None, title: str = "",
                    band: tuple[float, float] | None = PAPER_A_BAND) -> Figure:
    """Reduction factors (single / joint transition) with CIs, one row per pairing, on a log
    axis with the no-benefit line at 1 and paper A's 2-7x range shaded (``band``; ``None``: none).

    An estimate is a dot with its CI (an unbounded CI end, ``0`` or ``inf``, is an arrow towards
    it); a bound (``> x`` / ``< x``, held in ``r.bound``) is a bar at ``x`` with an arrow pointing
    the way the factor may lie; a missing or ``"inconclusive"`` factor is written as text.
    ``expect`` maps a label to "benefit" or "none" (paper A's claim) and colours the row.  The
    axis is zoomed to the data, 1 and the band; the legend sits outside the axes."""
    labels = list(reductions)
    fig = Figure(figsize=(7.5, 0.45 * max(3, len(labels)) + 1.2), layout="constrained")
    ax = fig.subplots()
    xs = [1.0]
    arrow = 1.6  # how far (factor) an arrow reaches beyond its start
    for i, label in enumerate(labels):
        r = reductions[label]
        color = {"benefit": "C2", "none": "C7"}.get((expect or {}).get(label), "C0")
        if r is None or r.kind == "inconclusive" or (r.kind == "estimate" and r.value is None):
            ax.text(1.0, i, "  no estimate" if r is None else "  inconclusive", va="center", fontsize=8,
                    gid="no-estimate")
            continue
        if r.kind == "estimate":
            lo = r.lo if r.lo is not None and 0 < r.lo < np.inf else r.value
            hi = r.hi if r.hi is not None and 0 < r.hi < np.inf else r.value
            ax.errorbar(r.value, i, xerr=[[r.value - lo], [hi - r.value]], fmt="o", color=color, capsize=3)
            xs += [lo, hi]
            for end, unbounded, step in ((lo, r.lo == 0.0, 1 / arrow), (hi, r.hi == np.inf, arrow)):
                if unbounded:
                    ax.annotate("", xy=(end * step, i), xytext=(end, i), gid="ci-open",
                                arrowprops=dict(arrowstyle="->", color=color))
                    xs.append(end * step)
        else:
            step = arrow if r.kind == "above" else 1 / arrow
            ax.annotate("", xy=(r.bound * step, i), xytext=(r.bound, i), gid=f"bound-{r.kind}",
                        arrowprops=dict(arrowstyle="->", color=color, lw=1.5))
            ax.plot(r.bound, i, "|", color=color, ms=12, mew=2)
            xs += [r.bound, r.bound * step]
    ax.axvline(1.0, color="k", lw=0.8, label="no benefit (1×)")
    if band is not None:
        ax.axvspan(band[0], band[1], color="C2", alpha=0.12, gid="paper-band",
                   label=f"paper A: {band[0]:g}–{band[1]:g}×")
        xs += list(band)
    ax.set_xscale("log")
    lo_x, hi_x = min(xs) / 1.3, max(xs) * 1.3
    ax.set_xlim(lo_x, hi_x)
    ax.xaxis.set_minor_formatter(NullFormatter())
    tick_vals = [v for v in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 3, 5, 7, 10, 20, 50, 100, 200, 500)
                 if lo_x <= v <= hi_x]
    ax.set_xticks(tick_vals, [f"{v:g}" for v in tick_vals])
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5 if labels else 0.5, -0.5)
    ax.set_xlabel("reduction factor (transition alone / transition joint)")
    ax.grid(alpha=0.3, axis="x")
    fig.legend(loc="outside lower center", ncols=2, fontsize=7)
    if title:
        ax.set_title(title)
    return fig


def plot_transition_scaling(by_size: Mapping, *, xlabel: str = "modulus n", title: str = "") -> Figure:
    """How each transition moves with the task size: ``by_size[size][label]`` is a
    :class:`~jointtask_lib.transition.Transition` (or ``None``).  One line per label on log-log
    axes; an estimate is a dot with its CI, a bound a bar with an arrow (up: "> largest size
    tried", down: "< smallest").  The dashed grey line grows like ``size`` (slope 1), for
    judging sub-linear growth by eye."""
    sizes = sorted(by_size)
    labels: list = []
    for size in sizes:
        labels += [k for k in by_size[size] if k not in labels]
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    ests = []
    for k, label in enumerate(labels):
        color = f"C{k % 10}"
        xs, ys = [], []
        for size in sizes:
            t = by_size[size].get(label)
            if t is None:
                continue
            if t.kind == "estimate":
                lo = t.lo if t.lo is not None else t.value
                hi = t.hi if t.hi is not None else t.value
                ax.errorbar(size, t.value, yerr=[[t.value - lo], [hi - t.value]], fmt="o", color=color, capsize=3)
                for end, kind, step in ((lo, t.lo_kind, 1 / 1.5), (hi, t.hi_kind, 1.5)):
                    if kind in ("above", "below"):  # a CI end that is itself a bound: open that side
                        ax.annotate("", xy=(size, end * step), xytext=(size, end), gid="ci-open",
                                    arrowprops=dict(arrowstyle="->", color=color))
                xs.append(size)
                ys.append(t.value)
                ests.append((size, t.value))
            else:
                step = 1.5 if t.kind == "above" else 1 / 1.5
                ax.plot(size, t.bound, "_", color=color, ms=12, mew=2)
                ax.annotate("", xy=(size, t.bound * step), xytext=(size, t.bound), gid=f"bound-{t.kind}",
                            arrowprops=dict(arrowstyle="->", color=color))
                ax.plot([size], [t.bound * step], alpha=0.0)  # keep the arrow head in view
        ax.plot(xs, ys, "-", color=color, lw=1.2, label=str(label))
    if ests:
        gx = math.exp(np.mean([math.log(x) for x, _ in ests]))
        gy = math.exp(np.mean([math.log(y) for _, y in ests]))
        grid = np.array([min(sizes), max(sizes)], float)
        ax.plot(grid, gy * grid / gx, "--", color="0.5", lw=1.0, label="∝ size (slope 1)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(sizes, [str(x) for x in sizes])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("transition (parameters)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------
# Interactive curve view (ipywidgets; only built when a notebook's `interactive` is true)
# ------------------------------------------------------------------------------------------


def explorer_figure(groups: Mapping, group, label, *, level: float = 0.8) -> Figure:
    """The figure :func:`curve_explorer` shows: one panel of :func:`plot_transition_curves` for
    curve ``label`` of ``group``.  ``groups[group] = (points, transitions)``, each keyed by label."""
    if group not in groups:
        raise ValueError(f"'group' must be one of {', '.join(map(str, groups))}; got {group!r}")
    points, transitions = groups[group]
    if label not in points:
        raise ValueError(f"'label' must be one of {', '.join(map(str, points))}; got {label!r}")
    return plot_transition_curves({label: points[label]}, {label: transitions.get(label)}, level=level,
                                  ncols=1, title=f"{group}")


def curve_explorer(groups: Mapping, *, level: float = 0.8):
    """A widget: pick a group (e.g. a modulus) and a curve (an operation or a training mix) and
    see its accuracy-vs-size points, fitted curve and transition (:func:`explorer_figure`).
    ``groups[group] = (points, transitions)``: the inputs of :func:`plot_transition_curves`."""
    import ipywidgets as w
    from IPython.display import Image, clear_output, display

    if not groups or not all(points for points, _ in groups.values()):
        raise ValueError("'groups' must hold at least one group, each with at least one curve")
    first = next(iter(groups))
    group = w.Dropdown(options=list(groups), value=first, description="group")
    label = w.Dropdown(options=list(groups[first][0]), description="curve")
    out = w.Output()

    def update(*_):
        if label.value not in groups[group.value][0]:
            return
        fig = explorer_figure(groups, group.value, label.value, level=level)
        with out:
            clear_output(wait=True)
            display(Image(data=figure_png(fig)))

    def regroup(*_):
        opts = list(groups[group.value][0])
        keep = label.value if label.value in opts else opts[0]
        label.options = opts
        label.value = keep
        update()

    group.observe(regroup, names="value")
    label.observe(update, names="value")
    update()
    return w.VBox([w.HBox([group, label]), out])
