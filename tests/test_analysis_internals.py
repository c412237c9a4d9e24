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


def test_ablated_does_not_mutate_the_callers_probe(tiny):
    from jointtask_lib.model import Probe

    _, model, datas = tiny
    idx = torch.stack([d.tokens[:3, :-1] for d in datas])
    probe = Probe(ablate={(1, 0, "mlp")})
    with torch.no_grad():
        got = SL.Ablated(model, [(0, 0, "attn")])(idx, probe)
        want = model(idx, Probe(ablate={(1, 0, "mlp"), (0, 0, "attn")}))
    assert torch.allclose(got, want)  # both sets were applied during the pass
    assert probe.ablate == {(1, 0, "mlp")}  # ... and the caller's set is as it was
    assert set(probe.ratios) == set(SL.all_sublayers(model))  # the probe still recorded the pass


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
    assert AM.matched_width(recs, [("ADD",), ("ADD", "MAX")], "ADD", [8, 16, 32]) == (32, AM.matched_width(
        recs, [("ADD",), ("ADD", "MAX")], "ADD", [8, 16, 32]).why, True)
    choice = AM.matched_width(recs, [("ADD",)], "ADD", [8, 16, 32])
    assert choice.width == 16 and choice.learned
    # no width qualifies: the largest width, flagged as not learned
    w, why, learned = AM.matched_width(recs, [("ADD",), ("ADD", "MAX")], "ADD", [8, 16, 32], min_acc=0.96)
    assert w == 32 and "largest" in why and learned is False
    assert AM.learned_at(recs, [("ADD",)], "ADD", 16) and not AM.learned_at(recs, [("ADD", "MAX")], "ADD", 16)
    assert not AM.learned_at(recs, [("ADD",)], "ADD", 64)  # no runs at that width: not learned
    with pytest.raises(ValueError, match="'widths'"):
        AM.matched_width(recs, [("ADD",)], "ADD", [])


