"""Issue 13, item 2: every aggregator reads records through jointtask_lib.records, with the same
results as the string-path code it replaced, and one "learned" rule.

The ``_old_*`` functions below are the replaced code, copied verbatim from commit c8adedb (before
the move), so that each new aggregator is compared with the old one on records built here by hand
(not by the code under test).  The run keys of every sweep at smoke and quick were computed on that
commit too: the run cache built before the change must still be found after it.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict

import numpy as np
import pytest

from jointtask_lib import experiments, paths
from jointtask_lib.analysis import models
from jointtask_lib.cli_train import format_table
from jointtask_lib.records import LEVEL, Record, RecordTable, is_learned, learned_bar
from jointtask_lib.runs import records_table
from jointtask_lib.sweep import _mean_acc, learned_bracket, load_sweep, summary_rows
from jointtask_lib.tasks import TaskConfig
from jointtask_lib.transition import estimate_transition


# ------------------------------------------------------------------------------------------------
# The replaced code, verbatim from c8adedb
# ------------------------------------------------------------------------------------------------


def _old_mean_acc(records, op, metric="gen_acc"):
    vals = [r["metrics"]["per_op"][op][metric] for r in records if op in r["metrics"].get("per_op", {})]
    return sum(vals) / len(vals) if vals else 0.0


def _old_summary_rows(records):
    acc = defaultdict(list)
    meta = {}
    diverged = defaultdict(int)
    for r in records:
        s = r["spec"]
        size = s["task"]["modulus"] if s["task"]["family"] == "listops" else s["task"]["perm_k"]
        key = ("+".join(s["task"]["ops"]), size, s["arch"]["n_embed"])
        acc[key].append(r["metrics"])
        meta[key] = r["n_params"]
        diverged[key] += r.get("stop_reason") == "diverged"
    rows = []
    for key in sorted(acc, key=lambda k: (k[0], k[1], k[2])):
        ms = acc[key]
        per_op = {}
        for m in ms:
            for op, v in m["per_op"].items():
                per_op.setdefault(op, []).append(v["gen_acc"])
        cells = " ".join(f"{op}={sum(v) / len(v):.3f}" for op, v in per_op.items())
        if diverged[key]:
            cells += f"  ({diverged[key]} diverged)"
        rows.append((*key, meta[key], len(ms), cells))
    return rows


def _old_records_table(records):
    rows = []
    for r in records:
        if "error" in r:
            rows.append({"key": r["key"], "error": r["error"]})
            continue
        s = r["spec"]
        base = {
            "key": r["key"], "ops": "+".join(s["task"]["ops"]), "family": s["task"]["family"],
            "modulus": s["task"]["modulus"], "perm_k": s["task"]["perm_k"],
            "n_embed": s["arch"]["n_embed"], "n_params": r["n_params"], "seed": s["seed"],
            "steps_trained": r["steps_trained"], "stop_reason": r["stop_reason"],
            "diverged": r.get("stop_reason") == "diverged",
        }
        for op, m in r["metrics"].get("per_op", {}).items():
            rows.append({**base, "op": op, "gen_acc": m.get("gen_acc"), "tf_acc": m.get("tf_acc"),
                         "seq_acc": m.get("seq_acc"), "n": m.get("n")})
    return rows


def _old_format_table(records):
    ops = []
    for r in records:
        for op in r["metrics"].get("per_op", {}):
            if op not in ops:
                ops.append(op)
    head = ["run", "d", "seed", "params", "steps", "stop", "gen_acc", "tf_acc"] + [f"{op}:gen" for op in ops]
    rows = []
    for r in records:
        s, m = r["spec"], r["metrics"]
        per = m.get("per_op", {})
        rows.append([r["name"], str(s["arch"]["n_embed"]), str(s["seed"]), str(r["n_params"]),
                     str(r["steps_trained"]), r["stop_reason"], f"{m.get('gen_acc', float('nan')):.3f}",
                     f"{m.get('tf_acc', float('nan')):.3f}"]
                    + [f"{per[op]['gen_acc']:.3f}" if op in per else "-" for op in ops])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _old_width_ticks(records):
    out = {}
    for r in records:
        out[float(r["n_params"])] = int(r["spec"]["arch"]["n_embed"])
    return out


def _old_learned_bracket(means, *, chance, level=0.8, min_asymptote=None):
    if min_asymptote is None:
        min_asymptote = chance + (1.0 - chance) / 2.0
    best = max(means.values())
    asym = best if best >= min_asymptote and level * best > chance else 1.0
    threshold = level * asym
    widths = sorted(means)
    learned = [w for w in widths if means[w] >= threshold]
    if not learned:
        return "above", None, threshold
    first = learned[0]
    if first == widths[0]:
        return "below", None, threshold
    return "bracket", (max(w for w in widths if w < first), first), threshold


def _old_learned_at(mean_by_width, width, min_acc=0.8):
    return mean_by_width.get(int(width), -1.0) >= min_acc


# ------------------------------------------------------------------------------------------------
# Records built by hand: full run records as save_result writes them (every field it writes)
# ------------------------------------------------------------------------------------------------


def full_rec(ops, accs, width, seed, *, modulus=10, family="listops", perm_k=3, stop="budget", steps=100):
    t = (TaskConfig(ops=tuple(ops), modulus=modulus) if family == "listops"
         else TaskConfig(family="perm", ops=tuple(ops), perm_k=perm_k))
    per_op = {op: {"gen_acc": a, "tf_acc": a / 2, "seq_acc": a / 4, "n": 50} for op, a in accs.items()}
    vals = list(accs.values())
    key = hashlib.sha256(f"{ops}{modulus}{perm_k}{family}{width}{seed}".encode()).hexdigest()[:16]
    return {"key": key, "name": f"{'+'.join(ops)}_d{width}_s{seed}",
            "spec": {"task": t.to_dict(), "arch": {"n_embed": width, "n_layer": 2}, "seed": seed},
            "n_params": 37 * width * width + 11, "curve": [], "steps_trained": steps, "stop_reason": stop,
            "metrics": {"gen_acc": sum(vals) / len(vals), "tf_acc": sum(vals) / len(vals) / 2, "per_op": per_op},
            "train_seconds": 1.0, "env": {}}


RECORDS = [
    full_rec(["ADD"], {"ADD": 0.25}, 16, 1),
    full_rec(["ADD"], {"ADD": 0.5}, 8, 0),
    full_rec(["ADD", "MAX"], {"ADD": 0.875, "MAX": 1.0}, 8, 0),
    full_rec(["ADD"], {"ADD": 0.625}, 16, 0),
    full_rec(["ADD", "MAX"], {"ADD": 0.75, "MAX": 0.5}, 8, 1),
    full_rec(["ADD"], {"ADD": float("nan")}, 32, 2, stop="diverged", steps=7),
    full_rec(["ADD"], {"ADD": 1.0}, 32, 0),
    full_rec(["ADD"], {"ADD": 0.5}, 8, 0, modulus=11),
    full_rec(["PMUL", "SGN"], {"PMUL": 0.3, "SGN": 0.9}, 12, 0, family="perm", perm_k=4),
    full_rec(["PMUL", "SGN"], {"SGN": 0.7}, 12, 1, family="perm", perm_k=4),  # not evaluated on PMUL
    full_rec(["PMUL"], {"PMUL": 0.2}, 12, 0, family="perm", perm_k=3),
]


def _same(a, b):
    """Equal, NaN equal to NaN (a diverged run's accuracy)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_summary_rows_and_mean_acc_as_before():
    new, old = summary_rows(RECORDS), _old_summary_rows(RECORDS)
    assert new == old
    assert ("ADD", 10, 32, 37 * 32 * 32 + 11, 2, "ADD=nan  (1 diverged)") in new  # the diverged run shows
    for subset in (RECORDS, RECORDS[:3], RECORDS[8:], []):
        for op in ("ADD", "MAX", "PMUL", "SGN", "MED"):
            for metric in ("gen_acc", "tf_acc"):
                assert _same(_mean_acc(subset, op, metric), _old_mean_acc(subset, op, metric)), (op, metric)
    assert _mean_acc(RECORDS[:3], "ADD") == pytest.approx((0.25 + 0.5 + 0.875) / 3)
    assert _mean_acc(RECORDS, "MED") == 0.0  # never evaluated: not learned


def test_records_table_as_before():
    loose = RECORDS[:5] + [{"key": "broken", "error": "corrupt run record"}] + RECORDS[5:]
    new, old = records_table(loose), _old_records_table(loose)
    assert _same(new, old)
    assert new[0]["ops"] == "ADD" and new[0]["gen_acc"] == 0.25 and {"key": "broken", "error": "corrupt run record"} in new
    assert sum(r.get("diverged", False) for r in new) == 1


def test_train_table_and_width_ticks_as_before():
    assert format_table(RECORDS) == _old_format_table(RECORDS)
    assert experiments.width_ticks(RECORDS) == _old_width_ticks(RECORDS)


def test_chance_and_floor_read_the_typed_record():
    assert experiments.chance_accuracy(RECORDS, ops=("ADD",), op="ADD", size=11) == 1 / 11
    assert experiments.chance_accuracy(RECORDS, ops=("PMUL", "SGN"), op="PMUL", size=4) == 1 / 24
    assert experiments.chance_accuracy(RECORDS, ops=("MED",), op="MED") == 0.0
    assert experiments.known_floor(RECORDS, ops=("ADD",), op="ADD", size=10) == 0.1  # ADD mod 10 is uniform
    assert experiments.known_floor(RECORDS, ops=("ADD", "MAX"), op="MAX", size=10) is None  # MAX is skewed
    assert experiments.known_floor(RECORDS, ops=("MED",), op="MED") is None


def test_group_ops_and_accuracies():
    t = RecordTable.from_dicts(RECORDS)
    g = t.group("mix", "size")
    assert list(g) == [("ADD", 10), ("ADD+MAX", 10), ("ADD", 11), ("PMUL+SGN", 4), ("PMUL", 3)]
    assert [len(v) for v in g.values()] == [5, 2, 1, 2, 1]
    assert g[("PMUL+SGN", 4)].ops() == ["PMUL", "SGN"] and g[("PMUL+SGN", 4)].accuracies("PMUL") == [0.3]
    assert g[("ADD+MAX", 10)].mean_accuracy("MAX", "tf_acc") == pytest.approx(0.375)
    assert g[("ADD", 11)].mean_accuracy("MAX") is None
    assert list(t.group("modulus"))[:2] == [(10,), (11,)]  # a task field
    with pytest.raises(ValueError, match="'colour' is not a record field"):
        t.group("colour")
    r = Record.from_dict(RECORDS[5])
    assert r.diverged and r.mix == "ADD" and r.steps_trained == 7 and math.isnan(r.accuracy(None))
    assert Record.from_dict(RECORDS[2]).accuracy(None, "tf_acc") == pytest.approx(0.46875)


# ------------------------------------------------------------------------------------------------
# One "learned" rule
# ------------------------------------------------------------------------------------------------


def test_learned_bar_rules():
    assert learned_bar() == learned_bar(LEVEL) and learned_bar().threshold == 0.8 and learned_bar().source == "absolute"
    assert is_learned(0.8) and not is_learned(0.79) and not is_learned(float("nan")) and not is_learned(None)
    assert is_learned(np.array([0.1, 0.9])).tolist() == [False, True]
    assert learned_bar(0.8, plateau=0.9).threshold == pytest.approx(0.72)  # a plateau that shows learning
    assert learned_bar(0.8, plateau=0.45).source == "fallback"  # below halfway to 1: measured against 1.0
    b = learned_bar(0.8, plateau=0.55, chance=0.2)  # halfway from 0.2 is 0.6: no real learning
    assert (b.source, b.threshold) == ("fallback", 0.8)
    assert learned_bar(0.8, plateau=0.55, chance=0.2, min_asymptote=0.5).threshold == pytest.approx(0.44)
    assert learned_bar(0.5, plateau=0.9, chance=0.45, min_asymptote=0.1).source == "fallback"  # 0.45 = chance
    assert learned_bar(0.8, asymptote=0.5, plateau=0.99).threshold == 0.4
    assert not is_learned(1.0, level=1.01)  # a bar nothing reaches (analysis.models' min_acc=1.01)


MEANS = [  # mean accuracy per width; chance 0.1
    {8: 0.1, 16: 0.5, 32: 0.85, 64: 1.0},
    {8: 0.2, 16: 0.3, 32: 0.95},
    {8: 0.9, 16: 0.95, 32: 1.0},
    {8: 0.1, 16: 0.12, 32: 0.11},
    {8: 0.1, 16: 0.7, 32: 0.82, 64: 0.78},  # not monotone
    {8: 0.05, 16: 0.3, 32: 0.4},  # a plateau that shows no learning
    {8: 0.3, 16: 0.66, 32: 0.7},  # learned against its plateau 0.7 (0.56), not against 1.0 (0.8)
]


def _records_with_means(means: dict, ops=("ADD",)) -> list[dict]:
    """One run per width with accuracy ``means[w]`` on ADD (so the mean at a width is that value)."""
    return [full_rec(list(ops), {"ADD": a}, w, 0) for w, a in means.items()]


@pytest.mark.parametrize("means", MEANS)
def test_the_three_callers_agree(means):
    """transition, sweep.learned_bracket and analysis.models.matched_width apply one rule: on the
    same means, with the same asymptote, they call the same widths learned."""
    widths = sorted(means)
    recs = _records_with_means(means)
    # 1. the absolute bar (asymptote 1.0): matched_width's rule, learned_bracket's when its best mean
    #    is 1.0, and the transition's observed-data rule with asymptote=1.0
    absolute = [w for w in widths if is_learned(means[w])]
    choice = models.matched_width(recs, [("ADD",)], "ADD", widths, size=10)
    assert choice.learned == bool(absolute) and (not absolute or choice.width == absolute[0])
    assert [w for w in widths if models.learned_at(recs, [("ADD",)], "ADD", w, size=10)] == absolute
    t = estimate_transition(widths, [means[w] for w in widths], asymptote=1.0, chance=0.1, n_boot=0)
    assert t.threshold == 0.8
    assert (t.kind == "above") == (not absolute)
    assert (t.kind == "below") == (absolute == widths)
    # 2. the observed plateau (the best mean): learned_bracket's asymptote, given to the transition
    kind, bracket, thr = learned_bracket(means, chance=0.1)
    bar = learned_bar(LEVEL, plateau=max(means.values()), chance=0.1)
    assert thr == bar.threshold
    on_plateau = [w for w in widths if bar.learned(means[w])]
    t = estimate_transition(widths, [means[w] for w in widths], asymptote=bar.asymptote, chance=0.1, n_boot=0)
    assert t.threshold == pytest.approx(thr)
    assert (kind == "above") == (t.kind == "above") == (not on_plateau)
    assert (kind == "below") == (on_plateau[:1] == widths[:1])
    assert (t.kind == "below") == (on_plateau == widths)
    if kind == "bracket":
        assert bracket[1] == on_plateau[0]
    # 3. each still gives its old answer
    assert (kind, bracket, thr) == _old_learned_bracket(means, chance=0.1)
    mean_by_width = RecordTable.from_dicts(recs).mean_by_width("ADD")
    for w in widths + [128]:
        assert models.learned_at(recs, [("ADD",)], "ADD", w, size=10) == _old_learned_at(mean_by_width, w)


def test_a_fitted_plateau_uses_the_same_rule():
    """The transition's fitted top goes through learned_bar: a flat run at chance is not learned,
    a run that plateaus at 0.7 is measured against 0.7."""
    sizes = [8, 16, 32, 64, 128]
    flat = estimate_transition(sizes, [0.1, 0.12, 0.11, 0.1, 0.12], chance=0.1, n_boot=0)
    assert (flat.kind, flat.asymptote_source, flat.threshold) == ("above", "fallback", 0.8)
    low = estimate_transition(sizes, [0.1, 0.1, 0.4, 0.7, 0.7], chance=0.1, n_boot=0)
    bar = learned_bar(LEVEL, plateau=low.fit.top, chance=0.1)
    assert (low.asymptote_source, low.asymptote, low.threshold) == ("fit", bar.asymptote, bar.threshold)
    assert low.kind == "estimate" and 16 < low.value < 64


# ------------------------------------------------------------------------------------------------
# The run cache keys are unchanged
# ------------------------------------------------------------------------------------------------

# (number of runs, sha256 of their keys joined by newlines [:16], first key, last key), computed on
# commit c8adedb (before issue 13's record work) with load_sweep(params/sweeps/<name>.yaml, preset).
FROZEN_KEYS = {
    ("controls", "smoke"): (6, "e4b2766df74c05e6", "e6ac1d5b9892a68f", "49b856f81eee21c3"),
    ("controls", "quick"): (160, "a0e0b31dd048d2f2", "fc471d0d4f16bd9c", "404688b6c15124bb"),
    ("joint_training", "smoke"): (18, "41784ad2f0e2288d", "3725812cd9573691", "1bba42a90fad6286"),
    ("joint_training", "quick"): (500, "9c167077b7695e92", "c2898970a1f9d723", "695b1e48601d3de2"),
    ("permutations", "smoke"): (6, "752ef486c3709edf", "c35bfe35068d97e9", "858e362999b96fab"),
    ("permutations", "quick"): (50, "3af30e1b0f1108ce", "b9f78b4312df4c6b", "c14c9fe0b7ad13c7"),
    ("prime_modulus", "smoke"): (6, "2f80b834bbc41908", "b0731dc4974f81c2", "8a5cd75aaf08d357"),
    ("prime_modulus", "quick"): (160, "40ff378b6785b50b", "3adc7911d1c44fe8", "93547a2e855e00e8"),
    ("single_task", "smoke"): (12, "5c55ea1714a2b653", "3725812cd9573691", "4477f674c4670240"),
    ("single_task", "quick"): (60, "c71732cf6ea8e37e", "8e97710fe7b40dee", "5384e1c7bf6f1720"),
    ("transfer", "smoke"): (3, "3081ee941ce6ba51", "3725812cd9573691", "54c105c074ab3966"),
    ("transfer", "quick"): (10, "57a2a4e27293cd1a", "c2898970a1f9d723", "83f1551ab317f21a"),
}


@pytest.mark.parametrize("name,preset", sorted(FROZEN_KEYS))
def test_run_keys_unchanged(name, preset):
    sw = load_sweep(paths.repo_root() / "params" / "sweeps" / f"{name}.yaml", preset, 0)
    keys = [s.key() for s in sw.specs]
    got = (len(keys), hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16], keys[0], keys[-1])
    assert got == FROZEN_KEYS[(name, preset)]
