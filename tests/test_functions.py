"""Function classes of paper B / Garg et al. (jointtask_lib.tasks.functions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.polynomial import hermite_e

from jointtask_lib.tasks import functions as F
from jointtask_lib.tasks.functions import (
    FUNCTION_CLASSES,
    INPUT_DISTRIBUTIONS,
    FunctionClass,
    function_from_params,
    hermite_link,
    hermite_link_derivative,
    hermite_moments,
    sample_batch,
    sample_functions,
    sample_prompts,
    sample_xs,
    skewed_transform,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def hermite_reference(t: np.ndarray, degree: int) -> np.ndarray:
    """Independent reference: numpy's probabilists' Hermite series, paper B's coefficients."""
    coef = [0.0] + [1.0 / math.sqrt(math.factorial(j)) for j in range(1, degree + 1)]
    return hermite_e.hermeval(t, coef) / math.sqrt(degree)


# --------------------------------------------------------------------------------------------
# Hermite classes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,degree", [("linear", 1), ("quadratic", 2), ("cubic", 3)])
def test_hermite_targets_match_hermeval_for_given_w(name, degree):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 6))
    x = rng.normal(size=(4, 9, 6))
    fb = function_from_params(name, {"w": torch.from_numpy(w)}, d=6)
    ys = fb(torch.from_numpy(x)).numpy()
    t = np.einsum("bnd,bd->bn", x, w)
    np.testing.assert_allclose(ys, hermite_reference(t, degree), rtol=1e-12, atol=1e-10)


def test_hermite_explicit_formulas():
    t = torch.linspace(-3, 3, 13, dtype=torch.float64)
    he2, he3 = t**2 - 1, t**3 - 3 * t
    torch.testing.assert_close(hermite_link(t, 1), t)
    torch.testing.assert_close(hermite_link(t, 2), (t + he2 / math.sqrt(2)) / math.sqrt(2))
    torch.testing.assert_close(hermite_link(t, 3), (t + he2 / math.sqrt(2) + he3 / math.sqrt(6)) / math.sqrt(3))


@pytest.mark.parametrize("degree", [1, 2, 3, 4])
def test_hermite_general_entry_and_derivative(degree):
    t = np.linspace(-4, 4, 41)
    x = torch.from_numpy(t).reshape(1, -1, 1)
    fb = function_from_params("hermite", {"w": torch.ones(1, 1, dtype=torch.float64)}, d=1, degree=degree)
    np.testing.assert_allclose(fb(x).numpy()[0], hermite_reference(t, degree), rtol=1e-12, atol=1e-12)
    coef = [0.0] + [1.0 / math.sqrt(math.factorial(j)) for j in range(1, degree + 1)]
    dref = hermite_e.hermeval(t, hermite_e.hermeder(coef)) / math.sqrt(degree)
    np.testing.assert_allclose(hermite_link_derivative(torch.from_numpy(t), degree).numpy(), dref, atol=1e-10)


def test_sampled_hermite_prompts_use_their_own_w():
    pb = sample_batch("cubic", 5, 7, 4, gen(3), dtype=torch.float64)
    w = pb.functions.params["w"].numpy()
    t = np.einsum("bnd,bd->bn", pb.xs.numpy(), w)
    np.testing.assert_allclose(pb.ys.numpy(), hermite_reference(t, 3), rtol=1e-12, atol=1e-9)


def test_w_default_unnormalised_and_unit_norm_option():
    w = sample_functions("quadratic", 2000, 8, gen(0), dtype=torch.float64).params["w"]
    assert abs(w.square().sum(1).mean().item() - 8) < 0.3  # E||w||^2 = d
    wu = sample_functions("quadratic", 50, 8, gen(0), unit_norm_w=True).params["w"]
    torch.testing.assert_close(wu.norm(dim=1), torch.ones(50))


