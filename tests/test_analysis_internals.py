"""Inside the models: sublayer ratios and ablations, the a priori synergy score, analysis figures."""

from __future__ import annotations

import itertools
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from scipy import stats

from jointtask_lib.analysis import models as AM
from jointtask_lib.analysis import sublayers as SL
from jointtask_lib.analysis import synergy as SY
from jointtask_lib.analysis import viz
from jointtask_lib.data import make_datasets
from jointtask_lib.model import GPT, stacked_layer_norm, stacked_linear
from jointtask_lib.tasks import Domain, Op, TaskConfig, listops_domain
from jointtask_lib.train import Arch, RunSpec, TrainConfig, evaluate_stack, target_mask

torch.set_num_threads(1)

TASK = TaskConfig(ops=("ADD", "MAX"), modulus=5, depth=2, max_args=2)
TC = TrainConfig(steps=1, n_train=40, n_test=24)


@pytest.fixture(scope="module")
def tiny():
    spec = RunSpec(task=TASK, arch=Arch(n_embed=8), train=TC, seed=0)
    model = GPT(spec.model_config(), n_models=2, seeds=[0, 1]).eval()
    with torch.no_grad():  # give the norms some life: larger residual projections than the init
        for name, p in model.named_parameters():
            if name.endswith("proj.weight"):
                p.mul_(8.0)
    _, test = make_datasets(TASK, 40, 24, 0)
    _, test1 = make_datasets(TASK, 40, 24, 1)
    return spec, model, [test, test1]


# ---------------------------------------------------------------------------------------------
# sublayer ratios and ablations
# ---------------------------------------------------------------------------------------------


