"""What early stopping and the adaptive width search save, and whether they change the answer.

Three ways to find the learning transition of one task mix (optionally two) over the same grid
of widths and seeds, each in a fresh results folder and a fresh Python process:

* ``full_fixed``    — every width of the grid, every run trained for the full step budget
  (``early_stop = False``): the plain fixed-step grid, the reference;
* ``full_early``    — every width, with the library's early stopping (converged, or sat at
  chance: :func:`jointtask_lib.train._should_stop`);
* ``adaptive_early`` — :func:`jointtask_lib.sweep.adaptive_search` over the same grid (a few widths
  first, then only inside the bracket where the task is first learned), with early stopping.

For each: **model-steps** (sum of every run's ``steps_trained``), **CPU-seconds** of the process
and its workers (user + system, from ``getrusage``; the machine is shared, so CPU time, not wall
time, measures the work; wall time is reported too), the runs and widths trained, and the
transition in parameters with its CI (:func:`jointtask_lib.transition.estimate_transition`,
chance = 1/modulus, the notebooks' settings).  Agreement with ``full_fixed``: ``point_in_ref_ci``
(the estimate, or the range a bound allows, lies in the reference CI) and ``ci_overlap``.  The
``startup`` entry is the CPU time of a process that only imports the library and torch — part
of every condition's CPU time.

    python benchmarks/adaptive_width.py --json                            # the default (one mix)
    python benchmarks/adaptive_width.py --mix MAX --mix ADD,MAX,MED:ADD   # two mixes
    python benchmarks/adaptive_width.py --steps 60 --widths 4,8,16 --seeds 0,1   # a quick check

``--mix OPS[:OP]``: the ops of the mix, comma-separated, and the op whose accuracy is tracked
(default the first).  Prints one JSON object (``--json``: only that; otherwise a summary also goes
to stderr); ``--out FILE`` also writes it there.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Small enough for ~5-10 minutes on 2 cores: mod 10, depth 2, exactly 2 arguments (short
# sequences), MAX alone, which is learned at small widths within the step budget.
DEFAULTS = dict(modulus=10, depth=2, min_args=2, max_args=2, steps=1500, batch_size=32, lr=3e-3,
                warmup=100, eval_every=100, widths="3,4,5,6,8,10,12,16,24", seeds="0,1,2", n_initial=3,
                ratio=1.3, level=0.8, n_boot=1000)
CONDITIONS = ("full_fixed", "full_early", "adaptive_early")


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def _mixes(a) -> list[tuple[tuple[str, ...], str]]:
    out = []
    for m in a.mix or ["MAX"]:
        ops, _, op = m.partition(":")
        ops = tuple(o.strip() for o in ops.split(",") if o.strip())
        out.append((ops, op.strip() or ops[0]))
    return out


def _specs_at(a, ops, width: int, early_stop: bool) -> list:
    from jointtask_lib.tasks import TaskConfig
    from jointtask_lib.train import Arch, RunSpec, TrainConfig

    task = TaskConfig(ops=ops, modulus=a.modulus, depth=a.depth, min_args=a.min_args, max_args=a.max_args)
    train = TrainConfig(steps=a.steps, batch_size=a.batch_size, lr=a.lr, warmup=a.warmup,
                        eval_every=a.eval_every, early_stop=early_stop)
    return [RunSpec(task=task, arch=Arch(n_embed=width), train=train, seed=s) for s in _ints(a.seeds)]


def _row(rec: dict, op: str) -> dict:
    return {"width": rec["spec"]["arch"]["n_embed"], "seed": rec["spec"]["seed"], "n_params": rec["n_params"],
            "acc": rec["metrics"]["per_op"][op]["gen_acc"], "steps_trained": rec["steps_trained"],
            "stop_reason": rec["stop_reason"]}


def run_condition(a, name: str, root: str) -> dict:
    """Train one condition into ``root`` (called in a fresh process); the runs it trained."""
    from jointtask_lib import sweep

    widths = _ints(a.widths)
    kw = dict(workers=a.workers, device="cpu", progress=False)
    out = {}
    if name == "adaptive_early":
        problems = [{"make_specs": (lambda w, ops=ops: _specs_at(a, ops, w, True)), "op": op, "candidates": widths,
                     "chance": 1.0 / a.modulus} for ops, op in _mixes(a)]
        results = sweep.adaptive_search(problems, root, n_initial=a.n_initial, ratio=a.ratio, level=a.level, **kw)
        for (ops, op), res in zip(_mixes(a), results):
            out["+".join(ops)] = {"op": op, "runs": [_row(r, op) for r in res.records],
                                  "search": {"kind": res.kind, "bracket": res.bracket, "widths": list(res.widths),
                                             "rounds": res.rounds, "threshold": res.threshold}}
        return out
    early = name == "full_early"
    specs = {ops: [s for w in widths for s in _specs_at(a, ops, w, early)] for ops, _ in _mixes(a)}
    recs = sweep.run_specs([s for v in specs.values() for s in v], root, **kw)
    by_key = {r["key"]: r for r in recs}
    for ops, op in _mixes(a):
        out["+".join(ops)] = {"op": op, "runs": [_row(by_key[s.key()], op) for s in specs[ops]]}
    return out


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _in_child(argv: list[str]) -> tuple[dict | None, float, float]:
    """Run this script with ``argv`` in a fresh process: (its JSON result, CPU-seconds, wall seconds)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        c0, t0 = _cpu_children(), time.perf_counter()
        env = dict(os.environ, TQDM_DISABLE="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        p = subprocess.run([sys.executable, os.path.abspath(__file__), *argv, "--child-out", out], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        cpu, wall = _cpu_children() - c0, time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"adaptive_width: child {argv[:2]} failed:\n{p.stderr[-4000:]}")
        with open(out) as fh:
            text = fh.read()
        return (json.loads(text) if text.strip() else None), cpu, wall
    finally:
        os.unlink(out)


def _transition(runs: list[dict], a) -> dict:
    import numpy as np

    from jointtask_lib.transition import estimate_transition

    xs = np.array([r["n_params"] for r in runs], float)
    ys = np.array([r["acc"] for r in runs], float)
    seeds = np.array([r["seed"] for r in runs])
    if len(set(xs.tolist())) < 3:
        return {"kind": "not enough widths", "text": "fewer than 3 widths"}
    t = estimate_transition(xs, ys, seeds, chance=1.0 / a.modulus, level=a.level, n_boot=a.n_boot, rng=0)
    return {"kind": t.kind, "value": t.value, "lo": t.lo, "hi": t.hi, "lo_kind": t.lo_kind, "hi_kind": t.hi_kind,
            "bound": t.bound, "text": str(t), "detail": t.describe(detail=True), "_t": t}


def _point_range(t) -> tuple[float, float]:
    inf = float("inf")
    if t.kind == "above":
        return (t.bound, inf)
    if t.kind == "below":
        return (0.0, t.bound)
    return (t.value, t.value)


def _agreement(t, ref) -> dict:
    from jointtask_lib.experiments import interval

    if t is None or ref is None:
        return {"point_in_ref_ci": None, "ci_overlap": None}
    lo, hi = interval(ref)
    plo, phi = _point_range(t)
    clo, chi = interval(t)
    return {"point_in_ref_ci": bool(plo <= hi and phi >= lo), "ci_overlap": bool(clo <= hi and chi >= lo)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for k, v in DEFAULTS.items():
        p.add_argument("--" + k.replace("_", "-"), type=type(v), default=v)
    p.add_argument("--mix", action="append", help="OPS[:OP], e.g. MAX or ADD,MAX,MED:ADD (repeat for two)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes per condition (default: the sweep default, one per core)")
    p.add_argument("--root", default="", help="results folders go under here (default: a temporary folder)")
    p.add_argument("--json", action="store_true", help="print only the JSON")
    p.add_argument("--out", default="", help="also write the JSON to this file")
    p.add_argument("--condition", choices=CONDITIONS + ("startup",), help=argparse.SUPPRESS)
    p.add_argument("--child-out", default="", help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.condition:  # inside a child process: one condition, result to --child-out
        import torch

        import jointtask_lib.sweep  # noqa: F401  (what every condition imports)

        torch.set_num_threads(1)
        result = {} if a.condition == "startup" else run_condition(a, a.condition, a.root)
        with open(a.child_out, "w") as f:
            json.dump(result, f)
        return 0

    base = a.root or tempfile.mkdtemp(prefix="adaptive-width-")
    passthru = [x for x in (argv if argv is not None else sys.argv[1:]) if x not in ("--json",)]
    passthru = _strip(passthru, ("--root", "--out"))
    _, startup_cpu, startup_wall = _in_child(["--condition", "startup", "--root", base, *passthru])
    conds = {}
    for name in CONDITIONS:
        root = os.path.join(base, name)
        if os.path.exists(root) and os.listdir(root):
            raise SystemExit(f"adaptive_width: {root} is not empty; give a fresh --root")
        result, cpu, wall = _in_child(["--condition", name, "--root", root, *passthru])
        conds[name] = {"cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "mixes": result}
        if not a.json:
            print(f"{name}: {cpu:.1f} CPU-s, {wall:.1f} s wall", file=sys.stderr, flush=True)

    report = {"config": {**{k: getattr(a, k) for k in DEFAULTS}, "mixes": [list(m) + [o] for m, o in _mixes(a)],
                         "workers": a.workers, "root": base},
              "startup": {"cpu_s": round(startup_cpu, 2), "wall_s": round(startup_wall, 2)},
              "conditions": {}, "comparison": {}}
    for name, c in conds.items():
        per_mix = {}
        for mix, m in c["mixes"].items():
            tr = _transition(m["runs"], a)
            per_mix[mix] = {"op": m["op"], "model_steps": sum(r["steps_trained"] for r in m["runs"]),
                            "runs": len(m["runs"]), "widths": sorted({r["width"] for r in m["runs"]}),
                            "transition": tr, **({"search": m["search"]} if "search" in m else {}),
                            "per_run": m["runs"]}
        report["conditions"][name] = {"cpu_s": c["cpu_s"], "wall_s": c["wall_s"],
                                      "model_steps": sum(v["model_steps"] for v in per_mix.values()),
                                      "runs": sum(v["runs"] for v in per_mix.values()), "mixes": per_mix}
    ref = report["conditions"]["full_fixed"]
    for name in ("full_early", "adaptive_early"):
        c = report["conditions"][name]
        cmp = {"cpu_saving": _ratio(ref["cpu_s"], c["cpu_s"]),
               "model_step_saving": _ratio(ref["model_steps"], c["model_steps"]), "mixes": {}}
        for mix, m in c["mixes"].items():
            cmp["mixes"][mix] = _agreement(m["transition"].get("_t"), ref["mixes"][mix]["transition"].get("_t"))
        cmp["agree_within_ci"] = all(v["point_in_ref_ci"] for v in cmp["mixes"].values())
        report["comparison"][f"{name}_vs_full_fixed"] = cmp
    for c in report["conditions"].values():
        for m in c["mixes"].values():
            m["transition"].pop("_t", None)

    text = json.dumps(report, indent=1, default=float)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    if not a.json:
        for name, c in report["conditions"].items():
            trs = "; ".join(f"{mix} ({m['op']}): {m['transition']['text']}" for mix, m in c["mixes"].items())
            print(f"{name:<15} {c['model_steps']:>8} model-steps {c['cpu_s']:>8.1f} CPU-s  {trs}", file=sys.stderr)
        for k, v in report["comparison"].items():
            print(f"{k}: CPU x{v['cpu_saving']}, model-steps x{v['model_step_saving']}, "
                  f"agree within CI: {v['agree_within_ci']}", file=sys.stderr)
    print(text)
    return 0


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _strip(args: list[str], names: tuple[str, ...]) -> list[str]:
    """``args`` without the options ``names`` (both ``--x v`` and ``--x=v`` forms)."""
    out, skip = [], False
    for x in args:
        if skip:
            skip = False
            continue
        if x in names:
            skip = True
            continue
        if any(x.startswith(n + "=") for n in names):
            continue
        out.append(x)
    return out


if __name__ == "__main__":
    sys.exit(main())
