"""Is there structure in the number embeddings?  Cosine similarities, PCA and separation scores.

What we look at
---------------
A trained model stores one learned vector (its *embedding*) per token.  Take the rows for the
number tokens ``0, 1, ..., n-1`` and stack them into a matrix ``E`` of shape ``[n, d]``: row ``v``
is the embedding of the number ``v``.  Every function here takes that matrix (a NumPy array, or
anything NumPy can convert, including a CPU torch tensor).  If ``E`` has more rows than ``n``
(for example the whole vocabulary, numbers first), only the first ``n`` rows are used, so the
number tokens must come first and in value order.

Paper A (Both et al. 2025) asks whether training on several tasks at once makes these vectors
*organised*: numbers ordered along a line or arc, even numbers apart from odd ones, multiples of
3 apart from the rest, ...  whereas a model trained on ADD alone may learn vectors with no
visible organisation.

Step 1 - cosine similarities.  ``cosine_matrix(E)[i, j]`` is the cosine of the angle between the
embeddings of ``i`` and ``j``: 1 = same direction, 0 = unrelated (orthogonal), -1 = opposite.
The result is an ``n x n`` matrix whatever the embedding width ``d``, which is why the paper
analyses this matrix and not the raw vectors: models of different sizes become comparable.

Step 2 - PCA.  Each row of the cosine matrix is the "similarity profile" of one number.  A PCA of
these ``n`` rows (:func:`pca_of_cosine`) finds the few directions along which the profiles vary
most; plotting every number at its first two coordinates gives the pictures in the paper
(lines, arcs, circles, two blobs for even/odd, ...).  A PCA axis has no natural sign, so we fix it:
each coordinate is flipped so that it *increases with the value* ``v`` (positive correlation); if
a coordinate is exactly uncorrelated with ``v`` (a symmetric picture), it is flipped so that its
largest entry is positive.  Results are then identical from run to run.

Step 3 - numbers that summarise the picture (the formula of each is in its docstring):

* :func:`parity_score` - do even and odd numbers form two separate groups?
* :func:`divisibility_scores` - for every divisor ``q`` of ``n`` (``1 < q < n``): do the
  residue classes ``v mod q`` form separate groups?  Parity is the case ``q = 2``.
* :func:`order_score` - does a principal coordinate run through the numbers in order?

The group scores are all the *silhouette* (Rousseeuw 1987) of the grouping, computed with the
cosine distance ``1 - cos``.  For one number it compares ``a`` = how far it is on average from
the other members of its own group with ``b`` = how far it is from the nearest other group:
``s = (b - a) / max(a, b)``.  The score is the average of ``s`` over all numbers.  It reads:

* ``1``  - every group is collapsed onto one direction and different groups are apart;
* ``0``  - on average a number is no closer to its own group than to the nearest other group;
* ``< 0`` - numbers are *closer* to another group than to their own.

What random vectors score depends on the group sizes.  With large groups (parity at ``n >= 10``)
it is about 0.  With small groups (the residue classes mod ``q`` have only ``n / q`` members: two
for ``q = 5`` at ``n = 10``) it is clearly *negative*: ``b`` is a minimum over many small groups,
each average taken over only a few distances, so by chance some other group is closer than one's
own.  A negative divisibility score is therefore not "anti-structure", and 0 is not "random":
read every score against :func:`chance_level` (the notebooks print that null next to it).

Why the silhouette: it needs no classifier or random split (deterministic), it only depends on
the cosine matrix (so, like the PCA, it is width-independent), it does not care *where* the
groups sit relative to each other (three residue classes at unequal angles still score 1), and
it does not reward a grouping just for being a refinement of a real one: if only parity is
present, the classes mod 4 score about 0, because the nearest other class mod 4 (same parity)
is as close as one's own (exactly 0 for a perfect refinement, see the tests).

Is a score large?  Compare it with what random vectors give: :func:`chance_level` draws random
Gaussian embeddings of the same shape and reports the mean and the 95th percentile of a score.
Scores from several training seeds are summarised by :func:`score_with_ci` (mean and a bootstrap
confidence interval).  :func:`separation_report` gathers everything for one model, and
:func:`plot_cosine_and_pca` draws the cosine matrix next to the PCA picture.

Caveats worth knowing
---------------------
* A full circle (the "Fourier" solution often found for ADD) also gets a fairly high order
  score: its coordinates, such as ``sin(2 pi v / n)``, rise, fall and rise again, which
  rank-correlates with ``v``.  For the 20 points of a circle it lies between about 0.6 and 0.8,
  depending on how the PCA rotates the picture (next point); ``tests/test_embeddings.py``
  computes these values.  Always look at the picture too.
* For a perfectly symmetric circle the two first principal components have equal variance, so
  the PCA may return any rotation of them; the sign convention cannot fix that.  The cosine
  matrix and the group scores do not have this problem.
* The order score of random vectors is not near 0 for small ``n`` (a maximum of two rank
  correlations of ``n`` random points; its mean is between 0.2 and 0.3 for ``n = 20``, as a test
  checks): use :func:`chance_level`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats
from sklearn.decomposition import PCA

from ..validate import check_choice, check_float, check_int

__all__ = [
    "cosine_matrix",
    "pca_of_cosine",
    "class_separation",
    "parity_score",
    "proper_divisors",
    "divisibility_scores",
    "order_score",
    "chance_level",
    "separation_report",
    "score_with_ci",
    "plot_cosine_and_pca",
]

COLOR_MODES = ("value", "parity", "residue")

# Below this, a cosine distance (or a PCA coordinate spread) is float round-off, not signal.
_TINY = 1e-10


# --------------------------------------------------------------------------------------------
# input checking
# --------------------------------------------------------------------------------------------


def _as_embeddings(E: Any, n: int | None = None) -> tuple[np.ndarray, int]:
    """Return ``(E[:n] as float64, n)`` after checking shape, size and values."""
    if hasattr(E, "detach"):  # torch tensor, possibly requiring grad / on another device
        E = E.detach().cpu().numpy()
    try:
        arr = np.asarray(E, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"'E' must be a 2-D numeric array of shape [n, d]; got {type(E).__name__}") from exc
    if arr.ndim != 2:
        raise ValueError(f"'E' must be a 2-D array of shape [n, d]; got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise ValueError(f"'E' must have at least one column (embedding width d >= 1); got shape {arr.shape}")
    if n is None:
        if arr.shape[0] < 2:
            raise ValueError(f"'E' must have at least 2 rows (one per number 0..n-1); got shape {arr.shape}")
        n = arr.shape[0]
    else:
        check_int("n", n, lo=2)
        if arr.shape[0] < n:
            raise ValueError(
                f"'E' has {arr.shape[0]} rows but n={n} needs one row per number 0..{n - 1}"
            )
    arr = arr[:n]
    if not np.all(np.isfinite(arr)):
        raise ValueError("'E' contains NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(
            f"'E' rows {zero.tolist()} are zero vectors; their cosine similarity is undefined"
        )
    return arr, n


# --------------------------------------------------------------------------------------------
# cosine matrix and its PCA
# --------------------------------------------------------------------------------------------


def cosine_matrix(E: Any, n: int | None = None) -> np.ndarray:
    """Cosine similarity of every pair of number embeddings, shape ``[n, n]``.

    ``C[i, j] = <E_i, E_j> / (|E_i| |E_j|)``; symmetric, ones on the diagonal, values in
    ``[-1, 1]``.  ``n`` defaults to the number of rows of ``E``.
    """
    arr, n = _as_embeddings(E, n)
    unit = arr / np.linalg.norm(arr, axis=1, keepdims=True)
    C = unit @ unit.T
    C = 0.5 * (C + C.T)
    np.clip(C, -1.0, 1.0, out=C)
    np.fill_diagonal(C, 1.0)
    return C


def _orient(coords: np.ndarray) -> np.ndarray:
    """Flip each column so it correlates positively with the value ``v = 0..n-1``.

    A column (numerically) uncorrelated with ``v`` is flipped so that its entry of largest
    absolute value (the first such one) is positive.
    """
    coords = coords.copy()
    v = np.arange(coords.shape[0], dtype=float)
    vc = v - v.mean()
    for k in range(coords.shape[1]):
        x = coords[:, k]
        scale = float(np.linalg.norm(x) * np.linalg.norm(vc))
        if scale == 0.0:
            continue
        cov = float(x @ vc)
        if abs(cov) > 1e-8 * scale:
            sign = 1.0 if cov > 0 else -1.0
        else:
            big = x[int(np.argmax(np.abs(x)))]
            sign = -1.0 if big < 0 else 1.0
        coords[:, k] = sign * x
    return coords


def pca_of_cosine(
    E: Any, n_components: int = 2, n: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """PCA of the rows of the cosine matrix: ``(coords [n, k], explained_variance_ratio [k])``.

    Each number ``v`` is described by its similarity profile ``C[v, :]``; scikit-learn's PCA
    (exact SVD, columns centred) projects these ``n`` profiles onto the ``k = n_components``
    directions of largest variance.  Sign convention: each coordinate is oriented to correlate
    positively (Pearson) with ``v``; if it is uncorrelated, its largest-magnitude entry is made
    positive.  If all profiles are identical (all embeddings parallel) the coordinates and the
    ratios are zeros.
    """
    arr, n = _as_embeddings(E, n)
    check_int("n_components", n_components, lo=1, hi=n)
    C = cosine_matrix(arr)
    centred = C - C.mean(axis=0, keepdims=True)
    if float(np.sum(centred**2)) <= _TINY**2 * n * n:
        return np.zeros((n, n_components)), np.zeros(n_components)
    pca = PCA(n_components=n_components, svd_solver="full")
    coords = pca.fit_transform(C)
    evr = np.asarray(pca.explained_variance_ratio_, dtype=float)
    return _orient(coords), evr


# --------------------------------------------------------------------------------------------
# separation scores
# --------------------------------------------------------------------------------------------


def _silhouette(D: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette for a precomputed distance matrix ``D`` (zero diagonal)."""
    classes, idx = np.unique(labels, return_inverse=True)
    onehot = np.zeros((len(labels), len(classes)))
    onehot[np.arange(len(labels)), idx] = 1.0
    sums = D @ onehot  # sums[i, c] = sum of distances from i to members of c (self adds 0)
    counts = onehot.sum(axis=0)
    rows = np.arange(len(labels))
    own_count = counts[idx] - 1.0
    a = np.divide(sums[rows, idx], own_count, out=np.zeros(len(labels)), where=own_count > 0)
    means = sums / counts
    means[rows, idx] = np.inf
    b = means.min(axis=1)
    denom = np.maximum(a, b)
    s = np.where(denom > _TINY, (b - a) / np.where(denom > _TINY, denom, 1.0), 0.0)
    s[own_count == 0] = 0.0  # singleton group: silhouette 0 by convention
    return float(np.mean(s))


