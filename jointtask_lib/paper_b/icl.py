"""In-context learning (paper B): curricula, error curves, baselines and retrospective heads.

Everything here is independent of the transformer: the curricula say *which task* each training
step uses, the evaluation helpers turn predictions into error curves, the baselines are classical
estimators a model can be compared with, and the head scores read attention maps that any model
can supply.

1. Curricula
------------
Training runs ``T`` steps; each step draws one batch of prompts, *all from one task* (as in the
paper's code).  With ``K`` tasks (paper B: linear, quadratic, cubic) the run is cut into ``K``
contiguous blocks of ``T // K`` steps; the last block also takes the remainder ``T % K`` (paper
B's code uses ``ceil(T/K)``-sized blocks with a shorter last one instead; the two differ by at
most ``K - 1`` steps per block).

* ``single``: one task for the whole run (needs exactly one task).
* ``sequential``: block ``i`` trains task ``i`` only (linear, then quadratic, then cubic).
* ``mixed``: in block ``i`` each step draws a task uniformly from tasks ``0..i`` (the paper's
  ``mixed_sequential``: first linear only, then linear or quadratic, then any of the three).
* ``random``: every step draws a task uniformly from all ``K`` tasks.

The same schedules apply to anything indexed by position in a list (the paper also schedules input
distributions with them).  :func:`curriculum_schedule` returns the exact per-step task indices for
a seed; :func:`task_exposure` counts steps / prompts / examples per task; and
:func:`expected_task_fractions` gives the exact expectation.

2. Error curves
---------------
For a prompt the error at position ``k`` (``k = 0 .. N-1``; ``k`` = number of in-context examples
before the query) is ``(prediction_k - y_k)^2``, divided by a normaliser, by default ``d`` (Garg's
and paper B's "normalised MSE"; predicting 0 for the linear class then scores 1 on average).  A
curve is the mean over prompts, with a percentile bootstrap confidence interval (Garg: 1,280
prompts = 20 batches of 64, 1,000 resamples, 90% interval).  Reference levels per class (all
divided by the normaliser): ``zero`` = E[y^2] (always predict 0), ``constant`` = Var(y) (the best
fixed number, E[y], for every prompt), ``prompt_mean`` = E[Var(y | f)] (knowing each prompt's own
mean E[y | f]; the running mean of the ``k`` ys seen so far, :func:`running_mean_predictions`,
approaches it as ``prompt_mean * (1 + 1/k)``).  "Mean predictor" therefore has two readings; we
report both, named ``constant`` and ``prompt_mean``.

3. Baselines
------------
Functions ``f(xs [B, N, d], ys [B, N]) -> preds [B, N]``: the prediction at position ``k`` uses
``x_k`` and only the ``k`` preceding pairs; at ``k = 0`` every baseline predicts 0 (Garg's
convention).  Least squares (minimum-norm, so it is defined for ``k < d``), 3-nearest neighbours
(uniform average of the ``min(k, 3)`` closest preceding ``x``), averaging (``w_hat = mean_i y_i
x_i``, Garg), the running mean, and two *correctly specified* fits for the Hermite classes:

* :func:`poly_least_squares_predictions` -- min-norm least squares on all monomials of ``x`` of
  total degree ``<= m``.  ``p_m(w.x)`` lies in that span, so the fit is exact once ``k`` reaches
  the number of features ``C(d+m, m)`` (56 for cubic at d = 5) -- often beyond the prompt length.
* :func:`single_index_fit_predictions` -- nonlinear least squares of the model's own form,
  ``min_w sum_i (p_m(w.x_i) - y_i)^2``, by Levenberg-Marquardt from several starts.  It needs only
  about ``d`` points but is non-convex: it is a strong reference, not a guaranteed optimum.

4. Retrospective heads
----------------------
With tokens ``x_1, y_1, x_2, y_2, ...`` (0-based position ``2i`` holds ``x_{i+1}``, ``2i+1`` holds
``y_{i+1}``), a head is *retrospective* if each ``y`` token attends to its own ``x`` token.  Its
score is the attention weight from query ``2i+1`` to key ``2i``, averaged over **all** pairs and
all prompts (range 0..1).  The authors' notebook (``supp_viz_atten.ipynb``) took its loop length
from the number of layers instead of the sequence length, so it averaged the first 6 pairs and
divided by 12 (maximum 0.5, matching its colour scale); :func:`notebook_retrospective_scores`
reproduces that only to compare with the paper's heatmaps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..tasks.functions import FUNCTION_CLASSES, hermite_link, hermite_link_derivative, resolve_options, sample_batch
from ..validate import check_choice, check_float, check_int

# ============================================================================================
# 1. Curricula
# ============================================================================================

CURRICULA = ("single", "sequential", "mixed", "random")


def _n_tasks(tasks: Sequence[Any] | int) -> int:
    if isinstance(tasks, int) and not isinstance(tasks, bool):
        return check_int("tasks", tasks, lo=1)
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Sequence):
        raise ValueError(f"'tasks' must be a list of tasks or their number; got {tasks!r}")
    if len(tasks) == 0:
        raise ValueError("'tasks' must name at least one task; got an empty list")
    return len(tasks)


def block_bounds(n_tasks: int, total_steps: int) -> np.ndarray:
    """Block edges ``[0, b, 2b, ..., (K-1) b, T]`` with ``b = T // K`` (last block takes the rest)."""
    check_int("n_tasks", n_tasks, lo=1)
    check_int("total_steps", total_steps, lo=n_tasks)
    b = total_steps // n_tasks
    edges = np.arange(n_tasks + 1, dtype=np.int64) * b
    edges[-1] = total_steps
    return edges


