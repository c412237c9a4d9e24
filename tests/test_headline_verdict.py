"""benchmarks/headline.yaml and benchmarks/headline_verdict.py: the headline pair on its own, with
the same runs (cache keys) as notebook 03's sweep, judged by the scorecard's own functions."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from jointtask_lib.runs import load_record
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


def test_quick_cost_projects_from_measured_stacks(tmp_path, capsys):
    """benchmarks/quick_cost.py: seconds per run-step measured on the trained stacks, applied to
    every run of the preset's sweep files that has no record yet (recomputed here)."""
    spec = importlib.util.spec_from_file_location("quick_cost", ROOT / "benchmarks" / "quick_cost.py")
    qc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(qc)
    assert qc.main(["--results", str(tmp_path), "--preset", "smoke"]) == 2  # nothing trained yet
    records = run_sweep(load_sweep(HEADLINE, "smoke"), tmp_path, progress=False)
    out = tmp_path / "cost.json"
    assert qc.main(["--results", str(tmp_path), "--preset", "smoke", "--workers", "2", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    per_step = {}
    for w in (8, 12, 16):
        recs = [r for r in records if r["spec"]["arch"]["n_embed"] == w]
        stack_seconds = sum({r["train_seconds"] for r in recs})
        per_step[w] = stack_seconds / sum(r["spec"]["train"]["steps"] for r in recs)
    assert got["measured_seconds_per_run_step_by_width"] == {str(w): pytest.approx(v, rel=1e-3) for w, v in per_step.items()}
    specs = {}
    for f in sorted((ROOT / "params" / "sweeps").glob("*.yaml")):
        for s in load_sweep(f, "smoke").specs:
            specs.setdefault(s.key(), s)
            if s.init is not None:
                specs.setdefault(s.init.key(), s.init)
    done = {r["key"] for r in records}
    missing = [s for k, s in specs.items() if k not in done]
    assert got["runs_missing"] == len(missing) and got["runs_with_records"] == 12
    near = lambda w: per_step[min(per_step, key=lambda m: (abs(m - w), -m))]  # noqa: E731
    expect = sum(near(s.arch.n_embed) * s.train.steps for s in missing) / 2 / 60
    assert got["projected_training_minutes_for_missing"] == pytest.approx(expect, abs=0.051)


def test_quick_cost_train_trains_the_missing_runs_except_the_excluded_sweep(tmp_path):
    """``--train --exclude SWEEP``: every run of the preset's design without a record is trained,
    except the excluded sweep's; the JSON counts them per sweep file (counted here from the files)."""
    spec = importlib.util.spec_from_file_location("quick_cost", ROOT / "benchmarks" / "quick_cost.py")
    qc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(qc)
    excluded = {s.key() for s in load_sweep(HEADLINE, "smoke").specs}
    owner = {}
    for f in sorted((ROOT / "params" / "sweeps").glob("*.yaml")):
        for s in load_sweep(f, "smoke").specs:
            for x in ([s.init] if s.init is not None else []) + [s]:
                owner.setdefault(x.key(), (f.stem, x))
    todo = {k: v for k, v in owner.items() if k not in excluded}
    assert todo and excluded & set(owner)  # the exclusion bites: some design runs are the headline's
    out = tmp_path / "rest.json"
    assert qc.main(["--results", str(tmp_path), "--preset", "smoke", "--workers", "1", "--train",
                    "--exclude", str(HEADLINE), "--no-progress", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["trained_here"]["runs"] == len(todo)
    by_sweep = {}
    for stem, _ in todo.values():
        by_sweep[stem] = by_sweep.get(stem, 0) + 1
    assert got["trained_here"]["runs_by_sweep"] == by_sweep
    assert all(load_record(tmp_path, s) is not None for _, s in todo.values())
    assert not any(load_record(tmp_path, s) for k, (_, s) in owner.items() if k in excluded)
    assert got["runs_missing"] == len(excluded & set(owner)) and got["runs_with_records"] == len(todo)
    with pytest.raises(SystemExit):  # --exclude without --train would be silently ignored
        qc.main(["--results", str(tmp_path), "--exclude", str(HEADLINE)])