def _hand_ratios(model: GPT, data, i: int) -> np.ndarray:
    """Ratios of model i by hand: run the block step by step, average over scored positions."""
    tokens = data.tokens.unsqueeze(0)
    mask = target_mask(tokens, data.prompt_len.unsqueeze(0), data.vocab.pad_id, "after_eq")[0]
    idx = tokens[..., :-1]
    sl = {k: v[i : i + 1] for k, v in model.state_dict().items()}
    x = F.embedding(idx[0], sl["wte"][0]).unsqueeze(0) + sl["wpe"][:, None, : idx.shape[-1], :]
    blk = model.backbone.blocks[0]
    pre = "backbone.blocks.0."

    def ln(z, name):
        return stacked_layer_norm(z, sl[pre + name + ".weight"], sl[pre + name + ".bias"])

    def lin(z, name, bias=True):
        return stacked_linear(z, sl[pre + name + ".weight"], sl[pre + name + ".bias"] if bias else None)

    out = []
    for _ in range(model.cfg.recurrence):
        h = ln(x, "ln1")
        q, k, v = lin(h, "attn.qkv", bias=False).split(model.cfg.n_embed, dim=-1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(model.cfg.n_embed)
        t = att.shape[-1]
        att = att.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        a = lin(att @ v, "attn.proj")
        r_attn = (a.norm(dim=-1) / x.norm(dim=-1))[0][mask]
        x = x + a
        f = lin(F.gelu(lin(ln(x, "ln2"), "mlp.fc")), "mlp.proj")
        r_mlp = (f.norm(dim=-1) / x.norm(dim=-1))[0][mask]
        x = x + f
        out.append([float(r_attn.mean()), float(r_mlp.mean())])
    assert blk is not None
    return np.array(out)


def test_sublayer_ratios_match_hand_computation(tiny):
    _, model, datas = tiny
    r = SL.sublayer_ratios(model, datas, batch_size=7)  # several batches, uneven last one
    assert r.shape == (2, 4, 1, 2)
    for i in range(2):
        np.testing.assert_allclose(r[i, :, 0, :], _hand_ratios(model, datas[i], i), rtol=1e-5)
    # the same with a limit: only the first examples count
    r8 = SL.sublayer_ratios(model, datas, limit=8)
    sub = [AM.select_op(d, "ADD") for d in datas]
    assert r8.shape == r.shape and not np.allclose(r8, r)
    r_add = SL.sublayer_ratios(model, sub)
    np.testing.assert_allclose(r_add[0, :, 0, :], _hand_ratios(model, sub[0], 0), rtol=1e-5)


def test_ablating_everything_leaves_embeddings_only(tiny):
    spec, model, datas = tiny
    sites = SL.all_sublayers(model)
    assert len(sites) == 8 and sites[0] == (0, 0, "attn") and sites[-1] == (3, 0, "mlp")
    idx = torch.stack([d.tokens[:5, :-1] for d in datas])
    ablated = SL.Ablated(model, sites)
    with torch.no_grad():
        got = ablated(idx)
        x = F.embedding(idx + torch.arange(2).view(2, 1, 1) * model.cfg.vocab_size,
                        model.wte.reshape(-1, model.cfg.n_embed)) + model.wpe[:, None, : idx.shape[-1], :]
        x = stacked_layer_norm(x, model.backbone.ln_f.weight, model.backbone.ln_f.bias)
        want = stacked_linear(x, model.head, None)
        assert torch.allclose(got, want, atol=1e-5)
        assert torch.allclose(SL.Ablated(model, [])(idx), model(idx))
    # the evaluation sees the same model: teacher-forced answer accuracy from these logits
    res = SL.evaluate_ablated(model, datas, spec.vocab(), spec.model_config().block_size, sites,
                              generate_cot=False)
    for i, d in enumerate(datas):
        with torch.no_grad():
            lg = SL.Ablated(model, sites)(torch.stack([dd.tokens[:, :-1] for dd in datas]))[i]
        pred = lg.argmax(-1).gather(-1, (d.lengths - 3).clamp_min(0).unsqueeze(-1)).squeeze(-1)
        assert res[i]["tf_acc"] == pytest.approx(float((pred == d.answer).float().mean()))


def test_ablation_accuracies_and_summary(tiny):
    spec, model, datas = tiny
    vocab, max_len = spec.vocab(), spec.model_config().block_size
    accs = SL.ablation_accuracies(model, datas, vocab, max_len, op="ADD", metric="tf_acc")
    assert set(accs) == {"baseline", *SL.all_sublayers(model)}
    base = evaluate_stack(model, datas, vocab, max_len, generate_cot=False)
    np.testing.assert_allclose(accs["baseline"], [r["per_op"]["ADD"]["tf_acc"] for r in base])
    one = SL.evaluate_ablated(model, datas, vocab, max_len, [(2, 0, "mlp")], generate_cot=False)
    np.testing.assert_allclose(accs[(2, 0, "mlp")], [r["per_op"]["ADD"]["tf_acc"] for r in one])
    ratios = np.zeros((2, 4, 1, 2))
    ratios[..., 0], ratios[..., 1] = 1.0, 3.0
    s = SL.reliance_summary(ratios, accs)
    np.testing.assert_allclose(s["attn_share"], [0.25, 0.25])
    d = SL.drops_by_step(accs, 4)
    np.testing.assert_allclose(s["attn_drop"], d["attn"].mean(1))
    np.testing.assert_allclose(s["attn_minus_mlp_drop"], d["attn"].mean(1) - d["mlp"].mean(1))


def test_bad_ablation_site(tiny):
    _, model, _ = tiny
    with pytest.raises(ValueError, match="out of range"):
        SL.Ablated(model, [(4, 0, "attn")])
    with pytest.raises(ValueError, match="out of range"):
        SL.Ablated(model, [(0, 0, "ffn")])
    with pytest.raises(ValueError, match="triple"):
        SL.Ablated(model, [3])


def test_select_op_and_matched_width():
    _, test = make_datasets(TASK, 40, 24, 0)
    add = AM.select_op(test, "ADD")
    assert 0 < len(add) < len(test) and all(e[0] == "ADD" for e in add.exprs)
    assert (add.task_id == 0).all()
    with pytest.raises(ValueError, match="must be one of"):
        AM.select_op(test, "PROD")

    def rec(ops, w, acc):
        return {"spec": {"task": {"ops": list(ops)}, "arch": {"n_embed": w}},
                "metrics": {"per_op": {"ADD": {"gen_acc": acc}}}}

    recs = [rec(["ADD"], 8, 0.1), rec(["ADD"], 16, 0.9), rec(["ADD"], 32, 1.0),
            rec(["ADD", "MAX"], 8, 0.85), rec(["ADD", "MAX"], 16, 0.7), rec(["ADD", "MAX"], 32, 0.95)]
    assert AM.matched_width(recs, [("ADD",), ("ADD", "MAX")], "ADD", [8, 16, 32])[0] == 32
    assert AM.matched_width(recs, [("ADD",)], "ADD", [8, 16, 32])[0] == 16
    w, why = AM.matched_width(recs, [("ADD",), ("ADD", "MAX")], "ADD", [8, 16, 32], min_acc=0.96)
    assert w == 32 and "largest" in why


# ---------------------------------------------------------------------------------------------
# the a priori synergy score
# ---------------------------------------------------------------------------------------------


def _domain(n: int, tables: dict[str, np.ndarray]) -> Domain:
    """A toy domain: ADD and MAX mod n plus binary ops given by tables, folded left."""

    def fold(t):
        def fn(a, d):
            acc = a[0]
            for x in a[1:]:
                acc = int(t[acc, x])
            return acc
        return fn

    ops = {"ADD": Op("ADD", 1, 3, lambda a, d: sum(a) % n), "MAX": Op("MAX", 1, 3, lambda a, d: max(a))}
    for name, t in tables.items():
        ops[name] = Op(name, 2, 3, fold(t))
    return Domain(family="listops", value_tokens=tuple(str(v) for v in range(n)), ops=ops)


def _relabelled_add(n: int, sigma: np.ndarray, inputs: bool) -> np.ndarray:
    """Table of sigma(sigma^-1 a + sigma^-1 b): an isomorphic copy of ADD (folding it left gives
    sigma(sum of sigma^-1 a_i)), or of sigma(a + b) with ``inputs=False``."""
    inv = np.argsort(sigma)
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    if inputs:
        a, b = inv[a], inv[b]
    return sigma[(a + b) % n]


@pytest.fixture(scope="module")
def toy():
    n = 10
    rng = np.random.default_rng(123)
    sigma = rng.permutation(n)
    up = rng.integers(n, size=(n, n))
    rand = np.triu(up) + np.triu(up, 1).T
    dom = _domain(n, {"ISO": _relabelled_add(n, sigma, True), "RAND": rand})
    dom.ops["OUTREL"] = Op("OUTREL", 1, 3, lambda a, d: int(sigma[sum(a) % n]))  # sigma(a1 + ... + ak)
    return n, dom


def test_closure_of_congruences_is_one(toy):
    n, dom = toy
    feats = SY.value_features(n)
    assert list(feats)[:4] == ["res 2", "blk 2", "res 3", "blk 3"] and len(feats) == 2 * (n // 2 - 1)
    np.testing.assert_array_equal(feats["blk 2"], [0] * 5 + [1] * 5)
    assert SY.closure(dom, "ADD", feats["res 2"]) == pytest.approx(1.0)  # parity of a sum
    assert SY.closure(dom, "ADD", feats["res 5"]) == pytest.approx(1.0)
    assert SY.closure(dom, "MAX", feats["blk 2"]) == pytest.approx(1.0)  # high/low of a max
    assert SY.closure(dom, "ADD", feats["res 3"]) < 0.5  # 3 does not divide 10
    assert SY.null_closure(n, feats["res 2"]) < 0.1


def test_closure_hand_computation():
    # MAX on {0,1,2,3} with the feature "v >= 2", arity 2: the feature of the max is the OR of
    # the operands' features -> fully determined (closure 1).  ADD mod 4 with the same feature:
    # H(out feature) = 1 bit; given (f1, f2): (0,0) -> sums 0..2 -> {0,0,1,0}: P(high)=1/4, ...
    n = 4
    dom = _domain(n, {})
    feat = np.array([0, 0, 1, 1])
    assert SY.closure(dom, "MAX", feat, arities=(2,)) == pytest.approx(1.0)
    counts = np.zeros((4, 2))
    for a, b in itertools.product(range(n), repeat=2):
        counts[feat[a] * 2 + feat[b], feat[(a + b) % n]] += 1
    pj = counts / counts.sum()

    def h(p):
        p = p[p > 0]
        return -(p * np.log2(p)).sum()

    mi = h(pj.sum(1)) + h(pj.sum(0)) - h(pj.ravel())
    assert SY.closure(dom, "ADD", feat, arities=(2,)) == pytest.approx(mi / h(pj.sum(0)))


def test_alignment_and_synergy_on_known_pairs(toy):
    n, dom = toy
    assert SY.alignment(dom, "ADD", "ADD") == pytest.approx(1.0)
    # an isomorphic copy of ADD under a random relabelling shares no labelled structure ...
    assert SY.alignment(dom, "ADD", "ISO") < 0.15
    # ... nor does an independent random table
    assert SY.alignment(dom, "ADD", "RAND") < 0.15
    assert SY.alignment(dom, "ADD", "MAX") > 0.25  # shares partial parity/order structure
    # synergy needs an easier partner: ADD with itself (equally hard) gives 0
    assert SY.easiness(dom, "ADD") == pytest.approx(0.0, abs=1e-9)
    assert SY.easiness(dom, "MAX") > 0.1
    assert SY.synergy(dom, "ADD", ["ADD"]) == 0.0
    assert SY.synergy(dom, "ADD", ["MAX"]) > SY.synergy(dom, "ADD", ["RAND"])
    assert SY.synergy(dom, "ADD", ["MAX", "RAND"]) == pytest.approx(SY.synergy(dom, "ADD", ["MAX"]))


def test_output_mi_on_known_pairs(toy):
    n, dom = toy
    assert SY.output_mi(dom, "ADD", "ADD") == pytest.approx(1.0)
    assert SY.output_mi(dom, "ADD", "OUTREL") == pytest.approx(1.0)  # relabelled outputs: same information
    assert SY.output_mi(dom, "ADD", "RAND", arities=(3,)) < 0.15  # independent table: near 0
    assert SY.output_mi(dom, "ADD", "ISO", arities=(3,)) < 0.3


def test_listops_controls_order():
    """The score's predictions for paper A's pairings mod 10 (a regression guard, not a fit)."""
    dom = listops_domain(10)
    rows = {(r["target"], "+".join(r["partners"])): r for r in SY.synergy_rows(dom, [
        ("ADD", ["PROD"]), ("ADD", ["MAX", "MED"]), ("ADD", ["NADD"]), ("SADD", ["MAX", "MED"])])}
    assert rows[("ADD", "NADD")]["synergy"] == 0.0 and rows[("ADD", "NADD")]["alignment"] > 0.9
    assert rows[("ADD", "PROD")]["synergy"] > rows[("ADD", "MAX+MED")]["synergy"] > rows[("SADD", "MAX+MED")]["synergy"]
    assert rows[("ADD", "NADD")]["output_mi"] > rows[("ADD", "MAX+MED")]["output_mi"]


def test_spearman_test():
    r = SY.spearman_test([1, 2, 3, 4, 5], [2, 4, 5, 9, 10], n_boot=200)
    assert r["rho"] == pytest.approx(1.0) and r["exact"] and r["p"] == pytest.approx(2 / 120)
    x = np.array([3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0, 5.5, 3.5])
    y = np.array([2.0, 7.0, 1.0, 8.0, 2.8, 1.0, 3.0, 5.0, 9.0, 0.5])
    r = SY.spearman_test(x, y, n_perm=2000, n_boot=300)
    assert r["rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert not r["exact"] and 0.0 < r["p"] <= 1.0 and r["lo"] <= r["rho"] <= r["hi"]
    assert math.isnan(SY.spearman_test([1, 2], [3, 4])["rho"])
    with pytest.raises(ValueError, match="equal length"):
        SY.spearman_test([1, 2, 3], [1, 2])


def test_verdict_correlation():
    from jointtask_lib.scorecard import verdict_correlation

    assert verdict_correlation(0.9, 0.01) == "reproduced"
    assert verdict_correlation(-0.9, 0.01) == "not reproduced"
    assert verdict_correlation(-0.9, 0.01, expected_sign=-1) == "reproduced"
    assert verdict_correlation(0.9, 0.2) == "inconclusive"
    assert verdict_correlation(float("nan"), 1.0) == "inconclusive"
    with pytest.raises(ValueError, match="expected_sign"):
        verdict_correlation(0.5, 0.01, expected_sign=2)


# ---------------------------------------------------------------------------------------------
# figures and explorers
# ---------------------------------------------------------------------------------------------


def test_viz_functions_return_figures(tiny):
    spec, model, datas = tiny
    rng = np.random.default_rng(0)
    E = {"a": rng.standard_normal((5, 8)), "b": rng.standard_normal((5, 8))}
    figs = [
        viz.plot_embedding_grid(E, 5, color_by="residue", residue_mod=2),
        viz.plot_scores({"a": {"parity": (0.1, 0.0, 0.2), "order": (0.5, 0.4, 0.6)},
                         "b": {"parity": (0.3, 0.2, 0.4), "order": (0.2, 0.1, 0.3)}},
                        {"parity": (0.0, 0.1), "order": (0.3, 0.6)}),
        viz.plot_scores_vs_width({"ADD": {8: [0.1, 0.2], 16: [0.3]}, "ADD+MAX": {8: [0.0], 16: [0.5, 0.6]}},
                                 null=(0.0, 0.1)),
        viz.plot_sublayer_ratios({"ADD": rng.random((2, 4, 1, 2)), "joint": rng.random((2, 4, 1, 2))}),
        viz.plot_ablation_drops({"ADD": {"attn": rng.random((2, 4)), "mlp": rng.random((2, 4))}}),
        viz.plot_entropy_vs_transition([{"op": "ADD", "norm_entropy": 1.0, "transition": 3e4, "kind": "above"},
                                        {"op": "MAX", "norm_entropy": 0.8, "transition": 5e3, "kind": "estimate"}]),
        viz.plot_synergy_vs_reduction([{"label": "ADD+MAX", "synergy": 0.05, "reduction": 2.0, "kind": "estimate"},
                                       {"label": "ADD+NADD", "synergy": 0.0, "reduction": 0.8, "kind": "below"}]),
    ]
    vocab = spec.vocab()
    text = datas[0].texts([0])[0]
    prompt = text[: text.index("=") + 1]
    tr = viz.trace_expression(model, vocab, prompt, spec.model_config().block_size, index=1)
    assert tr["tokens"][: tr["prompt_len"]] == prompt.split(" ")
    t = len(tr["tokens"])
    assert tr["attn"].shape == (4, t, t)
    np.testing.assert_allclose(tr["attn"].sum(-1), 1.0, atol=1e-5)  # rows are distributions
    assert np.allclose(np.triu(tr["attn"], 1), 0.0)  # causal
    figs += [viz.plot_attention_trace(tr), viz.plot_attention_trace(tr, [2])]
    assert all(isinstance(f, Figure) for f in figs)
    with pytest.raises(ValueError, match="first '='"):
        viz.trace_expression(model, vocab, "( ADD 1 2 )", 20)


def test_explorers_build_headless(tiny):
    pytest.importorskip("ipywidgets")
    spec, model, datas = tiny
    rng = np.random.default_rng(0)
    w1 = viz.embedding_explorer({"a": rng.standard_normal((5, 8))}, 5)
    text = datas[0].texts([0])[0]
    w2 = viz.cot_explorer({"m0": (model, 0), "m1": (model, 1)}, spec.vocab(), [text[: text.index("=") + 1]],
                          spec.model_config().block_size)
    assert w1.children and w2.children
