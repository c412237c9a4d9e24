"""What the quick design's training costs, projected from runs already trained on this machine.

``make reproduce`` at the quick preset trains every run of the quick sweep files
(``params/sweeps/*.yaml``).  This script reads the records of the runs already in a results root
(e.g. the headline pair, ``benchmarks/headline.yaml``), takes from them the measured wall time of a
stack per run at each width (``train_seconds`` is the stack's time; every record of a stack carries
it), and projects the training time of every quick run that has no record yet:

    projected seconds = sum over missing runs of (seconds per run-step at the nearest measured
                        width) x (the run's steps) / workers

It is a projection, not a measurement: stacks of other sizes stack less or more efficiently, the
permutation runs have a smaller vocabulary than the ListOps runs they are costed as, early stopping
depends on the task, and notebook 09 (paper B) and the notebooks' analyses come on top.  Prints
one JSON object; ``--out FILE`` writes it.

``--train`` first trains the design's runs that have no record (all of them in one pool, longest
stacks first, as ``jointtask sweep`` schedules them; ``--exclude SWEEP`` leaves out the runs of
another sweep file, e.g. the headline pair measured on its own) and reports the measured wall
time of that training next to the projection for whatever is still missing.  Stopped early, it
keeps every finished stack (records are written as stacks finish) and a re-run resumes.

    python benchmarks/quick_cost.py --results results --out benchmarks/measured/quick_cost_cpu.json
    python benchmarks/quick_cost.py --results results --train --exclude benchmarks/headline.yaml \
        --out benchmarks/measured/quick_rest_cpu.json
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from jointtask_lib.paths import emit_json, results_dir  # noqa: E402
from jointtask_lib.runs import load_record  # noqa: E402
from jointtask_lib.sweep import load_sweep, run_specs  # noqa: E402

def stack_seconds(records) -> dict[int, set[float]]:
    """``{width: {wall seconds of each stack}}``: every record of a stack carries the stack's
    ``train_seconds``, so each stack is counted once (records without it are left out)."""
    stacks = defaultdict(set)
    for r in records:
        t = r.get("train_seconds")
        if isinstance(t, (int, float)):
            stacks[int(r["spec"]["arch"]["n_embed"])].add(round(float(t), 3))
    return stacks


def measured_cost(records) -> dict[int, float]:
    """``{width: wall seconds per run and training step}`` from finished records: each stack's
    ``train_seconds`` (carried by every record of the stack) counted once, divided by the run-steps
    of the runs it held (their budgets, ``spec.train.steps``, whether or not they stopped early)."""
    stacks = stack_seconds(records)
    run_steps = defaultdict(int)
    for r in records:
        if isinstance(r.get("train_seconds"), (int, float)):
            run_steps[int(r["spec"]["arch"]["n_embed"])] += int(r["spec"]["train"]["steps"])
    return {w: sum(ts) / run_steps[w] for w, ts in sorted(stacks.items())}


def nearest(cost: dict[int, float], width: int) -> float:
    return cost[min(cost, key=lambda w: (abs(w - width), -w))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default="")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="")
    ap.add_argument("--train", action="store_true",
                    help="first train the design's runs that have no record (timed), then project the rest")
    ap.add_argument("--exclude", default="", help="with --train: a sweep file whose runs are not trained")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    if a.exclude and not a.train:
        ap.error("'--exclude' only applies with '--train'")
    root = results_dir(a.results)

    specs, sweep_of = {}, {}
    for f in sorted(glob.glob(os.path.join(ROOT, "params", "sweeps", "*.yaml"))):
        for s in load_sweep(f, a.preset).specs:
            for x in ([s.init] if s.init is not None else []) + [s]:
                specs.setdefault(x.key(), x)
                sweep_of.setdefault(x.key(), os.path.splitext(os.path.basename(f))[0])

    def split():
        done, missing = [], []
        for s in specs.values():
            r = load_record(root, s)
            (done if r is not None else missing).append((s, r))
        return done, missing

    done, missing = split()
    trained = None
    if a.train:
        excluded = {s.key() for s in load_sweep(a.exclude, a.preset).specs} if a.exclude else set()
        todo = [s for s, _ in missing if s.key() not in excluded]
        t0 = time.perf_counter()
        run_specs(todo, root, workers=a.workers, progress=not a.no_progress)
        wall = time.perf_counter() - t0
        trained = {"runs": len(todo), "wall_seconds": round(wall, 1), "wall_minutes": round(wall / 60, 1),
                   "workers": a.workers, "excluded_sweep": a.exclude or None,
                   "runs_by_sweep": dict(sorted(Counter(sweep_of[s.key()] for s in todo).items()))}
        done, missing = split()
    cost = measured_cost([r for _, r in done])
    if not cost:
        print(f"no finished run under {root}: nothing to project from", file=sys.stderr)
        return 2
    per_width = defaultdict(lambda: [0, 0.0])
    for s, _ in missing:
        c = per_width[s.arch.n_embed]
        c[0] += 1
        c[1] += nearest(cost, s.arch.n_embed) * s.train.steps
    total = sum(c[1] for c in per_width.values())
    emit_json({
        "preset": a.preset,
        **({"trained_here": trained} if trained is not None else {}),
        "runs_in_design": len(specs),
        "runs_with_records": len(done),
        "runs_missing": len(missing),
        "measured_seconds_per_5000_step_run_by_width": {str(w): round(v * 5000, 1) for w, v in cost.items()},
        "measured_seconds_per_run_step_by_width": {str(w): v for w, v in cost.items()},
        "missing_by_width": {str(w): c[0] for w, c in sorted(per_width.items())},
        "workers": a.workers,
        "projected_training_minutes_for_missing": round(total / a.workers / 60, 1),
        "note": "projection from measured stacks of this results root; notebook 09 and the analyses come on top",
    }, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