def class_separation(E: Any, labels: Any, n: int | None = None) -> float:
    """Silhouette of the grouping ``labels`` under the cosine distance; range ``[-1, 1]``.

    With ``D[i, j] = 1 - cos(E_i, E_j)``, for each number ``i`` in group ``G(i)``::

        a(i) = mean of D[i, j] over j in G(i), j != i          (own group)
        b(i) = min over groups H != G(i) of mean of D[i, j], j in H   (nearest other group)
        s(i) = (b(i) - a(i)) / max(a(i), b(i))       (0 if both are ~0 or G(i) is {i})

    and the score is ``mean_i s(i)``.  1 = each group collapsed onto one direction and apart
    from the others; 0 = own group no closer than the nearest other; negative = numbers are
    closer to another group than to their own.  Random embeddings give about 0 for large groups
    but a negative score for groups of two or three members: compare with :func:`chance_level`.  Same value as
    ``sklearn.metrics.silhouette_score(D, labels, metric="precomputed")`` where that is defined.
    """
    arr, n = _as_embeddings(E, n)
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise ValueError(f"'labels' must be a 1-D sequence of length n={n}; got shape {lab.shape}")
    if np.unique(lab).size < 2:
        raise ValueError("'labels' must contain at least 2 different groups")
    D = 1.0 - cosine_matrix(arr)
    np.clip(D, 0.0, 2.0, out=D)
    np.fill_diagonal(D, 0.0)
    return _silhouette(D, lab)


