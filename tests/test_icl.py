"""Curricula, error curves, baselines and head scores (jointtask_lib.icl)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from jointtask_lib.paper_b import icl
from jointtask_lib.paper_b.icl import (
    averaging_predictions,
    baselines_for,
    block_bounds,
    bootstrap_curve,
    curriculum_schedule,
    evaluate_predictor,
    expected_task_fractions,
    head_mask,
    knn_predictions,
    least_squares_predictions,
    make_eval_prompts,
    moving_average,
    n_polynomial_features,
    notebook_retrospective_scores,
    poly_least_squares_predictions,
    polynomial_features,
    reference_levels,
    retrospective_scores,
    running_mean_predictions,
    select_heads,
    single_index_fit_predictions,
    squared_errors,
    task_exposure,
    zero_predictions,
)
from jointtask_lib.tasks.functions import sample_batch, sample_prompts

TASKS = ["linear", "quadratic", "cubic"]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ============================================================================================
# Curricula
# ============================================================================================


def test_block_bounds_and_remainder():
    np.testing.assert_array_equal(block_bounds(3, 9), [0, 3, 6, 9])
    np.testing.assert_array_equal(block_bounds(3, 11), [0, 3, 6, 11])  # last block takes the rest
    np.testing.assert_array_equal(block_bounds(3, 500_001), [0, 166_667, 333_334, 500_001])  # paper's T


def test_single():
    s = curriculum_schedule("single", ["quadratic"], 50, seed=0)
    assert s.dtype == np.int64 and s.shape == (50,) and (s == 0).all()
    with pytest.raises(ValueError, match="'tasks'"):
        curriculum_schedule("single", TASKS, 50, seed=0)


@pytest.mark.parametrize("total", [30, 31, 32, 1000])
def test_sequential_exactly_task_i_in_block_i(total):
    s = curriculum_schedule("sequential", TASKS, total, seed=0)
    edges = block_bounds(3, total)
    for i in range(3):
        assert (s[edges[i] : edges[i + 1]] == i).all()
    assert len(s) == total


def test_mixed_block_task_sets():
    total = 30_000
    s = curriculum_schedule("mixed", TASKS, total, seed=1)
    edges = block_bounds(3, total)
    for i in range(3):
        block = s[edges[i] : edges[i + 1]]
        assert set(np.unique(block)) == set(range(i + 1))  # only tasks <= i, and all of them
        counts = np.bincount(block, minlength=3)[: i + 1]
        n = len(block)
        # each count ~ Binomial(n, 1/(i+1)): within 5 sd
        sd = math.sqrt(n * (1 / (i + 1)) * (1 - 1 / (i + 1))) if i else 0.0
        assert np.all(np.abs(counts - n / (i + 1)) <= 5 * sd + 1e-9)


def test_random_uniform_over_all_tasks():
    s = curriculum_schedule("random", TASKS, 9000, seed=2)
    counts = np.bincount(s, minlength=3)
    sd = math.sqrt(9000 * (1 / 3) * (2 / 3))
    assert np.all(np.abs(counts - 3000) <= 5 * sd)
    # every block sees every task (no structure)
    edges = block_bounds(3, 9000)
    for i in range(3):
        assert set(np.unique(s[edges[i] : edges[i + 1]])) == {0, 1, 2}


@pytest.mark.parametrize("kind", ["mixed", "random"])
def test_schedule_determinism(kind):
    a = curriculum_schedule(kind, TASKS, 999, seed=7)
    np.testing.assert_array_equal(a, curriculum_schedule(kind, TASKS, 999, seed=7))
    assert not np.array_equal(a, curriculum_schedule(kind, TASKS, 999, seed=8))


def test_mixed_cubic_sees_one_ninth():
    fr = expected_task_fractions("mixed", TASKS, 90_000)
    fr_exact = [Fraction(11, 18), Fraction(5, 18), Fraction(1, 9)]
    np.testing.assert_allclose(fr, [float(f) for f in fr_exact], rtol=1e-12)
    total = 90_000
    s = curriculum_schedule("mixed", TASKS, total, seed=3)
    exp = task_exposure(s, 3, batch_size=64, n_points=20)
    # cubic steps ~ Binomial(T/3, 1/3): sd of the fraction = sqrt((T/3)(1/3)(2/3)) / T
    sd = math.sqrt(total / 3 * (1 / 3) * (2 / 3)) / total
    assert abs(exp["fraction"][2] - 1 / 9) < 5 * sd
    assert exp["steps"].sum() == total
    np.testing.assert_array_equal(exp["prompts"], exp["steps"] * 64)
    np.testing.assert_array_equal(exp["examples"], exp["steps"] * 64 * 20)


def test_expected_fractions_other_kinds():
    np.testing.assert_allclose(expected_task_fractions("sequential", 3, 11), [3 / 11, 3 / 11, 5 / 11])
    np.testing.assert_allclose(expected_task_fractions("random", 4, 100), [0.25] * 4)
    np.testing.assert_allclose(expected_task_fractions("single", 1, 100), [1.0])
    # mixed with a remainder: blocks 3, 3, 5 -> task 2 gets 5/3 of 11 steps
    np.testing.assert_allclose(expected_task_fractions("mixed", 3, 11)[2], (5 / 3) / 11)


@pytest.mark.parametrize(
    "args,field",
    [
        (("zigzag", TASKS, 30), "'kind'"),
        (("mixed", TASKS, 2), "'total_steps'"),
        (("mixed", [], 30), "'tasks'"),
        (("mixed", "linear", 30), "'tasks'"),
    ],
)
def test_curriculum_validation(args, field):
    with pytest.raises(ValueError, match=field):
        curriculum_schedule(*args, seed=0)


def test_curriculum_kind_error_lists_allowed():
    with pytest.raises(ValueError) as err:
        curriculum_schedule("zigzag", TASKS, 30, seed=0)
    for k in ("single", "sequential", "mixed", "random"):
        assert k in str(err.value)


# ============================================================================================
# Baselines
# ============================================================================================


def linear_prompts(b=8, n=12, d=4, seed=0):
    pb = sample_batch("linear", b, n, d, gen(seed), dtype=torch.float64)
    return pb.xs, pb.ys, pb.functions.params["w"]


def test_least_squares_exact_once_k_ge_d():
    xs, ys, _ = linear_prompts(d=4, n=12)
    preds = least_squares_predictions(xs, ys)
    torch.testing.assert_close(preds[:, 4:], ys[:, 4:], atol=1e-9, rtol=0)
    assert (preds[:, 0] == 0).all()
    assert not torch.allclose(preds[:, 1:4], ys[:, 1:4])  # underdetermined before k = d


def test_least_squares_is_min_norm_before_d():
    xs, ys, _ = linear_prompts(d=6, n=8, seed=1)
    preds = least_squares_predictions(xs, ys).numpy()
    x, y = xs.numpy(), ys.numpy()
    for b in range(x.shape[0]):
        for k in range(1, 8):
            w = np.linalg.pinv(x[b, :k]) @ y[b, :k]
            assert preds[b, k] == pytest.approx(x[b, k] @ w, abs=1e-9)


def test_least_squares_keeps_float32():
    xs, ys = sample_prompts("linear", 4, 10, 3, gen(0))
    assert least_squares_predictions(xs, ys).dtype == torch.float32


def test_averaging_estimator_hand_formula():
    xs, ys, _ = linear_prompts(b=3, n=7, d=3, seed=2)
    preds = averaging_predictions(xs, ys).numpy()
    x, y = xs.numpy(), ys.numpy()
    for b in range(3):
        assert preds[b, 0] == 0
        for k in range(1, 7):
            w_hat = sum(y[b, i] * x[b, i] for i in range(k)) / k
            assert preds[b, k] == pytest.approx(x[b, k] @ w_hat, abs=1e-12)


def test_knn_against_brute_force_loop():
    pb = sample_batch("relu2nn", 5, 15, 3, gen(3), dtype=torch.float64)
    xs, ys = pb.xs, pb.ys
    preds = knn_predictions(xs, ys, n_neighbors=3).numpy()
    x, y = xs.numpy(), ys.numpy()
    for b in range(5):
        assert preds[b, 0] == 0
        for k in range(1, 15):
            dist = [np.linalg.norm(x[b, i] - x[b, k]) for i in range(k)]
            nearest = sorted(range(k), key=lambda i: dist[i])[: min(k, 3)]
            assert preds[b, k] == pytest.approx(np.mean([y[b, i] for i in nearest]), abs=1e-12)


def test_running_mean_and_zero():
    xs, ys, _ = linear_prompts(b=2, n=6, d=2, seed=4)
    rm = running_mean_predictions(xs, ys).numpy()
    y = ys.numpy()
    for k in range(1, 6):
        np.testing.assert_allclose(rm[:, k], y[:, :k].mean(1), atol=1e-12)
    assert (rm[:, 0] == 0).all()
    assert (zero_predictions(xs, ys) == 0).all()


def test_polynomial_features_count_and_values():
    x = torch.tensor([[[2.0, 3.0]]], dtype=torch.float64)
    f = polynomial_features(x, 2)[0, 0].tolist()
    assert sorted(f) == sorted([1, 2, 3, 4, 6, 9])
    assert polynomial_features(torch.zeros(1, 1, 5), 3).shape[-1] == n_polynomial_features(5, 3) == 56


def test_poly_least_squares_exact_for_quadratic_once_k_ge_features():
    d, n = 3, 16
    n_feat = n_polynomial_features(d, 2)  # 10
    pb = sample_batch("quadratic", 6, n, d, gen(5), dtype=torch.float64)
    preds = poly_least_squares_predictions(pb.xs, pb.ys, 2)
    torch.testing.assert_close(preds[:, n_feat:], pb.ys[:, n_feat:], atol=1e-8, rtol=1e-8)
    # before that: min-norm solution on independently built features
    x, y = pb.xs.numpy(), pb.ys.numpy()
    for b in range(6):
        feats = np.array([[1.0] + [xi[i] for i in range(d)] +
                          [xi[i] * xi[j] for i, j in itertools.combinations_with_replacement(range(d), 2)]
                          for xi in x[b]])
        for k in range(1, n_feat):
            w = np.linalg.pinv(feats[:k]) @ y[b, :k]
            assert preds[b, k].item() == pytest.approx(feats[k] @ w, abs=1e-7)


@pytest.mark.parametrize("name,degree,unit", [("quadratic", 2, False), ("cubic", 3, False), ("cubic", 3, True)])
def test_single_index_fit_recovers_function(name, degree, unit):
    d, n = 3, 16
    pb = sample_batch(name, 48, n, d, gen(6), dtype=torch.float64, unit_norm_w=unit)
    preds = single_index_fit_predictions(pb.xs, pb.ys, degree, positions=[0, 12, 15])
    rel = ((preds - pb.ys).abs() / (1 + pb.ys.abs()))
    assert (preds[:, 0] == 0).all()
    assert torch.isnan(preds[:, 5]).all()  # not requested
    for k in (12, 15):  # k >= 4d
        assert (rel[:, k] < 1e-4).float().mean() >= 0.9


def test_single_index_fit_linear_exact_and_bounded_before_d():
    xs, ys, _ = linear_prompts(b=6, n=10, d=4, seed=7)
    preds = single_index_fit_predictions(xs, ys, 1)
    torch.testing.assert_close(preds[:, 5:], ys[:, 5:], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(preds).all() and preds.abs().max() < 100


@pytest.mark.parametrize("name", ["linear", "cubic"])
def test_baselines_are_causal(name):
    """Prediction k must not change when pairs k+1.. (and y_k) are changed."""
    pb = sample_batch(name, 4, 10, 3, gen(8), dtype=torch.float64)
    xs2, ys2 = pb.xs.clone(), pb.ys.clone()
    k = 6
    xs2[:, k + 1 :] = torch.randn(xs2[:, k + 1 :].shape, generator=gen(9), dtype=torch.float64)
    ys2[:, k:] = 1e3
    for bname, fn in baselines_for(name).items():
        if bname == "single_index_fit":
            fn = lambda xs, ys: single_index_fit_predictions(xs, ys, 3, positions=[k], n_iter=5)  # noqa: E731
        p1, p2 = fn(pb.xs, pb.ys), fn(xs2, ys2)
        torch.testing.assert_close(p1[:, : k + 1], p2[:, : k + 1], equal_nan=True, msg=bname)


def test_baselines_for():
    assert set(baselines_for("linear")) == {"zero", "running_mean", "least_squares", "3nn", "averaging"}
    assert {"poly_least_squares", "single_index_fit"} <= set(baselines_for("cubic"))
    assert "single_index_fit" in baselines_for("hermite", degree=2)
    assert "single_index_fit" not in baselines_for("relu2nn")


def test_baselines_for_fit_positions_only_there():
    g = torch.Generator().manual_seed(0)
    pb = sample_batch("quadratic", 8, 12, 2, g, unit_norm_w=True)
    p = baselines_for("quadratic", fit_positions=[4, 11], unit_norm_w=True)["single_index_fit"](pb.xs, pb.ys)
    assert torch.isnan(p[:, [0, 1, 2, 3, 5, 10]]).all() and torch.isfinite(p[:, [4, 11]]).all()
    direct = single_index_fit_predictions(pb.xs, pb.ys, 2, positions=[4, 11])
    torch.testing.assert_close(p, direct, equal_nan=True)


def test_baseline_shape_validation():
    with pytest.raises(ValueError, match="'xs'"):
        least_squares_predictions(torch.zeros(2, 3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="'n_neighbors'"):
        knn_predictions(torch.zeros(2, 3, 4), torch.zeros(2, 3), n_neighbors=0)


# ============================================================================================
# Error curves and reference levels
# ============================================================================================


def test_squared_errors_normalised():
    e = squared_errors(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]]), norm=4.0)
    torch.testing.assert_close(e, torch.tensor([[0.25, 1.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="'preds'"):
        squared_errors(torch.zeros(1, 3), torch.zeros(1, 2))


def test_bootstrap_constant_and_deterministic():
    out = bootstrap_curve(np.full((50, 3), 2.5), n_boot=200)
    np.testing.assert_allclose([out["mean"], out["lo"], out["hi"]], 2.5)
    e = np.random.default_rng(0).exponential(size=(300, 4))
    a, b = bootstrap_curve(e, seed=1), bootstrap_curve(e, seed=1)
    np.testing.assert_array_equal(a["lo"], b["lo"])
    assert np.all(a["lo"] <= a["mean"]) and np.all(a["mean"] <= a["hi"])


def test_bootstrap_skips_positions_without_values():
    e = np.random.default_rng(0).exponential(size=(200, 3))
    with_gap = e.copy()
    with_gap[:, 1] = np.nan  # a predictor evaluated only at some positions
    a, b = bootstrap_curve(e, seed=4), bootstrap_curve(with_gap, seed=4)
    assert np.isnan([b["mean"][1], b["lo"][1], b["hi"][1]]).all()
    np.testing.assert_allclose(b["lo"][[0, 2]], a["lo"][[0, 2]])
    np.testing.assert_allclose(b["hi"][[0, 2]], a["hi"][[0, 2]])


def test_bootstrap_width_matches_normal_theory():
    p = 1280
    e = np.random.default_rng(2).normal(size=(p, 5))
    out = bootstrap_curve(e, n_boot=2000, ci=0.90, seed=3)
    half = (out["hi"] - out["lo"]) / 2
    expected = 1.6449 * e.std(axis=0, ddof=1) / math.sqrt(p)
    np.testing.assert_allclose(half, expected, rtol=0.15)


def test_eval_prompts_default_and_determinism():
    prompts = make_eval_prompts("linear", 3, 5)
    assert sum(x.shape[0] for x, _ in prompts) == 1280 and len(prompts) == 20
    again = make_eval_prompts("linear", 3, 5)
    torch.testing.assert_close(prompts[7][1], again[7][1])
    odd = make_eval_prompts("linear", 3, 5, n_prompts=100, batch_size=64)
    assert [x.shape[0] for x, _ in odd] == [64, 36]


def test_evaluate_predictor_linear_levels():
    d = 4
    zero = evaluate_predictor(zero_predictions, "linear", d, 10)
    assert zero["n_prompts"] == 1280 and zero["norm"] == d
    # zero predictor on linear: E[y^2]/d = 1 at every k
    assert np.all(np.abs(zero["mean"] - 1.0) < 0.15)
    ls = evaluate_predictor(least_squares_predictions, "linear", d, 10)
    assert np.all(ls["mean"][d:] < 1e-8)
    assert np.all(zero["lo"] <= zero["mean"]) and np.all(zero["mean"] <= zero["hi"])


def test_running_mean_error_matches_prompt_mean_level():
    # linear: E[y|w] = 0, Var(y|w) = ||w||^2, so running mean's error at k is (1 + 1/k) * prompt_mean
    d, n = 5, 8
    lv = reference_levels("linear", d)
    assert lv == pytest.approx({**lv, "zero": 1.0, "constant": 1.0, "prompt_mean": 1.0})
    out = evaluate_predictor(running_mean_predictions, "linear", d, n, n_prompts=4096, n_boot=10)
    k = np.arange(1, n)
    np.testing.assert_allclose(out["mean"][1:], lv["prompt_mean"] * (1 + 1 / k), rtol=0.1)


@pytest.mark.parametrize("name,opts", [("quadratic", {}), ("relu2nn", {}), ("sparse_linear", {}),
                                       ("cubic", {"unit_norm_w": True})])
def test_reference_levels_exact_vs_monte_carlo(name, opts):
    ex = reference_levels(name, 5, **opts)
    mc = reference_levels(name, 5, method="mc", n_prompts=6000, n_points=32, **opts)
    assert ex["method"] == "exact" and mc["method"] == "mc"
    for key in ("zero", "constant", "prompt_mean"):
        assert mc[key] == pytest.approx(ex[key], rel=0.08)


def test_reference_levels_paper_table_and_fallback():
    q = reference_levels("quadratic", 20)
    assert q["zero"] == pytest.approx(16.5125) and q["constant"] == pytest.approx(12.0)
    assert reference_levels("cubic", 5, unit_norm_w=True)["zero"] == pytest.approx(1 / 5)
    tree = reference_levels("decision_tree", 5, n_prompts=3000)
    assert tree["method"] == "mc" and tree["zero"] == pytest.approx(1 / 5, rel=0.1)  # E[y^2] = 1
    with pytest.raises(ValueError, match="'method'"):
        reference_levels("decision_tree", 5, method="exact")
    assert reference_levels("linear", 5, x_dist="skewed", n_prompts=500)["method"] == "mc"


def test_moving_average_valid_mode():
    out = moving_average(np.arange(100.0), window=10)
    assert out.shape == (91,)
    np.testing.assert_allclose(out, np.arange(91.0) + 4.5)


# ============================================================================================
# Retrospective heads
# ============================================================================================


def causal_uniform(t):
    a = torch.tril(torch.ones(t, t, dtype=torch.float64))
    return a / a.sum(-1, keepdim=True)


def own_x_head(t):
    """Every y (odd position) puts all weight on the x just before it; x tokens attend to themselves."""
    a = torch.zeros(t, t, dtype=torch.float64)
    for q in range(t):
        a[q, q - 1 if q % 2 == 1 else q] = 1.0
    return a


def test_retrospective_scores_hand_built():
    t, b = 20, 3
    attn = torch.zeros(2, 3, b, t, t, dtype=torch.float64)
    attn[0, 0] = own_x_head(t)
    attn[0, 1] = causal_uniform(t)
    attn[0, 2] = torch.eye(t)  # attends to itself: score 0
    attn[1, 0] = own_x_head(t)
    attn[1, 0, 0] = torch.eye(t)  # one of three prompts fails: score 2/3
    attn[1, 1, :, 1::2, 0] = 1.0  # each y looks at x_1 only: only pair 0 counts -> 1/10
    attn[1, 2, :, 1:, :] = 0.0
    attn[1, 2, :, 1::2] = own_x_head(t)[1::2] * 0.25  # weight 1/4 on own x
    s = retrospective_scores(attn)
    n = t // 2
    uniform = float(sum(Fraction(1, 2 * i + 2) for i in range(n)) / n)  # row 2i+1 has 2i+2 keys
    expected = torch.tensor([[1.0, uniform, 0.0], [2 / 3, 1 / n, 0.25]], dtype=torch.float64)
    torch.testing.assert_close(s, expected)


def test_retrospective_scores_odd_length_and_numpy():
    t = 21  # trailing query x: 10 complete pairs
    attn = np.broadcast_to(causal_uniform(t).numpy(), (1, 1, 2, t, t))
    s = retrospective_scores(attn)
    assert isinstance(s, np.ndarray) and s.shape == (1, 1)
    assert s[0, 0] == pytest.approx(float(sum(Fraction(1, 2 * i + 2) for i in range(10)) / 10))


def test_notebook_score_reproduces_paper_bug():
    t, layers = 200, 12
    attn = torch.zeros(layers, 1, 1, t, t, dtype=torch.float64)
    attn[:, 0, 0] = own_x_head(t)
    np.testing.assert_allclose(notebook_retrospective_scores(attn).numpy(), 0.5)  # 6 pairs / 12
    np.testing.assert_allclose(retrospective_scores(attn).numpy(), 1.0)
    attn[:, 0, 0] = causal_uniform(t)
    nb = sum(1 / (2 * i + 2) for i in range(6)) / 12
    np.testing.assert_allclose(notebook_retrospective_scores(attn).numpy(), nb)


def test_select_heads_and_mask():
    scores = torch.tensor([[0.1, 0.9, 0.5], [0.9, 0.0, 0.3]])
    assert select_heads(scores, 2, "top") == [(0, 1), (1, 0)]  # tie: earlier position first
    assert select_heads(scores, 3, "bottom") == [(1, 1), (0, 0), (1, 2)]
    r = select_heads(scores, 6, "random", seed=0)
    assert sorted(r) == [(i, j) for i in range(2) for j in range(3)]
    assert r == select_heads(scores, 6, "random", seed=0)
    m = head_mask([(0, 1), (1, 0)], 2, 3)
    torch.testing.assert_close(m, torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))


@pytest.mark.parametrize(
    "call,field",
    [
        (lambda: retrospective_scores(torch.zeros(2, 2, 4, 4)), "'attn'"),
        (lambda: retrospective_scores(torch.zeros(1, 1, 1, 4, 5)), "'attn'"),
        (lambda: select_heads(torch.zeros(2, 2), 5), "'n'"),
        (lambda: select_heads(torch.zeros(2, 2), 1, "middle"), "'which'"),
        (lambda: select_heads(torch.zeros(2, 2), 1, "random"), "'seed'"),
        (lambda: head_mask([(2, 0)], 2, 2), "'layer'"),
    ],
)
def test_head_validation(call, field):
    with pytest.raises(ValueError, match=field):
        call()


def test_module_docstring_mentions_all_pairs():
    assert "**all** pairs" in icl.__doc__ and "1/9" in icl.expected_task_fractions.__doc__