def curriculum_schedule(kind: str, tasks: Sequence[Any] | int, total_steps: int, seed: int = 0) -> np.ndarray:
    """Per-step task indices (``int64``, length ``total_steps``) for curriculum ``kind``.

    ``tasks``: the ordered task list (or just its length ``K``).  Deterministic given ``seed``
    (``single`` and ``sequential`` do not use it).  ``total_steps`` must be at least ``K`` so
    that no block is empty.
    """
    check_choice("kind", kind, CURRICULA)
    k = _n_tasks(tasks)
    check_int("seed", seed, lo=0)
    if kind == "single":
        if k != 1:
            raise ValueError(f"'tasks' must hold exactly one task for kind='single'; got {k}")
        check_int("total_steps", total_steps, lo=1)
        return np.zeros(total_steps, dtype=np.int64)
    edges = block_bounds(k, total_steps)
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.integers(0, k, size=total_steps, dtype=np.int64)
    out = np.empty(total_steps, dtype=np.int64)
    for i in range(k):
        lo, hi = edges[i], edges[i + 1]
        out[lo:hi] = i if kind == "sequential" else rng.integers(0, i + 1, size=hi - lo, dtype=np.int64)
    return out


def expected_task_fractions(kind: str, tasks: Sequence[Any] | int, total_steps: int) -> np.ndarray:
    """Exact expected fraction of steps per task (length ``K``) under curriculum ``kind``.

    ``mixed``: block ``i`` (length ``L_i``) gives each task ``j <= i`` an expected ``L_i / (i+1)``
    steps.  With ``K = 3`` equal blocks (``L_i = T/3``) the last task (cubic) appears only in the
    last block, with probability 1/3, so it gets ``(1/3) * (T/3) = T/9`` steps: the paper's "the
    mixed model sees 1/9 of the cubic data" (relative to a single-task cubic model trained for the
    same ``T``).  Likewise linear gets ``(1/3)(1 + 1/2 + 1/3) = 11/18`` and quadratic
    ``(1/3)(1/2 + 1/3) = 5/18``.  ``sequential``: ``L_i / T``; ``random``: ``1/K`` each.
    """
    check_choice("kind", kind, CURRICULA)
    k = _n_tasks(tasks)
    if kind == "single":
        if k != 1:
            raise ValueError(f"'tasks' must hold exactly one task for kind='single'; got {k}")
        return np.ones(1)
    if kind == "random":
        check_int("total_steps", total_steps, lo=k)
        return np.full(k, 1.0 / k)
    lengths = np.diff(block_bounds(k, total_steps)).astype(float)
    if kind == "sequential":
        return lengths / total_steps
    frac = np.zeros(k)
    for i, length in enumerate(lengths):
        frac[: i + 1] += length / (i + 1)
    return frac / total_steps


