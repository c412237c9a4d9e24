"""Direct tests for bugs the rest of the suite could not see (issue 19).

Each test names the single-line mutation of the library it is written to catch; the expected
values are computed here, independently of the code under test (from the token text, from a
reference attention written with ``torch.nn.MultiheadAttention``, from the dataclass fields).
"""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from jointtask_lib import experiments as E
from jointtask_lib.data import Vocab, make_datasets
from jointtask_lib.paper_b.icl_model import ICLConfig, ICLModel
from jointtask_lib.model import GPT, ModelConfig
from jointtask_lib.tasks import COT_MODES, MIXING_MODES, SAMPLING_MODES, TaskConfig
from jointtask_lib.train import Arch, RunSpec, TrainConfig, _should_stop, per_model_loss, target_mask
from jointtask_lib.transition import estimate_transition, reduction_factor

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------
# Early stopping: "converged" needs two evaluations in a row at or above converge_acc
# (mutation caught: dropping the curve[-2] condition, or joining the two with `or`)
# ------------------------------------------------------------------------------------------------


def _curve(seq_accs, tf=0.9, every=10):
    return [{"step": every * (i + 1), "seq_acc": a, "tf_acc": tf} for i, a in enumerate(seq_accs)]


@pytest.mark.parametrize(
    "seq_accs, expect",
    [
        ([0.5, 0.995], None),  # first time above: not yet
        ([0.995, 0.5], None),  # above, then fell back
        ([0.995, 0.98], None),  # just below the line at the latest evaluation
        ([0.5, 0.995, 0.98, 0.995], None),  # above twice, but never in a row
        ([0.5, 0.99, 0.99], "converged"),  # exactly at the line counts ("at or above")
        ([0.5, 0.995, 1.0], "converged"),
        ([1.0, 1.0], "converged"),
        ([1.0], None),  # one evaluation can never be two in a row
    ],
)
def test_converged_needs_two_consecutive_evaluations(seq_accs, expect):
    # step 20 of 1,000 is far before min_frac, so only the convergence rule can fire
    cfg = TrainConfig(steps=1000, eval_every=10, converge_acc=0.99, min_frac=0.5)
    step = 10 * len(seq_accs)
    assert _should_stop(_curve(seq_accs), step, cfg, chance=0.1) == expect


def test_convergence_rule_respects_early_stop_off():
    cfg = TrainConfig(steps=1000, eval_every=10, converge_acc=0.99, early_stop=False)
    assert _should_stop(_curve([1.0, 1.0]), 20, cfg, chance=0.1) is None


# ------------------------------------------------------------------------------------------------
# Loss mask: every token after the first '=' (answer and 'e' included), nothing of the prompt,
# no padding.  Computed here from the token text.
# (mutation caught: `pos >= prompt_len` -> `pos > prompt_len`, which drops the answer of
# "( ADD 1 2 ) = 3 e" from the loss)
# ------------------------------------------------------------------------------------------------


def _mask_from_text(texts: list[str], length: int) -> torch.Tensor:
    """[N, length-1]: target j (token j+1) counts iff it comes after the first '=' and is not pad."""
    out = torch.zeros(len(texts), length - 1, dtype=torch.bool)
    for i, text in enumerate(texts):
        toks = text.split(" ")
        first_eq = toks.index("=")
        for j in range(1, len(toks)):
            out[i, j - 1] = j > first_eq
    return out


def test_loss_mask_is_every_token_after_the_first_eq_computed_from_the_text():
    task = TaskConfig(ops=("ADD",), modulus=5, depth=1, min_args=2, max_args=2)
    v = Vocab.for_task(task)
    texts = ["( ADD 1 2 ) = 3 e"]
    toks = v.pad_batch([v.encode(t) for t in texts], length=10)  # two pads at the end
    plen = torch.tensor([[t.split(" ").index("=") + 1 for t in texts]])
    got = target_mask(toks.unsqueeze(0), plen, v.pad_id, "after_eq")[0]
    expect = _mask_from_text(texts, 10)
    assert got.tolist() == expect.tolist()
    # the answer '3' (token 6) is a target: it is predicted from position 5, the '='
    assert bool(got[0, 5]) and int(got[0].sum()) == 2  # '3' and 'e', nothing else
    # "full" trains on every non-pad target
    full = target_mask(toks.unsqueeze(0), plen, v.pad_id, "full")[0]
    assert full[0].tolist() == [True] * 7 + [False] * 2