def test_split_by_label():
    labels = ["single", "single", "joint", "joint", "joint"]
    arr = np.arange(10).reshape(5, 2)
    out = AM.split_by_label(arr, labels)
    assert list(out) == ["single", "joint"]
    np.testing.assert_array_equal(out["single"], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(out["joint"], [[4, 5], [6, 7], [8, 9]])
    d = AM.split_by_label({"a": np.arange(5), "b": np.arange(5) * 10.0}, labels)
    np.testing.assert_array_equal(d["joint"]["b"], [20.0, 30.0, 40.0])
    np.testing.assert_array_equal(d["single"]["a"], [0, 1])
    with pytest.raises(ValueError, match="one entry per model"):
        AM.split_by_label(np.arange(4), labels)


# ---------------------------------------------------------------------------------------------
# real (tiny) trained runs: specs_for, load_stack, value_embeddings, load_conditions
# ---------------------------------------------------------------------------------------------

RUN_TC = TrainConfig(steps=2, n_train=40, n_test=24, eval_every=1, eval_size=8, warmup=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from jointtask_lib.runs import train_or_load
    from jointtask_lib.sweep import Sweep

    root = tmp_path_factory.mktemp("runs")
    mixes = [("ADD",), ("ADD", "MAX")]
    specs = [RunSpec(task=TaskConfig(ops=m, modulus=5, depth=2, max_args=2), arch=Arch(n_embed=w), train=RUN_TC,
                     seed=s) for m in mixes for w in (8, 12) for s in (1, 0)]
    records = train_or_load(root, specs, device="cpu")
    sw = Sweep(name="tiny", description="", preset="smoke", source="<test>", specs=tuple(specs), mixes=tuple(mixes),
               widths=(8, 12), seeds=(0, 1), sizes=(5,))
    return root, sw, specs, records


def test_specs_for_filters_and_sorts_by_seed(trained):
    _, sw, specs, _ = trained
    got = AM.specs_for(sw, ops=("ADD", "MAX"), width=12, size=5)
    assert [s.seed for s in got] == [0, 1]
    assert all(s.task.ops == ("ADD", "MAX") and s.arch.n_embed == 12 for s in got)
    assert AM.specs_for(specs, ops=("ADD",), width=8) == sorted(
        [s for s in specs if s.task.ops == ("ADD",) and s.arch.n_embed == 8], key=lambda s: s.seed)
    assert AM.specs_for(sw, ops=("ADD",), width=8, size=7) == []
    assert AM.specs_for(sw, ops=("MAX", "ADD"), width=8) == []  # order of the mix matters
    assert AM.specs_for(sw, ops=("ADD",), width=8, init=True) == []


def test_load_stack_and_value_embeddings_in_value_order(trained):
    from jointtask_lib.runs import run_dir

    root, sw, _, _ = trained
    specs = AM.specs_for(sw, ops=("ADD",), width=8) + AM.specs_for(sw, ops=("ADD", "MAX"), width=8)
    model = AM.load_stack(root, specs)
    assert model.n_models == 4
    vocab = specs[0].vocab()
    E = AM.value_embeddings(model, specs[0])
    assert E.shape == (4, 5, 8) and E.dtype == np.float64
    for i, s in enumerate(specs):
        state = torch.load(run_dir(root, s) / "model.pt", map_location="cpu", weights_only=True)
        # model i of the stack is run i, and row v of its value embedding is the token "v"
        for v in range(5):
            np.testing.assert_allclose(E[i, v], state["wte"][0, vocab.stoi[str(v)]].double().numpy())
    with pytest.raises(ValueError, match="'specs'"):
        AM.load_stack(root, [])


def test_load_conditions_and_condition_stack(trained):
    root, sw, _, records = trained
    mixes = {"single": ["ADD"], "joint": ["ADD", "MAX"]}
    comp = AM.load_conditions(sw, root, mixes, "ADD", size=5, min_acc=0.0)
    assert comp.width == 8 and comp.learned  # min_acc 0: the smallest width qualifies
    by_key = {r["key"]: r for r in records}
    for label, mix in mixes.items():
        assert [s.seed for s in comp.specs[label]] == [0, 1] and all(s.task.ops == tuple(mix) for s in comp.specs[label])
        assert comp.accs[label] == [by_key[s.key()]["metrics"]["per_op"]["ADD"]["gen_acc"] for s in comp.specs[label]]
    strict = AM.load_conditions(sw, root, mixes, "ADD", size=5, min_acc=1.01)
    assert strict.width == 12 and not strict.learned and "NOT learned" in strict.why
    given = AM.load_conditions(sw, root, mixes, "ADD", size=5, width=12, min_acc=1.01)
    assert given.width == 12 and not given.learned and "parameter" in given.why
    assert "mod 5: width 8" in comp.describe() and "single" in comp.describe()
    more = comp.with_condition("other", comp.specs["single"], [0.5, 0.7])
    assert list(more.specs) == ["single", "joint", "other"] and "other" not in comp.specs
    assert more.learned_by("single", "joint", "other")  # min_acc 0
    half = AM.load_conditions(sw, root, mixes, "ADD", size=5, width=8, min_acc=0.6)
    half = half.with_condition("a", comp.specs["single"], [0.5, 0.8]).with_condition("b", comp.specs["single"], [0.5, 0.6])
    assert half.learned_by("a") and not half.learned_by("b") and not half.learned_by("a", "b")
    model, labels, specs = AM.condition_stack(root, comp)
    assert labels == ["single", "single", "joint", "joint"] and specs == comp.specs["single"] + comp.specs["joint"]
    assert model.n_models == 4
    with pytest.raises(ValueError, match="'size'"):
        AM.load_conditions(sw, root, mixes, "ADD", size=7)
    with pytest.raises(ValueError, match="not trained"):
        AM.load_conditions(sw, root / "elsewhere", mixes, "ADD", size=5)


def test_load_analysis_sweep_checks_mixes_and_width():
    sw = AM.load_analysis_sweep("joint_training", "smoke", {"single": ["ADD"]}, width=0)
    assert ("ADD",) in sw.mixes
    with pytest.raises(ValueError, match="'joint'.*must be a mix of sweep joint_training"):
        AM.load_analysis_sweep("joint_training", "smoke", {"joint": ["ADD", "RTAB"]})
    with pytest.raises(ValueError, match="'width' must be 0 or one of"):
        AM.load_analysis_sweep("joint_training", "smoke", {"single": ["ADD"]}, width=7)


def test_shared_examples():
    _, a = make_datasets(TASK, 40, 24, 0)
    _, b = make_datasets(TASK, 40, 24, 1)
    got = AM.shared_examples([a, b])
    common = [e for e in dict.fromkeys(a.exprs) if e in set(b.exprs)]
    assert len(got) == len(common)
    for (i, j), e in zip(got, common):
        assert a.exprs[i] == e and b.exprs[j] == e
    assert AM.shared_examples([a, b], limit=1) == got[:1]
    assert AM.shared_examples([a]) == [[a.exprs.index(e)] for e in dict.fromkeys(a.exprs)]
    with pytest.raises(ValueError, match="'datas'"):
        AM.shared_examples([])


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


def _brute_spearman_p(x, y) -> float:
    """Two-sided permutation p-value by brute force with scipy's tie-corrected Spearman."""
    obs = abs(stats.spearmanr(x, y).statistic)
    vals = [abs(stats.spearmanr(x, np.asarray(y)[list(p)]).statistic) for p in itertools.permutations(range(len(y)))]
    return float(np.mean(np.asarray(vals) >= obs - 1e-9))


@pytest.mark.parametrize("x, y", [
    ([0.05, 0.05, 0.05, 0.0, 0.1], [2.0, 1.5, 3.0, 0.8, 4.0]),      # tied scores (as ADD+MAX, ADD+MIN, ADD+MAX+MED)
    ([0.0, 0.0, 0.2, 0.2, 0.3, 0.3], [1.0, 1.0, 2.0, 1.0, 3.0, 3.0]),  # ties on both sides
    ([1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 1.0, 2.0]),
])
def test_spearman_test_exact_with_ties(x, y):
    r = SY.spearman_test(x, y, n_boot=50)
    assert r["rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert r["exact"] and r["p"] == pytest.approx(_brute_spearman_p(x, y))
    assert r["ties"] == (len(set(x)) < len(x) or len(set(y)) < len(y))


def test_spearman_test_monte_carlo_p_is_never_zero():
    x = np.arange(12.0)
    r = SY.spearman_test(x, x ** 2, n_perm=500, n_boot=0)
    assert not r["exact"] and r["rho"] == pytest.approx(1.0)
    assert r["p"] == pytest.approx(1 / 501)  # no shuffle reaches rho = 1: (0 + 1) / (500 + 1)
    assert math.isnan(r["lo"]) and r["n_boot_used"] == 0


def test_as_point_tied_groups_and_describe_correlation():
    from types import SimpleNamespace as NS

    assert SY.as_point(None) == (None, None)
    assert SY.as_point(NS(kind="estimate", value=2.5, bound=None)) == (2.5, "estimate")
    assert SY.as_point(NS(kind="above", value=None, bound=4e3)) == (4e3, "above")
    assert SY.as_point(NS(kind="below", value=None, bound=1.2)) == (1.2, "below")
    assert SY.as_point(NS(kind="inconclusive", value=None, bound=None)) == (None, "inconclusive")
    rows = [{"label": "a", "s": 0.1}, {"label": "b", "s": 0.2}, {"label": "c", "s": 0.1 + 1e-12},
            {"label": "d", "s": 0.2}, {"label": "e", "s": 0.3}]
    assert SY.tied_groups(rows, "s") == [["a", "c"], ["b", "d"]]
    assert SY.tied_groups(rows[:2], "s") == []
    none = SY.describe_correlation(SY.spearman_test([1, 2], [3, 4]), "the score", "reduction")
    assert "no correlation" in none and "says nothing" in none
    strong = SY.spearman_test(np.arange(8.0), np.arange(8.0) + 1, n_boot=50)
    text = SY.describe_correlation(strong, "the score", "reduction")
    assert "rho = 1.00" in text and "exact permutation p = 0.000" in text and "beyond chance" in text
    against = SY.describe_correlation(SY.spearman_test(np.arange(8.0), -np.arange(8.0), n_boot=0), "s", "r")
    assert "against" in against
    weak = SY.spearman_test([1, 2, 3, 4], [2, 1, 4, 3], n_boot=50)
    assert "not distinguishable" in SY.describe_correlation(weak, "s", "r")


def test_correlation_claim_rows():
    kw = dict(id="x", claim="c", paper_value="open question", what="a, b", units="pairings", preset="smoke",
              notebook="08_output_structure")
    strong = SY.spearman_test(np.arange(8.0), np.arange(8.0) ** 3, n_boot=0)
    row = SY.correlation_claim(test=strong, **kw)
    assert row["verdict"] == "reproduced" and row["ours"].startswith("Spearman rho(a, b) = 1.00, p = 0.000, n = 8 pairings")
    assert SY.correlation_claim(test=strong, expected_sign=-1, **kw)["verdict"] == "not reproduced"
    few = SY.correlation_claim(test=SY.spearman_test([1.0, 2.0], [2.0, 1.0]), **kw)
    assert few["verdict"] == "inconclusive" and "n = 2 pairings" in few["ours"]
    tied = SY.spearman_test([0.1, 0.1, 0.2, 0.3], [1.0, 2.0, 3.0, 4.0], n_boot=0)
    assert "tied values share ranks" in SY.correlation_claim(test=tied, **kw)["ours"]


def test_value_feature_kinds_change_the_score():
    n = 10
    assert list(SY.value_features(n, kinds=("res",))) == [f"res {q}" for q in range(2, 6)]
    assert list(SY.value_features(n, kinds=("blk",))) == [f"blk {q}" for q in range(2, 6)]
    dom = listops_domain(n)
    prof = SY.structure_profile(dom, "MAX", kinds=("blk",))
    assert set(prof) == {f"blk {q}" for q in range(2, 6)}
    full = SY.structure_profile(dom, "MAX")
    assert all(prof[k] == full[k] for k in prof)  # a feature's value does not depend on the others
    # with blocks only, ADD (whose structure is residues) shares nothing with MAX beyond chance
    assert SY.alignment(dom, "ADD", "MAX", kinds=("blk",)) < SY.alignment(dom, "ADD", "MAX")
    with pytest.raises(ValueError, match="'kinds'"):
        SY.value_features(n, kinds=("res", "fourier"))
    with pytest.raises(ValueError, match="'kinds'"):
        SY.value_features(n, kinds=())


def test_listops_synergy_ties_at_mod_10():
    """The score's best-partner rule makes a set tie with its best member, and MAX / MIN tie:
    notebook 08 reports such ties (a regression guard on that statement)."""
    rows = SY.synergy_rows(listops_domain(10), [("ADD", ["MAX"]), ("ADD", ["MIN"]), ("ADD", ["MED"]),
                                                ("ADD", ["MAX", "MED"])])
    by = {"+".join(r["partners"]): r["synergy"] for r in rows}
    assert by["MAX+MED"] == pytest.approx(max(by["MAX"], by["MED"]))
    assert by["MAX"] == pytest.approx(by["MIN"])
    labelled = [{"label": k, "synergy": v} for k, v in by.items()]
    groups = SY.tied_groups(labelled, "synergy")
    assert any({"MAX", "MIN"} <= set(g) for g in groups)


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


def _bars(ax):
    from matplotlib.container import BarContainer

    return [c for c in ax.containers if isinstance(c, BarContainer)]


def test_plot_embedding_grid_draws_each_runs_cosines_and_pca():
    from jointtask_lib.analysis.embeddings import cosine_matrix, pca_of_cosine

    rng = np.random.default_rng(0)
    E = {"a": rng.standard_normal((5, 8)), "b": rng.standard_normal((5, 8))}
    fig = viz.plot_embedding_grid(E, 5, color_by="residue", residue_mod=2)
    assert isinstance(fig, Figure) and len(fig.axes) == 4  # two rows of (heatmap, scatter); colour bars are insets
    for row, label in enumerate(E):
        ax_cos, ax_pca = fig.axes[2 * row], fig.axes[2 * row + 1]
        np.testing.assert_allclose(ax_cos.images[0].get_array(), cosine_matrix(E[label]))
        np.testing.assert_allclose(ax_pca.collections[0].get_offsets(), pca_of_cosine(E[label])[0])
        assert ax_cos.get_title().startswith(label)
    with pytest.raises(ValueError, match="'embeddings'"):
        viz.plot_embedding_grid({}, 5)


def test_plot_scores_bars_whiskers_and_null_band():
    scores = {"a": {"parity": (0.1, 0.0, 0.2), "order": (0.5, 0.4, 0.65)},
              "b": {"parity": (0.3, 0.2, 0.4), "order": (0.2, 0.1, 0.3)}}
    fig = viz.plot_scores(scores, {"parity": (0.0, 0.1), "order": (0.3, 0.6)})
    ax = fig.axes[0]
    bars = _bars(ax)
    assert len(bars) == 2
    for c, label in zip(bars, scores):
        np.testing.assert_allclose([p.get_height() for p in c.patches], [scores[label][k][0] for k in ("parity", "order")])
        # whiskers run from lo to hi
        segs = c.errorbar.lines[2][0].get_segments()
        np.testing.assert_allclose([(sg[0][1], sg[1][1]) for sg in segs],
                                   [scores[label][k][1:] for k in ("parity", "order")])
    # condition b's bars sit to the right of a's in each group
    assert all(pb.get_x() > pa.get_x() for pa, pb in zip(bars[0].patches, bars[1].patches))
    from matplotlib.collections import PolyCollection

    bands = [np.asarray(c.get_paths()[0].vertices) for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    for v, (mu, q95) in zip(bands, [(0.0, 0.1), (0.3, 0.6)]):
        assert v[:, 1].min() == pytest.approx(mu) and v[:, 1].max() == pytest.approx(q95)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["parity", "order"]


def test_plot_scores_vs_width_lines_are_seed_means():
    vals = {"ADD": {8: [0.1, 0.2], 16: [0.3]}, "ADD+MAX": {8: [0.0], 16: [0.5, 0.6]}}
    fig = viz.plot_scores_vs_width(vals, null=(0.0, 0.1))
    ax = fig.axes[0]
    for label, by_w in vals.items():
        (line,) = [ln for ln in ax.lines if ln.get_label() == label]
        np.testing.assert_allclose(line.get_xdata(), [8, 16])
        np.testing.assert_allclose(line.get_ydata(), [np.mean(by_w[8]), np.mean(by_w[16])])
    dots = sorted(float(y) for ln in ax.lines if ln.get_label().startswith("_") for y in ln.get_ydata())
    assert dots == sorted([0.1, 0.2, 0.3, 0.0, 0.5, 0.6])  # every seed drawn once
    assert ax.get_xscale() == "log"


def test_plot_sublayer_ratios_and_ablation_drops_data():
    rng = np.random.default_rng(0)
    ratios = {"ADD": rng.random((2, 4, 1, 2)), "joint": rng.random((3, 4, 1, 2))}
    fig = viz.plot_sublayer_ratios(ratios)
    for j, ax in enumerate(fig.axes[:2]):  # attention, FFN
        for label, r in ratios.items():
            (line,) = [ln for ln in ax.lines if ln.get_label() == label]
            np.testing.assert_allclose(line.get_xdata(), [1, 2, 3, 4])
            np.testing.assert_allclose(line.get_ydata(), r[..., j].mean(-1).mean(0))
        assert len(ax.lines) == sum(r.shape[0] for r in ratios.values()) + len(ratios)  # seeds + means
    drops = {"ADD": {"attn": rng.random((2, 4)), "mlp": rng.random((2, 4))},
             "joint": {"attn": -rng.random((2, 4)), "mlp": rng.random((2, 4))}}
    fig = viz.plot_ablation_drops(drops)
    for ax, kind in zip(fig.axes[:2], ("attn", "mlp")):
        bars = _bars(ax)
        for c, label in zip(bars, drops):
            np.testing.assert_allclose([p.get_height() for p in c.patches], drops[label][kind].mean(0))


def test_plot_entropy_and_synergy_points():
    rows = [{"op": "ADD", "norm_entropy": 1.0, "transition": 3e4, "kind": "above"},
            {"op": "MAX", "norm_entropy": 0.8, "transition": 5e3, "kind": "estimate"},
            {"op": "MED", "norm_entropy": 0.9, "transition": None, "kind": None}]
    ax = viz.plot_entropy_vs_transition(rows).axes[0]
    pts = [(ln.get_xdata()[0], ln.get_ydata()[0], ln.get_marker()) for ln in ax.lines]
    assert pts == [(1.0, 3e4, "^"), (0.8, 5e3, "o")]  # the row without a transition is not drawn
    assert [t.get_text() for t in ax.texts] == ["ADD", "MAX"] and ax.get_yscale() == "log"
    srows = [{"label": "ADD+MAX", "synergy": 0.05, "reduction": 2.0, "kind": "estimate"},
             {"label": "ADD+NADD", "synergy": 0.0, "reduction": 0.8, "kind": "below"},
             {"label": "ADD+MED", "synergy": 0.02, "reduction": None, "kind": "inconclusive"}]
    ax = viz.plot_synergy_vs_reduction(srows).axes[0]
    pts = [(ln.get_xdata()[0], ln.get_ydata()[0], ln.get_marker()) for ln in ax.lines if len(ln.get_xdata()) == 1]
    assert pts == [(0.05, 2.0, "o"), (0.0, 0.8, "v")]
    assert [t.get_text() for t in ax.texts] == ["ADD+MAX", "ADD+NADD"]


def test_plot_structure_profiles_image_is_the_profiles():
    prof = {"ADD": {"res 2": 1.0, "blk 2": 0.1}, "MAX": {"res 2": 0.0, "blk 2": 0.9}}
    ax = viz.plot_structure_profiles(prof).axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), [[1.0, 0.1], [0.0, 0.9]])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["ADD", "MAX"]


def test_trace_expression_and_attention_plot(tiny):
    spec, model, datas = tiny
    vocab = spec.vocab()
    max_len = spec.model_config().block_size
    text = datas[0].texts([0])[0]
    prompt = text[: text.index("=") + 1]
    tr = viz.trace_expression(model, vocab, prompt, max_len, index=1)
    assert tr["tokens"][: tr["prompt_len"]] == prompt.split(" ")
    t = len(tr["tokens"])
    assert tr["attn"].shape == (4, t, t)
    np.testing.assert_allclose(tr["attn"].sum(-1), 1.0, atol=1e-5)  # rows are distributions
    assert np.allclose(np.triu(tr["attn"], 1), 0.0)  # causal
    # the tokens are model 1's own greedy decoding: re-run the model on them and compare
    ids = torch.tensor([vocab.stoi[w] for w in tr["tokens"]]).view(1, 1, -1).expand(2, 1, -1)
    with torch.no_grad():
        logits = model(ids)
    nxt = logits[1, 0, tr["prompt_len"] - 1 : t - 1].argmax(-1).tolist()
    assert nxt == ids[1, 0, tr["prompt_len"] :].tolist()
    fig = viz.plot_attention_trace(tr, [2])
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), tr["attn"][2])
    fig = viz.plot_attention_trace(tr)
    assert len(fig.axes) == 4
    for s, ax in enumerate(fig.axes):
        np.testing.assert_allclose(ax.images[0].get_array(), tr["attn"][s])
    with pytest.raises(ValueError, match="first '='"):
        viz.trace_expression(model, vocab, "( ADD 1 2 )", 20)


