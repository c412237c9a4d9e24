"""Paper B's in-context model, its training, run cache, evaluation and claim verdicts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from jointtask_lib.paper_b import icl, icl_train
from jointtask_lib.paper_b.icl_model import ICLConfig, ICLModel, count_icl_params, interleave
from jointtask_lib.paper_b.icl_model import READ_IO_STREAM
from jointtask_lib.paper_b.icl_train import (
    ICLEvalConfig, ICLRunSpec, ICLTrainConfig, baseline_curves, evaluate_or_load, load_icl_log, load_icl_record,
    random_control_heads, snapshot_steps, task_loss_curves, train_icl_stack, train_or_load,
)
from jointtask_lib.paper_b.section import (
    claims_summary, converged, late_error, least_squares_gap, paper_b_claims, retention, tail_error,
    verdict_convergence, verdict_data_efficiency, verdict_forgetting, verdict_least_squares, verdict_masking,
)
from jointtask_lib.model import Probe
from jointtask_lib.runs import CorruptRecord, record_checksum, run_dir
from jointtask_lib.tasks.functions import sample_prompts

torch.set_num_threads(1)

TINY = ICLConfig(d=3, n_points=8, n_embed=16, n_layers=2, n_heads=2)
TC = ICLTrainConfig(steps=30, batch_size=8, lr=3e-3, snapshot_prompts=16, log_every=10)


def _spec(curriculum="mixed", tasks=icl_train.PAPER_TASKS, seed=0, train=TC, model=TINY, unit=True):
    return ICLRunSpec(curriculum=curriculum, tasks=tasks, model=model, train=train, unit_norm_w=unit, seed=seed)


def _prompts(m=None, b=4, n=8, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    lead = (b,) if m is None else (m, b)
    return torch.randn(*lead, n, d, generator=g), torch.randn(*lead, n, generator=g)


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [TINY, ICLConfig(d=5, n_points=20, n_embed=32, n_layers=3, n_heads=4, mlp_ratio=2),
                                 ICLConfig(d=20, n_points=100, n_embed=256, n_layers=12, n_heads=8)])
def test_count_params_exact(cfg):
    model = ICLModel(cfg, n_models=2) if cfg.n_embed < 256 else ICLModel(cfg, n_models=1)
    assert sum(p.numel() for p in model.parameters()) == model.n_models * count_icl_params(cfg)


def test_paper_size_param_count_by_hand():
    cfg = ICLConfig(d=20, n_points=100, n_embed=256, n_layers=12, n_heads=8)
    e = 256
    block = 2 * e + 3 * e * e + (e * e + e) + 2 * e + (e * 4 * e + 4 * e) + (4 * e * e + e)
    expected = (20 * e + e) + 200 * e + 12 * block + 2 * e + (e + 1)
    assert count_icl_params(cfg) == expected


def test_interleave_order_and_padding():
    xs = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)  # B=2, N=3, d=2
    ys = torch.tensor([[100.0, 101.0, 102.0], [200.0, 201.0, 202.0]])
    z = interleave(xs, ys)
    assert z.shape == (2, 6, 2)
    assert torch.equal(z[:, 0::2], xs)
    assert torch.equal(z[:, 1::2, 0], ys)
    assert torch.all(z[:, 1::2, 1:] == 0)
    assert z[0, :4].tolist() == [[0.0, 1.0], [100.0, 0.0], [2.0, 3.0], [101.0, 0.0]]
    with pytest.raises(ValueError, match="xs"):
        interleave(xs, ys[:, :2])


def test_forward_shapes_broadcast_and_short_prompts():
    model = ICLModel(TINY, n_models=3, seeds=[0, 1, 2])
    xs, ys = _prompts(m=3)
    assert model(xs, ys).shape == (3, 4, 8)
    x1, y1 = _prompts()
    shared = model(x1, y1)
    assert shared.shape == (3, 4, 8)
    torch.testing.assert_close(shared, model(x1.expand(3, -1, -1, -1), y1.expand(3, -1, -1)))
    assert model(x1[:, :5], y1[:, :5]).shape == (3, 4, 5)
    with pytest.raises(ValueError, match="n_points"):
        model(torch.randn(4, 9, 3), torch.randn(4, 9))
    with pytest.raises(ValueError, match="xs"):
        model(torch.randn(4, 8, 2), torch.randn(4, 8))


def test_prediction_at_k_ignores_y_k_and_later():
    model = ICLModel(TINY, n_models=2)
    xs, ys = _prompts()
    base = model(xs, ys)
    for k in (0, 3, 7):
        ys2 = ys.clone()
        ys2[:, k:] += 5.0
        out = model(xs, ys2)
        torch.testing.assert_close(out[..., : k + 1], base[..., : k + 1])
        if k < 7:
            assert not torch.allclose(out[..., k + 1 :], base[..., k + 1 :])


def test_stacked_equals_alone_forward():
    seeds = [3, 7, 11]
    stack = ICLModel(TINY, n_models=3, seeds=seeds)
    xs, ys = _prompts(m=3)
    out = stack(xs, ys)
    for i, s in enumerate(seeds):
        alone = ICLModel(TINY, n_models=1, seeds=[s])
        torch.testing.assert_close(out[i : i + 1], alone(xs[i : i + 1], ys[i : i + 1]), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[i : i + 1], stack.extract(i)(xs[i : i + 1], ys[i : i + 1]), atol=1e-6, rtol=0)


def test_stacked_equals_alone_training():
    tc = ICLTrainConfig(steps=6, batch_size=4, lr=1e-2, snapshot_prompts=0)
    specs = [_spec("mixed", seed=1, train=tc), _spec("single", ("cubic",), seed=2, train=tc)]
    together = train_icl_stack(specs, device="cpu")
    for i, s in enumerate(specs):
        alone = train_icl_stack([s], device="cpu")[0]
        for k, v in together[i].state.items():
            torch.testing.assert_close(v, alone.state[k], atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(together[i].loss_log, alone.loss_log, rtol=1e-5)


# ------------------------------------------------------------------------------------------------
# Head masking
# ------------------------------------------------------------------------------------------------


def _randomise(model: ICLModel, seed=0, zero_attn_bias=True):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if "ln" in name and name.endswith("weight") else 0.0))
        if zero_attn_bias:
            for b in model.backbone.blocks:
                b.attn.proj.bias.zero_()
    return model


def test_masking_all_heads_gives_the_no_attention_output():
    model = _randomise(ICLModel(TINY, n_models=2))
    xs, ys = _prompts()
    masked = model(xs, ys, head_mask=torch.zeros(2, 2))
    no_attn = model(xs, ys, probe=Probe(ablate={(0, layer, "attn") for layer in range(2)}))
    torch.testing.assert_close(masked, no_attn)
    assert not torch.allclose(masked, model(xs, ys))


def test_mask_of_ones_is_identity_and_hooks_are_removed():
    model = _randomise(ICLModel(TINY, n_models=2), zero_attn_bias=False)
    xs, ys = _prompts()
    base = model(xs, ys)
    torch.testing.assert_close(model(xs, ys, head_mask=torch.ones(2, 2)), base)
    model(xs, ys, head_mask=torch.zeros(2, 2))
    torch.testing.assert_close(model(xs, ys), base)  # no hook left behind
    with pytest.raises(ValueError, match="head_mask"):
        model(xs, ys, head_mask=torch.ones(3, 2))


def test_masking_changes_output_only_when_the_head_matters():
    model = _randomise(ICLModel(TINY, n_models=1), zero_attn_bias=False)
    dh = TINY.n_embed // TINY.n_heads
    with torch.no_grad():  # head 1 of layer 0 writes nothing: its rows of the projection are 0
        model.backbone.blocks[0].attn.proj.weight[:, dh : 2 * dh, :] = 0.0
    xs, ys = _prompts()
    base = model(xs, ys)
    dead = icl.head_mask([(0, 1)], 2, 2)
    live = icl.head_mask([(0, 0)], 2, 2)
    torch.testing.assert_close(model(xs, ys, head_mask=dead), base)
    assert (model(xs, ys, head_mask=live) - base).abs().max() > 1e-3


def test_per_model_masks():
    model = _randomise(ICLModel(TINY, n_models=2), zero_attn_bias=False)
    xs, ys = _prompts()
    base = model(xs, ys)
    mask = torch.ones(2, 2, 2)
    mask[0, 1, 0] = 0.0  # only model 0 loses a head
    out = model(xs, ys, head_mask=mask)
    torch.testing.assert_close(out[1], base[1])
    assert not torch.allclose(out[0], base[0])


def test_attention_maps_shape_and_rows_sum_to_one():
    model = ICLModel(TINY, n_models=2)
    xs, ys = _prompts()
    att = model.attention(xs, ys)
    assert att.shape == (2, 2, 2, 4, 16, 16)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 2, 2, 4, 16))
    scores = icl.retrospective_scores(att[0])
    assert scores.shape == (2, 2)
    chunked = icl_train.head_scores(model, xs, ys, max_elements=2 * 2 * 2 * 16 * 16)  # one prompt at a time
    torch.testing.assert_close(chunked[0], scores.double())
    torch.testing.assert_close(chunked, icl_train.head_scores(model, xs, ys))


# ------------------------------------------------------------------------------------------------
# Training, logs, curves, cache
# ------------------------------------------------------------------------------------------------


def test_spec_validation_and_keys():
    with pytest.raises(ValueError, match="exactly one task"):
        _spec("single", ("linear", "cubic"))
    with pytest.raises(ValueError, match="curriculum"):
        _spec("shuffled")
    with pytest.raises(ValueError, match="tasks"):
        _spec("mixed", ("linear", "quintic"))
    with pytest.raises(ValueError, match="seed"):
        _spec(seed=icl_train.MAX_TRAIN_SEED + 1)
    with pytest.raises(ValueError, match="n_heads"):
        ICLConfig(n_embed=30, n_heads=4)
    a, b = _spec(seed=0), _spec(seed=1)
    assert a.key() == _spec(seed=0).key() and a.key() != b.key()
    assert a.group_key() == b.group_key() == _spec("single", ("linear",)).group_key()
    assert ICLRunSpec.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert _spec("single", ("quadratic",)).label() == "single:quadratic"


def test_per_step_task_log_matches_curriculum(monkeypatch, tmp_path):
    used = []
    real = icl_train.sample_prompts

    def spy(name, *args, **kw):
        used.append(name)
        return real(name, *args, **kw)

    monkeypatch.setattr(icl_train, "sample_prompts", spy)
    tc = ICLTrainConfig(steps=24, batch_size=4, lr=1e-3, snapshot_prompts=0, log_every=5)
    specs = [_spec("mixed", seed=4, train=tc), _spec("sequential", seed=4, train=tc), _spec("random", seed=5, train=tc)]
    recs = train_or_load(tmp_path, specs, device="cpu")
    per_step = np.array(used).reshape(24, 3)  # models are sampled in stack order at every step
    for i, (s, rec) in enumerate(zip(specs, recs)):
        sched = icl.curriculum_schedule(s.curriculum, list(s.tasks), 24, seed=s.seed)
        log = load_icl_log(tmp_path, s)
        assert np.array_equal(log["task"], sched)
        assert list(per_step[:, i]) == [s.tasks[t] for t in sched]
        counts = np.bincount(sched, minlength=3)
        assert [rec["exposure"][t]["steps"] for t in s.tasks] == counts.tolist()
        assert rec["exposure"]["cubic"]["prompts"] == counts[2] * 4
        assert rec["exposure"]["cubic"]["examples"] == counts[2] * 4 * TINY.n_points
    assert np.array_equal(load_icl_log(tmp_path, specs[1])["task"], np.repeat([0, 1, 2], 8))


def test_training_reduces_loss_on_linear():
    # d = 1 keeps it to a few seconds: y = w x, so one in-context pair determines w.  Predicting 0
    # scores 1 (unnormalised w, error / d); least squares averages 1/5 over the 5 positions.
    cfg = ICLConfig(d=1, n_points=5, n_embed=16, n_layers=2, n_heads=2)
    tc = ICLTrainConfig(steps=250, batch_size=64, lr=1e-2, warmup=20, snapshot_prompts=0)
    res = train_icl_stack([_spec("single", ("linear",), model=cfg, train=tc, seed=0, unit=False)], device="cpu")[0]
    first, last = res.loss_log[:20].mean(), res.loss_log[-50:].mean()
    assert last < 0.75 and last < 0.75 * first, (first, last)


def test_task_loss_curves_and_snapshot_steps():
    tl = np.array([0, 1, 0, 2, 2, 0, 1, 1])
    ll = np.arange(8, dtype=float)
    c = task_loss_curves(tl, ll, ("a", "b", "c"), window=4)
    assert c["by_step"]["a"] == {"step": [4, 8], "loss": [1.0, 5.0], "n": [2, 1]}
    assert c["by_step"]["c"] == {"step": [4, 8], "loss": [3.0, 4.0], "n": [1, 1]}
    assert c["by_task_batches"]["b"] == {"batches": [3], "loss": [(1 + 6 + 7) / 3]}
    assert c["by_task_batches"]["a"]["batches"] == [3]
    assert snapshot_steps(10) == [3, 6, 10]
    np.testing.assert_allclose(icl_train.rolling_mean([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])


def test_run_cache_and_eval_cache_reuse(monkeypatch, tmp_path):
    specs = [_spec("mixed", seed=0), _spec("single", ("linear",), seed=1)]
    recs = train_or_load(tmp_path, specs, device="cpu")
    assert [r["label"] for r in recs] == ["mixed", "single:linear"]
    assert len(recs[0]["snapshots"]) == 3 and set(recs[0]["snapshots"][0]["classes"]) == set(icl_train.PAPER_TASKS)
    ecfg = ICLEvalConfig(n_prompts=32, batch_size=16, n_boot=20, score_prompts=8, n_mask=1)
    evs = evaluate_or_load(tmp_path, specs, ecfg, device="cpu")
    assert set(evs[0]["curves"]["quadratic"]) == {"none", "top", "bottom", "random"}
    for ev in evs:
        top = {tuple(h) for h in ev["masked_heads"]["top"]}
        assert len(ev["masked_heads"]["random"]) == 1 and not top & {tuple(h) for h in ev["masked_heads"]["random"]}
    assert len(evs[0]["curves"]["linear"]["none"]["mean"]) == TINY.n_points
    assert np.array(evs[1]["head_scores"]["cubic"]).shape == (2, 2)

    def boom(*a, **k):
        raise AssertionError("should have been read from the cache")

    monkeypatch.setattr(icl_train, "train_icl_stack", boom)
    monkeypatch.setattr(icl_train, "evaluate_stack", boom)
    again = train_or_load(tmp_path, specs[::-1], device="cpu")
    assert [r["key"] for r in again] == [s.key() for s in specs[::-1]]
    assert evaluate_or_load(tmp_path, specs, ecfg, device="cpu") == evs
    assert ecfg.key() in load_icl_record(tmp_path, specs[0])["evals"]
    with pytest.raises(ValueError, match="train it first"):
        evaluate_or_load(tmp_path, [_spec(seed=9)], ecfg)


def test_resume_from_checkpoint_matches_uninterrupted(monkeypatch, tmp_path):
    tc = ICLTrainConfig(steps=12, batch_size=4, lr=3e-3, snapshot_prompts=8)
    specs = [_spec("sequential", seed=2, train=tc), _spec("random", seed=3, train=tc)]
    full = train_icl_stack(specs, device="cpu")
    ck = tmp_path / "ckpt.pt"
    real = icl_train._sample_step

    def dies_at_9(specs_, scheds, gens, step, device):
        if step == 9:
            raise KeyboardInterrupt
        return real(specs_, scheds, gens, step, device)

    monkeypatch.setattr(icl_train, "_sample_step", dies_at_9)
    with pytest.raises(KeyboardInterrupt):
        train_icl_stack(specs, device="cpu", checkpoint_path=ck, checkpoint_every=4)
    assert ck.exists()
    monkeypatch.setattr(icl_train, "_sample_step", real)
    resumed = train_icl_stack(specs, device="cpu", checkpoint_path=ck, checkpoint_every=4)
    for a, b in zip(full, resumed):
        for k in a.state:
            torch.testing.assert_close(a.state[k], b.state[k])
        np.testing.assert_allclose(a.loss_log, b.loss_log)
        assert a.snapshots == b.snapshots


def test_baseline_curves_least_squares_exact_on_linear():
    ecfg = ICLEvalConfig(classes=("linear", "cubic"), n_prompts=64, n_boot=20)
    b = baseline_curves(3, 16, True, ecfg, fit_positions=[3, 15])
    assert b["linear"]["levels"]["zero"] == pytest.approx(1 / 3)
    assert b["linear"]["levels"]["method"] == "exact"
    ls = b["linear"]["baselines"]["least_squares"]["mean"]
    assert max(ls[3:]) < 1e-8 and ls[1] > 0.05
    assert set(b["linear"]["baselines"]) == {"least_squares", "3nn", "averaging"}  # no separate correct fit
    cub = b["cubic"]["baselines"]
    assert set(cub) == {"least_squares", "3nn", "averaging", "poly_least_squares", "single_index_fit"}
    sif = np.array(cub["single_index_fit"]["mean"])
    assert np.isnan(np.delete(sif, [3, 15])).all() and np.isfinite(sif[[3, 15]]).all()
    # with k = 15 >= 4d examples the correctly specified fit is (nearly) exact; linear least squares is not
    assert sif[15] < 0.05 * cub["least_squares"]["mean"][15]
    only = baseline_curves(3, 8, True, ecfg, names=["least_squares", "poly_least_squares"])
    assert set(only["linear"]["baselines"]) == {"least_squares"}
    assert set(only["cubic"]["baselines"]) == {"least_squares", "poly_least_squares"}
    with pytest.raises(ValueError, match="names"):
        baseline_curves(3, 8, True, ecfg, names=["ridge"])


def test_fit_positions_default():
    assert icl_train.fit_positions_default(5, 20) == [2, 5, 10, 15, 19]
    assert icl_train.fit_positions_default(5, 10) == [2, 5, 9]
    assert icl_train.fit_positions_default(20, 100) == [2, 20, 40, 60, 80, 99]


# ------------------------------------------------------------------------------------------------
# Random streams: initialisation, training prompts and evaluation never share one
# ------------------------------------------------------------------------------------------------


def test_torch_generator_keeps_only_32_bits_of_a_seed():
    # Why the streams are offset inside 32 bits: seed + 2**32 would be the same stream as seed.
    a = torch.randn(4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, torch.randn(4, generator=torch.Generator().manual_seed(5 + 2**32)))
    assert icl_train.PROMPT_STREAM + icl_train.MAX_TRAIN_SEED < 2**32
    assert READ_IO_STREAM + icl_train.MAX_TRAIN_SEED < icl_train.PROMPT_STREAM
    assert icl_train.SNAPSHOT_SEED < READ_IO_STREAM and icl_train.EVAL_SEED > icl_train.MAX_TRAIN_SEED
    with pytest.raises(ValueError, match="seed"):
        ICLEvalConfig(seed=READ_IO_STREAM)


def test_first_training_batch_is_not_the_initialisation_draws(monkeypatch):
    """Regression: prompts were drawn from a generator seeded like the initialisation, so the first
    batch's x equalled the raw N(0, 1) draws that init_stacked scaled into the weights."""
    seen = []
    real = icl_train.sample_prompts

    def spy(name, batch, n_points, d, gen, **kw):
        out = real(name, batch, n_points, d, gen, **kw)
        seen.append(out[0].clone())
        return out

    monkeypatch.setattr(icl_train, "sample_prompts", spy)
    tc = ICLTrainConfig(steps=3, batch_size=4, lr=1e-3, snapshot_prompts=0)
    seed = 3
    train_icl_stack([_spec("single", ("linear",), seed=seed, train=tc)], device="cpu")
    first = seen[0]
    raw_init = torch.randn(first.numel(), generator=torch.Generator().manual_seed(seed)).view_as(first)
    assert not torch.allclose(first, raw_init)  # the old behaviour: exactly equal
    # the positional embedding (init_stacked: 0.02 x its draws) is not a slice of the prompts either
    wpe = ICLModel(TINY, 1, seeds=[seed]).wpe.detach().flatten() / 0.02
    flat = first.flatten()
    assert not any(torch.allclose(flat[i:i + 16], wpe[:16], atol=1e-5) for i in range(0, flat.numel() - 16))
    # what training draws is exactly the documented prompt stream
    xs, _ = sample_prompts("linear", 4, TINY.n_points, TINY.d, icl_train.prompt_generator(seed), unit_norm_w=True)
    torch.testing.assert_close(first, xs)