def parity_score(E: Any, n: int | None = None) -> float:
    """Separation of even from odd numbers: ``class_separation`` with labels ``v mod 2``.

    Range ``[-1, 1]``; 1 = evens collapsed onto one direction, odds onto another; random
    embeddings give about 0 (the two groups are large).
    For even ``n`` it equals ``divisibility_scores(E, n)[2]``.  ``n`` defaults to ``E``'s rows.
    """
    arr, n = _as_embeddings(E, n)
    return class_separation(arr, np.arange(n) % 2)


def proper_divisors(n: int) -> list[int]:
    """Divisors ``q`` of ``n`` with ``1 < q < n``, ascending (empty for a prime ``n``)."""
    check_int("n", n, lo=2)
    return [q for q in range(2, n) if n % q == 0]


def divisibility_scores(E: Any, n: int) -> dict[int, float]:
    """Separation of the residue classes mod ``q``, for every divisor ``1 < q < n`` of ``n``.

    ``{q: class_separation(E, labels=v mod q)}`` - the ``q`` classes ``{v : v = r (mod q)}``,
    each with ``n / q >= 2`` members.  Residue classes rather than "divisible by q vs not",
    because arithmetic mod ``n`` treats all residues alike (``v`` and ``v + q`` play similar roles
    in ADD/PROD), and because then ``q = 2`` is exactly :func:`parity_score`.  A grouping that
    merely refines a real one (mod 4 when only parity is present) scores about 0, a coarsening
    (mod 2 when the classes mod 4 are separate) scores in between.  Empty dict for a prime ``n``.
    """
    arr, n = _as_embeddings(E, n)
    v = np.arange(n)
    return {q: class_separation(arr, v % q) for q in proper_divisors(n)}


