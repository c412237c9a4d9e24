"""Find / reproduce a CPU-scale configuration that shows paper A's joint-training effect.

Two conditions, trained for the same number of optimiser steps on the same widths and seeds:

* ``ADD``          — ADD alone;
* ``ADD+MAX+MED``  — the joint mix (equal weights unless ``--joint-weights``).

Accuracy is measured on the ADD examples only: ``metrics["per_op"]["ADD"]["gen_acc"]`` (the model
generates its own chain of thought; see :mod:`jointtask_lib.train`).  Fairness: with equal
weights and equal steps the joint model sees about a third as many ADD examples as the ADD-alone
model, so a gap in its favour is *conservative*.

All runs of one width (2 conditions x seeds) are trained as one stack, and the widths are spread
over ``--workers`` single-threaded processes (the fastest whole-machine setup measured by
``benchmarks/train_throughput.py``).  Runs are cached under ``--root`` (``runs.train_or_load``),
so re-running with the same settings only re-reads the records.

Prints one JSON object: the configuration, per-run accuracies, the per-width mean for each
condition, the smallest width reaching ``--threshold`` mean ADD accuracy, and the wall time.

    python benchmarks/quick_config_search.py                     # the chosen configuration
    python benchmarks/quick_config_search.py --max-args 4 --steps 3000 --widths 8,16,32
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# The chosen quick configuration (see benchmarks/README.md for how it was found).
DEFAULTS = dict(
    modulus=10, depth=2, min_args=2, max_args=2, steps=5000, widths="8,12,16,24,32,48", seeds="0,1",
    lr=3e-3, batch_size=32, warmup=100, n_train=None, eval_every=250, workers=2, threshold=0.9,
)

CONDITIONS = {"ADD": ("ADD",), "ADD+MAX+MED": ("ADD", "MAX", "MED")}


def _ints(s):
    return [int(x) for x in s.split(",") if x.strip()]


def build_specs(a) -> list:
    from jointtask_lib.tasks import TaskConfig
    from jointtask_lib.train import Arch, RunSpec, TrainConfig

    specs = []
    for width in _ints(a.widths):
        for name, ops in CONDITIONS.items():
            weights = None
            if len(ops) > 1 and a.joint_weights:
                weights = tuple(float(x) for x in a.joint_weights.split(","))
            task = TaskConfig(ops=ops, weights=weights, modulus=a.modulus, depth=a.depth,
                              min_args=a.min_args, max_args=a.max_args, p_nest=a.p_nest)
            tc = TrainConfig(steps=a.steps, batch_size=a.batch_size, lr=a.lr, warmup=a.warmup,
                             n_train=a.n_train, eval_every=a.eval_every, early_stop=True,
                             min_frac=1.0,  # never stop at chance: only converged models stop
                             loss_on=a.loss_on, weight_decay=a.weight_decay)
            for seed in _ints(a.seeds):
                specs.append(RunSpec(task=task, arch=Arch(n_embed=width), train=tc, seed=seed))
    return specs


def _train_width(job):
    root, spec_dicts, threads = job
    import torch

    torch.set_num_threads(threads)
    from jointtask_lib.runs import train_or_load
    from jointtask_lib.train import RunSpec

    specs = [RunSpec.from_dict(d) for d in spec_dicts]
    t0 = time.perf_counter()
    recs = train_or_load(root, specs, device="cpu")
    return recs, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for k, v in DEFAULTS.items():
        p.add_argument("--" + k.replace("_", "-"), type=type(v) if v is not None else int, default=v)
    p.add_argument("--p-nest", type=float, default=0.5)
    p.add_argument("--loss-on", default="after_eq")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--joint-weights", default="", help="e.g. 1,1,1 (ADD,MAX,MED); default equal")
    p.add_argument("--root", default="", help="run cache (default: a fresh temporary folder)")
    a = p.parse_args(argv)

    root = a.root or tempfile.mkdtemp(prefix="jointtask_quick_")
    specs = build_specs(a)  # validates everything before any compute
    by_width: dict[int, list] = {}
    for s in specs:
        by_width.setdefault(s.arch.n_embed, []).append(s)
    # Largest widths first so the two workers finish together.
    jobs = [(root, [s.to_dict() for s in by_width[w]], 1) for w in sorted(by_width, reverse=True)]
    t0 = time.perf_counter()
    results = []
    if a.workers > 1:
        with ProcessPoolExecutor(a.workers) as ex:
            results = list(ex.map(_train_width, jobs))
    else:
        results = [_train_width(j) for j in jobs]
    wall = time.perf_counter() - t0
    ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(r.ru_utime + r.ru_stime for r in ru)  # includes data generation and evaluation

    runs = []
    for recs, secs in results:
        for r in recs:
            ops = "+".join(r["spec"]["task"]["ops"])
            add = r["metrics"]["per_op"]["ADD"]
            runs.append({"condition": ops, "n_embed": r["spec"]["arch"]["n_embed"], "seed": r["spec"]["seed"],
                         "n_params": r["n_params"], "add_gen_acc": round(add["gen_acc"], 4),
                         "add_tf_acc": round(add["tf_acc"], 4), "add_n": add["n"],
                         "gen_acc_all": round(r["metrics"]["gen_acc"], 4),
                         "steps_trained": r["steps_trained"], "stop_reason": r["stop_reason"],
                         "train_seconds": round(r["train_seconds"], 1)})
    runs.sort(key=lambda r: (r["condition"], r["n_embed"], r["seed"]))
    summary = {}
    for cond in CONDITIONS:
        rows = [r for r in runs if r["condition"] == cond]
        widths = sorted({r["n_embed"] for r in rows})
        mean = {w: round(sum(r["add_gen_acc"] for r in rows if r["n_embed"] == w)
                         / max(1, sum(1 for r in rows if r["n_embed"] == w)), 4) for w in widths}
        summary[cond] = {"mean_add_gen_acc_by_width": mean}
        for thr in sorted({0.5, a.threshold}):
            reach = [w for w in widths if mean[w] >= thr]
            summary[cond][f"min_width_mean_add_gen_acc_ge_{thr}"] = reach[0] if reach else None
    out = {"config": {k: getattr(a, k) for k in vars(a) if k != "root"}, "root": root,
           "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
           "load_avg_end": os.getloadavg(), "summary": summary, "runs": runs,
           "command": "python benchmarks/quick_config_search.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
