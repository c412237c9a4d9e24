"""Budget or capacity?  Does the headline reduction factor move when every run trains longer?

At the quick preset ADD-alone runs fail at d = 24 and 32 after their full budget while other seeds
learn at d = 12: is a failure at a width above the transition a too-short budget, and would a
longer budget change the factor ADD+MAX+MED vs ADD?  This script trains the headline's two mixes
(``params/sweeps/joint_training.yaml`` at ``--preset``, its task, recipe and data-seed rule) on a
subset — ``--seeds`` (at least 3) at ``--widths`` (the widths around both transitions) — once with
the preset's steps and once with ``--factor`` times as many (warm-up and evaluation spacing as
in the preset; early stopping as in the preset, so a run that converges stops either way), and
reports for each budget:

* the reduction factor of notebook 03's estimator on the subset (level 0.8, ``--n-boot``
  bootstrap replicates, chance = 1/n) and both transitions;
* when :mod:`jointtask_lib.stats` is available, the pooled model's factor, CI and p as well;
* every run's ADD accuracy by mix, width and seed, its steps trained and why it stopped;
* ``factor_moves``: whether the longer budget's point estimate lies outside the base budget's
  CI (and the ratio of the two estimates), for notebook 03's estimator and for the pooled model.
  With 3 seeds the CIs are wide: "does not move" means "no move the subset can detect", said with
  the CI;
* ``learned``: per budget and mix, the runs that learned ADD (the absolute bar,
  :func:`jointtask_lib.records.learned_bar`) at each width, and ``learned_moves``: per mix, a
  one-sided Fisher exact test that more runs learn at the longer budget (same widths and seeds,
  so a difference is the budget's) -- the direct answer to "budget or capacity?".

Runs go through the run cache (``--results``): the base-budget runs are the sweep's own runs when
the subset is part of its grid.  Prints one JSON object; ``--out FILE`` writes it too.

    python benchmarks/budget_sensitivity.py --results results --widths 12,16,20,24 --seeds 0,1,2 \\
        --out benchmarks/measured/budget_sensitivity_cpu.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from jointtask_lib.paths import emit_json  # noqa: E402
from jointtask_lib import experiments  # noqa: E402
from jointtask_lib.records import learned_bar  # noqa: E402
from jointtask_lib.sweep import load_sweep, per_run_data_seed, run_specs  # noqa: E402
from jointtask_lib.validate import check_int  # noqa: E402

SINGLE, JOINT = ("ADD",), ("ADD", "MAX", "MED")


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def _summary(records, modulus: int, n_boot: int) -> dict:
    floor = experiments.known_floor(records, ops=SINGLE, op="ADD", size=modulus)
    red = experiments.reduction_of(records, single=SINGLE, joint=JOINT, op="ADD", size=modulus, level=0.8,
                                   n_boot=n_boot, chance=floor)
    ts = {"+".join(m): experiments.transition_of(records, ops=m, op="ADD", size=modulus, level=0.8,
                                                 n_boot=n_boot, chance=floor) for m in (SINGLE, JOINT)}
    out = {"reduction": None if red is None else red.describe(),
           "reduction_value": None if red is None else red.value,
           "reduction_ci": None if red is None or red.lo is None else [red.lo, red.hi],
           "transitions": {k: (t.describe() if t else None) for k, t in ts.items()}}
    try:  # the pooled model of the verdicts issue, where this checkout has it
        from jointtask_lib.stats import pooled_reduction

        pr = _pooled(pooled_reduction, records, modulus)
        out["pooled"] = pr.describe()
        out["pooled_value"] = pr.factor if pr.factor == pr.factor else None
        out["pooled_ci"] = [pr.lo, pr.hi]
    except ImportError:
        out["pooled"] = "jointtask_lib.stats not available in this checkout"
    return out


def _pooled(pooled_reduction, records, modulus):
    a, b = (experiments.accuracy_points(records, ops=m, op="ADD", size=modulus) for m in (SINGLE, JOINT))
    return pooled_reduction(a, b)


def _learned(runs: list[dict], budget: str, mix: str) -> dict[str, list[int]]:
    """``{width: [learned, runs]}`` of one budget and mix (learned: ADD accuracy at the absolute bar)."""
    bar = learned_bar().threshold
    out: dict[str, list[int]] = {}
    for r in runs:
        if r["budget"] == budget and r["mix"] == mix:
            c = out.setdefault(str(r["width"]), [0, 0])
            c[0] += r["add_gen_acc"] >= bar
            c[1] += 1
    return out


def _learned_moves(learned: dict[str, dict[str, dict[str, list[int]]]]) -> dict:
    """Per mix, from ``{budget: {mix: _learned(...)}}`` (base budget first): learned / runs at each
    budget over the whole subset, and the one-sided Fisher exact p that the longer budget learns
    more often."""
    from scipy.stats import fisher_exact

    base, longer = learned
    out = {}
    for mix in learned[base]:
        k, n = ([sum(c[i] for c in learned[b][mix].values()) for b in (base, longer)] for i in (0, 1))
        p = fisher_exact([[k[1], n[1] - k[1]], [k[0], n[0] - k[0]]], alternative="greater")[1]
        out[mix] = {f"learned_{base}": f"{k[0]}/{n[0]}", f"learned_{longer}": f"{k[1]}/{n[1]}",
                    "fisher_p_one_sided": float(p)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--widths", default="12,16,20,24")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--factor", type=int, default=2, help="the longer budget, in multiples of the preset's steps")
    ap.add_argument("--steps", type=int, default=None, help="override the preset's base steps (a reduced-scale run)")
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    check_int("factor", a.factor, lo=2)
    widths, seeds = _ints(a.widths), _ints(a.seeds)
    if len(seeds) < 3:
        raise SystemExit("budget_sensitivity: error: '--seeds' must name at least 3 seeds")
    sw = load_sweep(os.path.join(ROOT, "params", "sweeps", "joint_training.yaml"), a.preset)
    proto = {tuple(s.task.ops): s for s in sw.specs if tuple(s.task.ops) in (SINGLE, JOINT)}
    modulus = sw.sizes[0]
    base_steps = proto[SINGLE].train.steps if a.steps is None else check_int("steps", a.steps, lo=1)
    budgets = {"base": base_steps, f"x{a.factor}": a.factor * base_steps}
    specs = {b: [] for b in budgets}
    for b, steps in budgets.items():
        for mix, p in proto.items():
            for w in widths:
                for s in seeds:
                    train = replace(p.train, steps=steps)
                    if sw.data_seeds == "per_run":
                        train = replace(train, data_seed=per_run_data_seed(p.task, s, w))
                    specs[b].append(replace(p, arch=replace(p.arch, n_embed=w), train=train, seed=s))
    t0 = time.time()
    recs = dict(zip(budgets, [None] * len(budgets)))
    flat = run_specs([s for b in budgets for s in specs[b]], os.path.abspath(a.results), workers=a.workers,
                     progress=False)
    i = 0
    for b in budgets:
        recs[b] = flat[i:i + len(specs[b])]
        i += len(specs[b])
    out = {"what": "headline factor ADD+MAX+MED vs ADD at the preset's budget and at a longer one (a subset)",
           "sweep": f"joint_training ({a.preset})", "modulus": modulus, "widths": widths, "seeds": seeds,
           "budgets_steps": budgets, "data_seeds": sw.data_seeds,
           "wall_seconds_this_call": round(time.time() - t0, 1),
           "machine": "shared 2-core CPU (other jobs running)", "by_budget": {}, "runs": []}
    for b in budgets:
        out["by_budget"][b] = _summary(recs[b], modulus, a.n_boot)
        for spec, r in zip(specs[b], recs[b]):
            out["runs"].append({"budget": b, "mix": "+".join(spec.task.ops), "width": spec.arch.n_embed,
                                "seed": spec.seed, "add_gen_acc": round(r["metrics"]["per_op"]["ADD"]["gen_acc"], 3),
                                "steps_trained": r["steps_trained"], "stop_reason": r["stop_reason"]})
    base, longer = out["by_budget"]["base"], out["by_budget"][f"x{a.factor}"]
    moves = None
    if base["reduction_value"] is not None and longer["reduction_value"] is not None and base["reduction_ci"]:
        lo, hi = base["reduction_ci"]
        moves = {"longer_outside_base_ci": not (lo <= longer["reduction_value"] <= hi),
                 "ratio_longer_to_base": longer["reduction_value"] / base["reduction_value"]}
    out["factor_moves"] = moves if moves is not None else "not decidable: a factor is a bound or missing"
    if base.get("pooled_value") is not None and longer.get("pooled_value") is not None:
        lo, hi = base["pooled_ci"]
        out["pooled_factor_moves"] = {"longer_outside_base_ci": not (lo <= longer["pooled_value"] <= hi),
                                      "ratio_longer_to_base": longer["pooled_value"] / base["pooled_value"]}
    out["learned"] = {b: {m: _learned(out["runs"], b, m) for m in ("+".join(SINGLE), "+".join(JOINT))}
                      for b in budgets}
    out["learned_moves"] = _learned_moves(out["learned"])
    emit_json(out, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
