"""benchmarks/headline.yaml and benchmarks/headline_verdict.py: the headline pair on its own, with
the same runs (cache keys) as notebook 03's sweep, judged by the scorecard's own functions."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from jointtask_lib.sweep import load_sweep, run_sweep
from jointtask_lib.validate import PRESETS

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = ROOT / "benchmarks" / "headline.yaml"
JOINT = ROOT / "params" / "sweeps" / "joint_training.yaml"


def _script():
    spec = importlib.util.spec_from_file_location("headline_verdict", ROOT / "benchmarks" / "headline_verdict.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("offset", [0, 100])
def test_headline_runs_are_notebook_03s_runs(preset, offset):
    head = load_sweep(HEADLINE, preset, seed_offset=offset)
    joint = load_sweep(JOINT, preset, seed_offset=offset)
    mine = {s.key() for s in head.specs}
    assert mine and mine <= {s.key() for s in joint.specs}
    # exactly the two headline mixes of notebook 03, every run of them
    assert {s.task.ops for s in head.specs} == {("ADD",), ("ADD", "MAX", "MED")}
    theirs = {s.key() for s in joint.specs if s.task.ops in {("ADD",), ("ADD", "MAX", "MED")}}
    assert mine == theirs


def test_quick_design_is_the_preregistered_one():
    head = load_sweep(HEADLINE, "quick")
    for ops in (("ADD",), ("ADD", "MAX", "MED")):
        specs = [s for s in head.specs if s.task.ops == ops]
        assert sorted({s.seed for s in specs}) == list(range(10))
        assert sorted({s.arch.n_embed for s in specs}) == [*range(8, 19), 20, 24, 28, 32]
        assert len(specs) == 150
    assert load_sweep(HEADLINE, "quick", seed_offset=100).specs[0].seed >= 100


def test_refuses_an_incomplete_set_of_runs(tmp_path, capsys):
    assert _script().main(["--results", str(tmp_path), "--preset", "smoke"]) == 2
    assert "have no record" in capsys.readouterr().err


def test_verdict_on_smoke_runs(tmp_path, capsys):
    sweep = load_sweep(HEADLINE, "smoke")
    records = run_sweep(sweep, tmp_path, progress=False)
    out = tmp_path / "verdict.json"
    assert _script().main(["--results", str(tmp_path), "--preset", "smoke", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["runs"] == got["runs_with_records"] == len(records) == 12 and not got["partial"]
    (row,) = got["verdicts"]
    assert "ADD+MAX+MED vs ADD" in row["claim"] and row["n_runs"] == 12
    assert row["verdict"] in {"reproduced", "not reproduced", "inconclusive"}
    # learned counts, recomputed here from the raw record dicts
    for mix, ops in (("ADD", ["ADD"]), ("ADD+MAX+MED", ["ADD", "MAX", "MED"])):
        mine = {}
        for r in records:
            if r["spec"]["task"]["ops"] == ops:
                w = str(r["spec"]["arch"]["n_embed"])
                c = mine.setdefault(w, [0, 0])
                c[0] += r["metrics"]["per_op"]["ADD"]["gen_acc"] >= 0.8
                c[1] += 1
        assert got["learned_by_width"][mix] == mine
    assert got["pooled"]["ADD+MAX+MED vs ADD, mod 10"]["n_runs"] == 12
