"""Data throughput: examples/s for generating and encoding ListOps examples.

Task: ListOps mod 10, the six arithmetic operations of paper A (MAX, MIN, MED, ADD, PROD, NADD;
the SADD/RTAB controls excluded), depth 3, 2-3 arguments, CoT ``reduce``.  Three timings, each
the median of ``--reps`` repetitions:

* ``sample``  — ``sample_unique``: drawing N distinct random trees (with de-duplication);
* ``encode``  — ``encode_exprs``: CoT text, token ids, padding into tensors;
* ``make_datasets`` — the library entry point end to end (test split of 1,000 drawn first, then
  N training examples disjoint from it; in-process memo cleared before every repetition).

    python benchmarks/data_throughput.py [--json] [--n 100000] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from jointtask_lib import data as data_mod  # noqa: E402
from jointtask_lib.data import Vocab, encode_exprs, make_datasets  # noqa: E402
from jointtask_lib.tasks import TaskConfig, sample_unique  # noqa: E402

OPS = ("MAX", "MIN", "MED", "ADD", "PROD", "NADD")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="ListOps generation + encoding throughput.")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument("--n", type=int, default=100_000, help="examples per timing")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--depth", type=int, default=3)
    a = p.parse_args(argv)
    task = TaskConfig(ops=OPS, modulus=10, depth=a.depth)
    spec, dom, vocab = task.spec(), task.domain(), Vocab.for_task(task)
    times = {"sample": [], "encode": [], "make_datasets": []}
    tokens = 0
    for rep in range(a.reps):
        t0 = time.perf_counter()
        exprs = sample_unique(spec, dom, a.n, np.random.default_rng([rep, 0]))
        t1 = time.perf_counter()
        td = encode_exprs(task, vocab, exprs)
        t2 = time.perf_counter()
        data_mod._CACHE.clear()
        make_datasets(task, n_train=a.n, n_test=1000, seed=rep)
        t3 = time.perf_counter()
        times["sample"].append(t1 - t0)
        times["encode"].append(t2 - t1)
        times["make_datasets"].append(t3 - t2)
        tokens = int(td.lengths.sum())
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "task": {"ops": OPS, "modulus": 10, "depth": a.depth, "min_args": task.min_args,
                 "max_args": task.max_args, "p_nest": task.p_nest},
        "n": a.n, "reps": a.reps,
        "seconds_median": {k: round(v, 3) for k, v in med.items()},
        "examples_per_s": {
            "sample": round(a.n / med["sample"]),
            "encode": round(a.n / med["encode"]),
            "sample+encode": round(a.n / (med["sample"] + med["encode"])),
            "make_datasets": round((a.n + 1000) / med["make_datasets"]),
        },
        "mean_tokens_per_example": round(tokens / a.n, 1),
        "env": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg_end": os.getloadavg()},
    }
    print(json.dumps(out, indent=1))
    if not a.json:
        e = out["examples_per_s"]
        print(f"{a.n} examples (mod 10, 6 ops, depth {a.depth}): sample {e['sample']}/s, encode {e['encode']}/s, "
              f"sample+encode {e['sample+encode']}/s, make_datasets {e['make_datasets']}/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
