"""Figures for paper B (in-context regression).  Every function returns a
:class:`matplotlib.figure.Figure` built without pyplot (headless-safe, no global figure list);
show and save one in a notebook with :func:`jointtask_lib.plots.show_figure`.

Curves are :class:`jointtask_lib.paper_b.records.Curve` objects, or the dicts stored by
:mod:`jointtask_lib.paper_b.icl_train` (``{"mean": [...], "lo": [...], "hi": [...]}`` per position k,
errors divided by d, ``lo``/``hi`` optional), read through :meth:`Curve.of`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .records import Curve, snapshot_tails

DPI = 110
_BASELINE_STYLE = {"least_squares": ("least squares", "0.15", "--"), "3nn": ("3-NN", "0.45", ":"),
                   "averaging": ("averaging", "0.6", "-."),
                   "poly_least_squares": ("least squares on monomials (correct class)", "tab:brown", "--"),
                   "single_index_fit": ("single-index fit (correct model)", "tab:olive", "-")}
_LEVEL_STYLE = {"zero": ("predict 0", "tab:red"), "constant": ("predict the mean", "tab:purple")}


def _nonempty(name: str, obj) -> None:
    if not obj:
        raise ValueError(f"'{name}' must hold at least one entry")


def _band(ax, curve: "Curve | Mapping", label: str, color=None, ls="-", lw=1.4, alpha=0.18):
    """A curve with its CI band.  A curve known only at some positions (NaN elsewhere, e.g. the
    single-index fit) is drawn through the known points, with a marker on each."""
    cur = Curve.of(curve)
    y = cur.mean
    k = np.arange(len(y))
    known = np.isfinite(y)
    sparse = not known.all()
    (line,) = ax.plot(k[known], y[known], ls=ls, lw=lw, color=color, label=label,
                      marker="o" if sparse else None, ms=3.5)
    if cur.has_band:
        ax.fill_between(k[known], cur.lo[known], cur.hi[known], color=line.get_color(), alpha=alpha, lw=0)
    return line


def _levels(ax, levels: Mapping | None, which=("zero", "constant")):
    if not levels:
        return
    for name in which:
        if name in levels and levels[name] is not None:
            lab, col = _LEVEL_STYLE[name]
            if name == "constant" and "zero" in levels and np.isclose(levels["constant"], levels["zero"]):
                continue  # identical (mean 0): one line says both
            ax.axhline(levels[name], color=col, lw=0.9, ls=(0, (1, 2)), label=lab)


def _focus(ax, curves: Sequence["Curve | Mapping"], levels: Mapping | None, logy: bool) -> None:
    """Y-limits from the models' curves and the reference levels only, so that a baseline that
    reaches 1e-15 (least squares on linear) or spikes at k = d (its double descent) does not
    squash the curves that matter."""
    vals = [Curve.of(c).mean for c in curves]
    vals += [np.asarray([v]) for k, v in (levels or {}).items() if k in _LEVEL_STYLE and v is not None]
    vals = np.concatenate(vals) if vals else np.array([])
    vals = vals[np.isfinite(vals) & (vals > 0)] if logy else vals[np.isfinite(vals)]
    if vals.size == 0:
        return
    lo, hi = float(vals.min()), float(vals.max())
    if logy:
        ax.set_ylim(lo / 2.0, hi * 2.0)
    else:
        ax.set_ylim(min(0.0, lo), hi * 1.15)


def _finish(ax, logy: bool, k_max: int | None = None):
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.25, which="both" if logy else "major")
    ax.set_xlabel("k (in-context examples seen)")
    if k_max is not None:
        ax.set_xlim(0, k_max)


def plot_error_vs_k(
    curves: Mapping[str, Mapping[str, Mapping]],
    *,
    baselines: Mapping[str, Mapping[str, Mapping]] | None = None,
    levels: Mapping[str, Mapping[str, float]] | None = None,
    classes: Sequence[str] | None = None,
    title: str = "Error vs number of in-context examples",
    logy: bool = True,
    ylabel: str = "squared error / d",
) -> Figure:
    """One panel per evaluation class; one line (with its CI band) per model.

    ``curves[label][class]`` is a curve; ``baselines[class][name]`` classical estimators (grey);
    ``levels[class]`` the reference levels (``zero``, ``constant``) as dotted lines.
    """
    _nonempty("curves", curves)
    classes = list(classes or next(iter(curves.values())).keys())
    _nonempty("classes", classes)
    fig = Figure(figsize=(1.2 + 3.6 * len(classes), 3.6), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(classes), squeeze=False)[0]
    for ax, c in zip(axes, classes):
        for j, (label, per_class) in enumerate(curves.items()):
            if c in per_class:
                _band(ax, per_class[c], label, color=f"C{j}")
        for name, cur in (baselines or {}).get(c, {}).items():
            lab, col, ls = _BASELINE_STYLE.get(name, (name, "0.3", "--"))
            _band(ax, cur, lab, color=col, ls=ls, lw=1.1, alpha=0.0)
        _levels(ax, (levels or {}).get(c))
        ax.set_title(f"evaluated on {c}", fontsize=10)
        _finish(ax, logy)
        _focus(ax, [pc[c] for pc in curves.values() if c in pc], (levels or {}).get(c), logy)
    axes[0].set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    for ax in axes[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen.keys()), loc="outside right center", fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


def plot_loss_curves(
    panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    *,
    xlabels: Mapping[str, str] | None = None,
    level: float | None = None,
    level_label: str = "predict the mean",
    title: str = "Training loss",
    ylabel: str = "training loss (MSE / d)",
    logy: bool = True,
) -> Figure:
    """Side-by-side panels of training-loss curves: ``panels[panel_title][label] = (x, y)``.

    Used for paper B's Fig. 4: the cubic loss against global steps and against *cubic batches
    seen* (mixed sees about 1/9 as many as the single-task cubic model).
    """
    _nonempty("panels", panels)
    fig = Figure(figsize=(1.0 + 4.2 * len(panels), 3.5), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (ptitle, series) in zip(axes, panels.items()):
        for j, (label, (x, y)) in enumerate(series.items()):
            ax.plot(np.asarray(x), np.asarray(y), lw=1.3, color=f"C{j}", label=label)
        if level is not None:
            ax.axhline(level, color=_LEVEL_STYLE["constant"][1], lw=0.9, ls=(0, (1, 2)), label=level_label)
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.25)
        ax.set_title(ptitle, fontsize=10)
        ax.set_xlabel((xlabels or {}).get(ptitle, "step"))
        ax.legend(fontsize=8)
    axes[0].set_ylabel(ylabel)
    fig.suptitle(title, fontsize=11)
    return fig


def plot_head_scores(
    scores: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
    *,
    marked: Mapping[str, Sequence[Sequence[int]]] | None = None,
    title: str = "Retrospective score: attention from each y token to its own x",
    vmax: float = 1.0,
) -> Figure:
    """Heatmaps ``[layer, head]``: one row per model, one column per evaluation class.

    ``scores[label][class]`` is ``[layers][heads]`` (0..1); ``marked[label]`` lists ``(layer,
    head)`` pairs to outline (e.g. the heads masked in the masking experiment).  Layers and heads
    are labelled from 1, as in the paper.
    """
    _nonempty("scores", scores)
    labels = list(scores)
    classes = list(next(iter(scores.values())).keys())
    L, H = np.asarray(next(iter(scores[labels[0]].values()))).shape
    cell = 0.42
    fig = Figure(figsize=(1.6 + len(classes) * (0.9 + cell * H), 0.9 + len(labels) * (0.5 + cell * L)),
                 dpi=DPI, layout="constrained")
    axes = fig.subplots(len(labels), len(classes), squeeze=False)
    im = None
    for i, lab in enumerate(labels):
        for j, c in enumerate(classes):
            ax = axes[i, j]
            s = np.asarray(scores[lab][c], dtype=float)
            im = ax.imshow(s, vmin=0.0, vmax=vmax, cmap="viridis", aspect="equal")
            for (li, hi), v in np.ndenumerate(s):
                ax.text(hi, li, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if v < 0.6 * vmax else "black")
            for (li, hi) in (marked or {}).get(lab, []):
                ax.add_patch(_rect(hi, li))
            ax.set_xticks(range(H), [str(h + 1) for h in range(H)], fontsize=7)
            ax.set_yticks(range(L), [str(x + 1) for x in range(L)], fontsize=7)
            if i == 0:
                ax.set_title(f"on {c}", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{lab}\nlayer", fontsize=8)
            if i == len(labels) - 1:
                ax.set_xlabel("head", fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.6, label="score")
    fig.suptitle(title, fontsize=10)
    return fig


def _rect(x, y):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, ec="red", lw=1.8)


def plot_masking(
    curves: Mapping[str, Mapping[str, Mapping[str, Mapping]]],
    *,
    levels: Mapping[str, Mapping[str, float]] | None = None,
    condition_labels: Mapping[str, str] | None = None,
    title: str = "Masking heads at evaluation",
    logy: bool = True,
) -> Figure:
    """Rows = models, columns = classes; lines = conditions (``none``, ``top``, and the controls
    ``bottom`` and ``random``).

    ``curves[label][class][condition]`` is a curve; ``condition_labels`` renames conditions in
    the legend (e.g. ``top`` -> "2 most retrospective heads masked").
    """
    _nonempty("curves", curves)
    labels = list(curves)
    classes = list(next(iter(curves.values())).keys())
    names = {"none": "no mask", "top": "top heads masked", "bottom": "bottom heads masked",
             "random": "random other heads masked", **(condition_labels or {})}
    colors = {"none": "C0", "top": "C3", "bottom": "C2", "random": "C1"}
    fig = Figure(figsize=(1.2 + 3.4 * len(classes), 0.8 + 2.7 * len(labels)), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(labels), len(classes), squeeze=False)
    for i, lab in enumerate(labels):
        for j, c in enumerate(classes):
            ax = axes[i, j]
            for cond, cur in curves[lab][c].items():
                _band(ax, cur, names.get(cond, cond), color=colors.get(cond))
            _levels(ax, (levels or {}).get(c))
            _finish(ax, logy)
            _focus(ax, list(curves[lab][c].values()), (levels or {}).get(c), logy)
            if i == 0:
                ax.set_title(f"evaluated on {c}", fontsize=10)
            if j == 0:
                ax.set_ylabel(f"{lab}\nsquared error / d", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    return fig


def plot_seed_curves(
    curves: Mapping[str, Sequence["Curve | Mapping"]],
    *,
    level: Mapping[str, float] | None = None,
    threshold: float | None = None,
    title: str = "Every seed, evaluated on quadratic",
    logy: bool = True,
) -> Figure:
    """Paper B's Fig. 3: one thin line per seed, one colour per model kind.

    ``curves[label]`` lists one curve per seed; ``level`` the class's reference levels;
    ``threshold`` draws the "converged" line.
    """
    _nonempty("curves", curves)
    fig = Figure(figsize=(5.6, 3.6), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    for j, (lab, cs) in enumerate(curves.items()):
        for s, cur in enumerate(cs):
            y = Curve.of(cur).mean
            ax.plot(np.arange(len(y)), y, color=f"C{j}", lw=1.2, alpha=0.85, label=lab if s == 0 else None)
    _levels(ax, level)
    if threshold is not None:
        ax.axhline(threshold, color="0.3", lw=0.9, ls="--", label="'converged' below this")
    _finish(ax, logy)
    ax.set_ylabel("squared error / d")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


def plot_snapshots(
    snapshots: Mapping[str, Sequence[Mapping]],
    *,
    classes: Sequence[str],
    levels: Mapping[str, Mapping[str, float]] | None = None,
    block_names: Sequence[str] | None = None,
    title: str = "Error at the end of each third of training (tail: last positions)",
    logy: bool = True,
) -> Figure:
    """One panel per class; x = the end of each training third, y = the tail error then.

    ``snapshots[label]`` is a run's ``record["snapshots"]`` (``[{"step", "classes": {c: {"tail",
    "mean"}}}]``).  Forgetting shows as a line that goes *up* after its task's block.
    """
    _nonempty("snapshots", snapshots)
    _nonempty("classes", classes)
    fig = Figure(figsize=(1.2 + 3.3 * len(classes), 3.3), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(classes), squeeze=False)[0]
    for ax, c in zip(axes, classes):
        for j, (lab, snaps) in enumerate(snapshots.items()):
            x = np.arange(1, len(snaps) + 1)
            y = snapshot_tails(snaps, c)
            ax.plot(x, y, marker="o", color=f"C{j}", label=lab)
        _levels(ax, (levels or {}).get(c))
        n = max(len(s) for s in snapshots.values())
        names = list(block_names) if block_names else [f"end of third {i}" for i in range(1, n + 1)]
        ax.set_xticks(np.arange(1, n + 1), names[:n], fontsize=7, rotation=15)
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.25)
        ax.set_title(f"evaluated on {c}", fontsize=10)
    axes[0].set_ylabel("tail error / d")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


def plot_schedules(
    schedules: Mapping[str, Sequence[int]],
    tasks: Sequence[str],
    *,
    window: int | None = None,
    title: str = "Which task each training step uses (share of steps, rolling window)",
) -> Figure:
    """One panel per curriculum: the share of each task among the steps of a rolling window.

    ``schedules[label]`` is a per-step array of task indices into ``tasks`` (single-task runs can
    be drawn with a one-element ``tasks`` by passing indices 0).  ``window`` defaults to 2% of the
    run (at least 1 step).
    """
    _nonempty("schedules", schedules)
    _nonempty("tasks", tasks)
    fig = Figure(figsize=(1.0 + 3.1 * len(schedules), 2.9), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(schedules), squeeze=False, sharey=True)[0]
    for ax, (lab, sch) in zip(axes, schedules.items()):
        sch = np.asarray(sch)
        w = window or max(1, len(sch) // 50)
        kernel = np.ones(w) / w
        x = np.arange(len(sch))
        bottom = np.zeros(len(sch))
        for t, name in enumerate(tasks):
            share = np.convolve((sch == t).astype(float), kernel, mode="same")
            ax.fill_between(x, bottom, bottom + share, color=f"C{t}", alpha=0.75, lw=0, label=name)
            bottom = bottom + share
        ax.set_ylim(0, 1)
        ax.set_xlim(0, len(sch) - 1)
        ax.set_title(lab, fontsize=10)
        ax.set_xlabel("step")
    axes[0].set_ylabel("share of steps")
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return fig


__all__ = ["plot_error_vs_k", "plot_loss_curves", "plot_head_scores", "plot_masking", "plot_seed_curves",
           "plot_snapshots", "plot_schedules"]