def test_hermite_moments_closed_form():
    # unit-norm w: t ~ N(0, 1), every class has E[y] = 0 and E[y^2] = 1 (orthonormal Hermite terms)
    for m in (1, 2, 3, 4):
        mo = hermite_moments(m, 7, unit_norm_w=True)
        assert mo["mean"] == pytest.approx(0.0, abs=1e-12)
        assert mo["second_moment"] == pytest.approx(1.0)
    # unnormalised w, quadratic, by hand: y = (t + (t^2-1)/sqrt2)/sqrt2, t ~ N(0, s), s ~ chi2_d
    # E[y|s] = (s-1)/2, E[y^2|s] = (s + (3s^2 - 2s + 1)/2)/2; E s = d, E s^2 = d(d+2)
    for d in (5, 20):
        es, es2 = d, d * (d + 2)
        ey = (es - 1) / 2
        ey2 = (es + (3 * es2 - 2 * es + 1) / 2) / 2
        within = ey2 - (es2 - 2 * es + 1) / 4
        mo = hermite_moments(2, d)
        assert mo["mean"] == pytest.approx(ey)
        assert mo["second_moment"] == pytest.approx(ey2)
        assert mo["within_prompt_var"] == pytest.approx(within)
    # the notes' table at d = 20: quadratic 16.51 / 12.0, cubic 446.65 / 443.65 (levels / d)
    q, c = hermite_moments(2, 20), hermite_moments(3, 20)
    assert q["second_moment"] / 20 == pytest.approx(16.5125)
    assert (q["second_moment"] - q["mean"] ** 2) / 20 == pytest.approx(12.0)
    assert c["second_moment"] / 20 == pytest.approx(446.65, abs=0.01)
    assert (c["second_moment"] - c["mean"] ** 2) / 20 == pytest.approx(443.65, abs=0.01)


def test_hermite_moments_monte_carlo():
    ys = sample_prompts("quadratic", 20000, 8, 5, gen(11), dtype=torch.float64)[1]
    mo = hermite_moments(2, 5)
    assert ys.mean().item() == pytest.approx(mo["mean"], rel=0.05)
    assert ys.square().mean().item() == pytest.approx(mo["second_moment"], rel=0.05)


# --------------------------------------------------------------------------------------------
# Garg's classes
# --------------------------------------------------------------------------------------------


def test_sparse_linear():
    pb = sample_batch("sparse_linear", 40, 6, 10, gen(2), sparsity=4, dtype=torch.float64)
    w = pb.functions.params["w"]
    assert ((w != 0).sum(1) == 4).all()
    np.testing.assert_allclose(pb.ys.numpy(), np.einsum("bnd,bd->bn", pb.xs.numpy(), w.numpy()), atol=1e-12)


def test_relu2nn_against_hand_formula():
    pb = sample_batch("relu2nn", 3, 5, 4, gen(4), hidden=7, dtype=torch.float64)
    w1, w2 = pb.functions.params["W1"].numpy(), pb.functions.params["W2"].numpy()
    x = pb.xs.numpy()
    ref = np.zeros((3, 5))
    for b in range(3):
        for n in range(5):
            h = np.maximum(x[b, n] @ w1[b], 0.0)
            ref[b, n] = math.sqrt(2 / 7) * h @ w2[b]
    np.testing.assert_allclose(pb.ys.numpy(), ref, atol=1e-12)


def test_relu2nn_scale_matches_linear():
    ys = sample_prompts("relu2nn", 4000, 4, 6, gen(5))[1]
    assert ys.square().mean().item() / 6 == pytest.approx(1.0, rel=0.08)  # E[y^2] = d


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_decision_tree_against_loop(depth):
    d = 5
    pb = sample_batch("decision_tree", 6, 11, d, gen(6), depth=depth)
    coords, values = pb.functions.params["coords"], pb.functions.params["values"]
    assert coords.shape == (6, 2 ** (depth + 1) - 1)
    for b in range(6):
        for n in range(11):
            node = 0
            for _ in range(depth):
                node = 2 * node + (2 if pb.xs[b, n, coords[b, node]] > 0 else 1)
            assert 2**depth - 1 <= node < 2 ** (depth + 1) - 1  # a leaf
            assert pb.ys[b, n].item() == values[b, node].item()


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def test_skewed_transform_construction():
    d = 6
    a = skewed_transform(d, cov_seed=3).numpy()
    np.testing.assert_allclose(a, a.T, atol=1e-12)
    eig = np.sort(np.linalg.eigvalsh(a))[::-1]
    np.testing.assert_allclose(eig / eig[0], 1.0 / np.arange(1, d + 1), rtol=1e-10)
    assert (eig**2).sum() == pytest.approx(d)  # trace of Cov(x) = A^2 equals d
    np.testing.assert_array_equal(a, skewed_transform(d, cov_seed=3).numpy())
    assert not np.allclose(a, skewed_transform(d, cov_seed=4).numpy())


def test_skewed_inputs_have_the_fixed_covariance():
    d = 4
    xs = sample_xs(2000, 10, d, gen(7), x_dist="skewed", dtype=torch.float64).reshape(-1, d).numpy()
    a = skewed_transform(d).numpy()
    np.testing.assert_allclose(np.cov(xs.T), a @ a, atol=0.05)


