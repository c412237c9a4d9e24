"""How the training distribution changes what a small model learns (benchmarks/README.md).

ADD alone, mod 10, depth 2, exactly 2 arguments (12,100 distinct expressions, 100 of them flat),
one width and seed, trained three ways that differ only in how the dataset is drawn:

* ``unique``   — ``sampling="unique"``: distinct expressions, which for this small support is a
  uniform draw over it (almost no flat expressions);
* ``iid_2500`` — ``sampling="iid"`` with 2,500 training draws from the generator;
* ``iid``      — ``sampling="iid"`` with the default 20,000 draws.

Every arm is evaluated on its own test split (same distribution as its training split).  Prints
JSON: per arm, the flat share of the training set, accuracies and the validation curve.

    python benchmarks/sampling_check.py [--width 32] [--seed 0] [--steps 3000] [--lr 1e-3] [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--root", default="", help="run cache (default: a fresh temporary folder)")
    a = p.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    from jointtask_lib.runs import train_or_load
    from jointtask_lib.tasks import TaskConfig
    from jointtask_lib.train import Arch, RunSpec, TrainConfig

    arms = {"unique": ("unique", None), "iid_2500": ("iid", 2500), "iid": ("iid", None)}
    specs = {}
    for name, (sampling, n_train) in arms.items():
        task = TaskConfig(ops=("ADD",), modulus=10, depth=2, min_args=2, max_args=2, sampling=sampling)
        tc = TrainConfig(steps=a.steps, lr=a.lr, n_train=n_train, eval_every=250, min_frac=1.0)  # only converged models stop
        specs[name] = RunSpec(task=task, arch=Arch(n_embed=a.width), train=tc, seed=a.seed)
    root = a.root or tempfile.mkdtemp(prefix="jointtask_sampling_")
    t0 = time.process_time()
    recs = train_or_load(root, list(specs.values()), device="cpu", progress=False)
    out = {"config": vars(a) | {"root": root}, "cpu_seconds": round(time.process_time() - t0, 1), "arms": {}}
    for (name, spec), rec in zip(specs.items(), recs):
        train, _ = spec.data()
        flat = sum(all(isinstance(x, int) for x in e[1]) for e in train.exprs) / len(train.exprs)
        m = rec["metrics"]
        out["arms"][name] = {
            "sampling": spec.task.sampling, "n_train": len(train), "distinct_train": len(set(train.exprs)),
            "flat_share_train": round(flat, 4), "gen_acc": round(m["gen_acc"], 4), "tf_acc": round(m["tf_acc"], 4),
            "steps_trained": rec["steps_trained"], "stop_reason": rec["stop_reason"],
            "val_seq_acc_curve": [round(c["seq_acc"], 3) for c in rec["curve"]],
        }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