def test_read_in_init_is_not_the_backbone_stream():
    # init_icl used seed + 2**32, which torch truncates to seed: read-in drawn from the backbone's stream.
    seed = 4
    model = ICLModel(TINY, 1, seeds=[seed])
    same_stream = torch.rand(model.read_in.weight.shape[1:], generator=torch.Generator().manual_seed(seed))
    bound = 1.0 / TINY.d ** 0.5
    assert not torch.allclose(model.read_in.weight[0], (same_stream * 2 - 1) * bound)
    own = torch.rand(model.read_in.weight.shape[1:], generator=torch.Generator().manual_seed(READ_IO_STREAM + seed))
    torch.testing.assert_close(model.read_in.weight[0], (own * 2 - 1) * bound)


def test_run_format_bumped_so_old_runs_are_not_reused():
    assert icl_train.RUN_FORMAT >= 2
    spec = _spec()
    old_key = icl_train._hash({"format": 1, "kind": "icl", **spec.to_dict()})
    assert spec.key() != old_key


def test_corrupt_icl_record_is_reported(tmp_path):
    spec = _spec("single", ("linear",), train=ICLTrainConfig(steps=3, batch_size=2, snapshot_prompts=0))
    train_or_load(tmp_path, [spec], device="cpu")
    p = run_dir(icl_train.icl_root(tmp_path), spec) / "record.json"
    rec = json.loads(p.read_text())
    del rec["curves"]
    p.write_text(json.dumps(rec))
    with pytest.raises(CorruptRecord, match="checksum"):  # edited after it was written
        load_icl_record(tmp_path, spec)
    rec["checksum"] = record_checksum(rec)  # an edit that recomputed the checksum: still incomplete
    p.write_text(json.dumps(rec))
    with pytest.raises(CorruptRecord, match="curves"):
        load_icl_record(tmp_path, spec)
    # another run's configuration under this key (checksum recomputed): its spec hashes elsewhere
    rec = json.loads(p.read_text())
    rec["curves"], rec["spec"]["seed"] = {}, rec["spec"]["seed"] + 1
    rec["checksum"] = record_checksum(rec)
    p.write_text(json.dumps(rec))
    with pytest.raises(CorruptRecord, match="stored spec hashes to"):
        load_icl_record(tmp_path, spec)


