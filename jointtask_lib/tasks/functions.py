"""Function classes for in-context regression (paper B: Bhasin et al. 2024; Garg et al. 2022).

In-context regression in plain words
------------------------------------
A *prompt* is a short data set ``(x_1, y_1), ..., (x_N, y_N)`` with ``y_i = f(x_i)``, where the
function ``f`` is drawn afresh for every prompt from a *function class* (for example: all linear
maps ``x -> w.x`` with ``w ~ N(0, I_d)``).  A transformer reads the pairs one after another and, at
every position ``k``, predicts ``y_k`` from ``x_k`` and the ``k`` pairs before it.  Because ``f``
is new in every prompt, the model cannot memorise it: it has to *learn it from the context*.

This module draws prompts.  Everything is batched (``B`` prompts at once) and deterministic: all
randomness comes from an explicit :class:`torch.Generator` passed by the caller (the global torch
RNG is never used), so the same generator seed gives the same prompts, and every call draws fresh
prompts (the generator advances).

Function classes (registry :data:`FUNCTION_CLASSES`)
----------------------------------------------------
Paper B's three classes are *single-index Hermite functions*: draw ``w ~ N(0, I_d)``, set
``t = w.x`` and

    y = p_m(t) = (1/sqrt(m)) * sum_{j=1..m} He_j(t) / sqrt(j!)

where ``He_j`` are the probabilists' Hermite polynomials (``He_1 = t``, ``He_2 = t^2 - 1``,
``He_3 = t^3 - 3t``).  ``m = 1, 2, 3`` gives ``linear``, ``quadratic`` and ``cubic`` (the paper's
names; the runs call the last two "Hermite Binomial" and "Hermite Trinomial").  This is exactly the
normalisation in the authors' code (``src/tasks.py``, ``HermiteRegression``, see
``shared/research/paper-b.md`` section 2): each ``He_j / sqrt(j!)`` has unit variance when
``t ~ N(0, 1)``, they are mutually orthogonal, and the outer ``1/sqrt(m)`` makes the sum unit
variance too.  That holds only if ``||w|| = 1``.  The paper's default (``weight_type: standard``)
does **not** normalise ``w``, so ``t ~ N(0, ||w||^2)`` with ``||w||^2 ~ chi^2_d`` and the classes
have very different scales (at d = 20: E[y^2] = 20, 330, 8933 for linear, quadratic, cubic).  We
follow the paper by default; ``unit_norm_w=True`` gives the rescaled variant (each ``w`` divided by
its norm), where every class has E[y^2] = 1.  ``hermite`` is the general entry with a ``degree``
option (1..4; the code has a degree-4 branch the paper never uses).

Garg et al.'s classes (inherited by the authors' code, unused in paper B's figures):

* ``sparse_linear``: ``w ~ N(0, I_d)``, then all but ``sparsity`` (default 3) randomly chosen
  coordinates set to 0; ``y = w.x``.
* ``relu2nn``: ``y = sqrt(2/h) * sum_j a_j relu(W_j . x)`` with ``W`` (d x h) and ``a`` (h) all
  ``N(0, 1)``, ``h = hidden`` (default 100).  The ``sqrt(2/h)`` makes E[y^2] = E||x||^2 = d, the
  linear class's scale.
* ``decision_tree``: a complete binary tree of depth ``depth`` (default 4) stored as an array
  (root at 0, children of node ``n`` at ``2n+1`` (left) and ``2n+2`` (right)).  Every node gets a
  coordinate uniform in ``0..d-1``, every leaf a value ``N(0, 1)``; ``x`` goes right where its
  coordinate is ``> 0``; ``y`` is the value of the leaf reached.

Input distributions (options shared by all classes)
---------------------------------------------------
* ``x_dist="gaussian"`` (default): ``x ~ N(0, I_d)``.
* ``x_dist="skewed"``: Garg's skewed covariance, ``x = z A`` with ``z ~ N(0, I_d)`` and a fixed
  symmetric ``A = c * U diag(1, 1/2, ..., 1/d) U^T`` (``U`` a random orthogonal matrix from the SVD
  of a Gaussian matrix; ``c`` chosen so ``sum_i (c/i)^2 = d``).  So Cov(x) = A^2 has eigenvalues
  proportional to ``1/i^2`` and trace ``d`` (same total variance as the isotropic case).  ``U`` is
  drawn from its own generator seeded by ``cov_seed`` (default 0), so the covariance is the same
  for every call, as "a fixed random covariance" should be.  (Garg / Bhasin draw ``U`` from the
  global RNG once per evaluation; the construction is theirs, the seeding ours.)
* ``x_dist="student_t"``: i.i.d. Student-t coordinates with ``df`` degrees of freedom (default 4,
  the paper's evaluation value), *not* rescaled (variance ``df/(df-2)`` per coordinate, as in the
  authors' sampler).  Drawn with numpy from a seed taken from the torch generator.
* ``x_scale`` (default 1): multiplies ``x`` after sampling -- Garg's "scale-x" distribution-shift
  evaluation (``f`` is applied to the scaled ``x``).

Order of draws (fixed, so seeds are reproducible): ``xs`` first, then the function parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from numpy.polynomial import hermite_e as _herme

from ..validate import check_bool, check_choice, check_float, check_int

INPUT_DISTRIBUTIONS = ("gaussian", "skewed", "student_t")
#: Input options accepted by every class, with their defaults.
INPUT_DEFAULTS: Mapping[str, Any] = {"x_dist": "gaussian", "x_scale": 1.0, "df": 4.0, "cov_seed": 0}
MAX_HERMITE_DEGREE = 4


# --------------------------------------------------------------------------------------------
# Hermite link functions
# --------------------------------------------------------------------------------------------


def hermite_link(t: torch.Tensor, degree: int) -> torch.Tensor:
    """``p_m(t) = m^{-1/2} sum_{j=1..m} He_j(t) / sqrt(j!)`` elementwise (``m = degree``)."""
    he_prev, he = torch.ones_like(t), t  # He_0, He_1
    out = he.clone()
    for j in range(2, degree + 1):
        he_prev, he = he, t * he - (j - 1) * he_prev  # He_j = t He_{j-1} - (j-1) He_{j-2}
        out = out + he / math.sqrt(math.factorial(j))
    return out / math.sqrt(degree)


def hermite_link_derivative(t: torch.Tensor, degree: int) -> torch.Tensor:
    """``p_m'(t)``, using ``He_j' = j He_{j-1}``."""
    he_prev, he = torch.ones_like(t), t  # He_0, He_1
    out = torch.ones_like(t)  # d/dt He_1 / sqrt(1!) = 1
    for j in range(2, degree + 1):
        out = out + j * he / math.sqrt(math.factorial(j))  # j He_{j-1} / sqrt(j!)
        he_prev, he = he, t * he - (j - 1) * he_prev
    return out / math.sqrt(degree)


def hermite_power_coefficients(degree: int) -> np.ndarray:
    """Coefficients ``c_n`` of ``p_m(t) = sum_n c_n t^n`` (lowest power first)."""
    he = np.zeros(degree + 1)
    for j in range(1, degree + 1):
        he[j] = 1.0 / math.sqrt(math.factorial(j))
    return _herme.herme2poly(he) / math.sqrt(degree)


def _gaussian_expectation_in_u(coeffs: np.ndarray) -> np.ndarray:
    """``E[sum_n c_n t^n]`` for ``t ~ N(0, u)``, as a polynomial in ``u`` (lowest first)."""
    out = np.zeros(len(coeffs) // 2 + 1)
    for n, c in enumerate(coeffs):
        if n % 2 == 0:
            out[n // 2] += c * _double_factorial(n - 1)
    return out


def _double_factorial(n: int) -> int:
    return 1 if n <= 0 else n * _double_factorial(n - 2)


def hermite_moments(degree: int, d: int, unit_norm_w: bool = False, x_scale: float = 1.0) -> dict:
    """Exact ``E[y]``, ``E[y^2]`` and ``E[Var(y | w)]`` for ``x ~ N(0, x_scale^2 I_d)``.

    Given ``w``, ``t = w.x ~ N(0, u)`` with ``u = x_scale^2 ||w||^2``; Gaussian moments
    ``E[t^{2j}] = (2j-1)!! u^j`` turn ``E[y|u]`` and ``E[y^2|u]`` into polynomials in ``u``, and
    ``E[u^j] = x_scale^{2j} d (d+2) ... (d+2j-2)`` (chi-square moments; 1 per factor with
    ``unit_norm_w``).
    """
    c = hermite_power_coefficients(degree)
    m1 = _gaussian_expectation_in_u(c)  # E[y | u]
    m2 = _gaussian_expectation_in_u(np.polynomial.polynomial.polymul(c, c))  # E[y^2 | u]
    m1sq = np.polynomial.polynomial.polymul(m1, m1)

    def expect_u(poly: np.ndarray) -> float:
        total = 0.0
        for j, a in enumerate(poly):
            moment = x_scale ** (2 * j)
            if not unit_norm_w:
                moment *= math.prod(d + 2 * i for i in range(j))
            total += a * moment
        return float(total)

    ey, ey2 = expect_u(m1), expect_u(m2)
    return {"mean": ey, "second_moment": ey2, "within_prompt_var": ey2 - expect_u(m1sq)}


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionClass:
    """One registry entry: how to draw a batch of functions and how to apply them.

    ``sample(batch, d, gen, opts, dtype)`` returns a dict of parameter tensors (leading axis =
    prompt); ``apply(params, xs, opts)`` maps ``xs [B, N, d]`` to ``ys [B, N]``; ``validate(d,
    opts)`` raises ``ValueError`` for bad options; ``moments(d, opts, x_scale)`` gives exact
    ``{mean, second_moment, within_prompt_var}`` of ``y`` for Gaussian ``x`` (``None``: not known,
    use Monte Carlo).  ``defaults`` lists the class's own options.
    """

    name: str
    summary: str
    defaults: Mapping[str, Any]
    sample: Callable[..., dict[str, torch.Tensor]]
    apply: Callable[[dict[str, torch.Tensor], torch.Tensor, dict], torch.Tensor]
    validate: Callable[[int, dict], None] = lambda d, opts: None
    moments: Callable[[int, dict, float], dict] | None = None
    hermite_degree: Callable[[dict], int] | None = None  # single-index Hermite classes only


# -- Hermite single-index --------------------------------------------------------------------


def _sample_w(batch, d, gen, opts, dtype):
    w = torch.randn(batch, d, generator=gen, dtype=dtype)
    if opts["unit_norm_w"]:
        w = w / w.norm(dim=1, keepdim=True)
    return {"w": w}


def _hermite_apply(degree_of):
    def apply(params, xs, opts):
        t = torch.einsum("bnd,bd->bn", xs, params["w"].to(xs.dtype))
        return hermite_link(t, degree_of(opts))

    return apply


def _hermite_validate(degree_of):
    def validate(d, opts):
        check_bool("unit_norm_w", opts["unit_norm_w"])
        check_int("degree", degree_of(opts), lo=1, hi=MAX_HERMITE_DEGREE)

    return validate


def _hermite_moments(degree_of):
    def moments(d, opts, x_scale):
        return hermite_moments(degree_of(opts), d, opts["unit_norm_w"], x_scale)

    return moments


def _hermite_entry(name, summary, degree_of, defaults):
    return FunctionClass(
        name=name,
        summary=summary,
        defaults=defaults,
        sample=_sample_w,
        apply=_hermite_apply(degree_of),
        validate=_hermite_validate(degree_of),
        moments=_hermite_moments(degree_of),
        hermite_degree=degree_of,
    )


# -- sparse linear ---------------------------------------------------------------------------


def _sparse_sample(batch, d, gen, opts, dtype):
    w = torch.randn(batch, d, generator=gen, dtype=dtype)
    keep = torch.rand(batch, d, generator=gen).argsort(dim=1)[:, : opts["sparsity"]]
    mask = torch.zeros(batch, d, dtype=torch.bool).scatter_(1, keep, True)
    return {"w": w * mask}


def _linear_apply(params, xs, opts):
    return torch.einsum("bnd,bd->bn", xs, params["w"].to(xs.dtype))


def _sparse_validate(d, opts):
    check_int("sparsity", opts["sparsity"], lo=1, hi=d)


def _sparse_moments(d, opts, x_scale):
    v = x_scale**2 * opts["sparsity"]
    return {"mean": 0.0, "second_moment": v, "within_prompt_var": v}


# -- 2-layer ReLU network --------------------------------------------------------------------


def _relu_sample(batch, d, gen, opts, dtype):
    h = opts["hidden"]
    w1 = torch.randn(batch, d, h, generator=gen, dtype=dtype)
    w2 = torch.randn(batch, h, generator=gen, dtype=dtype)
    return {"W1": w1, "W2": w2}


def _relu_apply(params, xs, opts):
    w1, w2 = params["W1"].to(xs.dtype), params["W2"].to(xs.dtype)
    hidden = torch.relu(torch.einsum("bnd,bdh->bnh", xs, w1))
    return math.sqrt(2.0 / w1.shape[-1]) * torch.einsum("bnh,bh->bn", hidden, w2)


def _relu_validate(d, opts):
    check_int("hidden", opts["hidden"], lo=1)


def _relu_moments(d, opts, x_scale):
    # E[y^2] = (2/h) * h * E[relu(W_j.x)^2] = (2/h) * h * x_scale^2 d / 2; cross terms vanish (a_j
    # independent, mean 0).  E[y | W] = sqrt(2/h) sum_j a_j x_scale ||W_j|| / sqrt(2 pi), so
    # E[E[y|W]^2] = x_scale^2 d / pi.
    v = x_scale**2 * d
    return {"mean": 0.0, "second_moment": v, "within_prompt_var": v * (1.0 - 1.0 / math.pi)}


# -- decision tree ---------------------------------------------------------------------------


def _tree_sample(batch, d, gen, opts, dtype):
    n_nodes = 2 ** (opts["depth"] + 1) - 1
    coords = torch.randint(0, d, (batch, n_nodes), generator=gen)
    values = torch.randn(batch, n_nodes, generator=gen, dtype=dtype)
    return {"coords": coords, "values": values}


def _tree_apply(params, xs, opts):
    coords, values = params["coords"], params["values"].to(xs.dtype)
    depth = int(round(math.log2(coords.shape[1] + 1))) - 1
    node = torch.zeros(xs.shape[:2], dtype=torch.long)
    for _ in range(depth):
        coord = coords.gather(1, node)  # [B, N]
        right = xs.gather(2, coord.unsqueeze(-1)).squeeze(-1) > 0
        node = 2 * node + 1 + right.long()
    return values.gather(1, node)


def _tree_validate(d, opts):
    check_int("depth", opts["depth"], lo=1, hi=12)


# -- the registry ----------------------------------------------------------------------------

FUNCTION_CLASSES: dict[str, FunctionClass] = {
    "linear": _hermite_entry(
        "linear", "y = w.x (Hermite degree 1; also Garg's linear regression)",
        lambda o: 1, {"unit_norm_w": False},
    ),
    "quadratic": _hermite_entry(
        "quadratic", "y = (He1(t) + He2(t)/sqrt(2!)) / sqrt(2), t = w.x (paper B)",
        lambda o: 2, {"unit_norm_w": False},
    ),
    "cubic": _hermite_entry(
        "cubic", "y = (He1 + He2/sqrt(2!) + He3/sqrt(3!))(t) / sqrt(3), t = w.x (paper B)",
        lambda o: 3, {"unit_norm_w": False},
    ),
    "hermite": _hermite_entry(
        "hermite", "normalised sum of He_1..He_degree of t = w.x (degree 1..4)",
        lambda o: o["degree"], {"degree": 1, "unit_norm_w": False},
    ),
    "sparse_linear": FunctionClass(
        "sparse_linear", "y = w.x with only `sparsity` nonzero coordinates of w (Garg)",
        {"sparsity": 3}, _sparse_sample, _linear_apply, _sparse_validate, _sparse_moments,
    ),
    "relu2nn": FunctionClass(
        "relu2nn", "y = sqrt(2/h) a.relu(W x), h = hidden, all weights N(0,1) (Garg)",
        {"hidden": 100}, _relu_sample, _relu_apply, _relu_validate, _relu_moments,
    ),
    "decision_tree": FunctionClass(
        "decision_tree", "depth-`depth` tree splitting on the sign of a random coordinate, N(0,1) leaves (Garg)",
        {"depth": 4}, _tree_sample, _tree_apply, _tree_validate, None,
    ),
}


# --------------------------------------------------------------------------------------------
# Options and validation
# --------------------------------------------------------------------------------------------


def resolve_options(name: str, d: int, **opts) -> dict:
    """Merge ``opts`` with the defaults of class ``name`` and the input options; validate all.

    Raises ``ValueError`` naming the field (and listing allowed values) for an unknown class,
    an unknown option or a bad value.
    """
    check_choice("name", name, FUNCTION_CLASSES)
    check_int("d", d, lo=1)
    fc = FUNCTION_CLASSES[name]
    allowed = {**fc.defaults, **INPUT_DEFAULTS}
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for function class {name!r}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    out = {**allowed, **opts}
    check_choice("x_dist", out["x_dist"], INPUT_DISTRIBUTIONS)
    out["x_scale"] = check_float("x_scale", out["x_scale"], lo=0.0, lo_open=True)
    out["df"] = check_float("df", out["df"], lo=0.0, lo_open=True)
    check_int("cov_seed", out["cov_seed"], lo=0)
    fc.validate(d, out)
    return out


def _check_gen(gen: Any) -> torch.Generator:
    if not isinstance(gen, torch.Generator):
        raise ValueError(f"'gen' must be a torch.Generator (e.g. torch.Generator().manual_seed(0)); got {gen!r}")
    return gen


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _skewed_transform_cached(d: int, cov_seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(cov_seed)
    u, _, _ = torch.linalg.svd(torch.randn(d, d, generator=g, dtype=torch.float64))
    eig = 1.0 / torch.arange(1, d + 1, dtype=torch.float64)
    a = u @ torch.diag(eig) @ u.T
    return a * math.sqrt(d / float((eig**2).sum()))


def skewed_transform(d: int, cov_seed: int = 0) -> torch.Tensor:
    """Garg's skewed-covariance map ``A`` (float64, symmetric): ``x = z A``, Cov(x) = A^2."""
    check_int("d", d, lo=1)
    check_int("cov_seed", cov_seed, lo=0)
    return _skewed_transform_cached(d, cov_seed).clone()


