"""The one stacked-training engine (train.StackEngine) that paper A's and paper B's trainers share
(issue 13, item 4), and the run keys that moving the loops onto it must not change."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

import jointtask_lib.train as tr
from jointtask_lib.paper_b.icl_model import ICLConfig
from jointtask_lib.paper_b.icl_train import ICLRunSpec, ICLTrainConfig, train_icl_stack
from jointtask_lib.sweep import load_sweep
from jointtask_lib.tasks import TaskConfig
from jointtask_lib.train import Arch, RunSpec, StackEngine, TrainConfig, train_stack

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# Computed with the code of commit c8adedb (before the training loops moved onto StackEngine):
# per sweep file and preset, the number of runs, a hash of their keys in order, the first and last
# key.  A run cache built before the change must still be found after it.
FROZEN_KEYS = {
    "controls/smoke": [6, "e4b2766df74c05e6", "e6ac1d5b9892a68f", "49b856f81eee21c3"],
    "controls/quick": [160, "a0e0b31dd048d2f2", "fc471d0d4f16bd9c", "404688b6c15124bb"],
    "joint_training/smoke": [18, "41784ad2f0e2288d", "3725812cd9573691", "1bba42a90fad6286"],
    "joint_training/quick": [500, "9c167077b7695e92", "c2898970a1f9d723", "695b1e48601d3de2"],
    "permutations/smoke": [6, "752ef486c3709edf", "c35bfe35068d97e9", "858e362999b96fab"],
    "permutations/quick": [50, "3af30e1b0f1108ce", "b9f78b4312df4c6b", "c14c9fe0b7ad13c7"],
    "prime_modulus/smoke": [6, "2f80b834bbc41908", "b0731dc4974f81c2", "8a5cd75aaf08d357"],
    "prime_modulus/quick": [160, "40ff378b6785b50b", "3adc7911d1c44fe8", "93547a2e855e00e8"],
    "single_task/smoke": [12, "5c55ea1714a2b653", "3725812cd9573691", "4477f674c4670240"],
    "single_task/quick": [60, "c71732cf6ea8e37e", "8e97710fe7b40dee", "5384e1c7bf6f1720"],
    "transfer/smoke": [3, "3081ee941ce6ba51", "3725812cd9573691", "54c105c074ab3966"],
    "transfer/quick": [10, "57a2a4e27293cd1a", "c2898970a1f9d723", "83f1551ab317f21a"],
}


@pytest.mark.parametrize("name", sorted(FROZEN_KEYS))
def test_listops_and_permutation_run_keys_are_unchanged(name):
    stem, preset = name.split("/")
    keys = [s.key() for s in load_sweep(ROOT / "params" / "sweeps" / f"{stem}.yaml", preset).specs]
    got = [len(keys), hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16], keys[0], keys[-1]]
    assert got == FROZEN_KEYS[name]


TASK = TaskConfig(ops=("ADD",), modulus=5, depth=2)
TC = TrainConfig(steps=40, batch_size=8, eval_every=10, n_train=400, n_test=64, warmup=5, eval_size=32,
                 early_stop=False)


def _specs(tc=TC):
    return [RunSpec(task=TASK, arch=Arch(n_embed=8, recurrence=2), train=tc, seed=s) for s in (0, 1, 2)]


def test_resume_after_a_model_was_dropped_equals_uninterrupted(monkeypatch, tmp_path):
    """Model 1 stops at step 20 (early stopping, forced), the checkpoint at step 30 holds a stack of
    two, the run is interrupted at step 35 and resumed: same states, curves and steps as a run that
    was never interrupted."""
    ref = train_stack(_specs(), device="cpu", progress=False, final_eval=False)
    marker = ref[1].curve[1]["train_loss"]  # bitwise the same up to step 20 in the runs below
    monkeypatch.setattr(tr, "_should_stop", lambda curve, step, cfg, chance=0.0, n_eval=None: (
        "converged" if step == 20 and curve[-1]["train_loss"] == marker else None))
    specs = _specs(TrainConfig(**{**TC.__dict__, "early_stop": True}))
    full = train_stack(specs, device="cpu", progress=False, final_eval=False)
    assert [r.steps_trained for r in full] == [40, 20, 40] and full[1].stop_reason == "converged"

    class Stop(Exception):
        pass

    orig, calls = tr.lr_at, {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 36:
            raise Stop
        return orig(*a, **k)

    ck = tmp_path / "ckpt.pt"
    monkeypatch.setattr(tr, "lr_at", flaky)
    with pytest.raises(Stop):
        train_stack(specs, device="cpu", progress=False, checkpoint_path=ck, checkpoint_every=15, final_eval=False)
    monkeypatch.setattr(tr, "lr_at", orig)
    saved = torch.load(ck, map_location="cpu", weights_only=True)
    assert saved["step"] == 30 and saved["active"] == [0, 2] and set(saved["finished"]) == {1}
    resumed = train_stack(specs, device="cpu", progress=False, checkpoint_path=ck, checkpoint_every=15,
                          final_eval=False)
    for a, b in zip(full, resumed):
        assert (a.steps_trained, a.stop_reason, a.curve) == (b.steps_trained, b.stop_reason, b.curve)
        for k in a.state:
            torch.testing.assert_close(b.state[k], a.state[k], rtol=0, atol=0, msg=k)


def test_both_papers_train_through_the_one_engine(monkeypatch):
    """train_stack and train_icl_stack run their steps in StackEngine.run (no loop of their own)."""
    seen = []
    real = StackEngine.run

    def spy(self, start, steps, **kw):
        seen.append((type(self.model).__name__, start, steps, len(self.active)))
        return real(self, start, steps, **kw)

    monkeypatch.setattr(StackEngine, "run", spy)
    tc = TrainConfig(**{**TC.__dict__, "steps": 3, "eval_every": 3})
    train_stack(_specs(tc)[:2], device="cpu", progress=False, final_eval=False)
    icl = ICLRunSpec(curriculum="mixed", model=ICLConfig(d=2, n_points=4, n_embed=8, n_layers=1, n_heads=2),
                     train=ICLTrainConfig(steps=3, batch_size=2, snapshot_prompts=0), seed=0)
    train_icl_stack([icl], device="cpu")
    assert seen == [("GPT", 0, 3, 2), ("ICLModel", 0, 3, 1)]