def order_score(E: Any, n: int | None = None, n_components: int = 2) -> float:
    """How well a principal coordinate of the cosine-PCA follows the order ``0 < 1 < ... < n-1``.

    ``max_k |spearman(coords[:, k], v)|`` over the first ``n_components`` (default 2)
    coordinates of :func:`pca_of_cosine`.  Range ``[0, 1]``: 1 = some coordinate is strictly
    monotone in ``v`` (a line or an arc of less than half a turn); 0 = no order.  The maximum over
    two components, because the ordering axis need not be the one of largest variance (e.g. when
    parity dominates), and the absolute value makes the sign irrelevant.  A constant coordinate
    counts as 0.  Random embeddings do not give 0 for small ``n``: compare with
    :func:`chance_level`.
    """
    arr, n = _as_embeddings(E, n)
    check_int("n_components", n_components, lo=1)
    coords, _ = pca_of_cosine(arr, n_components=min(n_components, n))
    v = np.arange(n)
    scale = max(1.0, float(np.max(np.abs(coords)))) if coords.size else 1.0
    best = 0.0
    for k in range(coords.shape[1]):
        x = coords[:, k]
        if float(np.ptp(x)) <= _TINY * scale:
            continue
        rho = float(stats.spearmanr(x, v).statistic)
        if math.isfinite(rho):
            best = max(best, abs(rho))
    return best


# --------------------------------------------------------------------------------------------
# null distributions, reports, confidence intervals
# --------------------------------------------------------------------------------------------


def _summary(values: np.ndarray) -> dict[str, Any]:
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "q95": float(np.quantile(values, 0.95)),
        "n_samples": int(len(values)),
        "values": values,
    }