def sample_xs(
    batch: int,
    n_points: int,
    d: int,
    gen: torch.Generator,
    *,
    x_dist: str = "gaussian",
    x_scale: float = 1.0,
    df: float = 4.0,
    cov_seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Inputs ``[batch, n_points, d]`` from the chosen distribution (module docstring)."""
    check_int("batch", batch, lo=1)
    check_int("n_points", n_points, lo=1)
    check_int("d", d, lo=1)
    _check_gen(gen)
    check_choice("x_dist", x_dist, INPUT_DISTRIBUTIONS)
    x_scale = check_float("x_scale", x_scale, lo=0.0, lo_open=True)
    shape = (batch, n_points, d)
    if x_dist == "gaussian":
        xs = torch.randn(shape, generator=gen, dtype=dtype)
    elif x_dist == "skewed":
        z = torch.randn(shape, generator=gen, dtype=torch.float64)
        xs = (z @ skewed_transform(d, cov_seed)).to(dtype)
    else:
        df = check_float("df", df, lo=0.0, lo_open=True)
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        xs = torch.from_numpy(np.random.default_rng(seed).standard_t(df, size=shape)).to(dtype)
    return xs * x_scale if x_scale != 1.0 else xs


# --------------------------------------------------------------------------------------------
# Functions and prompts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionBatch:
    """``B`` functions of one class: call it on ``xs [B, N, d]`` to get ``ys [B, N]``."""

    name: str
    params: dict[str, torch.Tensor]
    options: dict = field(default_factory=dict)

    def __call__(self, xs: torch.Tensor) -> torch.Tensor:
        return FUNCTION_CLASSES[self.name].apply(self.params, xs, self.options)


def sample_functions(
    name: str, batch: int, d: int, gen: torch.Generator, *, dtype: torch.dtype = torch.float32, **opts
) -> FunctionBatch:
    """Draw ``batch`` functions of class ``name`` (options: the class's and the input options)."""
    check_int("batch", batch, lo=1)
    options = resolve_options(name, d, **opts)
    _check_gen(gen)
    params = FUNCTION_CLASSES[name].sample(batch, d, gen, options, dtype)
    return FunctionBatch(name, params, options)


def function_from_params(name: str, params: dict[str, torch.Tensor], d: int, **opts) -> FunctionBatch:
    """A :class:`FunctionBatch` from given parameters (e.g. a chosen ``w``), options validated."""
    return FunctionBatch(name, dict(params), resolve_options(name, d, **opts))


@dataclass(frozen=True)
class PromptBatch:
    """Prompts with the functions that generated them."""

    xs: torch.Tensor  # [B, N, d]
    ys: torch.Tensor  # [B, N]
    functions: FunctionBatch


def sample_batch(
    name: str,
    batch: int,
    n_points: int,
    d: int,
    gen: torch.Generator,
    *,
    dtype: torch.dtype = torch.float32,
    **opts,
) -> PromptBatch:
    """Like :func:`sample_prompts`, also returning the functions (for oracles and checks)."""
    check_int("batch", batch, lo=1)
    check_int("n_points", n_points, lo=1)
    options = resolve_options(name, d, **opts)
    _check_gen(gen)
    xs = sample_xs(
        batch, n_points, d, gen, x_dist=options["x_dist"], x_scale=options["x_scale"],
        df=options["df"], cov_seed=options["cov_seed"], dtype=dtype,
    )
    params = FUNCTION_CLASSES[name].sample(batch, d, gen, options, dtype)
    fb = FunctionBatch(name, params, options)
    return PromptBatch(xs, fb(xs), fb)


def sample_prompts(
    name: str,
    batch: int,
    n_points: int,
    d: int,
    gen: torch.Generator,
    *,
    dtype: torch.dtype = torch.float32,
    **opts,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(xs [B, N, d], ys [B, N])``: ``batch`` fresh prompts of ``n_points`` pairs from class ``name``.

    ``opts``: the class's options (``FUNCTION_CLASSES[name].defaults``) and the input options
    ``x_dist``, ``x_scale``, ``df``, ``cov_seed``.  Same generator state -> same prompts.
    """
    pb = sample_batch(name, batch, n_points, d, gen, dtype=dtype, **opts)
    return pb.xs, pb.ys


__all__ = [
    "FUNCTION_CLASSES", "FunctionClass", "FunctionBatch", "PromptBatch", "INPUT_DISTRIBUTIONS",
    "INPUT_DEFAULTS", "hermite_link", "hermite_link_derivative", "hermite_power_coefficients",
    "hermite_moments", "resolve_options", "skewed_transform", "sample_xs", "sample_functions",
    "function_from_params", "sample_batch", "sample_prompts",
]
