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