def test_loss_mask_on_real_cot_examples_matches_the_text():
    task = TaskConfig(ops=("ADD", "MAX"), modulus=7, depth=2)
    train, _ = make_datasets(task, n_train=64, n_test=8, seed=3)
    texts = train.texts()
    assert any(t.count("=") > 1 for t in texts)  # real chains of thought, several '='
    # the data's prompt length is the text's first '=' (inclusive)
    assert train.prompt_len.tolist() == [t.split(" ").index("=") + 1 for t in texts]
    got = target_mask(train.tokens.unsqueeze(0), train.prompt_len.unsqueeze(0), train.vocab.pad_id, "after_eq")[0]
    assert got.tolist() == _mask_from_text(texts, train.tokens.shape[1]).tolist()


def test_loss_is_the_mean_cross_entropy_over_the_text_mask():
    """per_model_loss equals the mean CE over the targets after the first '=' (mask from the text)."""
    task = TaskConfig(ops=("ADD",), modulus=5, depth=2)
    train, _ = make_datasets(task, n_train=16, n_test=4, seed=0)
    cfg = ModelConfig(vocab_size=len(train.vocab), block_size=train.tokens.shape[1], n_embed=8, recurrence=1)
    model = GPT(cfg, 2, seeds=[0, 1])
    tokens = torch.stack([train.tokens[:8], train.tokens[8:16]])
    plen = torch.stack([train.prompt_len[:8], train.prompt_len[8:16]])
    got = per_model_loss(model, tokens, plen, train.vocab.pad_id, "after_eq").detach()
    texts = train.texts()
    with torch.no_grad():
        logits = model(tokens[..., :-1])
    for i in range(2):
        mask = _mask_from_text(texts[8 * i: 8 * i + 8], tokens.shape[-1])
        ce = F.cross_entropy(logits[i][mask], tokens[i, :, 1:][mask])
        assert float(got[i]) == pytest.approx(float(ce), rel=1e-5)


# ------------------------------------------------------------------------------------------------
# Multi-head attention: the ListOps model against an independent reference forward pass
# (torch.nn.MultiheadAttention with copied weights), and causality for every model.
# (mutation caught: splitting heads without the transpose, `reshape(M*B, h, T, d/h)`)
# ------------------------------------------------------------------------------------------------


def _reference_gpt_forward(model: GPT, idx: torch.Tensor, i: int) -> torch.Tensor:
    """Model i of the stack, written again from its state dict with torch.nn modules."""
    cfg = model.cfg
    sd = {k: v[i] for k, v in model.state_dict().items()}
    d, h = cfg.n_embed, cfg.n_heads
    t = idx.shape[-1]
    x = sd["wte"][idx] + sd["wpe"][:t]
    causal = torch.ones(t, t, dtype=torch.bool).triu(1)  # True = not allowed to attend
    for _ in range(cfg.recurrence):
        for layer in range(cfg.n_layers):
            p = f"backbone.blocks.{layer}."
            mha = torch.nn.MultiheadAttention(d, h, bias=True, batch_first=True)
            with torch.no_grad():
                mha.in_proj_weight.copy_(sd[p + "attn.qkv.weight"].T)  # ours is x @ W, [d, 3d]
                mha.in_proj_bias.zero_()
                mha.out_proj.weight.copy_(sd[p + "attn.proj.weight"].T)
                mha.out_proj.bias.copy_(sd[p + "attn.proj.bias"])
            a_in = F.layer_norm(x, (d,), sd[p + "ln1.weight"], sd[p + "ln1.bias"])
            a, _ = mha(a_in, a_in, a_in, attn_mask=causal, need_weights=False)
            x = x + a
            f_in = F.layer_norm(x, (d,), sd[p + "ln2.weight"], sd[p + "ln2.bias"])
            f = F.gelu(f_in @ sd[p + "mlp.fc.weight"] + sd[p + "mlp.fc.bias"])
            x = x + f @ sd[p + "mlp.proj.weight"] + sd[p + "mlp.proj.bias"]
    x = F.layer_norm(x, (d,), sd["backbone.ln_f.weight"], sd["backbone.ln_f.bias"])
    head = sd["wte"].T if cfg.tie_weights else sd["head"]
    return x @ head


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Give every parameter (biases and LayerNorm gains too) a visible random value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


