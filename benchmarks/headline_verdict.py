"""Paper A's headline verdict (ADD alone vs ADD+MAX+MED, mod 10) from the records of one run of
the pre-registered quick design, computed exactly as notebook 03 and the scorecard compute it.

The runs are those of ``benchmarks/headline.yaml`` (the headline pair of
``params/sweeps/joint_training.yaml``'s quick preset: same run specs, same cache keys), trained
beforehand by ``jointtask sweep`` — this script trains nothing and refuses to give a verdict on an
incomplete set of runs (``--allow-partial`` for a look during a run, marked ``"partial": true``).

The verdict is the scorecard's: :func:`jointtask_lib.sections.joint.pooled` (the pooled logistic
transition model, learned = accuracy on ADD >= 0.8, one-sided LRT at alpha = 0.025, profile
likelihood 95% CI), the row of :func:`jointtask_lib.sections.joint.claims` and the scorecard's
rules (:func:`jointtask_lib.scorecard.apply_rules`).  Also printed, for the reader: the number of
seeds that learned ADD at each width in each condition, and the training time stored in the runs'
records.

    python benchmarks/headline_verdict.py --results results --seed-offset 0 \\
        --out benchmarks/measured/headline_quick_offset0_cpu.json
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (ROOT, os.path.join(ROOT, "benchmarks")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from jointtask_lib import experiments, scorecard  # noqa: E402
from quick_cost import stack_seconds  # noqa: E402  (benchmarks/, beside this script)
from jointtask_lib.paths import emit_json, results_dir  # noqa: E402
from jointtask_lib.records import RecordTable  # noqa: E402
from jointtask_lib.runs import load_record  # noqa: E402
from jointtask_lib.sections import joint  # noqa: E402
from jointtask_lib.sweep import load_sweep  # noqa: E402

SWEEP = os.path.join(ROOT, "benchmarks", "headline.yaml")
LEVEL = 0.8


def learned_counts(records, ops, op: str = "ADD", level: float = LEVEL) -> dict:
    """``{width: [learned, runs]}`` for the runs of mix ``ops``."""
    out: dict = defaultdict(lambda: [0, 0])
    for r in RecordTable.from_dicts(records).select(ops=ops).records:
        c = out[r.width]
        c[0] += int((r.accuracy(op) or 0.0) >= level)
        c[1] += 1
    return {w: out[w] for w in sorted(out)}


def _pooled(r) -> dict | None:
    if r is None:
        return None
    return {"factor": r.factor, "lo": r.lo, "hi": r.hi, "lo_open": r.lo_open, "hi_open": r.hi_open,
            "p": r.p, "p_equiv": r.p_equiv, "transition_single": r.transition_single,
            "transition_joint": r.transition_joint, "slope": r.slope, "lapse": r.lapse, "tau": r.tau,
            "n_runs": r.n_runs, "n_learned": list(r.n_learned), "seeds": list(r.seeds),
            "exact_p": getattr(r.exact, "p", None), "perm_p": getattr(r.perm, "p", None),
            "notes": list(r.notes)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default="", help="results root holding runs/ (default: the project's)")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--seed-offset", type=int, default=0)
    ap.add_argument("--allow-partial", action="store_true", help="compute on the runs finished so far")
    ap.add_argument("--out", default="", help="also write the JSON here")
    a = ap.parse_args(argv)

    root = results_dir(a.results)
    sweep = load_sweep(SWEEP, a.preset, seed_offset=a.seed_offset)
    records = [load_record(root, s) for s in sweep.specs]
    have = [r for r in records if r is not None]
    if len(have) < len(records) and not a.allow_partial:
        print(f"{len(records) - len(have)} of {len(records)} runs have no record under {root}: "
              "train them first (jointtask sweep benchmarks/headline.yaml --preset "
              f"{a.preset} --seed-offset {a.seed_offset}) or pass --allow-partial", file=sys.stderr)
        return 2
    comps = experiments.joint_comparisons(sweep)
    by_sweep = {sweep.name: have}
    pooled = joint.pooled(by_sweep, comps, level=LEVEL)
    rows = scorecard.apply_rules(joint.claims(comps, pooled, preset=a.preset))
    seconds = [t for ts in stack_seconds(have).values() for t in ts]
    out = {
        "sweep": os.path.relpath(SWEEP, ROOT),
        "preset": a.preset,
        "seed_offset": a.seed_offset,
        "seeds": sorted({s.seed for s in sweep.specs}),
        "widths": sorted({s.arch.n_embed for s in sweep.specs}),
        "runs": len(records),
        "runs_with_records": len(have),
        "partial": len(have) < len(records),
        "level": LEVEL,
        "verdicts": [
            {"claim": r["claim"], "verdict": r["verdict"], "paper_value": r.get("paper_value"),
             "magnitude": r.get("magnitude"), "ours": r["ours"], "test": r.get("test"),
             "p": r.get("p"), "p_holm": r.get("p_holm"), "ci": r.get("ci"), "n_runs": r.get("n_runs"),
             "rules": r.get("rules")}
            for r in rows
        ],
        "pooled": {c.label: _pooled(pooled[c.label]) for c in comps},
        "learned_by_width": {experiments.fmt_mix(c.single): learned_counts(have, c.single) for c in comps}
        | {experiments.fmt_mix(c.joint): learned_counts(have, c.joint) for c in comps},
        "train_seconds_summed_over_stacks": round(sum(seconds), 1) if seconds else None,
    }
    emit_json(out, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
