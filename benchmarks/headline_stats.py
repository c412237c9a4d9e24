"""The headline factor (ADD+MAX+MED vs ADD, mod 10) recomputed with the pooled transition model
on the measured runs of ``benchmarks/measured/headline_seeds_cpu.json``, beside the old estimator.

Reads the accuracy of every run (5 seeds x 5 widths x 2 mixes at the quick preset; no training),
turns widths into parameter counts with the joint-training sweep's quick model, and reports for
the preset's seeds (0-2) and for all five seeds:

* ``pooled``: the scorecard's model (:func:`jointtask_lib.stats.pooled_reduction`: learned =
  accuracy >= 0.8, lapse and a random shift per seed curve, t / F reference with curves - 2 df):
  factor, profile-likelihood 95% CI, one-sided LRT p, equivalence p, fitted curve;
* ``lapse_only`` (no seed effect, normal reference) and ``plain`` (no lapse, no seed effect:
  ordinary logistic regression), to show what each part of the model does;
* the model-free checks: ``exact`` (width-stratified exact test) and ``perm`` (permutation over
  whole seed curves);
* ``old_estimator``: the seed-bootstrap factor stored in the input file (notebook 03's curve fit).

``fitted_curve`` (all seeds, the full model) is the planner's default curve
(``jointtask_lib.stats.power.HEADLINE_CURVE``).  Prints one JSON object; ``--out FILE`` writes it.

    python benchmarks/headline_stats.py --out benchmarks/measured/headline_stats_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from jointtask_lib.paths import emit_json  # noqa: E402
from jointtask_lib.stats import pooled_reduction  # noqa: E402
from jointtask_lib.stats.power import params_of_widths  # noqa: E402

SINGLE, JOINT = "ADD", "ADD+MAX+MED"


def conditions(acc: dict, n_params: dict, seeds) -> list[tuple]:
    out = []
    for mix in (SINGLE, JOINT):
        xs, ys, ss = [], [], []
        for w, per_seed in acc[mix].items():
            for s, a in per_seed.items():
                if int(s) in seeds:
                    xs.append(n_params[int(w)])
                    ys.append(float(a))
                    ss.append(int(s))
        out.append((xs, ys, ss))
    return out


def summary(res) -> dict:
    return {"describe": res.describe(), "factor": res.factor, "ci": [res.lo, res.hi],
            "ci_open": [res.lo_open, res.hi_open], "p_one_sided": res.p, "p_equiv_1.5": res.p_equiv,
            "reference_df": None if res.df == float("inf") else res.df,
            "curve": {"transition_single": res.transition_single, "transition_joint": res.transition_joint,
                      "slope": res.slope, "lapse": res.lapse, "seed_sd": res.tau},
            "learned_runs": {SINGLE: res.n_learned[0], JOINT: res.n_learned[1]}, "n_runs": res.n_runs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", default=os.path.join(ROOT, "benchmarks", "measured", "headline_seeds_cpu.json"))
    ap.add_argument("--modulus", default="10")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    data = json.load(open(a.input))
    block = data["results"][a.modulus]
    acc = block["accuracy_by_width_and_seed"]
    widths = [int(w) for w in data["widths"]]
    # The measured runs predate MED's own 3 arguments (every node had 2): their context, and so
    # their parameter counts, are those of the task without op_args.
    n_params = dict(zip(widths, params_of_widths(widths, task_overrides={"op_args": {}})))
    t0 = time.perf_counter()
    out = {"what": "ADD+MAX+MED vs ADD: pooled transition model vs the old seed-bootstrap estimator, on the "
                   "measured runs (no training)", "input": os.path.relpath(a.input, ROOT), "modulus": int(a.modulus),
           "widths": widths, "n_params": [n_params[w] for w in widths], "threshold": 0.8, "results": {}}
    for name, key in (("preset_seeds", "preset_seeds"), ("all_seeds", "all_seeds")):
        seeds = set(block[key]["seeds"])
        single, joint = conditions(acc, n_params, seeds)
        full = pooled_reduction(single, joint)
        out["results"][name] = {
            "seeds": sorted(seeds),
            "pooled": summary(full),
            "lapse_only": summary(pooled_reduction(single, joint, seed_effect=False)),
            "plain": summary(pooled_reduction(single, joint, lapse=0.0, seed_effect=False)),
            "exact": dict(full.exact.__dict__),
            "perm": dict(full.perm.__dict__),
            "old_estimator": {"describe": block[key]["reduction"], "factor": block[key]["reduction_value"],
                              "ci": block[key]["reduction_ci"]},
        }
        if name == "all_seeds":
            c = out["results"][name]["pooled"]["curve"]
            out["fitted_curve"] = {"transition": c["transition_single"], "slope": c["slope"], "lapse": c["lapse"],
                                   "tau": c["seed_sd"]}
    out["wall_seconds"] = round(time.perf_counter() - t0, 1)
    emit_json(out, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