def test_student_t_inputs():
    x1 = sample_xs(3, 4, 2, gen(8), x_dist="student_t", df=6.0)
    x2 = sample_xs(3, 4, 2, gen(8), x_dist="student_t", df=6.0)
    torch.testing.assert_close(x1, x2)
    xs = sample_xs(4000, 25, 2, gen(9), x_dist="student_t", df=6.0, dtype=torch.float64)
    assert xs.var().item() == pytest.approx(6 / 4, rel=0.05)  # df / (df - 2), not rescaled


def test_x_scale_scales_inputs_exactly():
    xs1, ys1 = sample_prompts("linear", 3, 5, 4, gen(10))
    xs2, ys2 = sample_prompts("linear", 3, 5, 4, gen(10), x_scale=2.0)
    torch.testing.assert_close(xs2, 2 * xs1)
    torch.testing.assert_close(ys2, 2 * ys1)


# --------------------------------------------------------------------------------------------
# Shapes, determinism, registry
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FUNCTION_CLASSES))
@pytest.mark.parametrize("x_dist", INPUT_DISTRIBUTIONS)
def test_shapes_dtype_and_finiteness(name, x_dist):
    xs, ys = sample_prompts(name, 3, 7, 5, gen(0), x_dist=x_dist)
    assert xs.shape == (3, 7, 5) and ys.shape == (3, 7)
    assert xs.dtype == ys.dtype == torch.float32
    assert torch.isfinite(ys).all()


@pytest.mark.parametrize("name", sorted(FUNCTION_CLASSES))
def test_determinism_by_seed_and_fresh_prompts(name):
    a = sample_prompts(name, 4, 6, 3, gen(42))
    b = sample_prompts(name, 4, 6, 3, gen(42))
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    g = gen(42)
    first, second = sample_prompts(name, 4, 6, 3, g), sample_prompts(name, 4, 6, 3, g)
    assert not torch.equal(first[0], second[0])  # the generator advances: fresh prompts
    assert not torch.equal(a[0], sample_prompts(name, 4, 6, 3, gen(43))[0])


def test_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    sample_prompts("relu2nn", 2, 3, 4, gen(0))
    sample_prompts("sparse_linear", 2, 3, 4, gen(0))
    assert torch.equal(before, torch.get_rng_state())


def test_new_class_is_one_registry_entry(monkeypatch):
    entry = FunctionClass(
        name="const",
        summary="y = c",
        defaults={"c": 2.0},
        sample=lambda b, d, g, o, dt: {"c": torch.full((b,), o["c"], dtype=dt)},
        apply=lambda p, xs, o: p["c"][:, None].expand(xs.shape[:2]).to(xs.dtype),
    )
    monkeypatch.setitem(FUNCTION_CLASSES, "const", entry)
    xs, ys = sample_prompts("const", 2, 3, 4, gen(0), c=5.0)
    assert ys.shape == (2, 3) and (ys == 5.0).all()


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,fields",
    [
        (dict(name="quartic"), ["'name'", "linear", "cubic", "decision_tree"]),
        (dict(d=0), ["'d'", ">= 1"]),
        (dict(d=2.5), ["'d'"]),
        (dict(n_points=0), ["'n_points'", ">= 1"]),
        (dict(batch=0), ["'batch'"]),
        (dict(opts=dict(degree=2)), ["'degree'", "unit_norm_w", "x_dist"]),  # not an option of 'linear'
        (dict(opts=dict(x_dist="laplace")), ["'x_dist'", "gaussian", "skewed", "student_t"]),
        (dict(opts=dict(x_scale=0.0)), ["'x_scale'"]),
        (dict(opts=dict(unit_norm_w=1)), ["'unit_norm_w'"]),
        (dict(name="sparse_linear", opts=dict(sparsity=9)), ["'sparsity'", "1 to 5"]),
        (dict(name="hermite", opts=dict(degree=5)), ["'degree'", "1 to 4"]),
        (dict(name="decision_tree", opts=dict(depth=0)), ["'depth'"]),
        (dict(name="relu2nn", opts=dict(hidden=0)), ["'hidden'"]),
        (dict(g=0), ["'gen'", "torch.Generator"]),
    ],
)
def test_bad_input_raises_value_error_naming_field(kwargs, fields):
    args = dict(name="linear", batch=2, n_points=3, d=5, g=gen(0), opts={})
    args.update(kwargs)
    with pytest.raises(ValueError) as err:
        sample_prompts(args["name"], args["batch"], args["n_points"], args["d"], args["g"], **args["opts"])
    for f in fields:
        assert f in str(err.value)


def test_module_documents_normalisation():
    doc = F.__doc__
    assert "1/sqrt(m)" in doc and "He_j(t) / sqrt(j!)" in doc and "unit_norm_w" in doc
