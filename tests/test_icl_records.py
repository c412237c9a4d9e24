"""Paper B's typed records (jointtask_lib.paper_b.records): the stored dicts read through one type,
with the same claim rows as the string-path code they replaced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jointtask_lib.paper_b import plots_icl
from jointtask_lib.paper_b.records import (Curve, ICLEval, ICLRun, exposure, first, icl_runs, pick, snapshot_has,
                                           snapshot_tails, training_stacks)
from jointtask_lib.paper_b.section import paper_b_claims

from icl_fake_runs import scenarios

FIXTURE = Path(__file__).parent / "data" / "paper_b_claims_c8adedb.json"


def test_claim_rows_as_before_the_typed_records():
    """tests/data/paper_b_claims_c8adedb.json holds the rows the string-path section (commit c8adedb)
    built from the same hand-made runs; the typed section builds the same, from dicts or ICLRuns."""
    want = json.loads(FIXTURE.read_text())
    for name, (runs, base) in scenarios().items():
        typed = icl_runs([r["spec"] for r in runs], [r["record"] for r in runs], [r["eval"] for r in runs])
        assert paper_b_claims(runs, base, preset="test") == want[name], name
        assert paper_b_claims(typed, base, preset="test") == want[name], name


def test_run_accessors_read_the_stored_fields():
    runs, _ = scenarios()["learned"]
    raw = runs[0]  # mixed, seed 2
    r = ICLRun.of(raw)
    assert (r.label, r.seed) == ("mixed", 2) and ICLRun.of(r) is r
    assert r.error("cubic").tolist() == raw["eval"]["curves"]["cubic"]["none"]["mean"]
    assert r.curve("cubic", "top").hi.tolist() == raw["eval"]["curves"]["cubic"]["top"]["hi"]
    assert list(r.eval.conditions("linear")) == ["none", "top", "bottom", "random"]
    assert list(r.eval.masking()) == ["linear", "quadratic", "cubic"] == r.eval.classes
    assert list(r.eval.by_class(["cubic"])) == ["cubic"]
    assert r.eval.masked_heads("top") == [(0, 1)] and r.eval.masked_heads("nothing") == []
    assert r.eval.head_scores["linear"] == [[0.1, 0.7], [0.3, 0.2]]
    assert r.exposure("cubic") == 3 and r.exposure("cubic", "fraction") == 0.1
    single = ICLRun.of(runs[3])  # single:cubic: never trained on linear
    assert single.exposure("linear") == 0 == exposure(runs[3]["record"], "linear", "examples")
    seq = first(runs, "sequential")
    assert seq.seed == 0 and seq.snapshot_tails("linear") == [0.05, 0.4, 0.8]
    assert snapshot_tails(seq.snapshots, "quadratic") == [0.9, 0.1, 0.6] and snapshot_has(seq.snapshots, "cubic")
    assert not snapshot_has([], "linear")
    assert [x.seed for x in pick(runs, "mixed")] == [0, 1, 2] and pick(runs, "random") == []
    assert training_stacks([x["record"] for x in runs])["stack1"]["cpu_seconds"] == 120.0
    with pytest.raises(ValueError, match="no curve for class 'sine', condition 'none'"):
        r.error("sine")
    with pytest.raises(ValueError, match="no run with label 'random'"):
        first(runs, "random")
    with pytest.raises(ValueError, match="one entry per run; got 2, 1, 2"):
        icl_runs([1, 2], [{}], [{}, {}])
    with pytest.raises(ValueError, match="dict with 'spec', 'record' and 'eval'"):
        ICLRun.of({"spec": raw["spec"]})
    with pytest.raises(ValueError, match="dict with 'curves'"):
        ICLEval.of({"head_scores": {}})
    with pytest.raises(ValueError, match="dict with 'mean'"):
        Curve.of({"lo": [1.0]})


def test_curve_of_a_dict_and_its_band():
    c = Curve.of({"mean": [1, 2], "lo": [0.5, 1.5], "hi": [1.5, 2.5]})
    assert c.mean.dtype == float and c.has_band and len(c) == 2 and Curve.of(c) is c
    assert not Curve.of({"mean": [1.0, float("nan")]}).has_band


def test_plots_draw_the_same_from_curves_and_dicts():
    runs, base = scenarios()["learned"]
    r = ICLRun.of(runs[0])
    as_dicts = {"mixed": {c: runs[0]["eval"]["curves"][c]["none"] for c in ("linear", "cubic")}}
    as_curves = {"mixed": r.eval.by_class(["linear", "cubic"])}
    figs = [plots_icl.plot_error_vs_k(cur, baselines={c: base[c]["baselines"] for c in ("linear", "cubic")},
                                      classes=["linear", "cubic"]) for cur in (as_dicts, as_curves)]
    lines = [[(ln.get_xdata().tolist(), ln.get_ydata().tolist()) for ax in f.axes for ln in ax.get_lines()]
             for f in figs]
    limits = [[ax.get_ylim() for ax in f.axes] for f in figs]
    assert lines[0] == lines[1] and limits[0] == limits[1] and len(lines[0]) >= 4
    snaps = plots_icl.plot_snapshots({"sequential": first(runs, "sequential").snapshots}, classes=["linear"])
    assert np.allclose(snaps.axes[0].get_lines()[0].get_ydata(), [0.05, 0.4, 0.8])
