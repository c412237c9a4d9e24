"""The pre-registered quick design: power of candidate designs under the planner's fitted curve,
and what each costs on the 2-core machine.

For each candidate design (seeds per condition x widths) this script

* converts the widths to parameter counts **of the quick task as it now is** (MED with 3
  arguments: a longer context, so more position-embedding parameters than the 2-argument task
  the curve was fitted on);
* moves the planner's fitted ADD-alone curve (:data:`jointtask_lib.stats.power.HEADLINE_CURVE`,
  fitted to ``benchmarks/measured/headline_seeds_cpu.json``) to the new parameter counts: its
  transition is multiplied by the ratio of the new to the old parameter count at the width
  where the old transition lies (the same width learns; only the count changes);
* runs :func:`jointtask_lib.stats.power.plan_power` for a true factor of 2 (power) and 1
  (false-positive rate) at one-sided alpha 0.025, ``--reps`` simulated experiments each;
* estimates the wall time from a measured per-run cost (``--seconds-per-run``, default the
  headline measurement: 188 s for 20 quick runs of ADD and ADD+MAX+MED at d = 8..32 with two
  workers on the 2-core machine, ``headline_seeds_cpu.json``), per condition pair.

Prints one JSON object; ``--out FILE`` writes it too.

    python benchmarks/quick_design.py --reps 200 --out benchmarks/measured/quick_design_power_cpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import replace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from jointtask_lib.paths import emit_json  # noqa: E402
from jointtask_lib.stats.power import HEADLINE_CURVE, plan_power  # noqa: E402
from jointtask_lib.sweep import load_sweep  # noqa: E402
from jointtask_lib.tasks import TaskConfig  # noqa: E402

#: Candidate designs: name -> (seeds per condition, widths).  The headline's widths are dense
#: (every d from 8 to 18) around both conditions' transitions (ADD alone near d = 16, ADD+MAX+MED
#: near d = 11-13 at the quick recipe), then 20 and 24 beyond (ADD alone's failures above its
#: transition, the lapse, need widths there).
DESIGNS = {
    "headline_10x15": (10, [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 24, 28, 32]),
    "headline_10x13": (10, [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 24]),
    "headline_12x13": (12, [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 24]),
    "headline_10x9": (10, [8, 10, 11, 12, 13, 14, 16, 18, 24]),
    "control_5x9": (5, [8, 10, 11, 12, 13, 14, 16, 18, 24]),
    "control_6x9": (6, [8, 10, 11, 12, 13, 14, 16, 18, 24]),
    "control_4x9": (4, [8, 10, 11, 12, 13, 14, 16, 18, 24]),
}
MEASURED_SECONDS_PER_RUN = 188.0 / 20  # headline_seeds_cpu.json: 20 quick runs, 2 workers, 2 cores


def _n_params(base, widths):
    return [replace(base, arch=replace(base.arch, n_embed=w)).n_params() for w in widths]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--designs", default=",".join(DESIGNS))
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--seconds-per-run", type=float, default=MEASURED_SECONDS_PER_RUN)
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    sw = load_sweep(os.path.join(ROOT, "params", "sweeps", "joint_training.yaml"), "quick")
    new = next(s for s in sw.specs if s.task.ops == ("ADD",))
    old = replace(new, task=TaskConfig.from_dict({**new.task.to_dict(), "op_args": {}}))
    # the width at the old transition, and the parameter ratio there
    ws = list(range(6, 40))
    old_p = _n_params(old, ws)
    w_star = min(ws, key=lambda w: abs(old_p[ws.index(w)] - HEADLINE_CURVE.transition))
    ratio = _n_params(new, [w_star])[0] / _n_params(old, [w_star])[0]
    curve = replace(HEADLINE_CURVE, transition=HEADLINE_CURVE.transition * ratio)
    out = {"what": "power of candidate quick designs for the headline (ADD vs ADD+MAX+MED) and the controls",
           "planner": "jointtask_lib.stats.power.plan_power (pooled model: LRT p one-sided, profile CI)",
           "curve_fitted": HEADLINE_CURVE.__dict__, "curve_used": curve.__dict__,
           "curve_note": (f"fitted on the 2-argument task; transition moved by the parameter ratio {ratio:.4f} "
                          f"at d = {w_star} (MED with 3 arguments: context 31 instead of 22 tokens)"),
           "alpha_one_sided": 0.025, "true_factor": 2.0, "reps": a.reps,
           "seconds_per_run": a.seconds_per_run,
           "seconds_per_run_source": "headline_seeds_cpu.json: 188 s wall for 20 quick runs (2 workers, 2 cores)",
           "machine": "shared 2-core CPU (other jobs running): the planner's wall time is not a measurement",
           "designs": {}}
    for name in a.designs.split(","):
        seeds, widths = DESIGNS[name]
        sizes = _n_params(new, widths)
        t0 = time.time()
        r = plan_power(factor=2.0, seeds=seeds, n_params=sizes, curve=curve, reps=a.reps, alpha=0.025)
        runs = 2 * seeds * len(widths)
        out["designs"][name] = {
            "seeds": seeds, "widths": widths, "n_params": sizes, "power": r.power,
            "false_positive_rate": r.false_positive_rate, "coverage": r.coverage, "mc_se": r.mc_se,
            "describe": r.describe(), "runs_two_conditions": runs,
            "estimated_minutes_two_conditions": round(runs * a.seconds_per_run / 60, 1),
            "planner_wall_seconds": round(time.time() - t0, 1)}
        print(name, r.describe(), file=sys.stderr)
        if a.out:  # written after every design: a long call keeps what it has
            with open(a.out, "w") as f:
                f.write(json.dumps(out, indent=1) + "\n")
    emit_json(out, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
