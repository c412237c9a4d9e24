"""Claim rows of issue 15 (jointtask_lib.sections.extra), on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from jointtask_lib.sections import extra as CE


def _rec(ops, width, seed, acc, n=10):
    return {"spec": {"task": {"ops": list(ops), "modulus": n, "family": "listops"}, "arch": {"n_embed": width},
                     "seed": seed},
            "n_params": 100 * width, "metrics": {"per_op": {ops[0]: {"gen_acc": acc}}}, "key": f"{ops}{width}{seed}"}


def test_structure_verdict_follows_the_ci_over_seeds_at_every_width():
    null = (0.10, 0.20)
    above = {8: [0.5, 0.55, 0.6], 12: [0.4, 0.45, 0.5]}
    v, lines = CE.structure_by_width_verdict(above, null)
    assert v == "reproduced" and len(lines) == 2
    # the CI is the Student-t interval over seeds, computed here independently
    x = np.array(above[8])
    h = stats.t.ppf(0.975, 2) * x.std(ddof=1) / np.sqrt(3)
    assert f"[{x.mean() - h:.2f}, {x.mean() + h:.2f}]" in lines[0]
    at = {8: [0.10, 0.11, 0.09], 12: [0.12, 0.1, 0.11]}
    assert CE.structure_by_width_verdict(at, null)[0] == "not reproduced"
    assert CE.structure_by_width_verdict(at, null, expect="none")[0] == "reproduced"
    assert CE.structure_by_width_verdict(above, null, expect="none")[0] == "not reproduced"
    mixed = {8: above[8], 12: at[12]}
    assert CE.structure_by_width_verdict(mixed, null)[0] == "inconclusive"
    wide = {8: [0.05, 0.9, 0.5]}  # CI straddles the null's q95
    assert CE.structure_by_width_verdict(wide, null)[0] == "inconclusive"
    one_seed = {8: [0.9]}  # no CI from one seed: unclear
    assert CE.structure_by_width_verdict(one_seed, null)[0] == "inconclusive"
    assert CE.structure_by_width_verdict({}, null)[0] == "inconclusive"
    per_width_null = {8: (0.1, 0.7), 12: (0.1, 0.2)}  # width 8's null q95 above its scores
    assert CE.structure_by_width_verdict(above, per_width_null)[0] == "inconclusive"
    with pytest.raises(ValueError, match="'expect' must be one of"):
        CE.structure_by_width_verdict(above, null, expect="maybe")


def test_structure_claim_row():
    row = CE.structure_by_width_claim({8: [0.5, 0.55, 0.6]}, (0.1, 0.2), score="parity", mix="ADD+PROD", n=10,
                                      preset="quick", paper_value="p")
    assert row["verdict"] == "reproduced" and row["id"] == "A-emb-parity-ADD+PROD-by-width-mod10"
    row = CE.structure_by_width_claim({8: [0.1, 0.1, 0.12]}, (0.1, 0.2), score="parity", mix="ADD+PROD", n=11,
                                      preset="quick", paper_value="p", expect="none")
    assert row["verdict"] == "reproduced" and row["id"].endswith("-mod11-none")


def test_transfer_at_smallest_width():
    tr = [_rec(("ADD",), w, s, a) for w, accs in ((8, (0.7, 0.75, 0.8)), (12, (1.0, 1.0, 1.0)))
          for s, a in enumerate(accs)]
    sc = [_rec(("ADD",), w, s, a) for w, accs in ((8, (0.07, 0.08, 0.09)), (12, (0.9, 1.0, 1.0)))
          for s, a in enumerate(accs)]
    row = CE.transfer_at_smallest_width_claim(tr, sc, n=10, target="ADD", pretrain=("MAX", "MED"), preset="quick")
    assert row["verdict"] == "reproduced" and "n_embed 8" in row["claim"] and row["id"].startswith("A-ext-")
    assert "[extension]" in row["claim"] and "extension" in row["note"]
    row = CE.transfer_at_smallest_width_claim(sc, tr, n=10, target="ADD", pretrain=("MAX", "MED"), preset="quick")
    assert row["verdict"] == "not reproduced"
    row = CE.transfer_at_smallest_width_claim(tr, [], n=10, target="ADD", pretrain=("MAX", "MED"), preset="quick")
    assert row["verdict"] == "inconclusive"


def test_compute_matched_claim_is_an_extension():
    row = CE.compute_matched_transfer_claim(None, n=10, target="ADD", pretrain=("MAX", "MED"), preset="quick")
    assert row["verdict"] == "inconclusive" and row["id"] == "A-ext-transfer-compute-matched-n10"
    assert "[extension]" in row["claim"] and row["ours"] == "no estimate"


def test_is_prime():
    assert [n for n in range(1, 30) if CE.is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]
