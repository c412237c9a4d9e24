"""Training throughput of stacked models vs the same models trained one after another (CPU/GPU).

What one "step" is: exactly the inner loop of :func:`jointtask_lib.train.train_stack` — draw each
model's rows, gather them with ``_stack_rows`` (cropped to the longest example in the stack), then
the library's own step, :func:`jointtask_lib.train.stack_optimiser`'s ``train_step`` (the one
``train_stack`` and ``StackEngine`` run): ``"reference"`` = ``per_model_loss`` forward, backward of
the summed loss, ``clip_per_model``, ``StackedAdamW.step`` (:func:`~jointtask_lib.train.autograd_step`);
``"fast"`` = :class:`~jointtask_lib.fast_step.FastStep`.  The torch.func/vmap and torch.compile
routes below replace only the forward/loss and update through the same ``autograd_step``.
Data are real ListOps batches (mod 10, ops ADD/MAX/MED, batch 32): ``long`` = depth 3 (3 args,
block size 98), ``short`` = depth 2 (block size 31).

Measured, per variant and width d in {8, 16, 32, 64, 128} (model-steps/s; every timing is
repeated ``--reps`` times, configurations interleaved in a shuffled order, medians reported):

* ``single_1t`` / ``single_2t`` — one model (M=1) with 1 / 2 torch threads.  The *careful
  sequential baseline* for M models is the faster of the two (M models one after another run at
  the single-model rate).
* ``stack_1t`` / ``stack_2t`` — M=8 models as one ``GPT(cfg, 8)`` with 1 / 2 threads.
* ``dual_single`` / ``dual_stack`` — the whole machine: two single-threaded worker processes
  running at the same time, each training one model (``dual_single``) or half of the 8 models as
  a stack of 4 (``dual_stack``); model-steps/s of the machine.
* ``peak_1t`` / ``peak_2t`` — fp32 matmul GFLOP/s of an N^3 product (N = 2048, ``--quick``: 1024),
  measured in the same run, interleaved with the rest.

FLOPs (counted analytically, per model and step; documented in benchmarks/README.md)::

    fwd = B * T * ( R * (24 d^2 + 4 T d) + 2 d V )      fwd+bwd = 3 * fwd

with B the batch, T the input length of that step (after cropping), R = 4 recurrences, V the
vocabulary: 24 d^2 per token and recurrence for the q/k/v (6 d^2), output (2 d^2) and MLP (16 d^2)
matmuls, 4 T d for the two attention products (Q K^T and A V, the full T x T square, although
the mask makes half of it unused), 2 d V for the head.  Element-wise work (LayerNorm, GELU,
softmax, AdamW) is not counted.  Effective GFLOP/s = FLOPs / time; efficiency = that / peak at
the same thread count.

Also: ``vmap`` — the torch.func route (``stack_module_state`` + ``functional_call`` over M plain
M=1 ``GPT`` modules, ``vmap`` over the model axis, same optimiser and clipping) vs the batched
matmul stack, M=8, 1 thread, at two widths.

    python benchmarks/train_throughput.py [--json] [--quick] [--reps 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
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

from jointtask_lib.model import GPT  # noqa: E402
from jointtask_lib.tasks import TaskConfig  # noqa: E402
from jointtask_lib.train import (  # noqa: E402
    Arch, RunSpec, StackedAdamW, TrainConfig, _stack_rows, autograd_step, per_model_loss, stack_optimiser, target_mask,
)

VARIANTS = {"long": dict(depth=3, max_args=3), "short": dict(depth=2, max_args=3),
            "quick": dict(depth=2, min_args=2, max_args=2, op_args=(("MED", 3, 3),))}  # quick: the sweeps' quick preset
OPS = ("ADD", "MAX", "MED")
BATCH = 32
LR = 1e-3
TARGET_S = 0.25  # seconds of work per timing (at least one step)
MIN_MODEL_STEPS = 8  # and at least this many model-steps (e.g. 8 single-model steps, 1 stack step)


# ------------------------------------------------------------------------------------------------
# One training step: the library's (train.stack_optimiser), the one train_stack runs
# ------------------------------------------------------------------------------------------------


class Trainer:
    """M stacked models (``mode='stack'``) or their torch.func/vmap equivalent (``mode='vmap'``).

    ``mode='stack'`` trains with :func:`jointtask_lib.train.stack_optimiser` for the recipe
    ``TrainConfig(step=step, lr=LR, batch_size=BATCH)`` (weight decay 0.1, clipping at 1.0: the
    library's defaults), i.e. exactly the step a sweep runs."""

    def __init__(self, variant: str, d: int, m: int, mode: str = "stack", seed0: int = 0, compile: bool = False,
                 step: str = "reference"):
        task = TaskConfig(ops=OPS, modulus=10, **VARIANTS[variant])
        self.spec = RunSpec(task=task, arch=Arch(n_embed=d),
                            train=TrainConfig(batch_size=BATCH, n_train=4000, lr=LR, step=step))
        self.train, _ = self.spec.data()
        self.cfg = self.spec.model_config()
        self.pad = self.spec.vocab().pad_id
        self.m, self.mode = m, mode
        self.seed0 = seed0
        self.gens = [torch.Generator().manual_seed(seed0 + i) for i in range(m)]
        self.library_step = None
        if mode == "stack":
            self.model = GPT(self.cfg, m, seeds=list(range(seed0, seed0 + m)))
            self.opt, self.library_step = stack_optimiser(self.model, self.spec.train, self.pad)
        else:
            from torch.func import functional_call, stack_module_state

            models = [GPT(self.cfg, 1, seeds=[seed0 + i]) for i in range(m)]
            p, b = stack_module_state(models)  # [M, 1, ...] leaves
            self.params = {k: v for k, v in p.items()}
            self.buffers = b
            base = copy.deepcopy(models[0]).to("meta")

            def fwd(pp, bb, x):
                return functional_call(base, (pp, bb), (x,))

            self.fwd = torch.func.vmap(fwd)
            params = list(self.params.values())
            tc = self.spec.train
            self.opt = StackedAdamW(params, lr=LR, betas=(tc.beta1, tc.beta2), weight_decay=tc.weight_decay)
            self.opt.decay = [v.dim() >= 4 for v in params]  # same decay set as the stack
            self.model = None
        self.compiled = None
        if compile:
            if step != "reference":
                raise ValueError("compile=True replaces the reference step's forward; got step=" + repr(step))
            pad = self.pad

            def loss_fn(model, tokens, prompt_len):
                return per_model_loss(model, tokens, prompt_len, pad, "after_eq")

            self.compiled = torch.compile(loss_fn)

    def _loss(self, tokens, prompt_len):
        if self.compiled is not None:
            return self.compiled(self.model, tokens, prompt_len)
        if self.mode == "stack":
            return per_model_loss(self.model, tokens, prompt_len, self.pad, "after_eq")
        # vmap route: [M, B, T] -> [M, 1, B, T] for M=1 modules; same masked mean loss
        import torch.nn.functional as F

        logits = self.fwd(self.params, self.buffers, tokens[:, None, :, :-1])[:, 0]
        targets = tokens[..., 1:]
        mask = target_mask(tokens, prompt_len, self.pad, "after_eq")
        ce = F.cross_entropy(logits.flatten(0, 2), targets.flatten(), reduction="none").view(targets.shape)
        return (ce * mask).sum((1, 2)) / mask.sum((1, 2)).clamp_min(1)

    def step(self) -> int:
        rows = [torch.randint(len(self.train), (BATCH,), generator=g) for g in self.gens]
        batch = _stack_rows([self.train] * self.m, rows, "cpu")
        if self.library_step is not None and self.compiled is None:  # the step train_stack runs
            self.library_step(batch["tokens"], batch["prompt_len"], LR)
        else:  # vmap / torch.compile forward, the library's update
            autograd_step(self._loss(batch["tokens"], batch["prompt_len"]), self.opt, self.spec.train.grad_clip, LR)
        return batch["tokens"].shape[-1] - 1  # input length T of this step

    def flops_per_model_step(self, t: int) -> float:
        d, r, v = self.cfg.n_embed, self.cfg.recurrence, self.cfg.vocab_size
        return 3.0 * BATCH * t * (r * (24 * d * d + 4 * t * d) + 2 * d * v)

    def run(self, n: int) -> dict:
        """Time n steps: seconds, model-steps, tokens processed (per model: B*T), FLOPs.

        The mini-batch streams restart at every call, so repeated timings of one configuration
        process the same batches (same crop lengths T): repetitions differ only by machine noise.
        """
        for i, g in enumerate(self.gens):
            g.manual_seed(self.seed0 + i)
        ts = []
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            ts.append(self.step())
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        return {"s": dt, "cpu_s": dc, "model_steps": n * self.m, "tokens": sum(BATCH * t for t in ts) * self.m,
                "flops": sum(self.flops_per_model_step(t) for t in ts) * self.m}


def matmul_gflops(n: int, reps: int = 3) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return reps * 2 * n**3 / (time.perf_counter() - t0) / 1e9


# ------------------------------------------------------------------------------------------------
# Two single-threaded workers running at the same time (the whole-machine view)
# ------------------------------------------------------------------------------------------------


def _worker(conn, barrier):
    torch.set_num_threads(1)
    trainers = {}
    while True:
        msg = conn.recv()
        if msg is None:
            return
        key, n = msg  # key = (variant, d, m, seed0)
        if key not in trainers:
            trainers[key] = Trainer(key[0], key[1], key[2], seed0=key[3])
            trainers[key].run(1)  # warm-up
        barrier.wait()
        conn.send(trainers[key].run(n))


class Pair:
    def __init__(self):
        ctx = mp.get_context("spawn")
        self.barrier = ctx.Barrier(2)
        self.conns, self.procs = [], []
        for _ in range(2):
            a, b = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(b, self.barrier), daemon=True)
            p.start()
            self.conns.append(a)
            self.procs.append(p)

    def run(self, variant, d, m_each, n) -> dict:
        for i, c in enumerate(self.conns):
            c.send(((variant, d, m_each, 100 * i), n))
        res = [c.recv() for c in self.conns]
        wall = max(r["s"] for r in res)  # both started at the barrier
        return {"s": wall, "model_steps": sum(r["model_steps"] for r in res),
                "tokens": sum(r["tokens"] for r in res), "flops": sum(r["flops"] for r in res)}

    def close(self):
        for c in self.conns:
            c.send(None)
        for p in self.procs:
            p.join(timeout=10)