def task_exposure(schedule: np.ndarray, n_tasks: int, *, batch_size: int = 64, n_points: int | None = None) -> dict:
    """Steps, prompts (``steps * batch_size``) and examples (``prompts * n_points``) per task."""
    check_int("n_tasks", n_tasks, lo=1)
    check_int("batch_size", batch_size, lo=1)
    schedule = np.asarray(schedule)
    if schedule.ndim != 1 or (schedule.size and (schedule.min() < 0 or schedule.max() >= n_tasks)):
        raise ValueError(f"'schedule' must be a 1-D array of task indices in 0..{n_tasks - 1}")
    steps = np.bincount(schedule.astype(np.int64), minlength=n_tasks)
    out = {"steps": steps, "fraction": steps / max(len(schedule), 1), "prompts": steps * batch_size}
    if n_points is not None:
        check_int("n_points", n_points, lo=1)
        out["examples"] = out["prompts"] * n_points
    return out


# ============================================================================================
# 2. Error curves and reference levels
# ============================================================================================


def _check_xy(xs: torch.Tensor, ys: torch.Tensor) -> None:
    if xs.ndim != 3 or ys.ndim != 2 or xs.shape[:2] != ys.shape:
        raise ValueError(
            f"'xs' must be [B, N, d] and 'ys' [B, N] with the same B, N; got {tuple(xs.shape)} and {tuple(ys.shape)}"
        )


def squared_errors(preds: torch.Tensor, ys: torch.Tensor, norm: float = 1.0) -> torch.Tensor:
    """``(preds - ys)^2 / norm`` per prompt and position, ``[B, N]``."""
    if preds.shape != ys.shape:
        raise ValueError(f"'preds' must have the shape of 'ys' {tuple(ys.shape)}; got {tuple(preds.shape)}")
    norm = check_float("norm", norm, lo=0.0, lo_open=True)
    return (preds.to(torch.float64) - ys.to(torch.float64)).square() / norm


