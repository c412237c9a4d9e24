"""Is the quick task with a true median (MED nodes with 3 arguments, ADD with 2) still learnable on
a 2-core CPU, and at which modulus?

At the old quick setting (every node exactly 2 arguments) MED = ``sorted(args)[(k-1)//2]`` of two
numbers is their minimum: ADD+MAX+MED was ADD+MAX+MIN.  The task layer now gives an operation its
own arity (``op_args: {MED: 3}``) and rejects a MED that is MIN.  This script trains, with the
joint-training sweep's quick recipe (``params/sweeps/joint_training.yaml``: depth 2, 5,000 steps,
lr 3e-3, batch 32) and ``op_args: {MED: 3}``, the mixes ``--mixes`` at each modulus ``--moduli``,
widths ``--widths`` and seeds ``--seeds``, and reports:

* every run's test accuracy per operation (``gen_acc``: the model writes its own CoT) and the
  steps it trained (early stopping stops runs that converged or stay at chance);
* the fraction of MED test examples whose answer differs from MIN of the same arguments
  (computed here from the expression tree, independently of the library's MED);
* the wall time of the call (the machine is shared: compare only within one call).

Prints one JSON object; ``--out FILE`` writes it too.

    python benchmarks/med_arity.py --moduli 10,20 --widths 8,16,24,32 --seeds 0,1 \
        --out benchmarks/measured/med_arity_cpu.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from jointtask_lib.paths import emit_json  # noqa: E402
from jointtask_lib.sweep import load_sweep, run_specs  # noqa: E402
from jointtask_lib.tasks import TaskConfig  # noqa: E402
from jointtask_lib.train import Arch, RunSpec  # noqa: E402


def _flatten_med_vs_min(expr, modulus: int) -> tuple[int, int]:
    """(number of MED nodes, of which the true median differs from the minimum), recursively,
    computed with Python's own ``sorted`` on the evaluated arguments (not the library's MED)."""
    if isinstance(expr, int):
        return 0, 0
    op, args = expr
    n = d = 0
    vals = []
    for a in args:
        dn, dd = _flatten_med_vs_min(a, modulus)
        n, d = n + dn, d + dd
        vals.append(_value(a, modulus))
    if op == "MED":
        n += 1
        s = sorted(vals)
        d += int(s[(len(s) - 1) // 2] != s[0])
    return n, d


def _value(expr, modulus: int) -> int:
    if isinstance(expr, int):
        return expr
    op, args = expr
    v = [_value(a, modulus) for a in args]
    s = sorted(v)
    return {"MAX": max(v), "MIN": min(v), "MED": s[(len(s) - 1) // 2], "ADD": sum(v) % modulus}[op]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mixes", default="ADD;ADD,MAX,MED")
    ap.add_argument("--moduli", default="10,20")
    ap.add_argument("--widths", default="8,16,24,32")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--med-args", type=int, default=3)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    ap.add_argument("--results", default="", help="results root (default: a temporary folder)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--collect-only", action="store_true",
                    help="train nothing: report the runs that already have records under --results")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    mixes = [tuple(m.split(",")) for m in a.mixes.split(";") if m]
    moduli = [int(x) for x in a.moduli.split(",")]
    widths = [int(x) for x in a.widths.split(",")]
    seeds = [int(x) for x in a.seeds.split(",")]
    sw = load_sweep(os.path.join(ROOT, "params", "sweeps", "joint_training.yaml"), a.preset)
    base = sw.specs[0]
    # data seed = the run's seed (the sweep's "shared" rule), as when this was measured
    train = replace(base.train, data_seed=None, **({} if a.steps is None else {"steps": a.steps}))
    specs = []
    for n in moduli:
        for m in mixes:
            d = base.task.to_dict()
            d.update(ops=list(m), modulus=n, weights=None, op_args={"MED": a.med_args})
            task = TaskConfig.from_dict(d)
            for w in widths:
                for s in seeds:
                    specs.append(RunSpec(task=task, arch=replace(base.arch, n_embed=w), train=train, seed=s))
    root = a.results or tempfile.mkdtemp(prefix="med_arity_")
    t0 = time.time()
    if a.collect_only:
        from jointtask_lib.runs import load_record

        pairs = [(s, load_record(root, s)) for s in specs]
        specs, records = [s for s, r in pairs if r is not None], [r for _, r in pairs if r is not None]
    else:
        records = run_specs(specs, root, workers=a.workers, progress=False)
    wall = time.time() - t0
    out = {"what": "quick recipe with MED at 3 arguments (ADD/MAX at 2): accuracy per op", "preset": a.preset,
           "steps": train.steps, "med_args": a.med_args, "moduli": moduli, "widths": widths, "seeds": seeds,
           "wall_seconds_this_call": round(wall, 1), "machine": "shared 2-core CPU (other jobs running)",
           "collected_only": bool(a.collect_only),
           "med_differs_from_min": {}, "runs": []}
    for n in moduli:
        t = TaskConfig.from_dict(dict(base.task.to_dict(), ops=["MED"], modulus=n, op_args={"MED": a.med_args}))
        test = RunSpec(task=t, arch=base.arch, train=train, seed=0).data()[1]
        tot = dif = 0
        for e in test.exprs:
            nn, dd = _flatten_med_vs_min(e, n)
            tot, dif = tot + nn, dif + dd
        roots = sum(int(_flatten_med_vs_min((e[0], tuple(_value(x, n) for x in e[1])), n)[1]) for e in test.exprs)
        out["med_differs_from_min"][str(n)] = {"examples": len(test.exprs), "answer_differs": roots / len(test.exprs),
                                               "nodes": tot, "node_differs": dif / max(tot, 1)}
    for spec, r in zip(specs, records):
        per_op = {op: round(float(v.get("gen_acc", float("nan"))), 3)
                  for op, v in r["metrics"].get("per_op", {}).items()}
        out["runs"].append({"mix": "+".join(spec.task.ops), "modulus": spec.task.modulus, "width": spec.arch.n_embed,
                            "seed": spec.seed, "n_params": spec.n_params(), "gen_acc_per_op": per_op,
                            "steps_trained": r.get("steps_trained"), "stop_reason": r.get("stop_reason"),
                            "stack_train_seconds": r.get("train_seconds")})
    emit_json(out, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