def test_two_workers_give_the_runs_of_one(tmp_path):
    tc = ICLTrainConfig(steps=8, batch_size=4, lr=3e-3, snapshot_prompts=8)
    specs = [_spec("mixed", seed=0, train=tc), _spec("single", ("cubic",), seed=1, train=tc),
             _spec("random", seed=2, train=tc)]
    one = train_or_load(tmp_path / "one", specs, device="cpu")
    two = train_or_load(tmp_path / "two", specs, device="cpu", workers=2)
    for a, b, s in zip(one, two, specs):
        assert a["key"] == b["key"] == s.key()
        assert a["exposure"] == b["exposure"]
        np.testing.assert_allclose(load_icl_log(tmp_path / "one", s)["loss"], load_icl_log(tmp_path / "two", s)["loss"],
                                   rtol=1e-5)
        wa = torch.load(run_dir(icl_train.icl_root(tmp_path / "one"), s) / "model.pt", weights_only=True)
        wb = torch.load(run_dir(icl_train.icl_root(tmp_path / "two"), s) / "model.pt", weights_only=True)
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=1e-5)
    assert not list((icl_train.icl_root(tmp_path / "two") / "groups").rglob("ckpt.pt"))


# ------------------------------------------------------------------------------------------------
# Distribution shift and the masking control
# ------------------------------------------------------------------------------------------------


