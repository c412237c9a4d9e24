"""The generic run cache (:mod:`jointtask_lib.runs`): one implementation for every kind of run."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from jointtask_lib import runs
from jointtask_lib.runs import (
    LISTOPS, CorruptRecord, RunKind, group_checkpoint, group_specs, load_record, write_record,
    run_dir, split_for_workers, train_or_load,
)
from jointtask_lib.checkpoints import load_checkpoint
from jointtask_lib.train import StackedAdamW, StackEngine

torch.set_num_threads(1)


# A toy kind of run: a "model" is one number, "training" adds the run's value; everything the
# cache does with it is observable.


@dataclass(frozen=True)
class Toy:
    name: str
    width: int = 1
    value: float = 1.0
    needs: "Toy | None" = None

    def key(self) -> str:
        return f"toy-{self.name}"

    def group_key(self) -> str:
        return f"w{self.width}"


TRAINED: list[list[str]] = []


def _toy_stack(root, specs, *, device, progress, checkpoint_path, checkpoint_every):
    TRAINED.append([s.name for s in specs])
    out = []
    for s in specs:
        base = 0.0
        if s.needs is not None:  # a dependency must be finished (its record on disk) before this starts
            base = load_record(root, s.needs, kind=TOY)["result"]
        out.append((s, base + s.value, str(checkpoint_path)))
    return out


def _toy_save(root, res, device):
    spec, value, ck = res
    rec = {"key": spec.key(), "result": value, "checkpoint": ck, "device": device}
    return write_record(rec, run_dir(root, spec) / "record.json")


TOY = RunKind(name="toy", train_stack=_toy_stack, save_result=_toy_save, required=("result",),
              order=lambda s: s.width, dependencies=lambda s: [] if s.needs is None else [s.needs])


@pytest.fixture(autouse=True)
def _clear():
    TRAINED.clear()


def test_trains_only_missing_runs_in_groups_and_keeps_order(tmp_path):
    a, b, c = Toy("a", 2), Toy("b", 1), Toy("c", 2, value=3.0)
    recs = train_or_load(tmp_path, [a, b, c, a], device="cpu", kind=TOY)
    assert [r["key"] for r in recs] == ["toy-a", "toy-b", "toy-c", "toy-a"]
    assert [r["result"] for r in recs] == [1.0, 1.0, 3.0, 1.0]
    assert TRAINED == [["b"], ["a", "c"]]  # grouped by group_key, ordered by the kind's order (width)
    assert recs[1]["checkpoint"] == str(group_checkpoint(tmp_path, [b]))
    TRAINED.clear()
    again = train_or_load(tmp_path, [c, Toy("d", 1)], device="cpu", kind=TOY)
    assert TRAINED == [["d"]] and again[0]["result"] == 3.0
    train_or_load(tmp_path, [c], device="cpu", kind=TOY, force=True)
    assert TRAINED[-1] == ["c"]


def test_dependencies_are_trained_first(tmp_path):
    pre = Toy("pre", value=10.0)
    fine = Toy("fine", value=1.0, needs=pre)
    recs = train_or_load(tmp_path, [fine], device="cpu", kind=TOY)
    assert TRAINED == [["pre"], ["fine"]] and recs[0]["result"] == 11.0
    assert load_record(tmp_path, pre, kind=TOY)["result"] == 10.0


def test_max_stack_splits_a_group(tmp_path):
    specs = [Toy(n) for n in "abcde"]
    train_or_load(tmp_path, specs, device="cpu", kind=TOY, max_stack=2)
    assert TRAINED == [["a", "b"], ["c", "d"], ["e"]]


def test_record_validity_is_the_kinds(tmp_path):
    a = Toy("a")
    train_or_load(tmp_path, [a], device="cpu", kind=TOY)
    p = run_dir(tmp_path, a) / "record.json"
    rec = json.loads(p.read_text())
    assert load_record(tmp_path, a, kind=TOY) == rec
    with pytest.raises(CorruptRecord, match="metrics"):  # not a complete record of paper A's kind
        load_record(tmp_path, a, kind=LISTOPS)
    p.write_text(json.dumps({**rec, "key": "toy-other"}))
    with pytest.raises(CorruptRecord, match="key mismatch"):
        load_record(tmp_path, a, kind=TOY)
    p.write_text("{not json")
    with pytest.raises(CorruptRecord):
        train_or_load(tmp_path, [a], device="cpu", kind=TOY)  # reported, never silently retrained
    assert load_record(tmp_path, Toy("never"), kind=TOY) is None


def test_group_specs_order_and_determinism():
    specs = [Toy("a", 3), Toy("b", 1), Toy("c", 3), Toy("d", 2)]
    groups = group_specs(specs, order=lambda s: s.width)
    assert [[s.name for s in g] for g in groups] == [["b"], ["d"], ["a", "c"]]
    assert group_specs(specs[::-1], order=lambda s: s.width)[2] == [Toy("c", 3), Toy("a", 3)]


def test_split_for_workers():
    g1, g2 = list(range(7)), ["x"]
    jobs = split_for_workers([g1, g2], 3)
    assert jobs == [[0, 1, 2], [3, 4], [5, 6], ["x"]]
    assert split_for_workers([g1], 1) == [g1]
    assert sorted(x for j in split_for_workers([g1], 4) for x in j) == g1
    with pytest.raises(ValueError, match="workers"):
        split_for_workers([g1], 0)
    with pytest.raises(ValueError, match="workers"):
        train_or_load(".", [], kind=TOY, workers=0)


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(2, 3, 3))


def _one_step(model, opt, gen):
    x = torch.randn(2, 3, generator=gen)
    loss = (model.w @ x.unsqueeze(-1)).square().sum()
    for p in model.parameters():
        p.grad = None
    loss.backward()
    opt.step()


def test_stack_checkpoint_round_trip(tmp_path):
    """StackEngine.save / resume (the one checkpoint path of both trainers): parameters, optimiser,
    random streams, the models still in the stack, the finished ones and the trainer's extras."""
    torch.manual_seed(0)
    model, gen = _Tiny(), torch.Generator().manual_seed(1)
    opt = StackedAdamW(list(model.parameters()), lr=0.1)
    engine = StackEngine(model, opt, [gen], ["k1", "k2"])
    for _ in range(3):
        _one_step(model, opt, gen)
    finished_w = model.w[0].detach().clone()
    engine.drop([0])  # model 0 finished: the stack keeps model 1 only
    assert engine.active == [1] and model.w.shape[0] == 1
    ck = tmp_path / "ck.pt"
    engine.save(ck, 3, note="hello", losses=torch.arange(3.0))
    _one_step(model, opt, gen)
    expected = model.w.detach().clone()

    model2, gen2 = _Tiny(), torch.Generator().manual_seed(99)
    opt2 = StackedAdamW(list(model2.parameters()), lr=0.1)
    before = model2.w.detach().clone()
    assert StackEngine(model2, opt2, [gen2], ["k1"]).resume(ck) is None  # other runs: untouched
    assert torch.equal(model2.w, before)
    engine2 = StackEngine(model2, opt2, [gen2], ["k1", "k2"])
    assert engine2.resume(None) is None and torch.equal(model2.w, before)
    got = engine2.resume(ck)
    assert got["step"] == 3 and got["note"] == "hello" and torch.equal(got["losses"], torch.arange(3.0))
    assert engine2.active == [1] and model2.w.shape[0] == 1
    torch.testing.assert_close(engine2.finished[0]["w"][0], finished_w, rtol=0, atol=0)
    _one_step(model2, opt2, gen2)
    torch.testing.assert_close(model2.w.detach(), expected, rtol=0, atol=0)
    assert load_checkpoint(ck, ["k1", "k2"])["keys"] == ["k1", "k2"]
    assert load_checkpoint(tmp_path / "absent.pt", ["k1", "k2"]) is None

