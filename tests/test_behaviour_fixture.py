"""Behaviour unchanged by the architecture refactor (issue 13, item 7).

``tests/data/behaviour_records.json`` was written by ``tests/data/make_behaviour_fixture.py`` with
the code as it was *before* the refactor (commit "tests: behaviour fixture ..."); these tests train
the same two tiny stacks with the code as it is now and compare every trained value: curves,
final metrics, per-step losses, the curriculum schedule and a checksum of the weights.  Floats
are compared to 1e-4 relative (rounding of another CPU's kernels), everything else exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from behaviour_runs import icl_runs, listops_runs

FIXTURE = json.loads((Path(__file__).parent / "data" / "behaviour_records.json").read_text())


def _same(got, want, where="record"):
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            _same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            _same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert isinstance(got, (int, float)), f"{where}: {got!r} is not a number"
        assert math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6), f"{where}: {got} != {want}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_listops_runs_train_as_before_the_refactor():
    _same(listops_runs(), FIXTURE["listops"], "listops")


def test_icl_runs_train_as_before_the_refactor():
    _same(icl_runs(), FIXTURE["icl"], "icl")


def test_the_comparison_can_fail():
    """The comparison is not vacuous: a changed loss, metric or schedule is caught."""
    want = FIXTURE["listops"][0]
    bad = json.loads(json.dumps(want))
    bad["curve"][-1]["train_loss"] = bad["curve"][-1]["train_loss"] * 1.01 + 1e-3
    with pytest.raises(AssertionError):
        _same(bad, want)
    bad = json.loads(json.dumps(FIXTURE["icl"][1]))
    bad["task_log"][-1] = (bad["task_log"][-1] + 1) % 3
    with pytest.raises(AssertionError):
        _same(bad, FIXTURE["icl"][1])