def test_embedding_explorer_updates_on_widget_changes():
    pytest.importorskip("ipywidgets")
    from jointtask_lib.analysis.embeddings import cosine_matrix

    rng = np.random.default_rng(0)
    E = {"a": rng.standard_normal((6, 8)), "b": rng.standard_normal((6, 8))}
    box = viz.embedding_explorer(E, 6)
    run, color, mod = box.children[0].children
    first = box.state["figure"]
    assert box.state["run"] == "a" and box.state["color_by"] == "value" and box.state["residue_mod"] is None
    np.testing.assert_allclose(first.axes[0].images[0].get_array(), cosine_matrix(E["a"]))
    run.value = "b"
    assert box.state["figure"] is not first and box.state["run"] == "b"
    np.testing.assert_allclose(box.state["figure"].axes[0].images[0].get_array(), cosine_matrix(E["b"]))
    color.value = "residue"
    mod.value = 3
    fig = box.state["figure"]
    assert box.state["color_by"] == "residue" and box.state["residue_mod"] == 3
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == ["≡ 0 (mod 3)", "≡ 1 (mod 3)", "≡ 2 (mod 3)"]
    # points of one residue class share a colour, different classes differ
    fc = fig.axes[1].collections[0].get_facecolors()
    assert np.allclose(fc[0], fc[3]) and not np.allclose(fc[0], fc[1])
    color.value = "parity"
    assert [t.get_text() for t in box.state["figure"].axes[1].get_legend().get_texts()] == ["even", "odd"]


