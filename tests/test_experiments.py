"""From run records to the paper's quantities: selection, dedupe, floors, comparisons, one-width stats.

Records are built by hand (the fields the analysis reads), so every expected value is known.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from jointtask_lib import experiments as E
from jointtask_lib.sweep import parse_sweep
from jointtask_lib.tasks import TaskConfig


def rec(ops, accs: dict, width: int, seed: int, *, modulus=10, family="listops", perm_k=4, key=None):
    task = (TaskConfig(ops=tuple(ops), modulus=modulus) if family == "listops"
            else TaskConfig(family="perm", ops=tuple(ops), perm_k=perm_k))
    return {"key": key or f"{'+'.join(ops)}-{modulus}-{width}-{seed}",
            "spec": {"task": task.to_dict(), "arch": {"n_embed": width}, "seed": seed},
            "n_params": 100 * width * width,
            "metrics": {"per_op": {op: {"gen_acc": a} for op, a in accs.items()}}}


def test_unique_records_keeps_each_run_once():
    a, b = rec(["ADD"], {"ADD": 0.1}, 8, 0), rec(["ADD"], {"ADD": 0.2}, 8, 1)
    assert E.unique_records([a, b, a, None, b]) == [a, b]
    with pytest.raises(ValueError, match="'key'"):
        E.unique_records([{"spec": {}}])


def test_repeated_run_is_not_an_extra_seed():
    a = rec(["ADD"], {"ADD": 0.1}, 8, 0)
    twin = dict(a, key="same-run-other-config")  # same (mix, size, width, seed), another configuration
    with pytest.raises(ValueError, match=r"more than one run of ADD .*same \(size, seed\)"):
        E.accuracy_points([a, twin], ops=("ADD",), op="ADD", size=10)
    xs, ys, seeds = E.accuracy_points(E.unique_records([a, a]), ops=("ADD",), op="ADD", size=10)
    assert xs.tolist() == [6400.0] and ys.tolist() == [0.1] and seeds.tolist() == [0]


@pytest.mark.parametrize("ops, op, size, family, expected", [
    (["ADD"], "ADD", 10, "listops", 1 / 10),
    (["NADD"], "NADD", 7, "listops", 1 / 7),
    (["ADD", "MAX"], "ADD", 10, "listops", 1 / 10),
    (["MAX"], "MAX", 10, "listops", None),   # skewed outputs: floor fitted
    (["PROD"], "PROD", 10, "listops", None),
    (["PMUL"], "PMUL", 4, "perm", 1 / 24),   # uniform over S_4
    (["PMUL", "SGN"], "SGN", 4, "perm", None),
])
def test_known_floor(ops, op, size, family, expected):
    kw = dict(modulus=size) if family == "listops" else dict(family="perm", perm_k=size)
    records = [rec(ops, {o: 0.5 for o in ops}, 8, 0, **kw)]
    got = E.known_floor(records, ops=ops, op=op, size=size)
    assert got == (None if expected is None else pytest.approx(expected))
    assert E.known_floor([], ops=ops, op=op, size=size) is None


def _sweep(name, mixes, moduli):
    return parse_sweep({"name": name, "task": {"family": "listops", "depth": 2},
                        "grid": {"mixes": mixes, "moduli": moduli, "widths": [8, 12], "seeds": [0]}},
                       "quick", f"{name}.yaml")


def test_joint_comparisons_every_modulus_and_unique_ids():
    joint = _sweep("joint_training", [["ADD"], ["ADD", "MAX", "MED"], ["ADD", "PROD"], ["ADD", "NADD"]], [10, 20])
    controls = _sweep("controls", [["SADD"], ["SADD", "MAX", "MED"], ["RTAB"], ["RTAB", "MAX", "MED"]], [10])
    prime = _sweep("prime_modulus", [["ADD"], ["ADD", "PROD"]], [11, 10])
    comps = E.joint_comparisons(joint, controls, prime, target="ADD")
    ids = [c.id for c in comps]
    assert len(ids) == len(set(ids))
    by_id = {c.id: c for c in comps}
    # ADD+PROD mod 10 is a pairing of the joint sweep *and* the composite half of the prime control
    assert ids.count("A-joint-ADD+PROD-n10") == 1 and by_id["A-joint-ADD+PROD-n10"].sweep == "joint_training"
    assert {c.size for c in comps if c.sweep == "joint_training"} == {10, 20}
    assert len([c for c in comps if c.sweep == "joint_training"]) == 3 * 2
    p10, p11 = by_id["A-joint-ADD+PROD-n10"], by_id["A-joint-ADD+PROD-n11"]
    assert (p10.expect, p10.paper_factor) == ("benefit", 3.6)
    assert (p11.expect, p11.paper_factor, p11.sweep) == ("none", 1.0, "prime_modulus")
    assert by_id["A-joint-ADD+NADD-n20"].expect == "none"
    assert by_id["A-joint-ADD+MAX+MED-n20"].paper_factor == (2.0, 7.0)
    sadd = by_id["A-joint-SADD+MAX+MED-n10"]
    assert (sadd.single, sadd.op, sadd.expect) == (("SADD",), "SADD", "none")
    assert len(comps) == 6 + 2 + 1  # the duplicate is gone
    conflicting = E.Comparison(**{**p10.__dict__, "expect": "none"})
    with pytest.raises(ValueError, match="'A-joint-ADD\\+PROD-n10' is defined twice"):
        E.unique_comparisons([p10, conflicting])
    assert E.unique_comparisons([p10, p10]) == [p10]


def test_one_width_helpers():
    # widths 8, 12, 16; ADD from scratch fails at 8 and 12 (mean < 0.78), learns at 16
    accs = {(8, 0): 0.1, (8, 1): 0.12, (12, 0): 0.5, (12, 1): 0.9, (16, 0): 0.95, (16, 1): 0.97}
    records = [rec(["ADD"], {"ADD": a}, w, s) for (w, s), a in accs.items()]
    assert E.largest_failing_width(records, ops=("ADD",), op="ADD", size=10, threshold=0.78) == 12
    assert E.largest_failing_width(records, ops=("ADD",), op="ADD", size=10, threshold=0.05) is None
    assert E.largest_failing_width(records, ops=("ADD",), op="ADD", size=10, threshold=0.99) == 16
    with pytest.raises(ValueError, match="'threshold'"):
        E.largest_failing_width(records, ops=("ADD",), op="ADD", threshold=1.5)
    assert E.accuracy_by_seed(records, ops=("ADD",), op="ADD", size=10, width=12) == {0: 0.5, 1: 0.9}


def test_seed_mean_ci_is_the_t_interval():
    v = [0.2, 0.5, 0.6]
    m, lo, hi = E.seed_mean_ci(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / 2)
    half = stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert m == pytest.approx(13 / 30) and lo == pytest.approx(m - half) and hi == pytest.approx(m + half)
    assert E.seed_mean_ci([0.4]) == (0.4, -math.inf, math.inf)
    assert E.fmt_mean_ci(E.seed_mean_ci([0.4])) == "0.400 (one seed: no CI)"
    assert E.fmt_mean_ci((0.5, 0.25, 0.75), digits=2) == "0.50 [0.25, 0.75]"
    m, lo, hi = E.seed_mean_ci([0.05, 0.95], clip=(0.0, 1.0))
    assert (m, lo, hi) == (pytest.approx(0.5), 0.0, 1.0)
    m, lo, hi = E.seed_mean_ci(np.array([0.3, 0.3]))
    assert lo == hi == m == pytest.approx(0.3)
    with pytest.raises(ValueError, match="'values'"):
        E.seed_mean_ci([])