def test_eval_config_shift_options():
    base, skew, scaled = ICLEvalConfig(), ICLEvalConfig(x_dist="skewed"), ICLEvalConfig(x_scale=2.0)
    assert len({base.key(), skew.key(), scaled.key(), ICLEvalConfig(x_dist="skewed", cov_seed=1).key()}) == 4
    assert base.shift_label() == "in distribution"
    assert skew.shift_label() == "skewed covariance" and scaled.shift_label() == "x scaled x2"
    with pytest.raises(ValueError, match="x_dist"):
        ICLEvalConfig(x_dist="uniform")
    with pytest.raises(ValueError, match="x_scale"):
        ICLEvalConfig(x_scale=0.0)
    p0 = base.prompts("linear", 3, 8, True)
    p2 = scaled.prompts("linear", 3, 8, True)
    torch.testing.assert_close(p2[0][0], 2 * p0[0][0])  # same draws, x doubled, same w
    torch.testing.assert_close(p2[0][1], 2 * p0[0][1])
    from jointtask_lib.tasks.functions import skewed_transform

    xs = torch.cat([x for x, _ in ICLEvalConfig(x_dist="skewed", n_prompts=2000).prompts("linear", 3, 8, True)])
    cov = torch.cov(xs.reshape(-1, 3).double().T)
    a = skewed_transform(3, 0)
    torch.testing.assert_close(cov, a @ a, atol=0.05, rtol=0.05)


