"""Paper B's fast step (jointtask_lib.paper_b.icl_step + fast_step.FastStep) against its reference
(ICLModel + autograd + clip_per_model + StackedAdamW)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from jointtask_lib.fast_step import FastStep
from jointtask_lib.paper_b import icl_train
from jointtask_lib.paper_b.icl_model import ICLConfig, ICLModel
from jointtask_lib.paper_b.icl_step import ICLFusedLoss, icl_fast_step, icl_loss_and_grads
from jointtask_lib.paper_b.icl_train import ICLRunSpec, ICLTrainConfig, prompt_generator, train_icl_stack
from jointtask_lib.tasks.functions import sample_prompts
from jointtask_lib.train import StackedAdamW, StackEngine, clip_per_model


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


#: notebook 09's quick model (its parameters cell)
QUICK = ICLConfig(d=5, n_points=20, n_embed=32, n_layers=3, n_heads=4)
TINY = ICLConfig(d=3, n_points=8, n_embed=16, n_layers=2, n_heads=2)


def _problem(cfg: ICLConfig, m: int, b: int, n: int, seed: int = 0, dtype=torch.float64, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    model = ICLModel(cfg, m, seeds=list(range(seed, seed + m))).to(dtype)
    with torch.no_grad():  # move away from the near-linear initialisation
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=dtype))
    xs = torch.randn(m, b, n, cfg.d, generator=g, dtype=dtype)
    ys = torch.randn(m, b, n, generator=g, dtype=dtype)
    return model, xs, ys


def _reference(model: ICLModel, xs, ys):
    """Per-model MSE and autograd's gradients of its sum (exactly the reference trainer's loss)."""
    model.zero_grad(set_to_none=True)
    losses = (model(xs, ys) - ys).square().mean(dim=(1, 2))
    losses.sum().backward()
    return losses.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


SHAPES = [dict(n_layers=1, n_heads=1), dict(n_layers=2, n_heads=2)]


@pytest.mark.parametrize("kw", SHAPES)
def test_gradcheck_float64(kw):
    cfg = ICLConfig(d=2, n_points=3, n_embed=4, mlp_ratio=2, **kw)
    model, xs, ys = _problem(cfg, m=2, b=2, n=3, scale=0.5)
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]

    def f(*ps):
        return ICLFusedLoss.apply(model.cfg, names, xs, ys, *ps)

    assert torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("kw, n", [(dict(n_layers=2, n_heads=2), 8), (dict(n_layers=3, n_heads=4), 5),
                                   (dict(n_layers=1, n_heads=1, mlp_ratio=2), 8)])
def test_equals_autograd_float64(kw, n):
    """Every gradient (read-in, positions, blocks, final LN, read-out) within 1e-10 of autograd's;
    n = 5 < n_points: shorter prompts, the unused positions get a zero gradient."""
    cfg = ICLConfig(d=3, n_points=8, n_embed=8, **kw)
    model, xs, ys = _problem(cfg, m=3, b=4, n=n)
    ref_loss, ref_grads = _reference(model, xs, ys)
    with torch.no_grad():
        losses, grads = icl_loss_and_grads(model.cfg, dict(model.named_parameters()), xs, ys)
    torch.testing.assert_close(losses, ref_loss, rtol=0, atol=1e-10)
    assert set(grads) == set(ref_grads)
    for name, g in ref_grads.items():
        assert grads[name].shape == g.shape, name
        torch.testing.assert_close(grads[name], g, rtol=0, atol=1e-10, msg=name)
    assert bool((grads["wpe"][:, 2 * n:] == 0).all())
    assert all(float(g.abs().max()) > 0 for name, g in ref_grads.items() if name != "wpe")  # not vacuous
    with torch.no_grad():
        alone, none = icl_loss_and_grads(model.cfg, dict(model.named_parameters()), xs, ys, need_grads=False)
    assert none is None and torch.equal(alone, losses)


def test_bad_batch_is_rejected():
    model, xs, ys = _problem(TINY, m=2, b=2, n=8)
    p = dict(model.named_parameters())
    with torch.no_grad():
        with pytest.raises(ValueError, match="'ys' must be"):
            icl_loss_and_grads(model.cfg, p, xs, ys[:, :, :4])
        long_x = torch.zeros(2, 2, 9, 3, dtype=torch.float64)
        with pytest.raises(ValueError, match="'n_points' = 8"):
            icl_loss_and_grads(model.cfg, p, long_x, torch.zeros(2, 2, 9, dtype=torch.float64))


def _quick_batch(m: int, tasks=("linear", "quadratic", "cubic"), b: int = 64):
    """Real training prompts of the quick configuration (each model its own task and stream)."""
    xs, ys = [], []
    for i in range(m):
        x, y = sample_prompts(tasks[i % len(tasks)], b, QUICK.n_points, QUICK.d, prompt_generator(i),
                              unit_norm_w=True)
        xs.append(x)
        ys.append(y)
    return torch.stack(xs), torch.stack(ys)


def _reference_train(model, opt, xs, ys, clip=0.0, lr=None):
    losses = (model(xs, ys) - ys).square().mean(dim=(1, 2))
    model.zero_grad(set_to_none=True)
    losses.sum().backward()
    norms = clip_per_model(opt.params, clip)
    opt.step(lr)
    return losses.detach(), norms


def test_float32_agreement_on_a_real_batch():
    """Stated tolerance (float32, quick model, batch 64, one model per class): every gradient
    within 1e-5 of the largest entry of autograd's gradient of that parameter (elementwise,
    absolute; measured: 3.3e-7), losses within 1e-5 relative (measured: equal), after a few
    reference steps so the weights are not at their initialisation."""
    xs, ys = _quick_batch(3)
    model = ICLModel(QUICK, 3, seeds=[0, 1, 2])
    opt = StackedAdamW(list(model.parameters()), lr=1e-3, betas=(0.9, 0.999))
    for _ in range(5):
        _reference_train(model, opt, xs, ys)
    ref_loss, ref_grads = _reference(model, xs, ys)
    with torch.no_grad():
        losses, grads = icl_loss_and_grads(model.cfg, dict(model.named_parameters()), xs, ys)
    torch.testing.assert_close(losses, ref_loss, rtol=1e-5, atol=0)
    for name, g in ref_grads.items():
        assert float((grads[name] - g).abs().max()) <= 1e-5 * float(g.abs().max()), name


def test_steps_equal_the_reference_steps_with_clipping_and_decay():
    """Forward, backward, per-model clipping (active here), AdamW with weight decay on matrices:
    same losses, norms and parameters as the reference for several steps (float32 rounding)."""
    xs, ys = _quick_batch(3, b=16)
    ref = ICLModel(QUICK, 3, seeds=[4, 5, 6])
    fast_model = copy.deepcopy(ref)
    opt = StackedAdamW(list(ref.parameters()), lr=1e-2, betas=(0.9, 0.999), weight_decay=0.1)
    fast = icl_fast_step(fast_model, lr=1e-2, betas=(0.9, 0.999), weight_decay=0.1, grad_clip=0.05)
    assert isinstance(fast, FastStep) and fast.loss is icl_loss_and_grads
    for _ in range(3):
        losses, norms = _reference_train(ref, opt, xs, ys, clip=0.05)
        fl = fast.train_step(xs, ys)
        torch.testing.assert_close(fl, losses, rtol=1e-5, atol=0)
        torch.testing.assert_close(fast.last_norms, norms, rtol=1e-4, atol=0)
    assert bool((norms > 0.05).all())  # clipping was active
    for (name, a), b in zip(ref.named_parameters(), fast_model.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5, msg=name)


def _spec(curriculum="mixed", seed=0, **train):
    tc = ICLTrainConfig(**{"steps": 12, "batch_size": 8, "lr": 3e-3, "snapshot_prompts": 8, "log_every": 4,
                           **train})
    return ICLRunSpec(curriculum=curriculum, model=TINY, train=tc, unit_norm_w=True, seed=seed)


def test_training_curves_of_both_steps_agree():
    """The first 12 steps of a stack of three curricula trained by each step: per-step losses
    within 1e-4 relative, final weights within 1e-4, snapshots within 1e-4 (float rounding)."""
    res = {}
    for step in ("reference", "fast"):
        specs = [_spec(c, seed=s, step=step) for c, s in (("mixed", 0), ("sequential", 1), ("random", 2))]
        res[step] = train_icl_stack(specs, device="cpu")
    for r, f in zip(res["reference"], res["fast"]):
        np.testing.assert_allclose(f.loss_log, r.loss_log, rtol=1e-4)
        assert np.array_equal(f.task_log, r.task_log)
        for k, v in r.state.items():
            torch.testing.assert_close(f.state[k], v, rtol=1e-4, atol=1e-4, msg=k)
        assert len(f.snapshots) == len(r.snapshots) == 3
        for a, b in zip(f.snapshots, r.snapshots):
            for c in a["classes"]:
                assert a["classes"][c]["mean"] == pytest.approx(b["classes"][c]["mean"], rel=1e-4)


@pytest.mark.parametrize("step", ["fast", "reference"])
def test_resume_from_checkpoint_matches_uninterrupted(step, monkeypatch, tmp_path):
    specs = [_spec("sequential", seed=2, step=step), _spec("random", seed=3, step=step)]
    full = train_icl_stack(specs, device="cpu")
    ck = tmp_path / "ckpt.pt"
    real = icl_train._sample_step

    def dies_at_9(specs_, scheds, gens, i, device):
        if i == 9:
            raise KeyboardInterrupt
        return real(specs_, scheds, gens, i, device)

    monkeypatch.setattr(icl_train, "_sample_step", dies_at_9)
    with pytest.raises(KeyboardInterrupt):
        train_icl_stack(specs, device="cpu", checkpoint_path=ck, checkpoint_every=4)
    saved = torch.load(ck, map_location="cpu", weights_only=True)
    assert saved["step"] == 8
    # the optimiser state is StackedAdamW's format whichever step wrote it
    params = list(ICLModel(TINY, 2).parameters())
    assert [tuple(t.shape) for t in saved["opt"]["exp_avg"]] == [tuple(p.shape) for p in params]
    assert saved["opt"]["t"] == 8
    monkeypatch.setattr(icl_train, "_sample_step", real)
    resumed = train_icl_stack(specs, device="cpu", checkpoint_path=ck, checkpoint_every=4)
    for a, b in zip(full, resumed):
        for k in a.state:
            torch.testing.assert_close(b.state[k], a.state[k], rtol=0, atol=0, msg=k)
        np.testing.assert_array_equal(b.loss_log, a.loss_log)
        assert a.snapshots == b.snapshots


def test_fast_checkpoint_state_continues_in_the_reference_optimiser():
    """FastStep.state() of the ICL stack is StackedAdamW's format: the reference optimiser loads it
    and makes the same next step (the checkpoints of the two steps are interchangeable)."""
    xs, ys = _quick_batch(2, b=8)
    model = ICLModel(QUICK, 2, seeds=[0, 1])
    fast = icl_fast_step(model, lr=1e-3)
    for _ in range(2):
        fast.train_step(xs, ys)
    ref_model = copy.deepcopy(model)
    ref_opt = StackedAdamW(list(ref_model.parameters()), lr=1e-3, betas=(0.9, 0.999))
    ref_opt.load(fast.state())
    fast.train_step(xs, ys)
    _reference_train(ref_model, ref_opt, xs, ys)
    assert ref_opt.t == fast.t == 3
    for (name, a), b in zip(ref_model.named_parameters(), model.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6, msg=name)


def test_dropping_a_finished_model_leaves_the_others_unchanged():
    """Three models trained 3 steps, model 1 dropped (the training engine's StackEngine.drop, which
    slices the model and calls FastStep.keep), 3 more steps: models 0 and 2 follow the trajectory
    they have when the whole stack trains all 6 steps (measured: bitwise equal; the tolerance
    leaves room for a CPU whose batched kernels depend on the stack size)."""
    xs, ys = _quick_batch(3, b=8)
    a = ICLModel(QUICK, 3, seeds=[0, 1, 2])
    b = copy.deepcopy(a)
    fa = icl_fast_step(a, lr=1e-2, weight_decay=0.1, grad_clip=0.5)
    fb = icl_fast_step(b, lr=1e-2, weight_decay=0.1, grad_clip=0.5)
    for _ in range(3):
        fa.train_step(xs, ys)
        fb.train_step(xs, ys)
    keep = torch.tensor([0, 2])
    engine = StackEngine(b, fb, [], ["k0", "k1", "k2"])
    dropped = {k: v[1:2].clone() for k, v in b.state_dict().items()}
    engine.drop([1])
    assert engine.active == [0, 2] and fb.flat.shape[0] == 2 and b.n_models == 2
    assert all(torch.equal(engine.finished[1][k], v) for k, v in dropped.items())
    kept = []
    for _ in range(3):
        full = fa.train_step(xs, ys)
        kept.append(fb.train_step(xs[keep], ys[keep]))
        torch.testing.assert_close(kept[-1], full[keep], rtol=1e-6, atol=0)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert pb.untyped_storage().data_ptr() == fb.flat.untyped_storage().data_ptr(), name
        torch.testing.assert_close(pb.detach(), pa.detach()[keep], rtol=1e-6, atol=1e-7, msg=name)


def test_step_choice_is_validated_and_part_of_the_run_identity():
    with pytest.raises(ValueError, match=r"'step' must be one of fast, reference"):
        ICLTrainConfig(step="slow")
    assert ICLTrainConfig().step == "fast"
    a, b = _spec(step="fast"), _spec(step="reference")
    assert a.key() != b.key() and a.group_key() != b.group_key()
    assert ICLRunSpec.from_dict(b.to_dict()) == b and b.to_dict()["train"]["step"] == "reference"
    with pytest.raises(ValueError, match=r"'step' must be one of fast, reference"):
        ICLRunSpec.from_dict({**a.to_dict(), "train": {**a.to_dict()["train"], "step": "autograd"}})
