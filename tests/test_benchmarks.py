"""The benchmark scripts that feed README numbers run end to end (tiny settings)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_headline_seeds_trains_extra_seeds_and_reports_both_seed_sets(tmp_path, capsys):
    hs = _load("headline_seeds")
    out = tmp_path / "h.json"
    assert hs.main(["--results", str(tmp_path / "res"), "--preset", "smoke", "--extra-seeds", "3",
                    "--workers", "1", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data == json.loads(capsys.readouterr().out)
    res = data["results"]["10"]
    assert res["preset_seeds"]["seeds"] == [0, 1] and res["all_seeds"]["seeds"] == [0, 1, 3]
    assert res["extra_seeds_only"]["seeds"] == [3]
    acc = res["accuracy_by_width_and_seed"]
    assert set(acc) == {"ADD", "ADD+MAX+MED"}
    for mix in acc.values():  # smoke widths 8, 12, 16; every width has the 2 preset seeds and seed 3
        assert set(mix) == {"8", "12", "16"} and all(set(v) == {"0", "1", "3"} for v in mix.values())
        assert all(0.0 <= a <= 1.0 for v in mix.values() for a in v.values())
    # the runs are in the cache: the records on disk are the ones reported
    records = [json.loads(p.read_text()) for p in (tmp_path / "res" / "runs").glob("*/record.json")]
    assert len(records) == 2 * 3 * 3
    for r in records:
        mix = "+".join(r["spec"]["task"]["ops"])
        want = acc[mix][str(r["spec"]["arch"]["n_embed"])][str(r["spec"]["seed"])]
        assert abs(r["metrics"]["per_op"]["ADD"]["gen_acc"] - want) < 1e-3


def test_train_throughput_step_compare_reports_the_ratios(monkeypatch):
    tt = _load("train_throughput")
    monkeypatch.setattr(tt, "TARGET_S", 0.005)
    monkeypatch.setattr(tt, "MIN_MODEL_STEPS", 2)
    out = tt.step_compare("quick", [8], reps=1, m_override=2, log=lambda *a: None)
    (row,) = out["table"]
    assert (row["d"], row["M"], row["variant"]) == (8, 2, "quick")
    rate = {k: row[k]["model_steps_per_cpu_s"] for k in ("fast", "reference", "single")}
    assert all(v > 0 for v in rate.values())
    assert abs(row["ratio_fast_vs_reference_step"] - rate["fast"] / rate["reference"]) < 0.01 * row["ratio_fast_vs_reference_step"] + 1e-3
    assert abs(row["ratio_fast_vs_single"] - rate["fast"] / rate["single"]) < 0.01 * row["ratio_fast_vs_single"] + 1e-3
    assert 0 < row["share_of_matmul_peak_fast"] < 2
    assert set(out["goals"]) == {"fast_ge_2x_reference_step_at_d_le_32", "fast_ge_3x_single_at_d_le_32",
                                 "fast_never_slower_than_reference_step", "fast_never_slower_than_single"}
    assert out["env"]["torch_threads"] == 1


def test_icl_throughput_reports_the_step_ratio():
    it = _load("icl_throughput")
    small = it.ICLConfig(d=2, n_points=4, n_embed=8, n_layers=1, n_heads=2)
    out = it.compare(models=(1, 2), reps=1, steps=2, model=small, train=dict(batch_size=4, lr=1e-3, snapshot_prompts=0))
    assert [r["M"] for r in out["table"]] == [1, 2] and out["ratio_at_M"] == 2
    for row in out["table"]:
        f, r = row["fast"]["model_steps_per_cpu_s"], row["reference"]["model_steps_per_cpu_s"]
        assert f > 0 and r > 0 and row["fast"]["n_samples"] == 1
        assert abs(row["ratio_fast_vs_reference_step"] - f / r) <= 0.01 * f / r + 1e-3
        assert row["sampling_cpu_s_per_stack_step"] >= 0
    assert out["ratio_fast_vs_reference_step"] == out["table"][1]["ratio_fast_vs_reference_step"]
    assert out["env"]["torch_threads"] == 1 and out["settings"]["model"]["n_embed"] == 8



@pytest.mark.parametrize("step", ["fast", "reference"])
def test_train_throughput_times_the_library_step(step):
    """The benchmark's step is the library's (train.stack_optimiser, what train_stack runs): one
    timed step and the library's step on the same batch from the same start agree exactly."""
    import copy

    from jointtask_lib.train import _stack_rows, stack_optimiser

    tt = _load("train_throughput")
    tr = tt.Trainer("quick", 8, 2, step=step)
    assert tr.spec.train.step == step and tr.spec.train.lr == tt.LR
    start = copy.deepcopy(tr.model)
    model = copy.deepcopy(tr.model)
    _, library_step = stack_optimiser(model, tr.spec.train, tr.pad)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]  # the Trainer's streams (seed0 = 0)
    rows = [torch.randint(len(tr.train), (tt.BATCH,), generator=g) for g in gens]
    batch = _stack_rows([tr.train] * 2, rows, "cpu")
    tr.run(1)
    library_step(batch["tokens"], batch["prompt_len"], tt.LR)
    params = dict(tr.model.named_parameters())
    assert any(not torch.equal(params[n], p) for n, p in start.named_parameters())  # the step moved them
    for name, p in model.named_parameters():
        torch.testing.assert_close(params[name], p, rtol=0, atol=0, msg=name)