def test_baselines_and_levels_under_shift():
    ecfg = ICLEvalConfig(classes=("linear", "quadratic"), n_prompts=256, n_boot=20, x_scale=2.0)
    b = baseline_curves(3, 8, True, ecfg, names=["least_squares"])
    assert b["linear"]["levels"]["method"] == "exact"
    assert b["linear"]["levels"]["zero"] == pytest.approx(4 / 3)  # E[(w.x)^2] / d = x_scale^2 / d
    sk = baseline_curves(3, 8, True, ICLEvalConfig(classes=("linear",), n_prompts=256, n_boot=20, x_dist="skewed"),
                         names=["least_squares"])
    lv = sk["linear"]["levels"]
    assert lv["method"] == "mc"
    assert lv["zero"] == pytest.approx(1 / 3, rel=0.1)  # trace(Cov x) = d keeps E[(w.x)^2] = 1 for unit w
    assert max(sk["linear"]["baselines"]["least_squares"]["mean"][3:]) < 1e-6  # still exact once k >= d


def test_shifted_evaluation_is_cached_separately(tmp_path):
    specs = [_spec("mixed", seed=0, train=ICLTrainConfig(steps=6, batch_size=4, snapshot_prompts=0))]
    train_or_load(tmp_path, specs, device="cpu")
    plain = ICLEvalConfig(classes=("linear",), n_prompts=32, n_boot=10, score_prompts=8, n_mask=0)
    skew = ICLEvalConfig(classes=("linear",), n_prompts=32, n_boot=10, score_prompts=8, n_mask=0, x_dist="skewed")
    a = evaluate_or_load(tmp_path, specs, plain, device="cpu")[0]
    b = evaluate_or_load(tmp_path, specs, skew, device="cpu")[0]
    assert set(a["curves"]["linear"]) == {"none"}
    assert a["curves"]["linear"]["none"]["mean"] != b["curves"]["linear"]["none"]["mean"]
    assert b["eval"]["x_dist"] == "skewed"
    assert set(load_icl_record(tmp_path, specs[0])["evals"]) == {plain.key(), skew.key()}


