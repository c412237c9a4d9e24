"""The run cache's key covers everything that shapes a run (issue 13, item 5).

Adding one operation to a family's registry changes every vocabulary of that family (each
operation has a token), hence the parameter count and every weight shape: a cached record or
weights of the old vocabulary must not be reused.  Likewise an ICL run's key holds the registry
entries of its function classes.  And a pairing has a paper expectation only if one is written
down in :data:`jointtask_lib.experiments.PAIRING_EXPECTATIONS`.
"""

from __future__ import annotations

import dataclasses

import pytest

from jointtask_lib import experiments, tasks
from jointtask_lib.paper_b import icl_train
from jointtask_lib.paper_b.icl_train import ICLRunSpec
from jointtask_lib.tasks import TaskConfig
from jointtask_lib.tasks.core import Op
from jointtask_lib.tasks.functions import FUNCTION_CLASSES
from jointtask_lib.train import Arch, RunSpec, TrainConfig


def _spec(**task):
    return RunSpec(task=TaskConfig(ops=("ADD", "MAX"), modulus=7, depth=2, **task), arch=Arch(n_embed=8),
                   train=TrainConfig(steps=10), seed=1)


def test_adding_an_operation_to_a_copy_of_the_registry_changes_the_key(monkeypatch):
    spec = _spec()
    key, n_params, vocab = spec.key(), spec.n_params(), spec.vocab().tokens
    registry = dict(tasks.FAMILIES["listops"])  # a copy: the real registry is never touched
    registry["XOR"] = Op("XOR", 1, 8, lambda a, d: 0, "test-only operation")
    monkeypatch.setitem(tasks.FAMILIES, "listops", registry)
    same = _spec()
    assert same.to_dict() == spec.to_dict()  # the configuration itself is unchanged ...
    assert "XOR" in same.vocab().tokens and len(same.vocab()) == len(vocab) + 1
    assert same.n_params() > n_params  # ... but the model is not
    assert same.key() != key  # so the cache must not reuse the old run
    monkeypatch.undo()
    assert _spec().key() == key and "XOR" not in _spec().vocab().tokens


def test_the_key_is_stable_and_covers_the_configuration():
    assert _spec().key() == _spec().key()
    assert _spec(relabel_seed=1).key() != _spec().key()
    pre = _spec()
    assert dataclasses.replace(_spec(), init=pre).key() != _spec().key()


def _icl(**kw):
    return ICLRunSpec(curriculum="single", tasks=("linear",), train=icl_train.ICLTrainConfig(steps=10), **kw)


def test_icl_key_holds_the_function_class_registry(monkeypatch):
    key = _icl().key()
    entry = FUNCTION_CLASSES["linear"]
    changed = dataclasses.replace(entry, defaults={**entry.defaults, "unit_norm_w": True})
    monkeypatch.setitem(FUNCTION_CLASSES, "linear", changed)
    assert _icl().key() != key
    monkeypatch.undo()
    assert _icl().key() == key
    # a class the run does not use (and is not a snapshot class) does not move its key
    entry = FUNCTION_CLASSES["relu2nn"]
    monkeypatch.setitem(FUNCTION_CLASSES, "relu2nn", dataclasses.replace(entry, defaults={"hidden": 7}))
    assert _icl().key() == key


@pytest.mark.parametrize("mix, target, n, want", [
    (("ADD", "MAX"), "ADD", 10, "benefit"),
    (("ADD", "MAX", "MED"), "ADD", 10, "benefit"),
    (("ADD", "PROD"), "ADD", 10, "benefit"),
    (("ADD", "PROD"), "ADD", 11, "none"),
    (("ADD", "NADD"), "ADD", 10, "none"),
    (("SADD", "MAX", "MED"), "SADD", 10, "none"),
    (("ADD", "RTAB"), "ADD", 10, "extension"),  # not in paper A: no 2-7x by default
    (("ADD", "MAX", "NADD"), "ADD", 10, "extension"),
    (("ADD", "SADD"), "ADD", 10, "extension"),
])
def test_pairings_have_an_expectation_only_if_written_down(mix, target, n, want):
    c = experiments._comparison("s", (target,), mix, target, n, experiments._listops_expectation(mix, target, n), "x")
    assert c.expect == want
    if want == "extension":
        assert c.paper_value == experiments.NO_EXPECTATION and c.paper_factor is None
    else:
        assert c.paper_factor is not None and c.paper_value != experiments.NO_EXPECTATION


def test_joint_comparisons_mark_a_new_partner_as_an_extension():
    class Sweep:  # the three fields joint_comparisons reads
        name, mixes, sizes = "joint", [("ADD",), ("ADD", "MAX"), ("ADD", "RTAB")], [10]

    comps = {c.joint: c for c in experiments.joint_comparisons(Sweep())}
    assert comps[("ADD", "MAX")].expect == "benefit" and comps[("ADD", "MAX")].paper_factor == (2.0, 7.0)
    assert comps[("ADD", "RTAB")].expect == "extension"
