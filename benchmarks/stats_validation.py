"""Monte-Carlo validation of the pooled transition model at more replicates than the unit tests.

For designs of 3, 5, 10 and 20 seeds per condition at the quick preset's five widths (parameter
counts of ``params/sweeps/joint_training.yaml``'s quick model), draws experiments from
``jointtask_lib.stats.power.HEADLINE_CURVE`` (the curve fitted to the measured headline runs:
lapse and seed effects included) and reports, per design, the one-sided false-positive rate at
alpha = 0.025 (true factor 1), the power at a true factor of 2 and the 95% profile-CI coverage
of the true factor, each with its Monte-Carlo standard error (``plan_power``).  Prints one JSON
object; ``--out FILE`` writes it too.

    python benchmarks/stats_validation.py --reps 400 --out benchmarks/measured/stats_validation_cpu.json
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
from jointtask_lib.stats.power import HEADLINE_CURVE, plan_power  # noqa: E402

#: n_params of the quick joint-training model at widths 8, 12, 16, 24, 32 (ADD alone and
#: ADD+MAX+MED share the vocabulary, so the counts are equal); checked by tests/test_stats.py.
QUICK_N_PARAMS = (1408, 2688, 4352, 8832, 14848)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--seeds", default="3,5,10,20")
    ap.add_argument("--factor", type=float, default=2.0)
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    out = {"what": "pooled LRT: false-positive rate, power and CI coverage by simulation",
           "curve": HEADLINE_CURVE.__dict__, "n_params": list(QUICK_N_PARAMS), "factor": a.factor,
           "reps": a.reps, "alpha_one_sided": 0.025, "designs": []}
    for s in [int(x) for x in a.seeds.split(",") if x.strip()]:
        t0 = time.perf_counter()
        r = plan_power(factor=a.factor, seeds=s, n_params=QUICK_N_PARAMS, reps=a.reps, rng=1000 + s)
        row = {"seeds": s, "power": r.power, "false_positive_rate": r.false_positive_rate, "coverage": r.coverage,
               "mc_se": r.mc_se, "wall_seconds": round(time.perf_counter() - t0, 1)}
        out["designs"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    emit_json(out, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