def test_random_control_heads():
    scores = np.arange(12.0).reshape(3, 4)
    top = icl.select_heads(scores, 2, "top")
    a = random_control_heads(scores, 3, top, seed=7)
    assert a == random_control_heads(scores, 3, top, seed=7)
    assert len(a) == 3 and len(set(a)) == 3 and not set(a) & set(top)
    picks = {h for s in range(50) for h in random_control_heads(scores, 2, top, seed=s)}
    assert picks == {(i, j) for i in range(3) for j in range(4)} - set(top)  # every other head can be drawn
    with pytest.raises(ValueError, match="'n'"):
        random_control_heads(scores, 11, top, seed=0)


def test_n_mask_larger_than_half_the_heads_is_rejected(tmp_path):
    specs = [_spec("mixed", seed=0, train=ICLTrainConfig(steps=3, batch_size=2, snapshot_prompts=0))]
    train_or_load(tmp_path, specs, device="cpu")
    with pytest.raises(ValueError, match="n_mask"):
        evaluate_or_load(tmp_path, specs, ICLEvalConfig(n_prompts=8, n_boot=5, score_prompts=4, n_mask=3))


# ------------------------------------------------------------------------------------------------
# Claim verdicts on synthetic inputs
# ------------------------------------------------------------------------------------------------


def test_tail_error_and_late_error():
    assert tail_error(np.arange(20.0)) == 18.5  # last 2 of 20
    assert tail_error(np.arange(100.0)) == pytest.approx(np.arange(90, 100).mean())
    assert late_error(np.arange(10.0), 5) == pytest.approx(7.0)  # mean of k = 5..9
    assert late_error([3.0, 1.0], 0) == 2.0
    with pytest.raises(ValueError, match="start"):
        late_error(np.arange(5.0), 5)


