"""Paper B's figures: each returns a Figure with the expected panels and saves to a file."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from jointtask_lib import paths
from jointtask_lib.paper_b.plots_icl import (
    plot_error_vs_k, plot_head_scores, plot_loss_curves, plot_masking, plot_schedules, plot_seed_curves,
    plot_snapshots,
)

CLASSES = ("linear", "quadratic", "cubic")


def _curve(n=10, scale=1.0):
    m = scale * np.linspace(1.0, 0.1, n)
    return {"mean": m.tolist(), "lo": (0.9 * m).tolist(), "hi": (1.1 * m).tolist()}


LEVELS = {c: {"zero": 1.0, "constant": 0.8} for c in CLASSES}


def test_error_vs_k(tmp_path):
    curves = {"mixed": {c: _curve() for c in CLASSES}, "single": {c: _curve(scale=2) for c in CLASSES}}
    base = {c: {"least_squares": _curve(scale=0.5), "3nn": _curve(), "averaging": _curve()} for c in CLASSES}
    fig = plot_error_vs_k(curves, baselines=base, levels=LEVELS)
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == [f"evaluated on {c}" for c in CLASSES]
    assert len(axes[0].get_lines()) == 2 + 3 + 2  # models, baselines, two levels
    p = paths.save_figure(fig, "icl_error_vs_k", tmp_path)
    assert p.is_file() and p.stat().st_size > 1000
    with pytest.raises(ValueError, match="curves"):
        plot_error_vs_k({})


def test_y_range_ignores_extreme_baselines():
    ls = {"mean": [1.0, 0.5, 1e3, 1e-15, 1e-15, 1e-15], "lo": None, "hi": None}
    fig = plot_error_vs_k({"m": {"linear": _curve(6)}}, baselines={"linear": {"least_squares": ls}},
                          levels={"linear": {"zero": 1.0, "constant": 1.0}})
    lo, hi = fig.axes[0].get_ylim()
    assert 0.01 < lo < 0.1 and 1.0 < hi < 5.0


def test_baseline_known_at_some_positions_is_drawn_through_them():
    sparse = {"mean": [np.nan, np.nan, 0.5, np.nan, 0.2, 0.1], "lo": [np.nan] * 6, "hi": [np.nan] * 6}
    fig = plot_error_vs_k({"m": {"cubic": _curve(6)}}, baselines={"cubic": {"single_index_fit": sparse}},
                          levels={"cubic": {"zero": 1.0, "constant": 1.0}})
    line = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("single-index fit")][0]
    np.testing.assert_array_equal(line.get_xdata(), [2, 4, 5])
    np.testing.assert_allclose(line.get_ydata(), [0.5, 0.2, 0.1])
    assert line.get_marker() == "o"
    model_line = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "m"][0]
    assert model_line.get_marker() in ("None", None, "")


def test_equal_levels_drawn_once():
    fig = plot_error_vs_k({"m": {"linear": _curve()}}, levels={"linear": {"zero": 0.2, "constant": 0.2}})
    assert len(fig.axes[0].get_lines()) == 2


def test_loss_curves():
    panels = {"vs steps": {"single": ([1, 2, 3], [3.0, 2.0, 1.0]), "mixed": ([2, 3], [2.5, 1.5])},
              "vs cubic batches": {"single": ([1, 2, 3], [3.0, 2.0, 1.0])}}
    fig = plot_loss_curves(panels, xlabels={"vs cubic batches": "cubic batches seen"}, level=4.0)
    assert [ax.get_xlabel() for ax in fig.axes] == ["step", "cubic batches seen"]
    assert len(fig.axes[0].get_lines()) == 3


def test_head_scores_and_marks():
    s = np.random.default_rng(0).uniform(size=(3, 2)).tolist()
    fig = plot_head_scores({"mixed": {c: s for c in CLASSES}, "single": {c: s for c in CLASSES}},
                           marked={"mixed": [(0, 1), (2, 0)]})
    heat = [ax for ax in fig.axes if ax.images]
    assert len(heat) == 6
    assert len(heat[0].patches) == 2 and len(heat[3].patches) == 0
    assert [t.get_text() for t in heat[0].get_yticklabels()] == ["1", "2", "3"]


def test_masking_seed_and_snapshot_figures():
    conds = {c: {"none": _curve(), "top": _curve(scale=3), "bottom": _curve(scale=1.1),
                 "random": _curve(scale=1.2)} for c in CLASSES}
    fig = plot_masking({"mixed s0": conds, "mixed s1": conds}, levels=LEVELS,
                       condition_labels={"random": "2 random other heads masked"})
    assert len([ax for ax in fig.axes if ax.get_lines()]) == 6
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert labels[:4] == ["no mask", "top heads masked", "bottom heads masked", "2 random other heads masked"]
    assert fig.axes[0].get_lines()[3].get_color() == "C1"
    fig = plot_seed_curves({"mixed": [_curve(), _curve()], "single": [_curve(scale=2)]},
                           level={"zero": 1.0, "constant": 0.8}, threshold=0.2)
    assert len(fig.axes[0].get_lines()) == 3 + 2 + 1
    snaps = [{"step": s, "classes": {c: {"tail": 0.1 * s, "mean": 0.2} for c in CLASSES}} for s in (1, 2, 3)]
    fig = plot_snapshots({"sequential": snaps, "mixed": snaps}, classes=CLASSES, levels=LEVELS)
    assert len(fig.axes) == 3
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="classes"):
        plot_snapshots({"a": snaps}, classes=())


def test_schedules():
    sch = {"sequential": np.repeat([0, 1, 2], 30), "random": np.random.default_rng(0).integers(0, 3, 90)}
    fig = plot_schedules(sch, CLASSES, window=5)
    assert [ax.get_title() for ax in fig.axes] == ["sequential", "random"]
    assert len(fig.axes[0].collections) == 3
    with pytest.raises(ValueError, match="tasks"):
        plot_schedules(sch, [])