# ------------------------------------------------------------------------------------------------
# The benchmark
# ------------------------------------------------------------------------------------------------


def _rate(r: dict) -> dict:
    return {"model_steps_per_s": r["model_steps"] / r["s"], "tokens_per_s": r["tokens"] / r["s"],
            "gflops": r["flops"] / r["s"] / 1e9}


def _median_rates(samples: list[dict]) -> dict:
    rates = [_rate(s) for s in samples]
    return {k: statistics.median(r[k] for r in rates) for k in rates[0]} | {"n_samples": len(rates)}



# ------------------------------------------------------------------------------------------------
# The fast step (jointtask_lib.fast_step) vs today's (reference) step vs one model alone
# ------------------------------------------------------------------------------------------------

STEP_WIDTHS = (8, 12, 16, 24, 32, 48, 64)


def sweep_stack_size(d: int) -> int:
    """The stack size a sweep uses at width d (``cli_train.AUTO_MAX_STACK``: 8 up to d=32, then 2)."""
    from jointtask_lib.cli_train import auto_max_stack

    return auto_max_stack(d)


def step_compare(variant: str, widths, reps: int, m_override: int | None, log) -> dict:
    """Interleaved timings, 1 torch thread, per width d: ``fast`` = a stack of M trained with
    :class:`~jointtask_lib.fast_step.FastStep`, ``reference`` = the same stack with today's step
    (autograd + ``clip_per_model`` + ``StackedAdamW``), ``single`` = one model alone with today's
    step, ``fast_single`` = one model alone with the fast step.  Every cell replays the same
    batches in every repetition; the order of the cells is shuffled per repetition, so load from
    other processes hits every cell alike.  Rates are model-steps per second of this process's
    CPU time (``time.process_time``; on a shared machine wall time also counts waiting for a core)
    and, for reference, per wall second.
    """
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    trainers, cells = {}, []
    for d in widths:
        m = m_override or sweep_stack_size(d)
        trainers[("fast", d)] = Trainer(variant, d, m, step="fast")
        trainers[("reference", d)] = Trainer(variant, d, m, step="reference")
        trainers[("single", d)] = Trainer(variant, d, 1, step="reference")
        trainers[("fast_single", d)] = Trainer(variant, d, 1, step="fast")
        cells += [(k, d) for k in ("fast", "reference", "single", "fast_single")]
    n_steps = {}
    for key, tr in trainers.items():
        tr.run(1)
        r = tr.run(2)
        n_steps[key] = max(-(-MIN_MODEL_STEPS // tr.m), round(TARGET_S / max(r["cpu_s"] / 2, 1e-4)))
    log(f"step-compare setup {time.perf_counter() - t_start:.1f}s; {len(cells)} cells x {reps} reps")
    samples: dict = {}
    peaks = []
    for rep in range(reps):
        order = list(cells) + [("peak", None)]
        random.Random(1000 + rep).shuffle(order)
        for key in order:
            if key[0] == "peak":
                t0 = time.process_time()
                g = matmul_gflops(1024)
                peaks.append({"gflops_wall": g, "cpu_s": time.process_time() - t0})
                continue
            samples.setdefault(key, []).append(trainers[key].run(n_steps[key]))
        log(f"rep {rep + 1}/{reps} done at {time.perf_counter() - t_start:.0f}s")
    # peak per CPU second: the matmul's FLOPs over its CPU time (same clock as the cells)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    c0 = time.process_time()
    for _ in range(5):
        a @ b
    peak_cpu = statistics.median([5 * 2 * 1024**3 / (time.process_time() - c0) / 1e9] +
                                 [3 * 2 * 1024**3 / p["cpu_s"] / 1e9 for p in peaks])

    def rates(key):
        ss = samples[key]
        return {"model_steps_per_cpu_s": statistics.median(s["model_steps"] / s["cpu_s"] for s in ss),
                "model_steps_per_wall_s": statistics.median(s["model_steps"] / s["s"] for s in ss),
                "gflops_per_cpu_s": statistics.median(s["flops"] / s["cpu_s"] / 1e9 for s in ss),
                "tokens_per_model_step": samples[key][0]["tokens"] / samples[key][0]["model_steps"],
                "n_samples": len(ss)}

    table = []
    for d in widths:
        row = {"variant": variant, "d": d, "M": trainers[("fast", d)].m,
               "block_size": trainers[("fast", d)].cfg.block_size}
        for k in ("fast", "reference", "single", "fast_single"):
            row[k] = {x: round(y, 3) for x, y in rates((k, d)).items()}
        f, r, s1 = (row[k]["model_steps_per_cpu_s"] for k in ("fast", "reference", "single"))
        row["ratio_fast_vs_reference_step"] = round(f / r, 3)
        row["ratio_fast_vs_single"] = round(f / s1, 3)
        row["ratio_reference_vs_single"] = round(r / s1, 3)
        row["ratio_fast_single_vs_single"] = round(row["fast_single"]["model_steps_per_cpu_s"] / s1, 3)
        fw, rw, sw = (row[k]["model_steps_per_wall_s"] for k in ("fast", "reference", "single"))
        row["wall_ratio_fast_vs_reference_step"] = round(fw / rw, 3)
        row["wall_ratio_fast_vs_single"] = round(fw / sw, 3)
        for k in ("fast", "reference", "single"):
            row[f"share_of_matmul_peak_{k}"] = round(row[k]["gflops_per_cpu_s"] / peak_cpu, 3)
        table.append(row)
    torch.set_num_threads(threads_before)
    small = [r for r in table if r["d"] <= 32]
    goals = {
        "fast_ge_2x_reference_step_at_d_le_32": all(r["ratio_fast_vs_reference_step"] >= 2 for r in small),
        "fast_ge_3x_single_at_d_le_32": all(r["ratio_fast_vs_single"] >= 3 for r in small),
        "fast_never_slower_than_reference_step": all(r["ratio_fast_vs_reference_step"] >= 1 for r in table),
        "fast_never_slower_than_single": all(r["ratio_fast_vs_single"] >= 1 for r in table),
    }
    return {"env": {"torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
                    "machine": platform.machine(), "torch_threads": 1, "load_avg_end": os.getloadavg()},
            "settings": {"batch": BATCH, "ops": OPS, "modulus": 10, "variant": variant,
                         "variant_task": VARIANTS[variant], "reps": reps, "timing": "process_time",
                         "stack_sizes": "cli_train.auto_max_stack (8 up to d=32, 2 above)" if not m_override
                         else m_override},
            "peak_gflops_per_cpu_s_1t": round(peak_cpu, 1), "table": table, "goals": goals,
            "wall_seconds": round(time.perf_counter() - t_start, 1)}


def _step_summary(out: dict) -> str:
    lines = [f"matmul peak {out['peak_gflops_per_cpu_s_1t']} GFLOP/CPU-s (1 thread)",
             "  d   M   fast  reference  single   fast/ref  fast/single  ref/single  peak share fast/ref/single"]
    for r in out["table"]:
        lines.append(f"{r['d']:3} {r['M']:3} {r['fast']['model_steps_per_cpu_s']:6.1f} {r['reference']['model_steps_per_cpu_s']:9.1f}"
                     f" {r['single']['model_steps_per_cpu_s']:7.1f}   {r['ratio_fast_vs_reference_step']:6.2f}"
                     f"   {r['ratio_fast_vs_single']:8.2f}   {r['ratio_reference_vs_single']:8.2f}"
                     f"   {r['share_of_matmul_peak_fast']:.2f}/{r['share_of_matmul_peak_reference']:.2f}/{r['share_of_matmul_peak_single']:.2f}")
    lines.append(f"goals: {out['goals']}   wall {out['wall_seconds']} s")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Stacked vs sequential training throughput.")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument("--quick", action="store_true", help="about 40 s: long sequences, d = 8, 32, 128, vmap at d=16, 1024^3 peak")
    p.add_argument("--reps", type=int, default=None, help="timings per configuration (default 3)")
    p.add_argument("--widths", default=None, help="comma-separated (default 8,16,32,64,128)")
    p.add_argument("--variants", default=None, help="long,short (default both)")
    p.add_argument("--m", type=int, default=None, help="models in the stack (even; default 8)")
    p.add_argument("--no-vmap", action="store_true")
    p.add_argument("--no-dual", action="store_true")
    p.add_argument("--compile", action="store_true",
                   help="also time torch.compile (short, d=16, M=1 and M) vs eager (adds minutes)")
    p.add_argument("--step-compare", action="store_true",
                   help="only compare the fast step with today's step and one model alone (1 thread, "
                        "quick configuration, widths 8-64, stack sizes as the sweeps use; --m overrides)")
    a = p.parse_args(argv)
    if a.step_compare:
        log = (lambda *x: None) if a.json else (lambda *x: print(*x, file=sys.stderr, flush=True))
        widths = [int(x) for x in a.widths.split(",")] if a.widths else list(STEP_WIDTHS)
        out = step_compare((a.variants or "quick").split(",")[0], widths, a.reps or 3,
                           a.m, log)
        print(json.dumps(out, indent=1))
        if not a.json:
            print(_step_summary(out), file=sys.stderr)
        return 0
    a.m = 8 if a.m is None else a.m
    if a.m < 2 or a.m % 2:
        p.error("--m must be an even number >= 2")
    reps = a.reps or 3
    widths = [int(x) for x in (a.widths or ("8,32,128" if a.quick else "8,16,32,64,128")).split(",")]
    variants = (a.variants or ("long,short" if not a.quick else "long")).split(",")
    peak_n = 1024 if a.quick else 2048
    target = TARGET_S
    M = a.m
    t_start = time.perf_counter()
    log = (lambda *x: None) if a.json else (lambda *x: print(*x, file=sys.stderr, flush=True))

    torch.set_num_threads(1)
    pair = None if a.no_dual else Pair()

    # Build every trainer once (data and models reused across repetitions) and calibrate steps.
    cells = []  # (label, variant, d, threads, kind, trainer-or-None, m)
    trainers = {}
    for v in variants:
        for d in widths:
            trainers[(v, d, 1)] = Trainer(v, d, 1)
            trainers[(v, d, M)] = Trainer(v, d, M)
            for t in (1, 2):
                cells.append((f"single_{t}t", v, d, t, (v, d, 1)))
                cells.append((f"stack_{t}t", v, d, t, (v, d, M)))
            if pair is not None:
                cells.append(("dual_single", v, d, 1, ("pair", 1)))
                cells.append(("dual_stack", v, d, 1, ("pair", M // 2)))
    vmap_widths = [] if a.no_vmap else [w for w in ((16, 64) if not a.quick else (16,))]
    vmap_variant = variants[0]
    for d in vmap_widths:
        trainers[("vmap", d, M)] = Trainer(vmap_variant, d, M, mode="vmap")
        trainers[("stackv", d, M)] = trainers.get((vmap_variant, d, M)) or Trainer(vmap_variant, d, M)
        cells.append(("vmap_1t", vmap_variant, d, 1, ("vmap", d, M)))
        cells.append(("stackv_1t", vmap_variant, d, 1, ("stackv", d, M)))
    compile_info = []
    if a.compile:
        # torch.compile of the forward+loss (AOTAutograd compiles the backward too), eager optimiser.
        # Warm-up runs until shapes settle (the crop length T varies per step: one static compile,
        # then one dynamic recompile); its cost is reported as compile_seconds.
        cv, cd = ("short", 16) if not a.quick else (variants[0], widths[0])
        for m in (1, M):
            tr = Trainer(cv, cd, m, compile=True)
            t0 = time.perf_counter()
            tr.run(20)
            compile_info.append({"variant": cv, "d": cd, "M": m, "warmup_seconds_20_steps": round(time.perf_counter() - t0, 1)})
            trainers[("compiled", cd, m)] = tr
            trainers.setdefault((cv, cd, m), Trainer(cv, cd, m))
            cells.append(("compiled_1t", cv, cd, 1, ("compiled", cd, m)))
            cells.append(("eager_1t", cv, cd, 1, (cv, cd, m)))
    n_steps = {}
    for key, tr in trainers.items():
        tr.run(1)  # warm-up (allocator, first-call costs)
        r = tr.run(1)
        # at least MIN_MODEL_STEPS model-steps per timing, so the crop lengths T are averaged
        n_steps[key] = max(-(-MIN_MODEL_STEPS // tr.m), round(target / max(r["s"], 1e-4)))
    log(f"setup {time.perf_counter() - t_start:.1f}s; {len(cells)} cells x {reps} reps")

    samples: dict[tuple, list] = {}
    peaks = {1: [], 2: []}
    for rep in range(reps):
        order = list(cells) + [("peak", None, None, 1, None), ("peak", None, None, 2, None)]
        random.Random(rep).shuffle(order)
        for label, v, d, t, key in order:
            torch.set_num_threads(t)
            if label == "peak":
                peaks[t].append(matmul_gflops(peak_n))
                continue
            if key[0] == "pair":
                n = n_steps[(v, d, 1)] if key[1] == 1 else 2 * n_steps[(v, d, M)]
                res = pair.run(v, d, key[1], n)
            else:
                res = trainers[key].run(n_steps[key])
            mkey = (label, v, d, key[2]) if label in ("compiled_1t", "eager_1t") else (label, v, d)
            samples.setdefault(mkey, []).append(res)
        log(f"rep {rep + 1}/{reps} done at {time.perf_counter() - t_start:.0f}s")
    torch.set_num_threads(1)
    if pair is not None:
        pair.close()

    peak = {f"{t}t": statistics.median(x) for t, x in peaks.items()}
    table = []
    for v in variants:
        for d in widths:
            row = {"variant": v, "d": d, "M": M, "block_size": trainers[(v, d, 1)].cfg.block_size}
            for label in ("single_1t", "single_2t", "stack_1t", "stack_2t", "dual_single", "dual_stack"):
                if (label, v, d) in samples:
                    row[label] = {k: round(x, 3) for k, x in _median_rates(samples[(label, v, d)]).items()}
            s1, s2 = row["single_1t"]["model_steps_per_s"], row["single_2t"]["model_steps_per_s"]
            k1, k2 = row["stack_1t"]["model_steps_per_s"], row["stack_2t"]["model_steps_per_s"]
            best_single, best_stack = max(s1, s2), max(k1, k2)
            row["sequential_baseline"] = {"model_steps_per_s": round(best_single, 3),
                                          "threads": 1 if s1 >= s2 else 2}
            row["best_stack"] = {"model_steps_per_s": round(best_stack, 3), "threads": 1 if k1 >= k2 else 2}
            row["ratio_stack_vs_sequential"] = round(best_stack / best_single, 3)
            row["ratio_stack_vs_single_1t_per_core"] = round(k1 / s1, 3)
            row["eff_stack_1t_vs_peak_1t"] = round(row["stack_1t"]["gflops"] / peak["1t"], 3)
            row["eff_stack_2t_vs_peak_2t"] = round(row["stack_2t"]["gflops"] / peak["2t"], 3)
            row["eff_single_1t_vs_peak_1t"] = round(row["single_1t"]["gflops"] / peak["1t"], 3)
            if "dual_stack" in row:
                ds, dk = row["dual_single"]["model_steps_per_s"], row["dual_stack"]["model_steps_per_s"]
                row["ratio_dual_stack_vs_stack_2t"] = round(dk / k2, 3)
                row["ratio_dual_stack_vs_dual_single"] = round(dk / ds, 3)
                row["eff_dual_stack_vs_peak_2t"] = round(row["dual_stack"]["gflops"] / peak["2t"], 3)
            table.append(row)
    vmap = []
    for d in vmap_widths:
        rv = _median_rates(samples[("vmap_1t", vmap_variant, d)])
        rs = _median_rates(samples[("stackv_1t", vmap_variant, d)])
        vmap.append({"variant": vmap_variant, "d": d, "M": M, "vmap_model_steps_per_s": round(rv["model_steps_per_s"], 3),
                     "stack_model_steps_per_s": round(rs["model_steps_per_s"], 3),
                     "ratio_stack_vs_vmap": round(rs["model_steps_per_s"] / rv["model_steps_per_s"], 3)})

    for c in compile_info:
        rc = _median_rates(samples[("compiled_1t", c["variant"], c["d"], c["M"])])
        re_ = _median_rates(samples[("eager_1t", c["variant"], c["d"], c["M"])])
        c.update({"compiled_model_steps_per_s": round(rc["model_steps_per_s"], 3),
                  "eager_model_steps_per_s": round(re_["model_steps_per_s"], 3),
                  "ratio_compiled_vs_eager": round(rc["model_steps_per_s"] / re_["model_steps_per_s"], 3)})
    small = [r for r in table if r["d"] <= 32]
    big = [r for r in table if r["d"] >= 128]
    goals = {
        "stack_ge_3x_sequential_at_d_le_32": all(r["ratio_stack_vs_sequential"] >= 3 for r in small) if small else None,
        "stack_never_slower": all(r["ratio_stack_vs_sequential"] >= 1 for r in table),
        "ge_30pct_peak_at_d_ge_128": (all(max(r["eff_stack_1t_vs_peak_1t"], r["eff_stack_2t_vs_peak_2t"]) >= 0.3
                                          for r in big) if big else None),
    }
    out = {
        "env": {"torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
                "machine": platform.machine(), "load_avg_end": os.getloadavg()},
        "settings": {"batch": BATCH, "ops": OPS, "modulus": 10, "variants": {v: VARIANTS[v] for v in variants},
                     "M": M, "reps": reps, "peak_n": peak_n, "target_s_per_timing": target},
        "peak_gflops": {k: round(x, 1) for k, x in peak.items()},
        "table": table, "vmap": vmap, "compile": compile_info, "goals": goals,
        "wall_seconds": round(time.perf_counter() - t_start, 1),
    }
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        print(json.dumps(out, indent=1))
        print(_summary(out), file=sys.stderr)
    return 0


def _summary(out: dict) -> str:
    lines = [f"peak fp32 matmul GFLOP/s: {out['peak_gflops']}",
             "variant d   seq(ms/s,thr) stack(best,thr) ratio  per-core  eff1t eff2t  dual_stack/stack2t  dual_stack/dual_single"]
    for r in out["table"]:
        lines.append(
            f"{r['variant']:6} {r['d']:3}  {r['sequential_baseline']['model_steps_per_s']:7.1f},{r['sequential_baseline']['threads']}"
            f"      {r['best_stack']['model_steps_per_s']:7.1f},{r['best_stack']['threads']}"
            f"      {r['ratio_stack_vs_sequential']:5.2f}  {r['ratio_stack_vs_single_1t_per_core']:5.2f}"
            f"   {r['eff_stack_1t_vs_peak_1t']:.2f}  {r['eff_stack_2t_vs_peak_2t']:.2f}"
            f"   {r.get('ratio_dual_stack_vs_stack_2t', float('nan')):5.2f}"
            f"   {r.get('ratio_dual_stack_vs_dual_single', float('nan')):5.2f}")
    for v in out["vmap"]:
        lines.append(f"vmap d={v['d']}: stack {v['stack_model_steps_per_s']:.1f} vs vmap "
                     f"{v['vmap_model_steps_per_s']:.1f} model-steps/s (x{v['ratio_stack_vs_vmap']:.2f})")
    lines.append(f"goals: {out['goals']}   wall {out['wall_seconds']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