def test_verdict_data_efficiency():
    c, f = 10.0, 0.11
    assert verdict_data_efficiency(0.9, 1.0, 0.9, 1.0, c, f) == "reproduced"
    assert verdict_data_efficiency(1.15, 1.0, 1.19, 1.0, c, f) == "reproduced"
    assert verdict_data_efficiency(1.3, 1.0, 1.1, 1.0, c, f) == "inconclusive"
    assert verdict_data_efficiency(2.0, 1.0, 1.0, 1.0, c, f) == "not reproduced"
    assert verdict_data_efficiency(0.5, 6.0, 0.5, 6.0, c, f) == "inconclusive"  # single learned too little
    assert verdict_data_efficiency(0.5, 1.0, 0.5, 1.0, c, 0.5) == "inconclusive"  # not ~1/9 of the data
    # the all-k mean alone would say "reproduced"; the tail shows mixed is twice as bad once k >= d
    assert verdict_data_efficiency(1.1, 1.0, 2.0, 1.0, c, f) == "not reproduced"
    assert verdict_data_efficiency(1.1, 1.0, 1.4, 1.0, c, f) == "inconclusive"
    # "learned" is judged at k >= d: a single-task model that learned only late still counts
    assert verdict_data_efficiency(5.5, 6.0, 1.0, 1.0, c, f) == "reproduced"
    assert verdict_data_efficiency(0.5, 1.0, 5.5, 6.0, c, f) == "inconclusive"
    v, why = verdict_data_efficiency(1.1, 1.0, 2.0, 1.0, c, f, explain=True)
    assert v == "not reproduced" and "2.00 at k >= d" in why


def test_verdict_convergence():
    c = 0.2
    assert converged(0.04, c) and not converged(0.06, c)
    assert verdict_convergence([0.01, 0.02, 0.3], [0.2, 0.19, 0.18], c) == "reproduced"
    assert verdict_convergence([0.01, 0.02, 0.01], [0.01, 0.2, 0.18], c) == "reproduced"  # 3/3 vs 1/3
    assert verdict_convergence([0.01, 0.2, 0.2], [0.2, 0.2, 0.2], c) == "inconclusive"  # 1/3 vs 0/3
    assert verdict_convergence([0.01, 0.02], [0.2, 0.2], c) == "inconclusive"  # too few seeds
    assert verdict_convergence([0.2], [0.2], c) == "inconclusive"  # too few seeds, even if both fail
    # both fail at every seed: a budget failure, not evidence against the claim
    v, why = verdict_convergence([0.2, 0.2, 0.2], [0.2, 0.2, 0.2], c, explain=True)
    assert v == "inconclusive" and "budget" in why and "0/3" in why
    assert verdict_convergence([0.01] * 3, [0.02] * 3, c) == "not reproduced"  # both succeed
    assert verdict_convergence([0.01, 0.2, 0.2], [0.01, 0.02, 0.2], c) == "not reproduced"  # single more often
    assert verdict_convergence([0.05, 0.2, 0.2], [0.2] * 3, c) == "inconclusive"  # exactly on the line counts
    assert verdict_convergence([0.01, 0.2, 0.2], [0.2] * 3, c, min_seeds=1) == "inconclusive"


def test_verdict_forgetting():
    assert verdict_forgetting(0.01, 0.5, 0.2) == "reproduced"
    assert verdict_forgetting(0.01, 0.011, 0.2) == "not reproduced"
    assert verdict_forgetting(0.01, 0.05, 0.2) == "inconclusive"  # 5x worse but still good ICL
    assert verdict_forgetting(0.15, 0.3, 0.2) == "inconclusive"  # never learned: nothing to forget
    assert verdict_forgetting(0.1, 0.1, 0.2) == "not reproduced"  # exactly half the level counts as learned
    assert "never learned" in verdict_forgetting(0.15, 0.3, 0.2, explain=True)[1]


def test_verdict_masking():
    def case(top, bottom, unmasked=0.02, constant=0.2, **kw):
        return {"unmasked": unmasked, "top": top, "bottom": bottom, "constant": constant, **kw}

    assert retention(0.2, 0.02, 0.2) == pytest.approx(0.0)
    assert retention(0.02, 0.02, 0.2) == pytest.approx(1.0)
    assert np.isnan(retention(0.1, 0.3, 0.2))  # no gain to keep
    assert verdict_masking([case(0.21, 0.03), case(0.19, 0.05)]) == "reproduced"
    assert verdict_masking([case(0.19, 0.2), case(0.2, 0.21)]) == "not reproduced"  # control destroys too
    assert verdict_masking([case(0.03, 0.03)]) == "not reproduced"  # nothing destroyed
    assert verdict_masking([case(0.15, 0.05)]) == "inconclusive"  # partial damage
    assert verdict_masking([case(0.2, 0.02, unmasked=0.19)]) == "inconclusive"  # model never learned
    assert verdict_masking([]) == "inconclusive"
    # the random control: destroying as much as the top heads means the top heads are not special
    assert verdict_masking([case(0.21, 0.03, random=0.03)]) == "reproduced"
    assert verdict_masking([case(0.21, 0.03, random=0.2)]) == "not reproduced"
    assert verdict_masking([case(0.21, 0.03, random=0.12)]) == "inconclusive"  # control keeps < half
    v, why = verdict_masking([case(0.21, 0.03, random=0.03)], explain=True)
    assert "random control 0.94" in why and "bottom control 0.94" in why and "top heads masked -0.06" in why