def test_cot_explorer_updates_on_widget_changes(tiny):
    pytest.importorskip("ipywidgets")
    spec, model, datas = tiny
    vocab, max_len = spec.vocab(), spec.model_config().block_size
    prompts = [t[: t.index("=") + 1] for t in datas[0].texts([0, 1])]
    box = viz.cot_explorer({"m0": (model, 0), "m1": (model, 1)}, vocab, prompts, max_len)
    (pick, step), expr, text, _ = box.children[0].children, *box.children[1:]
    want = viz.trace_expression(model, vocab, prompts[0], max_len, index=0)
    assert box.state["model"] == "m0" and box.state["step"] == 0 and box.state["trace"]["text"] == want["text"]
    np.testing.assert_allclose(box.state["figure"].axes[0].images[0].get_array(), want["attn"][0])
    assert want["text"] in text.value
    step.value = 3
    assert box.state["step"] == 3
    np.testing.assert_allclose(box.state["figure"].axes[0].images[0].get_array(), want["attn"][3])
    pick.value = "m1"
    want1 = viz.trace_expression(model, vocab, prompts[0], max_len, index=1)
    assert box.state["model"] == "m1"
    np.testing.assert_allclose(box.state["figure"].axes[0].images[0].get_array(), want1["attn"][3])
    expr.value = prompts[1]
    assert box.state["trace"]["tokens"][: box.state["trace"]["prompt_len"]] == prompts[1].split(" ")
    expr.value = "( ADD 1 2 )"  # no '=': reported, the last view stays
    assert "cannot run" in text.value and "first '='" in box.state["error"]
