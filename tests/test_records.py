"""Typed records and the record table (jointtask_lib.records): values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from jointtask_lib import experiments
from jointtask_lib.analysis import models
from jointtask_lib.records import Record, RecordTable
from jointtask_lib.tasks import TaskConfig


def rec(ops, accs, width, seed, *, modulus=10, family="listops", perm_k=3, key=None, **task):
    t = (TaskConfig(ops=tuple(ops), modulus=modulus, **task) if family == "listops"
         else TaskConfig(family="perm", ops=tuple(ops), perm_k=perm_k))
    return {"key": key or f"{'+'.join(ops)}-{modulus}-{width}-{seed}-{task}", "n_params": 10 * width,
            "spec": {"task": t.to_dict(), "arch": {"n_embed": width}, "seed": seed},
            "metrics": {"per_op": {op: {"gen_acc": a, "tf_acc": a / 2} for op, a in accs.items()}}}


RECS = [rec(["ADD"], {"ADD": 0.2}, 16, 1), rec(["ADD"], {"ADD": 0.4}, 8, 0), rec(["ADD"], {"ADD": 0.6}, 16, 0),
        rec(["ADD", "MAX"], {"ADD": 0.9, "MAX": 1.0}, 8, 0), rec(["ADD"], {"ADD": 0.5}, 8, 0, modulus=11),
        None, {"key": "bad", "error": "corrupt run record"}]


def test_record_from_dict():
    r = Record.from_dict(RECS[3])
    assert (r.ops, r.family, r.size, r.width, r.n_params, r.seed) == (("ADD", "MAX"), "listops", 10, 8, 80, 0)
    assert r.accuracy("MAX") == 1.0 and r.accuracy("MAX", "tf_acc") == 0.5 and r.accuracy("MED") is None
    p = Record.from_dict(rec(["PMUL"], {"PMUL": 0.3}, 12, 2, family="perm", perm_k=4))
    assert (p.family, p.size) == ("perm", 4)
    with pytest.raises(ValueError, match="lacks field 'metrics'"):
        Record.from_dict({"key": "k", "spec": RECS[0]["spec"], "n_params": 1})
    with pytest.raises(ValueError, match="lacks field 'arch'"):
        Record.from_dict({"key": "k", "spec": {"task": {"ops": ["ADD"]}}, "metrics": {}})
    with pytest.raises(ValueError, match="'x' must be one of n_params, n_embed"):
        r.x("width")


def test_table_select_points_and_means():
    t = RecordTable.from_dicts(RECS)
    assert len(t) == 5 and t.errors == [RECS[-1]]  # None dropped, the corrupt record kept apart
    add = t.select(ops=["ADD"], size=10)
    xs, ys, seeds = add.points("ADD")
    assert xs.tolist() == [80.0, 160.0, 160.0] and ys.tolist() == [0.4, 0.6, 0.2] and seeds.tolist() == [0, 0, 1]
    xs, ys, _ = add.points("ADD", x="n_embed", metric="tf_acc")
    assert xs.tolist() == [8.0, 16.0, 16.0] and ys.tolist() == [0.2, 0.3, 0.1]
    assert add.mean_by_width("ADD") == {8: 0.4, 16: pytest.approx(0.4)}
    assert add.mean_curve("ADD", x="n_embed") == [(8.0, 0.4, 0.0, 1), (16.0, pytest.approx(0.4), pytest.approx(0.2), 2)]
    assert len(t.select(ops=["ADD"])) == 4 and len(t.select(size=11)) == 1 and len(t.select(ops=["MAX"])) == 0
    assert t.select(ops=["ADD", "MAX"]).points("MED")[0].size == 0  # not evaluated on MED: no points


def test_one_run_per_size_and_seed():
    twin = dict(RECS[1], key="other-config")
    with pytest.raises(ValueError, match=r"more than one run of ADD \(op ADD, size 10\) at the same \(size, seed\)"):
        experiments.accuracy_points([RECS[1], twin], ops=("ADD",), op="ADD", size=10)
    # selecting by another task field separates two configurations
    a = rec(["ADD", "MAX"], {"ADD": 0.1}, 8, 0, weights=(1.0, 1.0))
    b = rec(["ADD", "MAX"], {"ADD": 0.3}, 8, 0, weights=(2.0, 1.0))
    xs, ys, _ = experiments.accuracy_points([a, b], ops=("ADD", "MAX"), op="ADD", weights=[2.0, 1.0])
    assert ys.tolist() == [0.3]


def test_the_aggregators_agree_on_one_table():
    """experiments and analysis.models read the same table: the same numbers."""
    assert experiments.mean_curve(RECS, ops=("ADD",), op="ADD", size=10, x="n_embed") == \
        RecordTable.from_dicts(RECS).select(ops=["ADD"], size=10).mean_curve("ADD", x="n_embed")
    assert models.learned_at(RECS, [("ADD",)], "ADD", 8, size=10, min_acc=0.4)
    assert not models.learned_at(RECS, [("ADD",)], "ADD", 16, size=10, min_acc=0.41)
    assert models.matched_width(RECS, [("ADD",), ("ADD", "MAX")], "ADD", [8, 16], size=10, min_acc=0.4).width == 8
    xs, ys, seeds = experiments.accuracy_points(RECS, ops=("ADD",), op="ADD", size=10)
    assert isinstance(xs, np.ndarray) and xs.dtype == float and list(zip(xs, ys, seeds))[0] == (80.0, 0.4, 0)
