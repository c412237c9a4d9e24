"""The training rules at their edges: early stopping, the learning-rate schedule, the loss on a
single target, the run key's recipe (cases found by ``make mutation``)."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import torch.nn.functional as F

from jointtask_lib.data import Vocab
from jointtask_lib.model import GPT, ModelConfig
from jointtask_lib.tasks import TaskConfig
from jointtask_lib.train import (
    RUN_FORMAT, Arch, RunSpec, TrainConfig, _should_stop, lr_at, per_model_loss, target_mask,
)

torch.set_num_threads(1)

CFG = TrainConfig(steps=100, eval_every=10, min_frac=0.5, patience_frac=0.3, chance_margin=0.05, eval_size=400)


def _curve(tf_by_step: dict, seq=0.0):
    return [{"step": s, "seq_acc": seq, "tf_acc": a} for s, a in sorted(tf_by_step.items())]


def test_converged_looks_at_the_last_two_evaluations():
    cfg = TrainConfig(steps=1000, converge_acc=0.99)
    curve = [{"step": 10 * (i + 1), "seq_acc": a, "tf_acc": 0.9} for i, a in enumerate([0.995, 0.2, 0.995, 0.995])]
    assert _should_stop(curve, 40, cfg, chance=0.1) == "converged"


def test_at_chance_window_starts_after_the_patience_boundary():
    # step 50 of 100, patience 30% -> the window is (20, 50]: step 20 is outside it
    curve = _curve({10: 0.1, 20: 0.5, 30: 0.1, 40: 0.1, 50: 0.1})
    assert _should_stop(curve, 50, CFG, chance=0.1) == "at_chance"
    curve = _curve({10: 0.1, 20: 0.1, 30: 0.5, 40: 0.1, 50: 0.1})
    assert _should_stop(curve, 50, CFG, chance=0.1) is None


def test_at_chance_needs_two_evaluations_in_the_window():
    cfg = TrainConfig(steps=100, eval_every=10, min_frac=0.5, patience_frac=0.15, eval_size=400)
    # window (35, 50]: steps 40 and 50, two evaluations, both at chance
    assert _should_stop(_curve({10: 0.1, 20: 0.1, 30: 0.1, 40: 0.1, 50: 0.1}), 50, cfg, chance=0.1) == "at_chance"
    cfg = TrainConfig(steps=100, eval_every=10, min_frac=0.5, patience_frac=0.05, eval_size=400)
    # window (45, 50]: one evaluation is not enough
    assert _should_stop(_curve({10: 0.1, 20: 0.1, 30: 0.1, 40: 0.1, 50: 0.1}), 50, cfg, chance=0.1) is None


def test_at_chance_line_is_chance_plus_max_of_margin_and_three_standard_errors():
    # chance 0.1 over 25 examples: s.e. sqrt(0.1 * 0.9 / 25) = 0.06, the line 0.1 + 0.18 = 0.28
    assert _should_stop(_curve({30: 0.27, 40: 0.27, 50: 0.27}), 50, CFG, chance=0.1, n_eval=25) == "at_chance"
    assert _should_stop(_curve({30: 0.29, 40: 0.29, 50: 0.29}), 50, CFG, chance=0.1, n_eval=25) is None
    # exactly on the line counts as at chance: chance 0.25, margin 0.25 -> 0.5 (s.e. tiny at 10^6 examples)
    cfg = TrainConfig(steps=100, eval_every=10, chance_margin=0.25)
    assert _should_stop(_curve({30: 0.5, 40: 0.5, 50: 0.5}), 50, cfg, chance=0.25, n_eval=10**6) == "at_chance"
    assert _should_stop(_curve({30: 0.5, 40: 0.5, 50: 0.51}), 50, cfg, chance=0.25, n_eval=10**6) is None


def test_at_chance_default_chance_is_zero():
    # without a chance level the line is the margin alone: 0.5 is far above it
    assert _should_stop(_curve({30: 0.5, 40: 0.5, 50: 0.5}), 50, CFG) is None
    assert _should_stop(_curve({30: 0.04, 40: 0.04, 50: 0.04}), 50, CFG) == "at_chance"


def test_lr_schedule_ends_at_min_lr_and_stays_there():
    cfg = TrainConfig(steps=11, warmup=10, lr=1.0, min_lr_frac=0.1)  # a one-step decay
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(11, cfg) == pytest.approx(0.1)
    cfg = TrainConfig(steps=100, warmup=10, lr=2.0, min_lr_frac=0.1)
    assert lr_at(55, cfg) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))  # halfway: the cosine's middle
    for step in (100, 120, 150, 190):
        assert lr_at(step, cfg) == pytest.approx(0.2)


def test_loss_over_a_single_target_is_its_cross_entropy():
    task = TaskConfig(ops=("ADD",), modulus=5, depth=1, min_args=2, max_args=2)
    v = Vocab.for_task(task)
    toks = torch.tensor([[v.encode("( ADD 1 2 ) = 3")]])  # only '3' comes after the '='
    plen = torch.tensor([[6]])
    model = GPT(ModelConfig(vocab_size=len(v), block_size=8, n_embed=8, recurrence=1), 1)
    with torch.no_grad():
        loss = per_model_loss(model, toks, plen, v.pad_id, "after_eq")
        logits = model(toks[..., :-1])
    expect = F.cross_entropy(logits[0, 0, 5:6], toks[0, 0, 6:7])
    assert float(loss[0]) == pytest.approx(float(expect), rel=1e-6)


def test_target_mask_stays_on_the_tokens_device():
    toks = torch.zeros(1, 2, 6, dtype=torch.long, device="meta")
    plen = torch.zeros(1, 2, dtype=torch.long, device="meta")
    assert target_mask(toks, plen, 0, "after_eq").device.type == "meta"


def test_run_key_recipe_is_stable():
    """The key names runs on disk, so its recipe must not drift: the first 16 hex digits of the
    SHA-256 of the sorted JSON of the run format, the configuration, the vocabulary's tokens and
    the context length (what the registry derives from the configuration, issue 13)."""
    from jointtask_lib.data import Vocab, max_example_length

    pre = RunSpec(task=TaskConfig(ops=("MAX",), modulus=7), arch=Arch(n_embed=16), seed=3)
    spec = RunSpec(task=TaskConfig(ops=("ADD",), modulus=7), arch=Arch(n_embed=16), seed=0, init=pre)
    for s in (pre, spec):
        blob = json.dumps({"format": RUN_FORMAT, **s.to_dict(), "vocab": Vocab.for_task(s.task).tokens,
                           "block_size": max_example_length(s.task)}, sort_keys=True)
        assert s.key() == hashlib.sha256(blob.encode()).hexdigest()[:16]
    d = spec.to_dict()
    assert d["init"] == pre.to_dict() and "init" not in pre.to_dict()
    back = RunSpec.from_dict(d)
    assert back == spec and back.init == pre and back.key() == spec.key()
    assert len(spec.key()) == 16 and all(c in "0123456789abcdef" for c in spec.key())
