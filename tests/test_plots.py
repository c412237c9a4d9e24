"""Figures are built headless (no pyplot), return Figures, and save reproducibly."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from jointtask_lib import plots, tables  # noqa: E402
from jointtask_lib.tasks import TaskConfig  # noqa: E402


@pytest.fixture(scope="module")
def dists():
    tasks = [TaskConfig(ops=("MAX", "ADD", "PROD"), modulus=n) for n in (5, 6)]
    return tables.output_distributions(tasks)


def _no_pyplot_figures():
    import matplotlib.pyplot as plt

    return plt.get_fignums() == []


def test_output_distribution_grid(dists):
    fig = plots.plot_output_distributions(dists)
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3 * 2  # rows: ops, columns: moduli
    assert [ax.get_title() for ax in axes[:2]] == ["mod 5", "mod 6"]
    assert axes[0].get_ylabel() == "MAX"
    assert _no_pyplot_figures()


def test_missing_panel_is_blank():
    t5 = TaskConfig(ops=("MAX", "ADD"), modulus=5)
    t6 = TaskConfig(ops=("ADD",), modulus=6)
    fig = plots.plot_output_distributions(tables.output_distributions([t5, t6]))
    assert sum(not ax.axison for ax in fig.axes) == 1


def test_normalised_entropy(dists):
    fig = plots.plot_normalised_entropy(dists)
    (ax,) = fig.axes
    lines = {ln.get_label(): ln.get_ydata() for ln in ax.get_lines()}
    assert set(lines) == {"MAX", "ADD", "PROD"}
    np.testing.assert_allclose(lines["ADD"], 1.0)  # ADD mod n is exactly uniform
    assert all(v < 1 for v in lines["MAX"])


def test_empty_input_is_an_error():
    with pytest.raises(ValueError, match="'dists'"):
        plots.plot_output_distributions({})
    with pytest.raises(ValueError, match="'dists'"):
        plots.plot_normalised_entropy({})


def test_figure_png_is_reproducible_and_clean(dists):
    a = plots.figure_png(plots.plot_output_distributions(dists))
    b = plots.figure_png(plots.plot_output_distributions(dists))
    assert a == b and a.startswith(b"\x89PNG") and b"Software" not in a


def test_show_figure_outside_ipython_only_saves(dists, tmp_path):
    plots.show_figure(plots.plot_normalised_entropy(dists), "ent", tmp_path)
    assert (tmp_path / "figures" / "ent.png").is_file()
    plots.show_figure(plots.plot_normalised_entropy(dists), "ent2", tmp_path, save=False)
    assert not (tmp_path / "figures" / "ent2.png").exists()


# -- transition figures with real estimator outputs ------------------------------------------------


def _cond(s0, seed, n_seeds=3):
    """Long-format (sizes, accs, seeds): at chance (s0 None) or a logistic rise at s0, with noise."""
    sizes = np.logspace(3, 6, 7)
    s = np.repeat(sizes, n_seeds)
    seeds = np.tile(np.arange(n_seeds), len(sizes))
    rng = np.random.default_rng(seed)
    y = 0.1 if s0 is None else 0.1 + 0.87 / (1 + np.exp(-1.6 * (np.log(s) - np.log(s0))))
    return s, np.clip(y + rng.normal(0, 0.03, s.size), 0, 1), seeds


@pytest.fixture(scope="module")
def reds():
    from jointtask_lib.transition import reduction_factor

    kw = dict(n_boot=100, chance=0.1)
    return {"bound": reduction_factor(_cond(None, 1), _cond(2.5e4, 2), **kw),
            "estimate": reduction_factor(_cond(1.2e5, 3), _cond(2.5e4, 4), **kw),
            "failed": reduction_factor(_cond(None, 5), _cond(None, 6), **kw),
            "upper": reduction_factor(_cond(2.5e4, 7), _cond(None, 8), **kw)}


def test_reductions_draw_bounds_as_arrows(reds):
    assert reds["bound"].kind == "above" and reds["upper"].kind == "below"
    assert reds["estimate"].kind == "estimate" and reds["failed"].kind == "inconclusive"
    fig = plots.plot_reductions({**reds, "missing": None}, expect={"bound": "benefit"})
    (ax,) = fig.axes
    arrows = {t.get_gid(): t for t in ax.texts if t.get_gid() and t.get_gid().startswith("bound-")}
    assert set(arrows) == {"bound-above", "bound-below"}
    assert arrows["bound-above"].xyann[0] == pytest.approx(reds["bound"].bound)
    assert arrows["bound-above"].xy[0] > reds["bound"].bound  # points towards larger factors
    assert arrows["bound-below"].xy[0] < reds["upper"].bound
    words = [t.get_text().strip() for t in ax.texts if t.get_gid() == "no-estimate"]
    assert words == ["inconclusive", "no estimate"]
    lo, hi = ax.get_xlim()
    assert lo < reds["upper"].bound and hi > reds["bound"].bound  # every bound is in view
    assert [t.get_text() for t in ax.get_yticklabels()] == ["bound", "estimate", "failed", "upper", "missing"]
    assert _no_pyplot_figures()


def test_transition_scaling_figure():
    from jointtask_lib.transition import estimate_transition

    by_size = {n: {"ADD": estimate_transition(*_cond(2e3 * n, n), chance=0.1, n_boot=50),
                   "MAX": estimate_transition(*_cond(None if n == 45 else 1e3 * n, n + 1), chance=0.1, n_boot=50)}
               for n in (10, 20, 45)}
    fig = plots.plot_transition_scaling(by_size)
    (ax,) = fig.axes
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "20", "45"]
    assert [t.get_gid() for t in ax.texts if t.get_gid() != "ci-open"] == ["bound-above"]  # MAX at 45: never
    assert {ln.get_label() for ln in ax.get_lines()} >= {"ADD", "MAX", "∝ size (slope 1)"}


def test_curve_explorer_headless():
    pytest.importorskip("ipywidgets")
    from jointtask_lib.transition import estimate_transition

    groups = {}
    for n in (10, 20):
        pts = {op: _cond(s0, n) for op, s0 in (("ADD", 4e4), ("MAX", 3e3))}
        groups[f"mod {n}"] = (pts, {op: estimate_transition(*p, chance=0.1, n_boot=30) for op, p in pts.items()})
    fig = plots.explorer_figure(groups, "mod 20", "MAX")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 1 and visible[0].get_title().startswith("MAX: ")
    with pytest.raises(ValueError, match="'group' must be one of mod 10, mod 20"):
        plots.explorer_figure(groups, "mod 30", "ADD")
    with pytest.raises(ValueError, match="'label' must be one of ADD, MAX"):
        plots.explorer_figure(groups, "mod 10", "MIN")
    box = plots.curve_explorer(groups)
    group, label = box.children[0].children
    assert list(group.options) == ["mod 10", "mod 20"] and list(label.options) == ["ADD", "MAX"]
    label.value = "MAX"
    group.value = "mod 20"  # the selection survives a change of group
    assert label.value == "MAX"
    with pytest.raises(ValueError, match="'groups'"):
        plots.curve_explorer({})


def test_transition_curves_label_every_size_with_its_width_and_show_seed_cis():
    from jointtask_lib.transition import estimate_transition

    xs, ys, seeds = _cond(4e4, 11)
    widths = {float(x): 8 + 4 * i for i, x in enumerate(sorted(set(xs.tolist())))}
    t = estimate_transition(xs, ys, seeds, chance=0.1, n_boot=30)
    fig = plots.plot_transition_curves({"ADD": (xs, ys, seeds)}, {"ADD": t}, ticks=widths)
    ax = fig.axes[0]
    labels = [lb.get_text() for lb in ax.get_xticklabels()]
    assert len(labels) == len(widths) and all(f"d={w}" in lb for lb, w in zip(labels, widths.values()))
    assert list(ax.get_xticks()) == pytest.approx(sorted(widths))
    # the mean over seeds with a Student-t CI over seeds, computed here independently
    from scipy import stats

    x0 = sorted(widths)[3]
    v = ys[xs == x0]
    h = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    band = dict((x, (m, lo, hi)) for x, m, lo, hi in plots._seed_mean_band(xs, ys))
    assert band[x0] == pytest.approx((v.mean(), max(0, v.mean() - h), min(1, v.mean() + h)))
    assert ax.get_legend() is None and len(fig.legends) == 1  # the legend is off the axes
    assert _no_pyplot_figures()


def test_reductions_draw_paper_band_and_zoom(reds):
    fig = plots.plot_reductions({"estimate": reds["estimate"]})
    (ax,) = fig.axes
    band = [p for p in ax.patches if p.get_gid() == "paper-band"]
    assert len(band) == 1
    lo, hi = ax.get_xlim()
    assert lo <= 1.0 and hi >= 7.0 and hi < 7.0 * 1.3 * max(1.0, reds["estimate"].hi / 7.0) * 1.01
    assert ax.get_legend() is None and len(fig.legends) == 1
    fig = plots.plot_reductions({"estimate": reds["estimate"]}, band=None)
    assert not [p for p in fig.axes[0].patches if p.get_gid() == "paper-band"]