def test_verdict_least_squares():
    ls = np.array([1.0, 0.8, 0.6, 0.4, 0.2, 0.0, 0.0, 0.0])
    g = least_squares_gap(ls + 0.02, ls, zero_level=1.0)
    assert g["mean"] == pytest.approx(0.02) and g["max"] == pytest.approx(0.02)
    assert verdict_least_squares(g["mean"], g["max"], 0.02, 1.0) == "reproduced"
    g = least_squares_gap(ls + np.array([0, 0, 0, 0, 0, 0.3, 0.0, 0.0]), ls, 1.0)
    assert verdict_least_squares(g["mean"], g["max"], 0.1, 1.0) == "inconclusive"  # one big miss near k = d
    assert verdict_least_squares(0.3, 0.5, 0.3, 1.0) == "not reproduced"
    # a model that never learned (error near the constant predictor at k >= d): untested, not a refutation
    v, why = verdict_least_squares(0.7, 0.9, 0.95, 1.0, explain=True)
    assert v == "inconclusive" and "never learned" in why
    assert verdict_least_squares(0.4, 0.6, 0.5, 1.0) == "not reproduced"  # exactly half counts as learned


def _fake_run(label, seed, curves, d=3, exposure=None, snapshots=None, masks=None):
    cur, tasks = label.split(":") if ":" in label else (label, None)
    spec = _spec(cur, (tasks,) if tasks else icl_train.PAPER_TASKS, seed=seed)
    ev = {"curves": {c: {"none": {"mean": list(v)}} for c, v in curves.items()},
          "masked_heads": {"top": [[0, 0]], "bottom": [[1, 1]], "random": [[0, 1]]}}
    for c, conds in (masks or {}).items():
        for k, v in conds.items():
            ev["curves"][c][k] = {"mean": list(v)}
    return {"spec": spec, "record": {"exposure": exposure or {"cubic": {"fraction": 1 / 9, "steps": 3}},
                                     "snapshots": snapshots or []}, "eval": ev}


def test_paper_b_claims_rows_and_summary():
    n, lv = 8, {"zero": 1.0, "constant": 1.0}
    flat = np.full(n, 1.0)  # never learned: at the constant level
    good = np.r_[1.0, 0.5, 0.2, np.full(n - 3, 0.05)]
    base = {c: {"levels": dict(lv), "baselines": {"least_squares": {"mean": list(np.r_[1.0, 0.6, 0.3, np.zeros(n - 3)])}}}
            for c in icl_train.PAPER_TASKS}
    runs = [_fake_run("mixed", s, {"cubic": good, "quadratic": flat},
                      masks={"cubic": {"top": flat, "bottom": good, "random": good}}) for s in range(3)]
    runs += [_fake_run("single:quadratic", s, {"quadratic": flat}) for s in range(3)]
    runs += [_fake_run("single:cubic", s, {"cubic": good}, exposure={"cubic": {"fraction": 1.0, "steps": 27}})
             for s in range(3)]
    runs += [_fake_run("single:linear", 0, {"linear": flat})]
    rows = paper_b_claims(runs, base, preset="test")
    by = {r["id"]: r for r in rows}
    assert [r["id"] for r in rows] == ["B1-cubic-data", "B2-quadratic-convergence", "B3-sequential-forgets",
                                       "B4-retrospective-masking", "B5-linear-least-squares"]
    assert by["B1-cubic-data"]["verdict"] == "reproduced"
    assert "3 mixed seeds and 3 single-task cubic seeds" in by["B1-cubic-data"]["note"]
    assert by["B2-quadratic-convergence"]["verdict"] == "inconclusive"  # 0/3 vs 0/3: budget failure
    assert "budget" in by["B2-quadratic-convergence"]["note"]
    assert by["B3-sequential-forgets"]["ours"] == "not run"
    assert by["B4-retrospective-masking"]["verdict"] == "reproduced"
    assert "random other" in by["B4-retrospective-masking"]["ours"]
    assert by["B5-linear-least-squares"]["verdict"] == "inconclusive"  # the linear model never learned
    assert "1 linear-only seed" in by["B5-linear-least-squares"]["note"]
    text = claims_summary(rows)
    assert text.splitlines()[0] == "5 claims at the 'test' preset: 2 reproduced, 0 not reproduced, 3 inconclusive"
    assert "Rule (" not in text and "budget" in text