def chance_level(
    score_fn: Callable[[np.ndarray, int], Any],
    n: int,
    d: int,
    n_samples: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Distribution of a score for random embeddings: the null to compare real scores against.

    Draws ``n_samples`` matrices ``E`` of shape ``[n, d]`` with i.i.d. standard normal entries
    (``numpy.random.default_rng(seed)``, deterministic) and calls ``score_fn(E, n)`` on each.
    Returns ``{"mean", "std", "q95" (95th percentile), "n_samples", "values"}``.  If
    ``score_fn`` returns a mapping (e.g. :func:`divisibility_scores`), returns one such summary
    per key instead.
    """
    if not callable(score_fn):
        raise ValueError(f"'score_fn' must be callable as score_fn(E, n); got {score_fn!r}")
    check_int("n", n, lo=2)
    check_int("d", d, lo=1)
    check_int("n_samples", n_samples, lo=1)
    check_int("seed", seed, lo=0)
    rng = np.random.default_rng(seed)
    results = [score_fn(rng.standard_normal((n, d)), n) for _ in range(n_samples)]
    if isinstance(results[0], Mapping):
        return {
            key: _summary(np.array([float(r[key]) for r in results])) for key in results[0]
        }
    return _summary(np.array([float(r) for r in results]))


def separation_report(
    E: Any, n: int, null_samples: int = 0, seed: int = 0
) -> dict[str, Any]:
    """All scores for one embedding matrix, as a plain dict (for tables in the notebooks).

    Keys: ``n``, ``d``, ``parity``, ``divisibility`` (``{q: score}``), ``order``,
    ``explained_variance_ratio`` (first two PCA components, a list).  With ``null_samples > 0``
    also ``null``: :func:`chance_level` summaries (without the raw ``values``) for ``parity``,
    ``divisibility`` and ``order`` at the same ``n`` and ``d``.
    """
    arr, n = _as_embeddings(E, n)
    check_int("null_samples", null_samples, lo=0)
    _, evr = pca_of_cosine(arr, n_components=2)
    report: dict[str, Any] = {
        "n": n,
        "d": int(arr.shape[1]),
        "parity": parity_score(arr),
        "divisibility": divisibility_scores(arr, n),
        "order": order_score(arr),
        "explained_variance_ratio": [float(x) for x in evr],
    }
    if null_samples > 0:
        d = int(arr.shape[1])

        def strip(s: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in s.items() if k != "values"}

        null: dict[str, Any] = {
            "parity": strip(chance_level(parity_score, n, d, null_samples, seed)),
            "order": strip(chance_level(order_score, n, d, null_samples, seed)),
        }
        if report["divisibility"]:
            div = chance_level(divisibility_scores, n, d, null_samples, seed)
            null["divisibility"] = {q: strip(s) for q, s in div.items()}
        else:
            null["divisibility"] = {}
        report["null"] = null
    return report


def score_with_ci(
    values_over_seeds: Any, ci: float = 0.95, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of a score over training seeds with a percentile-bootstrap confidence interval.

    Resamples the values with replacement ``n_boot`` times (``numpy.random.default_rng(seed)``,
    deterministic), takes the mean of each resample, and returns
    ``(mean, lo, hi)`` with ``lo``/``hi`` the ``(1 - ci)/2`` and ``(1 + ci)/2`` quantiles of those
    means.  A single value gives ``(v, v, v)``.  With few seeds (< ~10) the interval is too narrow
    — with two or three seeds it is about the range of the seeds — so report the number of seeds
    next to it, and do not decide a comparison by whether two such intervals overlap (use
    :func:`jointtask_lib.analysis.scores.permutation_test`).
    """
    vals = np.asarray(values_over_seeds, dtype=float)
    if vals.ndim != 1 or vals.size == 0:
        raise ValueError(
            f"'values_over_seeds' must be a non-empty 1-D sequence of numbers; got shape {vals.shape}"
        )
    if not np.all(np.isfinite(vals)):
        raise ValueError("'values_over_seeds' contains NaN or infinite values")
    check_float("ci", ci, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    check_int("n_boot", n_boot, lo=1)
    check_int("seed", seed, lo=0)
    mean = float(np.mean(vals))
    if vals.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, vals.size, size=(n_boot, vals.size))
    boot = vals[idx].mean(axis=1)
    lo, hi = np.quantile(boot, [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0])
    return mean, float(lo), float(hi)


# --------------------------------------------------------------------------------------------
# plot
# --------------------------------------------------------------------------------------------


def plot_cosine_and_pca(
    E: Any,
    n: int,
    color_by: str = "value",
    residue_mod: int | None = None,
    ax: Sequence[Any] | None = None,
):
    """Cosine-similarity heatmap (left) and 2-D cosine-PCA scatter (right); returns the Figure.

    Every point of the scatter is labelled with its number and coloured by ``color_by``:
    ``"value"`` (a colour ramp 0..n-1), ``"parity"`` (even/odd) or ``"residue"`` (``v mod
    residue_mod``; ``residue_mod`` required).  ``ax`` may be a pair of existing Axes (heatmap,
    scatter) to draw into; by default a new figure with exactly these two axes is made (the
    heatmap's colour bar is an inset, so ``fig.axes`` has length 2).  Never calls ``plt.show``
    and does not use pyplot, so it is safe headless and does not leak figures.
    """
    from matplotlib import colormaps
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    arr, n = _as_embeddings(E, n)
    check_choice("color_by", color_by, COLOR_MODES)
    if color_by == "residue":
        if residue_mod is None:
            raise ValueError("'residue_mod' is required when color_by='residue'")
        check_int("residue_mod", residue_mod, lo=2)
    if ax is None:
        fig = Figure(figsize=(11, 4.8), layout="constrained")
        ax_cos, ax_pca = fig.subplots(1, 2)
    else:
        try:
            ax_cos, ax_pca = ax
        except (TypeError, ValueError) as exc:
            raise ValueError("'ax' must be a pair of Axes (heatmap, scatter) or None") from exc
        if not (isinstance(ax_cos, Axes) and isinstance(ax_pca, Axes)):
            raise ValueError("'ax' must be a pair of matplotlib Axes (heatmap, scatter) or None")
        fig = ax_cos.figure

    C = cosine_matrix(arr)
    coords, evr = pca_of_cosine(arr, n_components=2)
    values = np.arange(n)

    im = ax_cos.imshow(C, cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest")
    step = max(1, int(math.ceil(n / 10)))
    ticks = values[::step]
    ax_cos.set_xticks(ticks)
    ax_cos.set_yticks(ticks)
    ax_cos.set_xlabel("number j")
    ax_cos.set_ylabel("number i")
    ax_cos.set_title("cosine similarity of embeddings")
    cax = ax_cos.inset_axes([1.03, 0.0, 0.04, 1.0])
    fig.colorbar(im, cax=cax, label="cos(E_i, E_j)")

    handles: list[Line2D] = []
    if color_by == "value":
        colors = colormaps["viridis"](values / max(1, n - 1))
        title = "coloured by value"
    else:
        m = 2 if color_by == "parity" else int(residue_mod)  # type: ignore[arg-type]
        cls = values % m
        cmap = colormaps["tab10"] if m <= 10 else colormaps["tab20"] if m <= 20 else None
        if cmap is None:
            colors = colormaps["hsv"](cls / m)
            pal = [colormaps["hsv"](r / m) for r in range(m)]
        else:
            colors = np.array([cmap(r) for r in cls])
            pal = [cmap(r) for r in range(m)]
        names = ["even", "odd"] if color_by == "parity" else [f"≡ {r} (mod {m})" for r in range(m)]
        handles = [
            Line2D([], [], marker="o", linestyle="", color=pal[r], label=names[r]) for r in range(m)
        ]
        title = "coloured by parity" if color_by == "parity" else f"coloured by residue mod {m}"

    ax_pca.scatter(coords[:, 0], coords[:, 1], c=colors, s=60, edgecolors="k", linewidths=0.5)
    for v in values:
        ax_pca.annotate(
            str(v), (coords[v, 0], coords[v, 1]), textcoords="offset points", xytext=(4, 4), fontsize=8
        )
    ax_pca.set_xlabel(f"PC1 ({evr[0]:.0%} of variance)")
    ax_pca.set_ylabel(f"PC2 ({evr[1]:.0%} of variance)")
    ax_pca.set_title(f"PCA of cosine-similarity rows, {title}")
    ax_pca.axhline(0.0, color="0.85", lw=0.8, zorder=0)
    ax_pca.axvline(0.0, color="0.85", lw=0.8, zorder=0)
    if handles:
        ax_pca.legend(handles=handles, fontsize=8, loc="best", ncol=1 if len(handles) <= 6 else 2)
    return fig
