"""Tests for jointtask_lib.analysis.embeddings: expected values are computed independently."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import stats
from sklearn.metrics import silhouette_score

from jointtask_lib.analysis.embeddings import (
    chance_level,
    class_separation,
    cosine_matrix,
    divisibility_scores,
    order_score,
    parity_score,
    pca_of_cosine,
    plot_cosine_and_pca,
    proper_divisors,
    score_with_ci,
    separation_report,
)


def orthonormal(k: int, d: int, seed: int = 0) -> np.ndarray:
    """k orthonormal rows in R^d."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, k)))
    return q.T


def clustered(n: int, q: int, d: int = 16, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Embedding of v = centre[v mod q] (+ Gaussian noise); centres orthonormal."""
    centres = orthonormal(q, d, seed)
    E = centres[np.arange(n) % q]
    return E + noise * np.random.default_rng(seed + 1).standard_normal(E.shape)


def arc(n: int, span: float = 0.8 * math.pi) -> np.ndarray:
    theta = span * np.arange(n) / (n - 1)
    return np.c_[np.cos(theta), np.sin(theta)]


# ---------------------------------------------------------------------------------------------
# cosine matrix
# ---------------------------------------------------------------------------------------------


def test_cosine_matrix_matches_hand_formula():
    E = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, -2.0, 0.0], [3.0, 4.0, 12.0]])
    C = cosine_matrix(E)
    assert C.shape == (4, 4)
    for i in range(4):
        for j in range(4):
            dot = sum(E[i, k] * E[j, k] for k in range(3))
            ni = math.sqrt(sum(x * x for x in E[i]))
            nj = math.sqrt(sum(x * x for x in E[j]))
            assert C[i, j] == pytest.approx(dot / (ni * nj), abs=1e-12)
    assert C[0, 1] == pytest.approx(1 / math.sqrt(2))
    assert C[1, 2] == pytest.approx(-1 / math.sqrt(2))
    assert C[0, 3] == pytest.approx(3 / 13)
    assert np.array_equal(np.diag(C), np.ones(4))
    assert np.array_equal(C, C.T)


def test_cosine_matrix_scale_invariant_and_uses_first_n_rows():
    E = np.random.default_rng(3).standard_normal((7, 5))
    scaled = E * np.array([[1.0], [2.0], [0.5], [10.0], [3.0], [1.0], [7.0]])
    np.testing.assert_allclose(cosine_matrix(scaled), cosine_matrix(E), atol=1e-12)
    np.testing.assert_allclose(cosine_matrix(E, n=4), cosine_matrix(E[:4]), atol=0)


def test_cosine_matrix_accepts_torch_tensor():
    torch = pytest.importorskip("torch")
    t = torch.randn(6, 4, requires_grad=True)
    np.testing.assert_allclose(cosine_matrix(t), cosine_matrix(t.detach().numpy()), atol=1e-12)


# ---------------------------------------------------------------------------------------------
# PCA
# ---------------------------------------------------------------------------------------------


def test_pca_of_cosine_matches_manual_svd_up_to_sign():
    E = np.random.default_rng(5).standard_normal((10, 6))
    coords, evr = pca_of_cosine(E, n_components=3)
    C = cosine_matrix(E)
    X = C - C.mean(axis=0)
    U, S, _ = np.linalg.svd(X, full_matrices=False)
    manual = U[:, :3] * S[:3]
    for k in range(3):
        assert np.allclose(coords[:, k], manual[:, k], atol=1e-9) or np.allclose(
            coords[:, k], -manual[:, k], atol=1e-9
        )
    np.testing.assert_allclose(evr, (S[:3] ** 2) / np.sum(S**2), atol=1e-12)


def test_pca_deterministic_and_sign_convention():
    E = np.random.default_rng(11).standard_normal((15, 8))
    c1, r1 = pca_of_cosine(E)
    c2, r2 = pca_of_cosine(E.copy())
    assert np.array_equal(c1, c2) and np.array_equal(r1, r2)
    # each coordinate correlates positively with the value
    v = np.arange(15)
    for k in range(2):
        assert np.corrcoef(c1[:, k], v)[0, 1] > 0
    # flipping the embeddings' overall sign changes nothing (cosines are unchanged)
    c3, _ = pca_of_cosine(-E)
    np.testing.assert_allclose(c3, c1, atol=1e-9)
    # reversing the order of the numbers reverses the orientation of the arc coordinate
    ca, _ = pca_of_cosine(arc(12))
    assert np.all(np.diff(ca[:, 0]) > 0)
    cr, _ = pca_of_cosine(arc(12)[::-1])
    assert np.all(np.diff(cr[:, 0]) > 0)


def test_pca_sign_convention_for_uncorrelated_component():
    # symmetric two-cluster picture: 0,3 in one direction, 1,2 in another -> PC1 uncorrelated
    # with v, so its largest-|entry| (first occurrence) must be positive.
    E = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    coords, evr = pca_of_cosine(E, n_components=1)
    x = coords[:, 0]
    assert abs(np.corrcoef(x, np.arange(4))[0, 1]) < 1e-9
    assert x[int(np.argmax(np.abs(x)))] > 0
    assert evr[0] == pytest.approx(1.0)


def test_pca_parallel_embeddings_give_zeros():
    E = np.outer(np.arange(1, 6), [1.0, 2.0, 3.0])
    coords, evr = pca_of_cosine(E)
    assert np.array_equal(coords, np.zeros((5, 2))) and np.array_equal(evr, np.zeros(2))
    assert order_score(E) == 0.0


# ---------------------------------------------------------------------------------------------
# separation scores
# ---------------------------------------------------------------------------------------------


def test_silhouette_matches_sklearn():
    rng = np.random.default_rng(2)
    for n, q in [(12, 3), (20, 2), (20, 5), (9, 3)]:
        E = rng.standard_normal((n, 6)) + 0.7 * clustered(n, q, d=6, seed=int(rng.integers(100)))
        D = np.clip(1.0 - cosine_matrix(E), 0, 2)
        np.fill_diagonal(D, 0.0)
        labels = np.arange(n) % q
        expected = silhouette_score(D, labels, metric="precomputed")
        assert class_separation(E, labels) == pytest.approx(expected, abs=1e-12)


def test_parity_perfect_split_scores_one():
    a, b = orthonormal(2, 8)
    E = np.array([a if v % 2 == 0 else b for v in range(20)])
    assert parity_score(E) == pytest.approx(1.0, abs=1e-12)
    # near a / near b with a little noise and a shared offset: still close to 1
    noisy = 3.0 * E + 0.1 * np.random.default_rng(0).standard_normal(E.shape) + 0.5
    assert parity_score(noisy) > 0.85


def test_parity_random_is_near_zero_and_below_null_q95():
    n, d = 20, 32
    null = chance_level(parity_score, n, d, n_samples=200, seed=1)
    assert abs(null["mean"]) < 0.02
    assert null["std"] < 0.05
    E = np.random.default_rng(12345).standard_normal((n, d))
    s = parity_score(E)
    assert abs(s) < 0.1
    assert s < null["q95"]


def test_parity_equals_divisibility_q2():
    E = np.random.default_rng(4).standard_normal((20, 8))
    assert parity_score(E) == divisibility_scores(E, 20)[2]
    # odd n: parity still defined, no q = 2 divisor
    assert 2 not in divisibility_scores(E[:15], 15)
    assert -1.0 <= parity_score(E, 15) <= 1.0


def test_divisibility_residue_mod3_clusters_n12_exact_values():
    n = 12
    E = clustered(n, 3)
    scores = divisibility_scores(E, n)
    assert sorted(scores) == [2, 3, 4, 6] == proper_divisors(12)
    assert scores[3] == pytest.approx(1.0, abs=1e-12)
    # hand-computed (centres orthonormal: distance 0 within a residue class mod 3, 1 otherwise):
    # q=4: own class {v+4, v+8} all other residues mod 3 -> a = 1; every other class mod 4 has
    #      one member with the same residue mod 3 -> b = 2/3; s = (2/3 - 1)/1 = -1/3.
    assert scores[4] == pytest.approx(-1 / 3, abs=1e-12)
    # q=2: 1 of the 5 other same-parity numbers shares the residue mod 3 -> a = 4/5;
    #      2 of the 6 opposite-parity numbers do -> b = 4/6; s = (2/3 - 4/5)/(4/5) = -1/6.
    assert scores[2] == pytest.approx(-1 / 6, abs=1e-12)
    assert parity_score(E) == pytest.approx(-1 / 6, abs=1e-12)
    # q=6 refines mod 3: the nearest other class (same residue mod 3) is at distance 0 too.
    assert scores[6] == pytest.approx(0.0, abs=1e-12)


def test_divisibility_noisy_clusters_and_prime():
    n = 12
    E = clustered(n, 3, noise=0.08, seed=7)
    s = divisibility_scores(E, n)
    assert s[3] > 0.8
    assert s[4] < 0.1
    assert s[3] > max(s[2], s[4], s[6]) + 0.5
    assert divisibility_scores(np.random.default_rng(0).standard_normal((13, 4)), 13) == {}
    assert proper_divisors(45) == [3, 5, 9, 15]


def test_order_score_line_arc_and_random():
    n = 20
    v = np.arange(n)
    line = np.c_[np.ones(n), v / (n - 1)]  # points on a line not through the origin
    assert order_score(line) == pytest.approx(1.0, abs=1e-12)
    assert order_score(arc(n)) == pytest.approx(1.0, abs=1e-12)
    # higher-dimensional arc, randomly rotated and scaled per row
    R = orthonormal(2, 10, seed=3)
    curved = (arc(n) @ R) * np.linspace(0.5, 3.0, n)[:, None]
    assert order_score(curved) == pytest.approx(1.0, abs=1e-12)
    # shuffled labels destroy the order
    perm = np.random.default_rng(0).permutation(n)
    assert order_score(arc(n)[perm]) < 0.7
    # random embeddings: below the null's 95th percentile, far from 1
    null = chance_level(order_score, n, 16, n_samples=100, seed=0)
    E = np.random.default_rng(99).standard_normal((n, 16))
    assert order_score(E) < null["q95"] < 0.7


def test_order_score_of_a_full_circle_as_the_docstring_states():
    """The module docstring: a full circle of 20 points scores between about 0.6 and 0.8,
    depending on the rotation the PCA returns for its two tied components."""
    n = 20
    v = np.arange(n)
    theta = 2 * math.pi * v / n
    # independently: the best |Spearman| of the two coordinates over every rotation of the circle
    best = [max(abs(stats.spearmanr(np.cos(theta - p), v)[0]), abs(stats.spearmanr(np.sin(theta - p), v)[0]))
            for p in np.linspace(0, 2 * math.pi, 721)]
    assert 0.55 < min(best) < 0.65 and 0.75 < max(best) < 0.8
    for E in (np.c_[np.cos(theta), np.sin(theta)],
              np.c_[np.cos(theta), np.sin(theta)] @ orthonormal(2, 8, seed=5)):
        assert min(best) - 1e-9 <= order_score(E) <= max(best) + 1e-9


def test_order_score_null_mean_for_n20_as_the_docstring_states():
    for d in (8, 32):
        null = chance_level(order_score, 20, d, n_samples=200, seed=0)
        assert 0.2 < null["mean"] < 0.3


def test_order_score_equals_max_abs_spearman_of_pca_coords():
    E = np.random.default_rng(8).standard_normal((14, 5))
    coords, _ = pca_of_cosine(E, 2)
    v = np.arange(14)
    expected = max(abs(stats.spearmanr(coords[:, k], v)[0]) for k in range(2))
    assert order_score(E) == pytest.approx(expected, abs=1e-12)


def test_separation_report_keys_and_consistency():
    E = clustered(12, 3, noise=0.05)
    rep = separation_report(E, 12)
    assert set(rep) == {"n", "d", "parity", "divisibility", "order", "explained_variance_ratio"}
    assert rep["n"] == 12 and rep["d"] == 16
    assert rep["parity"] == parity_score(E)
    assert rep["divisibility"] == divisibility_scores(E, 12)
    assert rep["order"] == order_score(E)
    assert len(rep["explained_variance_ratio"]) == 2
    rep2 = separation_report(E, 12, null_samples=20, seed=1)
    assert set(rep2["null"]) == {"parity", "order", "divisibility"}
    assert set(rep2["null"]["divisibility"]) == {2, 3, 4, 6}
    assert "values" not in rep2["null"]["parity"]
    assert rep2["null"]["parity"]["mean"] == chance_level(parity_score, 12, 16, 20, 1)["mean"]


def test_chance_level_deterministic_and_dict_valued():
    a = chance_level(parity_score, 10, 4, n_samples=30, seed=3)
    b = chance_level(parity_score, 10, 4, n_samples=30, seed=3)
    assert np.array_equal(a["values"], b["values"])
    assert a["q95"] == pytest.approx(np.quantile(a["values"], 0.95))
    assert a["mean"] == pytest.approx(np.mean(a["values"]))
    # the first sample is exactly the first draw of default_rng(seed)
    first = np.random.default_rng(3).standard_normal((10, 4))
    assert a["values"][0] == parity_score(first)
    d = chance_level(divisibility_scores, 10, 4, n_samples=10, seed=0)
    assert set(d) == {2, 5} and d[5]["n_samples"] == 10


# ---------------------------------------------------------------------------------------------
# bootstrap CI
# ---------------------------------------------------------------------------------------------


def test_score_with_ci_known_values():
    assert score_with_ci([0.4]) == (0.4, 0.4, 0.4)
    assert score_with_ci([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3, 0.3))
    m, lo, hi = score_with_ci([0.0, 1.0], n_boot=2000)
    # bootstrap means are 0, 0.5, 1 with prob 1/4, 1/2, 1/4 -> 2.5% / 97.5% quantiles 0 and 1
    assert (m, lo, hi) == (0.5, 0.0, 1.0)
    # large normal sample: percentile CI ~ mean +- 1.96 sd / sqrt(m)
    vals = np.random.default_rng(0).normal(0.7, 0.1, size=400)
    m, lo, hi = score_with_ci(vals, n_boot=4000)
    half = 1.96 * vals.std(ddof=1) / math.sqrt(vals.size)
    assert m == pytest.approx(vals.mean())
    assert lo == pytest.approx(m - half, abs=0.003)
    assert hi == pytest.approx(m + half, abs=0.003)
    # deterministic, and a wider ci gives a wider interval
    assert score_with_ci(vals[:10]) == score_with_ci(vals[:10])
    _, lo90, hi90 = score_with_ci(vals[:10], ci=0.9)
    _, lo99, hi99 = score_with_ci(vals[:10], ci=0.99)
    assert lo99 <= lo90 and hi90 <= hi99


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: cosine_matrix(np.ones(5)), "'E'"),
        (lambda: cosine_matrix(np.ones((2, 3, 4))), "'E'"),
        (lambda: cosine_matrix(np.ones((1, 3))), "'E'"),
        (lambda: cosine_matrix(np.ones((4, 0))), "'E'"),
        (lambda: parity_score(np.ones((4, 3)), n=1), "'n'"),
        (lambda: divisibility_scores(np.random.rand(5, 3), 1), "'n'"),
        (lambda: divisibility_scores(np.random.rand(5, 3), 12), "'E'"),
        (lambda: order_score(np.random.rand(5, 3), n=6), "'E'"),
        (lambda: separation_report(np.random.rand(5, 3), 8), "'E'"),
        (lambda: cosine_matrix(np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])), "'E'"),
        (lambda: cosine_matrix(np.array([[1.0, np.nan], [0.0, 1.0]])), "'E'"),
        (lambda: pca_of_cosine(np.random.rand(5, 3), n_components=6), "'n_components'"),
        (lambda: pca_of_cosine(np.random.rand(5, 3), n_components=0), "'n_components'"),
        (lambda: class_separation(np.random.rand(5, 3), [0, 1, 0]), "'labels'"),
        (lambda: class_separation(np.random.rand(5, 3), [0] * 5), "'labels'"),
        (lambda: chance_level(parity_score, 1, 4), "'n'"),
        (lambda: chance_level(parity_score, 5, 0), "'d'"),
        (lambda: chance_level(42, 5, 4), "'score_fn'"),
        (lambda: score_with_ci([]), "'values_over_seeds'"),
        (lambda: score_with_ci([[1.0, 2.0]]), "'values_over_seeds'"),
        (lambda: score_with_ci([1.0, float("nan")]), "'values_over_seeds'"),
        (lambda: score_with_ci([1.0, 2.0], ci=1.0), "'ci'"),
        (lambda: score_with_ci([1.0, 2.0], n_boot=0), "'n_boot'"),
        (lambda: plot_cosine_and_pca(np.random.rand(6, 3), 6, color_by="colour"), "'color_by'"),
        (lambda: plot_cosine_and_pca(np.random.rand(6, 3), 6, color_by="residue"), "'residue_mod'"),
        (lambda: plot_cosine_and_pca(np.random.rand(6, 3), 6, ax="x"), "'ax'"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ---------------------------------------------------------------------------------------------
# plot
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "color_by, residue_mod, n_legend",
    [("value", None, 0), ("parity", None, 2), ("residue", 3, 3), ("residue", 24, 24)],
)
def test_plot_returns_figure_with_two_axes(color_by, residue_mod, n_legend):
    n = 24 if residue_mod == 24 else 12
    E = clustered(n, 3, noise=0.05) if n == 12 else np.random.default_rng(0).standard_normal((n, 8))
    fig = plot_cosine_and_pca(E, n, color_by=color_by, residue_mod=residue_mod)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    ax_cos, ax_pca = fig.axes
    np.testing.assert_allclose(ax_cos.images[0].get_array(), cosine_matrix(E))
    assert len(ax_pca.texts) == n  # every point labelled with its number
    assert [t.get_text() for t in ax_pca.texts] == [str(v) for v in range(n)]
    offsets = ax_pca.collections[0].get_offsets()
    np.testing.assert_allclose(offsets, pca_of_cosine(E)[0])
    legend = ax_pca.get_legend()
    assert (0 if legend is None else len(legend.get_texts())) == n_legend
    fig.canvas.draw()  # renders headless without error


def test_plot_into_given_axes():
    fig = Figure()
    axes = fig.subplots(1, 2)
    out = plot_cosine_and_pca(arc(10), 10, color_by="parity", ax=axes)
    assert out is fig and len(fig.axes) == 2