@pytest.mark.parametrize("n_heads, n_layers, recurrence, tie", [(4, 1, 2, False), (2, 2, 1, True), (1, 1, 1, False)])
def test_listops_multihead_attention_matches_torch_reference(n_heads, n_layers, recurrence, tie):
    cfg = ModelConfig(vocab_size=11, block_size=9, n_embed=16, n_heads=n_heads, n_layers=n_layers,
                      recurrence=recurrence, tie_weights=tie)
    model = GPT(cfg, 3, seeds=[0, 1, 2])
    _randomise(model, 7)
    idx = torch.randint(0, 11, (3, 5, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(idx)
        for i in range(3):
            ref = _reference_gpt_forward(model, idx[i], i)
            torch.testing.assert_close(out[i], ref, rtol=1e-4, atol=1e-4)


def _assert_causal(outputs_at, t: int, positions_out) -> None:
    """Changing the input at position p never moves an output at an earlier position."""
    base = outputs_at(None)
    for p in range(1, t):
        moved = outputs_at(p)
        earlier = [k for k in range(positions_out) if k < p]
        torch.testing.assert_close(moved[..., earlier, :], base[..., earlier, :], rtol=0, atol=1e-6)
        # and the change is visible from position p on (the test could not pass by ignoring input)
        assert not torch.allclose(moved[..., p, :], base[..., p, :])


@pytest.mark.parametrize("n_heads", [1, 2, 4])
def test_listops_model_is_causal(n_heads):
    cfg = ModelConfig(vocab_size=11, block_size=8, n_embed=16, n_heads=n_heads, n_layers=2, recurrence=2)
    model = GPT(cfg, 2, seeds=[3, 4])
    _randomise(model, 11)
    idx = torch.randint(0, 11, (2, 3, 8), generator=torch.Generator().manual_seed(2))

    def outputs_at(p):
        x = idx.clone()
        if p is not None:
            x[..., p] = (x[..., p] + 1) % 11
        with torch.no_grad():
            return model(x)

    _assert_causal(outputs_at, 8, 8)


@pytest.mark.parametrize("n_heads", [1, 2, 4])
def test_icl_model_is_causal(n_heads):
    """The prediction at point k never depends on y_k or on any later point."""
    cfg = ICLConfig(d=3, n_points=6, n_embed=16, n_layers=2, n_heads=n_heads)
    model = ICLModel(cfg, 2, seeds=[0, 1])
    _randomise(model, 5)
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(2, 4, 6, 3, generator=g), torch.randn(2, 4, 6, generator=g)
    with torch.no_grad():
        base = model(xs, ys)
        for k in range(6):
            ys2 = ys.clone()
            ys2[..., k] += 1.0  # y_k is seen only by the predictions after point k
            out = model(xs, ys2)
            torch.testing.assert_close(out[..., : k + 1], base[..., : k + 1], rtol=0, atol=1e-6)
            if k + 1 < 6:
                assert not torch.allclose(out[..., k + 1:], base[..., k + 1:])
            xs2 = xs.clone()
            xs2[..., k, :] += 1.0  # x_k is seen from point k on
            out = model(xs2, ys)
            torch.testing.assert_close(out[..., :k], base[..., :k], rtol=0, atol=1e-6)
            assert not torch.allclose(out[..., k], base[..., k])


# ------------------------------------------------------------------------------------------------
# The cache key changes when any field of task, arch or train changes
# (mutation caught: RunSpec.key() / to_dict() without "train" or "arch" or "task")
# ------------------------------------------------------------------------------------------------

BASE = RunSpec(task=TaskConfig(ops=("ADD",), modulus=7, depth=2), arch=Arch(n_embed=16),
               train=TrainConfig(steps=100), seed=0)

# Candidate replacement values for fields whose other values are constrained (choices, tuples).
_SPECIAL = {
    ("task", "ops"): [("ADD", "MAX"), ("MAX",)],
    ("task", "family"): ["perm"],
    ("task", "weights"): [(1.0,), (2.0,)],
    ("task", "cot"): list(COT_MODES),
    ("task", "mixing"): list(MIXING_MODES),
    ("task", "sampling"): list(SAMPLING_MODES),
    ("train", "loss_on"): ["full", "after_eq"],
    ("task", "op_args"): [(("MED", 3, 3),), (("MAX", 3, 3),)],
    ("train", "step"): ["reference", "fast"],
}


def _candidates(part: str, name: str, value):
    if (part, name) in _SPECIAL:
        return list(_SPECIAL[(part, name)])
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value + 2, 2 * value, max(1, value - 1), 1]
    if isinstance(value, float):
        return [value / 2, value * 0.9, 0.5, 0.25]
    if value is None:
        return [1, 50, 0.5]
    return []


def _with(spec: RunSpec, part: str, name: str, value) -> RunSpec:
    if part == "task" and name == "family":  # another family needs its own ops
        return dataclasses.replace(spec, task=TaskConfig(family="perm", ops=("PMUL",)))
    sub = dataclasses.replace(getattr(spec, part), **{name: value})
    return dataclasses.replace(spec, **{part: sub})


def _one_change_per_field():
    """(part, field, changed spec) for every field of task, arch and train."""
    out = []
    for part in ("task", "arch", "train"):
        for f in dataclasses.fields(getattr(BASE, part)):
            old = getattr(getattr(BASE, part), f.name)
            for cand in _candidates(part, f.name, old):
                if cand == old:
                    continue
                try:
                    spec = _with(BASE, part, f.name, cand)
                except ValueError:
                    continue  # not a valid value here; try the next candidate
                out.append((part, f.name, spec))
                break
            else:
                out.append((part, f.name, None))
    return out


@pytest.mark.parametrize("part, name, changed", _one_change_per_field(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_cache_key_changes_with_every_field(part, name, changed):
    assert changed is not None, f"no valid other value for {part}.{name}: add one to _SPECIAL"
    assert getattr(changed, part) != getattr(BASE, part)
    assert changed.key() != BASE.key(), f"changing {part}.{name} does not change the cache key"
    # and the key is a function of the configuration only (a rebuilt spec has the same key)
    assert RunSpec.from_dict(changed.to_dict()).key() == changed.key()


def test_cache_key_changes_with_seed_and_init():
    assert dataclasses.replace(BASE, seed=1).key() != BASE.key()
    pre = dataclasses.replace(BASE, task=BASE.task.with_ops(("MAX",)), seed=5)
    assert dataclasses.replace(BASE, init=pre).key() != BASE.key()


_FIELD_CHANGES = [(p, n, s) for p, n, s in _one_change_per_field() if s is not None]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(range(len(_FIELD_CHANGES))), max_size=4),
       st.lists(st.sampled_from(range(len(_FIELD_CHANGES))), max_size=4))
def test_cache_keys_are_equal_exactly_when_the_configurations_are(a, b):
    """Property: two specs built from any sets of field changes share a key iff they are equal."""
    def build(changes):
        spec = BASE
        for c in changes:
            part, name, changed = _FIELD_CHANGES[c]
            if part == "task" and name in ("family", "ops", "weights"):
                continue  # these three constrain each other; they are covered one at a time above
            spec = dataclasses.replace(spec, **{part: dataclasses.replace(
                getattr(spec, part), **{name: getattr(getattr(changed, part), name)})})
        return spec

    try:
        sa, sb = build(a), build(b)
    except ValueError:
        return  # a combination that is not a valid configuration (e.g. min_args > max_args)
    assert (sa.key() == sb.key()) == (sa.to_dict() == sb.to_dict())


# ------------------------------------------------------------------------------------------------
# experiments: hardness_order, hardest_verdict, transition_of, reduction_of
# ------------------------------------------------------------------------------------------------


def est(value, lo=None, hi=None, lo_kind="estimate", hi_kind="estimate"):
    return SimpleNamespace(kind="estimate", value=value, lo=lo, hi=hi, bound=None, lo_kind=lo_kind, hi_kind=hi_kind)


def above(bound):
    return SimpleNamespace(kind="above", value=None, lo=None, hi=None, bound=bound, lo_kind=None, hi_kind=None)


def below(bound):
    return SimpleNamespace(kind="below", value=None, lo=None, hi=None, bound=bound, lo_kind=None, hi_kind=None)


def test_interval_of_estimates_and_bounds():
    inf = math.inf
    assert E.interval(None) == (0.0, inf)
    assert E.interval(above(500)) == (500, inf)
    assert E.interval(below(100)) == (0.0, 100)
    assert E.interval(est(300, 200, 400)) == (200, 400)
    assert E.interval(est(300, 100, 400, lo_kind="below")) == (0.0, 400)
    assert E.interval(est(300, 200, 900, hi_kind="above")) == (200, inf)
    assert E.interval(est(300)) == (0.0, inf)  # no CI: nothing is known beyond the estimate


def test_hardness_order_sorts_estimates_and_bounds():
    # insertion order puts the later-sorting one of each tie first, so a stable sort cannot hide a bad key
    ts = {"ADD": above(1000), "PROD": est(1000, 900, 1100), "SM": est(100, 80, 120), "MAX": below(100),
          "MIN": None, "MED": est(300, 200, 400)}
    # "< 100" before an estimate at 100; "> 1000" after an estimate at 1000; None last
    assert E.hardness_order(ts) == ["MAX", "SM", "MED", "PROD", "ADD", "MIN"]
    assert E.hardness_order({}) == []


@pytest.mark.parametrize(
    "ts, op, verdict, names",
    [
        # ADD's CI lies wholly above every other operation's interval
        ({"ADD": est(1000, 800, 1200), "MAX": est(300, 200, 400), "MED": below(100)}, "ADD", "reproduced", []),
        # not learned within the sizes tried, above every other: reproduced
        ({"ADD": above(1000), "MAX": est(300, 200, 400)}, "ADD", "reproduced", []),
        # another op is clearly harder
        ({"ADD": est(300, 200, 400), "MED": est(1000, 800, 1200), "MAX": below(100), "MIN": above(500)},
         "ADD", "not reproduced", ["MED", "MIN"]),
        ({"ADD": est(300, 200, 400), "MED": above(500)}, "ADD", "not reproduced", ["MED"]),
        # overlapping CIs: inconclusive, naming the op that is not separated
        ({"ADD": est(1000, 500, 1200), "MAX": est(400, 300, 600), "MED": below(100), "MIN": est(900, 600, 950)},
         "ADD", "inconclusive", ["MAX", "MIN"]),
        # touching ends count as not separated
        ({"ADD": est(1000, 400, 1200), "MAX": est(300, 200, 400)}, "ADD", "inconclusive", ["MAX"]),
        # another op's CI starting exactly where ADD's ends is not "clearly harder"
        ({"ADD": est(300, 200, 400), "MED": est(1000, 400, 1200)}, "ADD", "inconclusive", ["MED"]),
        # both not learned: nothing separates them
        ({"ADD": above(1000), "MED": above(1000)}, "ADD", "inconclusive", ["MED"]),
        # an op without a transition is not separated from anything
        ({"ADD": est(1000, 800, 1200), "MAX": None}, "ADD", "inconclusive", ["MAX"]),
        ({"ADD": None, "MAX": est(300, 200, 400)}, "ADD", "inconclusive", []),
        ({"MAX": est(300, 200, 400)}, "ADD", "inconclusive", []),
    ],
)
def test_hardest_verdict(ts, op, verdict, names):
    got, why = E.hardest_verdict(ts, op)
    assert got == verdict
    for n in names:
        assert n in why
    if names:  # the explanation lists them, comma-separated, in order
        assert why.endswith(": " + ", ".join(names))
    for other in set(ts) - set(names) - {op}:
        assert other not in why.split(":")[-1]


def _records(ops, op, curve: dict, seeds=(0, 1, 2), modulus=10, key_prefix=""):
    """Hand-built run records: accuracy on ``op`` per size ``n_params`` (same for every seed,
    plus a small seed-dependent wobble)."""
    task = TaskConfig(ops=tuple(ops), modulus=modulus)
    out = []
    for size, acc in curve.items():
        for s in seeds:
            a = float(np.clip(acc + 0.01 * (s - 1), 0, 1))
            out.append({"key": f"{key_prefix}{'+'.join(ops)}-{size}-{s}",
                        "spec": {"task": task.to_dict(), "arch": {"n_embed": 8}, "seed": s},
                        "n_params": size,
                        "metrics": {"per_op": {o: {"gen_acc": a if o == op else 0.5} for o in ops}}})
    return out


# a sharp learning step between 2,000 and 4,000 parameters; and the same step 4x earlier
STEP_LATE = {1000: 0.1, 2000: 0.12, 4000: 0.98, 8000: 1.0, 16000: 1.0}
STEP_EARLY = {250: 0.1, 500: 0.12, 1000: 0.98, 2000: 1.0, 4000: 1.0, 8000: 1.0, 16000: 1.0}


def test_transition_of_selects_the_mix_and_op_and_estimates():
    recs = (_records(["ADD"], "ADD", STEP_LATE) + _records(["ADD", "MAX"], "ADD", STEP_EARLY)
            + _records(["MAX"], "MAX", STEP_EARLY))
    t = E.transition_of(recs, ops=["ADD"], op="ADD", n_boot=50)
    assert t.kind == "estimate" and 2000 < t.value < 4000
    # the same numbers by hand: the long-format arrays of this mix and op
    xs = np.array([s for s in STEP_LATE for _ in range(3)], float)
    ys = np.array([np.clip(a + 0.01 * (s - 1), 0, 1) for a in STEP_LATE.values() for s in range(3)])
    seeds = np.array([s for _ in STEP_LATE for s in range(3)])
    ref = estimate_transition(xs, ys, seeds, n_boot=50)
    assert t.value == pytest.approx(ref.value) and (t.lo, t.hi) == pytest.approx((ref.lo, ref.hi))
    tj = E.transition_of(recs, ops=["ADD", "MAX"], op="ADD", n_boot=50)
    assert 500 < tj.value < 1000
    # fewer than 3 sizes: no transition
    few = _records(["ADD"], "ADD", {1000: 0.1, 2000: 1.0})
    assert E.transition_of(few, ops=["ADD"], op="ADD") is None
    three = _records(["ADD"], "ADD", {1000: 0.1, 2000: 0.5, 4000: 1.0})
    assert E.transition_of(three, ops=["ADD"], op="ADD", n_boot=20) is not None
    # an op not in the mix has no points
    assert E.transition_of(recs, ops=["MAX"], op="ADD") is None


def test_reduction_of_is_single_over_joint():
    recs = _records(["ADD"], "ADD", STEP_LATE) + _records(["ADD", "MAX"], "ADD", STEP_EARLY)
    red = E.reduction_of(recs, single=["ADD"], joint=["ADD", "MAX"], op="ADD", n_boot=50)
    ts = E.transition_of(recs, ops=["ADD"], op="ADD", n_boot=50)
    tj = E.transition_of(recs, ops=["ADD", "MAX"], op="ADD", n_boot=50)
    assert red.kind == "estimate"
    assert red.value == pytest.approx(ts.value / tj.value, rel=1e-9)
    assert 2.0 < red.value < 8.0  # the step moved 4x
    ref = reduction_factor(E.accuracy_points(recs, ops=["ADD"], op="ADD"),
                           E.accuracy_points(recs, ops=["ADD", "MAX"], op="ADD"), n_boot=50)
    assert (red.lo, red.hi) == pytest.approx((ref.lo, ref.hi))
    # the joint condition may come from other records (same mix, e.g. after pretraining)
    other = _records(["ADD"], "ADD", STEP_EARLY, key_prefix="pre-")
    red2 = E.reduction_of(recs, single=["ADD"], joint=["ADD"], op="ADD", joint_records=other, n_boot=50)
    assert red2.value == pytest.approx(red.value, rel=0.05)
    # too few sizes on either side: None
    few_joint = _records(["ADD", "MAX"], "ADD", {1000: 0.1, 2000: 1.0})
    assert E.reduction_of(_records(["ADD"], "ADD", STEP_LATE) + few_joint, single=["ADD"], joint=["ADD", "MAX"],
                          op="ADD") is None
    few_single = _records(["ADD"], "ADD", {1000: 0.1, 2000: 1.0})
    assert E.reduction_of(few_single + _records(["ADD", "MAX"], "ADD", STEP_EARLY), single=["ADD"],
                          joint=["ADD", "MAX"], op="ADD") is None


# ------------------------------------------------------------------------------------------------
# experiments: the selection underneath (found by mutation testing: make mutation)
# ------------------------------------------------------------------------------------------------


def test_accuracy_points_and_select_skip_what_does_not_belong():
    ok = _records(["ADD"], "ADD", {1000: 0.1, 2000: 1.0}, seeds=(1,))  # seed 1: no wobble
    other_mod = _records(["ADD"], "ADD", {4000: 0.5}, seeds=(0,), modulus=7)
    failed = {"key": "bad", "error": "boom", "spec": ok[0]["spec"]}
    no_per_op = dict(ok[0], key="noop", metrics={}, n_params=3000)
    no_add = dict(ok[0], key="nomax", metrics={"per_op": {"MAX": {"gen_acc": 1.0}}}, n_params=5000)
    recs = [None, failed, no_per_op, no_add, other_mod[0], *ok]  # everything useful comes last
    xs, ys, seeds = E.accuracy_points(recs, ops=["ADD"], op="ADD", size=10)
    assert xs.tolist() == [1000.0, 2000.0] and ys.tolist() == [0.1, 1.0] and seeds.tolist() == [1, 1]
    assert xs.dtype == np.float64 and ys.dtype == np.float64
    assert E.accuracy_points(recs, ops=["ADD"], op="ADD", size=7)[0].tolist() == [4000.0]
    assert [r["key"] for r in E.select(recs, ops=["ADD"], size=10)] == ["noop", "nomax"] + [r["key"] for r in ok]
    # integer accuracies (as JSON may hold them) come back as floats
    ints = [dict(r, metrics={"per_op": {"ADD": {"gen_acc": int(r["metrics"]["per_op"]["ADD"]["gen_acc"])}}})
            for r in ok]
    assert E.accuracy_points(ints, ops=["ADD"], op="ADD")[1].dtype == np.float64
    # extra task fields select too (here: the CoT mode); a non-matching one first, then matching ones
    direct = dict(ok[0], key="direct", spec=dict(ok[0]["spec"], task=dict(ok[0]["spec"]["task"], cot="direct")))
    mixed = [direct, *ok]
    assert [r["key"] for r in E.select(mixed, ops=["ADD"], cot="reduce")] == [r["key"] for r in ok]
    assert [r["key"] for r in E.select(mixed, ops=["ADD"], cot="direct")] == ["direct"]
    assert E.accuracy_points(mixed, ops=["ADD"], op="ADD", cot="direct")[0].tolist() == [1000.0]
    assert E.unique_records([None, ok[0], ok[0], ok[1]]) == ok
    with pytest.raises(ValueError, match=r"^every record must have a 'key' \(the run's configuration hash\)$"):
        E.unique_records([{"spec": {}}])


def test_accuracy_points_names_the_duplicated_runs():
    one = _records(["ADD"], "ADD", {1000: 0.1, 2000: 0.2, 3000: 0.3, 4000: 0.4, 5000: 0.5}, seeds=(0,))
    twice = [dict(r, key=r["key"] + "b") for r in one[:4]]
    with pytest.raises(ValueError) as err:
        E.accuracy_points(one + twice, ops=["ADD"], op="ADD")
    msg = str(err.value)
    # the first three duplicated (size, seed) pairs, in order, and the advice
    assert "same (size, seed): [(1000, 0), (2000, 0), (3000, 0)];" in msg
    assert msg.endswith("pass each run once (unique_records) and select one configuration "
                        "(another task field, e.g. weights=...)")
    with pytest.raises(ValueError, match=r"same \(size, seed\): \[\(5000, 0\)\];"):
        E.accuracy_points(one + [dict(one[4], key="x")], ops=["ADD"], op="ADD")


def test_transition_of_and_reduction_of_pass_size_and_options_through():
    recs = (_records(["ADD"], "ADD", STEP_LATE) + _records(["ADD", "MAX"], "ADD", STEP_EARLY)
            + _records(["ADD"], "ADD", STEP_EARLY, modulus=7) + _records(["ADD", "MAX"], "ADD", STEP_LATE, modulus=7))
    t10 = E.transition_of(recs, ops=["ADD"], op="ADD", size=10, n_boot=20)
    t7 = E.transition_of(recs, ops=["ADD"], op="ADD", size=7, n_boot=20)
    assert 2000 < t10.value < 4000 and 500 < t7.value < 1000
    # keyword options reach the estimator
    xs, ys, seeds = E.accuracy_points(recs, ops=["ADD"], op="ADD", size=10)
    half = E.transition_of(recs, ops=["ADD"], op="ADD", size=10, n_boot=20, level=0.5)
    assert half.level == 0.5 and half.value == pytest.approx(estimate_transition(xs, ys, seeds, n_boot=20, level=0.5).value)
    r10 = E.reduction_of(recs, single=["ADD"], joint=["ADD", "MAX"], op="ADD", size=10, n_boot=20)
    r7 = E.reduction_of(recs, single=["ADD"], joint=["ADD", "MAX"], op="ADD", size=7, n_boot=20, level=0.5)
    assert r10.value > 2.0 and r7.value < 0.5 and r7.single.level == 0.5
    # exactly three sizes on each side is enough
    three_s = _records(["ADD"], "ADD", {1000: 0.1, 2000: 0.5, 4000: 1.0})
    three_j = _records(["ADD", "MAX"], "ADD", {250: 0.1, 500: 0.5, 1000: 1.0})
    assert E.reduction_of(three_s + three_j, single=["ADD"], joint=["ADD", "MAX"], op="ADD", n_boot=20) is not None


def test_defaults_use_500_bootstrap_replicates():
    recs = _records(["ADD"], "ADD", STEP_LATE) + _records(["ADD", "MAX"], "ADD", STEP_EARLY)
    assert E.transition_of(recs, ops=["ADD"], op="ADD").n_boot == 500
    assert E.reduction_of(recs, single=["ADD"], joint=["ADD", "MAX"], op="ADD").single.n_boot == 500


def test_interval_accepts_objects_without_ci_kinds():
    assert E.interval(SimpleNamespace(kind="estimate", value=3.0, lo=2.0, hi=4.0)) == (2.0, 4.0)