def bootstrap_curve(errors: Any, *, n_boot: int = 1000, ci: float = 0.90, seed: int = 0) -> dict:
    """Mean over prompts of ``errors [P, N]`` with a percentile bootstrap interval per position.

    Vectorised: each resample is a vector of multinomial counts over the ``P`` prompts (exactly
    the distribution of resampling with replacement), so all ``n_boot`` resampled means are one
    matrix product.  Returns numpy arrays ``mean``, ``lo``, ``hi``, ``std`` (across prompts) and
    ``n_prompts``.
    """
    e = errors.detach().cpu().numpy() if isinstance(errors, torch.Tensor) else np.asarray(errors)
    e = e.astype(np.float64)
    if e.ndim != 2 or e.shape[0] < 1:
        raise ValueError(f"'errors' must be a [prompts, positions] array; got shape {e.shape}")
    check_int("n_boot", n_boot, lo=1)
    check_float("ci", ci, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    p = e.shape[0]
    counts = np.random.default_rng(seed).multinomial(p, np.full(p, 1.0 / p), size=n_boot)
    ok = np.isfinite(e).all(axis=0)  # positions a predictor skipped (NaN) stay NaN throughout
    lo, hi = np.full(e.shape[1], np.nan), np.full(e.shape[1], np.nan)
    if ok.any():
        means = counts @ e[:, ok] / p  # [n_boot, positions]
        lo[ok], hi[ok] = np.quantile(means, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    return {
        "mean": e.mean(axis=0), "lo": lo, "hi": hi,
        "std": e.std(axis=0, ddof=1) if p > 1 else np.zeros(e.shape[1]), "n_prompts": p,
    }


def make_eval_prompts(
    name: str,
    d: int,
    n_points: int,
    *,
    n_prompts: int = 1280,
    batch_size: int = 64,
    seed: int = 0,
    **opts,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A fixed evaluation set: ``n_prompts`` prompts in batches of ``batch_size`` (Garg: 1280 / 64).

    Same seed -> same prompts, so every predictor is scored on identical prompts (paired).
    """
    check_int("n_prompts", n_prompts, lo=1)
    check_int("batch_size", batch_size, lo=1)
    gen = torch.Generator().manual_seed(seed)
    out, left = [], n_prompts
    while left > 0:
        b = min(batch_size, left)
        pb = sample_batch(name, b, n_points, d, gen, **opts)
        out.append((pb.xs, pb.ys))
        left -= b
    return out


def error_curve(
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    prompts: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    norm: float,
    n_boot: int = 1000,
    ci: float = 0.90,
    boot_seed: int = 0,
) -> dict:
    """Normalised squared error per position of ``predict`` on ``prompts`` with bootstrap CIs."""
    errs = []
    with torch.no_grad():
        for xs, ys in prompts:
            errs.append(squared_errors(predict(xs, ys), ys, norm))
    out = bootstrap_curve(torch.cat(errs), n_boot=n_boot, ci=ci, seed=boot_seed)
    out["norm"] = float(norm)
    return out


def evaluate_predictor(
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    name: str,
    d: int,
    n_points: int,
    *,
    n_prompts: int = 1280,
    batch_size: int = 64,
    seed: int = 0,
    norm: float | None = None,
    n_boot: int = 1000,
    ci: float = 0.90,
    **opts,
) -> dict:
    """:func:`make_eval_prompts` + :func:`error_curve`; ``norm`` defaults to ``d``."""
    prompts = make_eval_prompts(name, d, n_points, n_prompts=n_prompts, batch_size=batch_size, seed=seed, **opts)
    return error_curve(predict, prompts, norm=float(d) if norm is None else norm, n_boot=n_boot, ci=ci, boot_seed=seed)


def moving_average(curve: Any, window: int = 10) -> np.ndarray:
    """'valid'-mode moving average (paper B's figures: window 10, so 91 points from 100)."""
    c = np.asarray(curve, dtype=np.float64)
    check_int("window", window, lo=1, hi=max(len(c), 1))
    return np.convolve(c, np.ones(window) / window, mode="valid")


def reference_levels(
    name: str,
    d: int,
    *,
    norm: float | None = None,
    method: str = "auto",
    n_prompts: int = 4096,
    n_points: int = 64,
    seed: int = 0,
    **opts,
) -> dict:
    """Error levels of the trivial predictors for class ``name``, divided by ``norm`` (default ``d``).

    ``zero`` = E[y^2]; ``constant`` = Var(y) (predict E[y] everywhere); ``prompt_mean`` =
    E[Var(y | f)] (predict each prompt's own mean).  ``method="exact"`` uses the closed forms
    (Hermite, sparse linear and ReLU classes with Gaussian ``x``); ``"mc"`` estimates from
    ``n_prompts`` prompts of ``n_points`` points (within-prompt variances with ``ddof=1``, so
    unbiased); ``"auto"`` picks exact where available.
    """
    check_choice("method", method, ("auto", "exact", "mc"))
    options = resolve_options(name, d, **opts)
    norm = float(d) if norm is None else check_float("norm", norm, lo=0.0, lo_open=True)
    fc = FUNCTION_CLASSES[name]
    exact_ok = fc.moments is not None and options["x_dist"] == "gaussian"
    if method == "exact" and not exact_ok:
        raise ValueError(
            f"'method' = 'exact' needs x_dist='gaussian' and a class with closed forms "
            f"({', '.join(n for n, c in FUNCTION_CLASSES.items() if c.moments is not None)}); use 'mc'"
        )
    if method != "mc" and exact_ok:
        m = fc.moments(d, options, options["x_scale"])
        ey, ey2, wv, used = m["mean"], m["second_moment"], m["within_prompt_var"], "exact"
    else:
        check_int("n_points", n_points, lo=2)
        check_int("n_prompts", n_prompts, lo=1)
        gen = torch.Generator().manual_seed(seed)
        ys = sample_batch(name, n_prompts, n_points, d, gen, dtype=torch.float64, **opts).ys
        ey, ey2 = ys.mean().item(), ys.square().mean().item()
        wv, used = ys.var(dim=1, unbiased=True).mean().item(), "mc"
    return {
        "zero": ey2 / norm, "constant": (ey2 - ey**2) / norm, "prompt_mean": wv / norm,
        "mean_y": ey, "norm": norm, "method": used,
    }


# ============================================================================================
# 3. Baselines: preds[:, k] uses x_k and the pairs 0..k-1 only; preds[:, 0] = 0
# ============================================================================================


def zero_predictions(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Always 0."""
    _check_xy(xs, ys)
    return torch.zeros_like(ys)


def running_mean_predictions(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Mean of the ``k`` preceding ys (0 at ``k = 0``)."""
    _check_xy(xs, ys)
    y = ys.to(torch.float64)
    prev = torch.cumsum(y, dim=1) - y  # sum over i < k
    k = torch.arange(ys.shape[1], dtype=torch.float64)
    return (prev / k.clamp(min=1)).to(ys.dtype)


def averaging_predictions(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Garg's averaging estimator: ``w_hat_k = (1/k) sum_{i<k} y_i x_i``, prediction ``x_k . w_hat_k``."""
    _check_xy(xs, ys)
    x, y = xs.to(torch.float64), ys.to(torch.float64)
    z = x * y.unsqueeze(-1)
    prev = torch.cumsum(z, dim=1) - z
    k = torch.arange(ys.shape[1], dtype=torch.float64).clamp(min=1)
    w_hat = prev / k[None, :, None]
    return (x * w_hat).sum(-1).to(ys.dtype)


def _minnorm_lstsq_predictions(feats: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Min-norm least squares on features ``[B, N, p]``, refit on the first ``k`` rows at each ``k``."""
    f, y = feats.to(torch.float64), ys.to(torch.float64)
    preds = torch.zeros_like(y)
    for k in range(1, y.shape[1]):
        w = _minnorm_solve(f[:, :k], y[:, :k, None])  # [B, p, 1]
        preds[:, k] = (f[:, k : k + 1] @ w)[:, 0, 0]
    return preds.to(ys.dtype)


def _minnorm_solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched minimum-norm least-squares solution of ``a w = b`` (float64).

    CPU: LAPACK ``gelsy`` (complete orthogonal factorisation; min-norm for rank-deficient and
    underdetermined systems; torch's CPU default, so Garg's baseline).  Elsewhere: ``pinv``.
    """
    if a.device.type == "cpu":
        return torch.linalg.lstsq(a, b, driver="gelsy").solution
    return torch.linalg.pinv(a) @ b


def least_squares_predictions(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Minimum-norm least squares ``w_hat = pinv(X_<k) y_<k`` (Garg's OLS; exact for linear once k >= d).

    Computed in float64 (LAPACK ``gelsy`` on CPU, ``pinv`` elsewhere), batched over prompts, one
    solve per position; returned in the dtype of ``ys``.
    """
    _check_xy(xs, ys)
    return _minnorm_lstsq_predictions(xs, ys)


def knn_predictions(xs: torch.Tensor, ys: torch.Tensor, n_neighbors: int = 3) -> torch.Tensor:
    """Uniform average of the ys of the ``min(k, n_neighbors)`` nearest preceding xs (Euclidean)."""
    _check_xy(xs, ys)
    check_int("n_neighbors", n_neighbors, lo=1)
    b, n, _ = xs.shape
    if n == 1:
        return torch.zeros_like(ys)
    x = xs.to(torch.float64)
    dist = torch.cdist(x, x)  # [B, query, key]
    future = torch.ones(n, n, dtype=torch.bool).triu()  # key >= query is not yet seen
    dist = dist.masked_fill(future, float("inf"))
    m = min(n_neighbors, n - 1)
    vals, idx = dist.topk(m, dim=-1, largest=False)
    near_y = ys.to(torch.float64)[:, None, :].expand(b, n, n).gather(2, idx)
    valid = torch.isfinite(vals)
    total = (near_y * valid).sum(-1)
    return (total / valid.sum(-1).clamp(min=1)).to(ys.dtype)


def polynomial_features(xs: torch.Tensor, degree: int) -> torch.Tensor:
    """All monomials of ``x`` of total degree ``0..degree`` (``C(d+degree, degree)`` features)."""
    check_int("degree", degree, lo=0)
    d = xs.shape[-1]
    cols = [torch.ones_like(xs[..., 0])]
    for deg in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(range(d), deg):
            cols.append(torch.prod(xs[..., list(combo)], dim=-1))
    return torch.stack(cols, dim=-1)


def n_polynomial_features(d: int, degree: int) -> int:
    return math.comb(d + degree, degree)


def poly_least_squares_predictions(xs: torch.Tensor, ys: torch.Tensor, degree: int) -> torch.Tensor:
    """Min-norm least squares on :func:`polynomial_features` of degree ``degree``.

    Correctly specified for the Hermite class of the same degree (``p_m(w.x)`` is a polynomial of
    degree ``m`` in ``x``): exact once ``k >= C(d+m, m)``.
    """
    _check_xy(xs, ys)
    return _minnorm_lstsq_predictions(polynomial_features(xs.to(torch.float64), degree), ys)


def single_index_fit_predictions(
    xs: torch.Tensor,
    ys: torch.Tensor,
    degree: int,
    *,
    n_restarts: int = 10,
    n_iter: int = 40,
    seed: int = 0,
    positions: Sequence[int] | None = None,
    ridge: float = 1e-6,
) -> torch.Tensor:
    """Nonlinear least squares for the Hermite single-index model ``y = p_m(w.x)``, refit at each ``k``.

    For every prompt and position ``k`` minimise ``sum_{i<k} (p_m(w.x_i) - y_i)^2 + ridge ||w||^2``
    over ``w`` by Levenberg-Marquardt (damping ``lambda * diag(J^T J)``, ``lambda`` adapted per run), from
    ``n_restarts`` starts: the min-norm least-squares solution, the averaging estimate scaled by
    ``sqrt(m)`` (Stein's lemma gives E[y x] = w / sqrt(m) when ``||w|| = 1``) and random
    ``N(0, I)`` draws from ``seed``; the start with the smallest final training loss predicts
    ``p_m(w_hat.x_k)``.  Non-convex: on noiseless data with ``k >= 4d`` it recovers ``f`` exactly
    in nearly every prompt (tests), but at small ``k`` some prompts end in a local minimum, so it
    is a strong reference, not a guaranteed optimum.  ``positions`` restricts the fit to some
    ``k`` (others are NaN), since each position costs ``n_restarts * n_iter`` batched ``d x d``
    solves (about 5 s for 1280 prompts, d = 5, 20 points on one core).  The tiny ``ridge`` plays
    the role of least squares' minimum-norm choice: for ``k < d`` many ``w`` interpolate the data
    and without it the fit drifts to huge ``w`` and absurd predictions; for ``k >= d`` its bias is
    ~``ridge / k`` relative, negligible.
    """
    _check_xy(xs, ys)
    check_int("degree", degree, lo=1, hi=4)
    check_int("n_restarts", n_restarts, lo=2)
    check_int("n_iter", n_iter, lo=1)
    ridge = check_float("ridge", ridge, lo=0.0)
    b, n, d = xs.shape
    ks = list(range(1, n)) if positions is None else list(positions)
    for k in ks:
        check_int("positions", k, lo=0, hi=n - 1)
    x, y = xs.to(torch.float64), ys.to(torch.float64)
    gen = torch.Generator().manual_seed(seed)
    preds = torch.full_like(y, float("nan"))
    if positions is None or 0 in ks:
        preds[:, 0] = 0.0
    for k in ks:
        if k == 0:
            continue
        rand = torch.randn(b, n_restarts - 2, d, generator=gen, dtype=torch.float64)
        chunk = max(1, _LM_MAX_ELEMENTS // (n_restarts * k * d))  # bounds the [B, R, k, d] Jacobian
        for lo in range(0, b, chunk):
            sl = slice(lo, lo + chunk)
            w_best = _single_index_lm(x[sl, :k], y[sl, :k], degree, rand[sl], n_iter, ridge)
            preds[sl, k] = hermite_link((x[sl, k] * w_best).sum(-1), degree)
    return preds.to(ys.dtype)


_LM_MAX_ELEMENTS = 4_000_000


def _single_index_lm(
    xk: torch.Tensor, yk: torch.Tensor, degree: int, rand: torch.Tensor, n_iter: int, ridge: float
) -> torch.Tensor:
    """Best-of-restarts Levenberg-Marquardt fit of ``w`` for one position (float64)."""
    b, _, d = xk.shape
    eye = torch.eye(d, dtype=torch.float64)
    w_ls = _minnorm_solve(xk, yk[..., None])[..., 0]
    w_avg = math.sqrt(degree) * (xk * yk[..., None]).mean(1)
    w = torch.cat([w_ls[:, None], w_avg[:, None], rand], dim=1)  # [B, R, d]

    def loss_of(w_):
        t = torch.einsum("bkd,brd->brk", xk, w_)
        return (hermite_link(t, degree) - yk[:, None]).square().sum(-1) + ridge * w_.square().sum(-1)

    loss = loss_of(w)
    lam = torch.full(loss.shape, 1e-3, dtype=torch.float64)
    for _ in range(n_iter):
        t = torch.einsum("bkd,brd->brk", xk, w)
        r = hermite_link(t, degree) - yk[:, None]  # [B, R, k]
        jac = hermite_link_derivative(t, degree)[..., None] * xk[:, None]  # [B, R, k, d]
        jtj = jac.transpose(-1, -2) @ jac + ridge * eye
        g = (jac * r[..., None]).sum(-2) + ridge * w
        damp = lam[..., None, None] * (torch.diag_embed(jtj.diagonal(dim1=-2, dim2=-1)) + 1e-9 * eye)
        step = torch.linalg.solve(jtj + damp + 1e-12 * eye, -g[..., None])[..., 0]
        w_new = w + step
        loss_new = loss_of(w_new)
        better = torch.isfinite(loss_new) & (loss_new < loss)
        w = torch.where(better[..., None], w_new, w)
        loss = torch.where(better, loss_new, loss)
        lam = torch.where(better, lam * 0.3, lam * 10.0).clamp(1e-12, 1e12)
    return w[torch.arange(b), loss.argmin(dim=1)]


def _hermite_degree(name: str, opts: dict) -> int | None:
    fc = FUNCTION_CLASSES[name]
    return None if fc.hermite_degree is None else fc.hermite_degree({**fc.defaults, **opts})


def baselines_for(name: str, *, fit_positions: Sequence[int] | None = None,
                  **opts) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """The baselines that make sense for class ``name``: name -> ``f(xs, ys) -> preds``.

    Always: zero, running mean, least squares, 3-NN, averaging.  Hermite classes of degree > 1
    add the two correctly specified fits (degree 1: least squares already is one); the
    single-index fit only at ``fit_positions`` if given (NaN elsewhere; it is the costly one).
    ``opts``: the class's options (e.g. ``unit_norm_w``).
    """
    degree = _hermite_degree(check_choice("name", name, FUNCTION_CLASSES), opts)
    out: dict[str, Callable] = {
        "zero": zero_predictions,
        "running_mean": running_mean_predictions,
        "least_squares": least_squares_predictions,
        "3nn": knn_predictions,
        "averaging": averaging_predictions,
    }
    if degree is not None and degree > 1:
        out["poly_least_squares"] = lambda xs, ys: poly_least_squares_predictions(xs, ys, degree)
        pos = None if fit_positions is None else list(fit_positions)
        out["single_index_fit"] = lambda xs, ys: single_index_fit_predictions(xs, ys, degree, positions=pos)
    return out


# ============================================================================================
# 4. Retrospective heads
# ============================================================================================

HEAD_SELECTIONS = ("top", "bottom", "random")


def _check_attn(attn: Any) -> torch.Tensor:
    if isinstance(attn, np.ndarray) and not attn.flags.writeable:
        attn = np.array(attn)  # e.g. a broadcast view; torch wants writable memory
    a = torch.as_tensor(attn)
    if a.ndim != 5 or a.shape[-1] != a.shape[-2] or a.shape[-1] < 2:
        raise ValueError(
            f"'attn' must be [layers, heads, prompts, T, T] with T >= 2 (query, key); got {tuple(a.shape)}"
        )
    return a


def _same_kind(result: torch.Tensor, like: Any):
    return result if isinstance(like, torch.Tensor) else result.numpy()


def retrospective_scores(attn: Any) -> Any:
    """``[layers, heads]``: mean attention from each y token (query ``2i+1``) to its own x (key ``2i``).

    Averaged over all ``T // 2`` complete pairs and all prompts (the paper's notebook used only
    the first 6 pairs, divided by 12: see :func:`notebook_retrospective_scores`).  Accepts and
    returns torch or numpy.
    """
    a = _check_attn(attn)
    n_pairs = a.shape[-1] // 2
    q = torch.arange(n_pairs) * 2 + 1
    vals = a[..., q, q - 1].to(torch.float64)  # [L, H, B, n_pairs]
    return _same_kind(vals.mean(dim=(-1, -2)), attn)


def notebook_retrospective_scores(attn: Any) -> Any:
    """The authors' heatmap score, bug included: ``(1/L) sum_{i < L//2} A[2i+1, 2i]`` (``L`` = layers).

    For the paper's 12 layers: the first 6 pairs divided by 12 (maximum 0.5).  Averaged over
    prompts (the notebook used one prompt).  Only for comparing with the paper's figures.
    """
    a = _check_attn(attn)
    n_layers = a.shape[0]
    n_pairs = min(n_layers // 2, a.shape[-1] // 2)
    q = torch.arange(n_pairs) * 2 + 1
    vals = a[..., q, q - 1].to(torch.float64).sum(-1) / n_layers  # [L, H, B]
    return _same_kind(vals.mean(-1), attn)


def select_heads(scores: Any, n: int, which: str = "top", seed: int | None = None) -> list[tuple[int, int]]:
    """``n`` heads as ``(layer, head)`` pairs (0-based): highest (``top``) or lowest (``bottom``)
    scores first, ties broken by position; or ``random`` (needs ``seed``), e.g. as a control.
    """
    s = torch.as_tensor(scores, dtype=torch.float64)
    if s.ndim != 2:
        raise ValueError(f"'scores' must be [layers, heads]; got shape {tuple(s.shape)}")
    check_choice("which", which, HEAD_SELECTIONS)
    n_layers, n_heads = s.shape
    check_int("n", n, lo=0, hi=n_layers * n_heads)
    flat = s.flatten().numpy()
    if which == "random":
        if seed is None:
            raise ValueError("'seed' must be given for which='random'")
        order = np.random.default_rng(seed).permutation(flat.size)
    else:
        order = np.argsort(-flat if which == "top" else flat, kind="stable")
    return [(int(i) // n_heads, int(i) % n_heads) for i in order[:n]]


def head_mask(heads: Sequence[tuple[int, int]], n_layers: int, n_heads: int) -> torch.Tensor:
    """``[n_layers, n_heads]`` float mask: 0 for the given heads, 1 elsewhere (HF ``head_mask``)."""
    check_int("n_layers", n_layers, lo=1)
    check_int("n_heads", n_heads, lo=1)
    mask = torch.ones(n_layers, n_heads)
    for layer, head in heads:
        check_int("layer", layer, lo=0, hi=n_layers - 1)
        check_int("head", head, lo=0, hi=n_heads - 1)
        mask[layer, head] = 0.0
    return mask


__all__ = [
    "CURRICULA", "block_bounds", "curriculum_schedule", "expected_task_fractions", "task_exposure",
    "squared_errors", "bootstrap_curve", "make_eval_prompts", "error_curve", "evaluate_predictor",
    "moving_average", "reference_levels", "zero_predictions", "running_mean_predictions",
    "averaging_predictions", "least_squares_predictions", "knn_predictions", "polynomial_features",
    "n_polynomial_features", "poly_least_squares_predictions", "single_index_fit_predictions",
    "baselines_for", "HEAD_SELECTIONS", "retrospective_scores", "notebook_retrospective_scores",
    "select_heads", "head_mask",
]
