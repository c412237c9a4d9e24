"""Paper B's training step: the fast step vs the reference (autograd) step, interleaved in one run.

What one "step" is: exactly the inner loop of :func:`jointtask_lib.paper_b.icl_train.train_icl_stack`
after the prompts are drawn — the ``train_step`` of :func:`~jointtask_lib.paper_b.icl_train.icl_optimiser`
(forward, backward, AdamW; no clipping, paper B's recipe) with ``ICLTrainConfig.step`` = ``fast``
(:mod:`jointtask_lib.paper_b.icl_step` + :class:`~jointtask_lib.fast_step.FastStep`) or
``reference`` (``ICLModel`` + autograd + ``StackedAdamW``).  Drawing the prompts
(``icl_train._sample_step``, the same for both steps) is timed apart and reported per stack step.

Configuration: notebook 09's quick preset (d = 5, 20 points, width 32, 3 layers, 4 heads, batch
64, lr 1e-3, unit-norm w), the three curricula's tasks, stacks of M models (default 1, 6 and
12: the quick preset trains 12 models of one shape in two worker processes, i.e. two stacks of
6, so the headline ratio is M = 6's).  Real prompts, drawn once and
replayed identically in every repetition; the cells are shuffled per repetition so load from
other processes hits each alike; 1 torch thread; rates are model-steps per second of this
process's CPU time (``time.process_time``) and, for reference, of wall time.

    python benchmarks/icl_throughput.py [--json] [--reps 5] [--models 1,6,12] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

from jointtask_lib.paper_b import icl_train  # noqa: E402
from jointtask_lib.paper_b.icl_model import ICLConfig, ICLModel  # noqa: E402
from jointtask_lib.paper_b.icl_train import ICLRunSpec, ICLTrainConfig, icl_optimiser, prompt_generator  # noqa: E402

#: notebook 09's quick preset (its parameters cell)
QUICK_MODEL = ICLConfig(d=5, n_points=20, n_embed=32, n_layers=3, n_heads=4)
QUICK_TRAIN = dict(batch_size=64, lr=1e-3, snapshot_prompts=0)
CURRICULA = ("mixed", "sequential", "random")


class Cell:
    """A stack of ``m`` quick-preset models trained with ``step``, on ``n_batches`` fixed batches."""

    def __init__(self, m: int, step: str, n_batches: int, model: ICLConfig = QUICK_MODEL, train: dict = QUICK_TRAIN):
        tc = ICLTrainConfig(steps=max(3, n_batches), step=step, **train)
        self.specs = [ICLRunSpec(curriculum=CURRICULA[i % 3], model=model, train=tc, unit_norm_w=True, seed=i)
                      for i in range(m)]
        self.m, self.tc = m, tc
        self.model = ICLModel(model, m, seeds=[s.seed for s in self.specs])
        self.opt, self.train_step = icl_optimiser(self.model, tc)
        scheds = [s.schedule() for s in self.specs]
        gens = [prompt_generator(s.seed) for s in self.specs]
        c0 = time.process_time()
        self.batches = [icl_train._sample_step(self.specs, scheds, gens, k, "cpu") for k in range(n_batches)]
        self.sample_cpu_s = (time.process_time() - c0) / n_batches

    def run(self) -> dict:
        t0, c0 = time.perf_counter(), time.process_time()
        for k, (xs, ys) in enumerate(self.batches):
            self.train_step(xs, ys, self.tc.lr_at(k))
        return {"s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                "model_steps": len(self.batches) * self.m}


#: the stack size of the quick preset (12 models, 2 workers): the headline ratio is this M's
QUICK_STACK = 6


def compare(models=(1, 6, 12), reps: int = 5, steps: int = 20, log=lambda *a: None, model: ICLConfig = QUICK_MODEL,
            train: dict = QUICK_TRAIN) -> dict:
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    cells = {(step, m): Cell(m, step, steps, model, train) for m in models for step in ("fast", "reference")}
    for c in cells.values():  # warm-up (allocator, first-call costs)
        c.run()
    log(f"setup {time.perf_counter() - t_start:.1f}s; {len(cells)} cells x {reps} reps")
    samples: dict = {k: [] for k in cells}
    for rep in range(reps):
        order = list(cells)
        random.Random(2000 + rep).shuffle(order)
        for key in order:
            samples[key].append(cells[key].run())
        log(f"rep {rep + 1}/{reps} done at {time.perf_counter() - t_start:.0f}s")
    torch.set_num_threads(threads_before)

    def rates(key):
        ss = samples[key]
        return {"model_steps_per_cpu_s": round(statistics.median(s["model_steps"] / s["cpu_s"] for s in ss), 3),
                "model_steps_per_wall_s": round(statistics.median(s["model_steps"] / s["s"] for s in ss), 3),
                "n_samples": len(ss)}

    table = []
    for m in models:
        row = {"M": m, "fast": rates(("fast", m)), "reference": rates(("reference", m))}
        f, r = row["fast"]["model_steps_per_cpu_s"], row["reference"]["model_steps_per_cpu_s"]
        row["ratio_fast_vs_reference_step"] = round(f / r, 3)
        row["wall_ratio_fast_vs_reference_step"] = round(row["fast"]["model_steps_per_wall_s"]
                                                         / row["reference"]["model_steps_per_wall_s"], 3)
        row["sampling_cpu_s_per_stack_step"] = round(cells[("fast", m)].sample_cpu_s, 5)
        row["step_cpu_s_fast"] = round(m / f, 5)
        row["step_cpu_s_reference"] = round(m / r, 5)
        table.append(row)
    headline = QUICK_STACK if QUICK_STACK in models else max(models)
    return {"env": {"torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
                    "machine": platform.machine(), "torch_threads": 1, "load_avg_end": os.getloadavg()},
            "settings": {"model": model.to_dict(), "train": train, "unit_norm_w": True, "curricula": CURRICULA,
                         "models": list(models), "reps": reps, "steps_per_timing": steps, "timing": "process_time"},
            "table": table,
            # the headline: the quick preset's stack (M = 6) if measured, else the largest M
            "ratio_fast_vs_reference_step": next(r["ratio_fast_vs_reference_step"] for r in table if r["M"] == headline),
            "ratio_at_M": headline,
            "wall_seconds": round(time.perf_counter() - t_start, 1)}


def _summary(out: dict) -> str:
    lines = ["  M   fast  reference  (model-steps/CPU-s)  fast/ref  sampling s/step  step s fast/ref"]
    for r in out["table"]:
        lines.append(f"{r['M']:3} {r['fast']['model_steps_per_cpu_s']:6.1f} {r['reference']['model_steps_per_cpu_s']:9.1f}"
                     f"                        {r['ratio_fast_vs_reference_step']:6.2f}   {r['sampling_cpu_s_per_stack_step']:.4f}"
                     f"           {r['step_cpu_s_fast']:.4f}/{r['step_cpu_s_reference']:.4f}")
    lines.append(f"wall {out['wall_seconds']} s")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Paper B's fast training step vs the reference step.")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument("--reps", type=int, default=5, help="timings per cell (default 5)")
    p.add_argument("--models", default="1,6,12", help="stack sizes, comma-separated (default 1,6,12)")
    p.add_argument("--steps", type=int, default=20, help="steps per timing (default 20)")
    p.add_argument("--out", default=None, help="also write the JSON here")
    a = p.parse_args(argv)
    models = [int(x) for x in a.models.split(",")]
    if a.reps < 1 or a.steps < 1 or any(m < 1 for m in models):
        p.error("--reps, --steps and every --models entry must be >= 1")
    log = (lambda *x: None) if a.json else (lambda *x: print(*x, file=sys.stderr, flush=True))
    out = compare(models, a.reps, a.steps, log)
    text = json.dumps(out, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")
    if not a.json:
        print(_summary(out), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
