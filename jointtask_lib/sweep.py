"""Sweeps: grids of runs from ``params/sweeps/*.yaml``, executed locally or on Dask.

A sweep file describes a base configuration and a grid, plus presets that override both::

    name: single_task
    description: single-task learning transitions
    task:  {family: listops, depth: 2, min_args: 2, max_args: 3}
    arch:  {recurrence: 4, n_heads: 1}
    train: {steps: 1500, batch_size: 32}
    grid:
      mixes:  [[ADD], [MAX], [ADD, MAX, MED]]    # each mix: a list of ops, or {ops: [...], weights: [...]}
      moduli: [10]
      widths: [8, 16, 32]
      seeds:  [0, 1, 2]
    presets:
      smoke: {train: {steps: 60}, grid: {widths: [8, 16], seeds: [0]}}
      quick: {}
      paper: {grid: {moduli: [10, 20, 26, 43, 45], widths: [16, 24, 32, 48, 64, 96, 128]}}

The file is validated when it is loaded (unknown key, wrong type, impossible value: an error that
names the file, the key and what is allowed) — before anything is trained.

Execution: the grid is expanded into :class:`~jointtask_lib.train.RunSpec` s; finished runs (those
with a record under the results root) are skipped; the rest are grouped by width into stacked jobs
(:func:`jointtask_lib.runs.group_specs`) and run in this process (``workers=1``), in a pool of
single-threaded worker processes, or on a ``dask.distributed`` cluster (``scheduler`` address, or
``local_cluster=True`` for a ``LocalCluster`` on this machine).  Each job writes its records
atomically as its stack finishes; a killed sweep, re-run, trains only what is missing.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from .runs import group_specs, load_record, train_group
from .tasks import TaskConfig
from .train import Arch, RunSpec, TrainConfig
from .validate import check_choice, check_int

PRESETS = ("smoke", "quick", "paper")
TOP_KEYS = {"name": str, "description": str, "task": dict, "arch": dict, "train": dict, "grid": dict,
            "presets": dict}
GRID_KEYS = {"mixes": list, "moduli": list, "perm_ks": list, "widths": list, "seeds": list}


class SweepError(ValueError):
    """A sweep file is invalid (the message names the file and the key)."""


@dataclass(frozen=True)
class Sweep:
    name: str
    description: str
    preset: str
    source: str
    specs: tuple[RunSpec, ...] = field(repr=False)
    mixes: tuple[tuple[str, ...], ...] = ()
    widths: tuple[int, ...] = ()
    seeds: tuple[int, ...] = ()
    sizes: tuple[int, ...] = ()  # moduli (listops) or k (perm)

    def __len__(self) -> int:
        return len(self.specs)


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _check_keys(where: str, section: str, d: dict, allowed) -> None:
    for k in d:
        if k not in allowed:
            raise SweepError(f"{where}: unknown key '{section}{k}'; allowed: {', '.join(sorted(allowed))}")


def _check_types(where: str, section: str, d: dict, types: dict) -> None:
    for k, t in types.items():
        if k in d and not isinstance(d[k], t):
            raise SweepError(f"{where}: '{section}{k}' must be a {t.__name__}; got {type(d[k]).__name__}")


def parse_sweep(data: dict, preset: str = "quick", source: str = "<sweep>") -> Sweep:
    """Validate a sweep description (already parsed from YAML) and expand its grid."""
    where = source
    if not isinstance(data, dict):
        raise SweepError(f"{where}: a sweep file must be a mapping with keys {', '.join(TOP_KEYS)}")
    check_choice("preset", preset, PRESETS, where=where)
    _check_keys(where, "", data, TOP_KEYS)
    _check_types(where, "", data, TOP_KEYS)
    presets = data.get("presets", {})
    _check_keys(where, "presets.", presets, PRESETS)
    over = presets.get(preset) or {}
    if not isinstance(over, dict):
        raise SweepError(f"{where}: 'presets.{preset}' must be a mapping")
    _check_keys(where, f"presets.{preset}.", over, set(TOP_KEYS) - {"presets", "name"})
    d = _merge({k: v for k, v in data.items() if k != "presets"}, over)

    task_keys = {f.name for f in fields(TaskConfig)} - {"ops", "modulus", "perm_k", "weights"}
    _check_keys(where, "task.", d.get("task", {}), task_keys)
    arch_keys = {f.name for f in fields(Arch)} - {"n_embed"}
    _check_keys(where, "arch.", d.get("arch", {}), arch_keys)
    _check_keys(where, "train.", d.get("train", {}), {f.name for f in fields(TrainConfig)})
    grid = d.get("grid", {})
    _check_keys(where, "grid.", grid, GRID_KEYS)
    _check_types(where, "grid.", grid, GRID_KEYS)
    for k in ("mixes", "widths", "seeds"):
        if not grid.get(k):
            raise SweepError(f"{where}: 'grid.{k}' must be a non-empty list")

    family = d.get("task", {}).get("family", "listops")
    size_key = "moduli" if family == "listops" else "perm_ks"
    sizes = grid.get(size_key) or [TaskConfig.__dataclass_fields__["modulus" if family == "listops" else "perm_k"].default]
    mixes = []
    for i, m in enumerate(grid["mixes"]):
        if isinstance(m, dict):
            _check_keys(where, f"grid.mixes[{i}].", m, {"ops", "weights"})
            ops, weights = m.get("ops"), m.get("weights")
        else:
            ops, weights = m, None
        if isinstance(ops, str):
            ops = [o.strip() for o in ops.split(",")]
        if not isinstance(ops, list) or not ops:
            raise SweepError(f"{where}: 'grid.mixes[{i}]' must be a list of ops or {{ops: [...], weights: [...]}}")
        mixes.append((tuple(ops), None if weights is None else tuple(weights)))
    try:
        widths = [check_int("grid.widths", w, lo=2) for w in grid["widths"]]
        seeds = [check_int("grid.seeds", s, lo=0) for s in grid["seeds"]]
        arch_base = dict(d.get("arch", {}))
        train = TrainConfig(**d.get("train", {}))
        specs = []
        for size in sizes:
            for ops, weights in mixes:
                tkw = dict(d.get("task", {}), ops=ops, weights=weights)
                tkw["modulus" if family == "listops" else "perm_k"] = size
                task = TaskConfig.from_dict(tkw)
                for w in widths:
                    arch = Arch(n_embed=w, **arch_base)
                    for s in seeds:
                        specs.append(RunSpec(task=task, arch=arch, train=train, seed=s))
    except (ValueError, TypeError) as exc:
        raise SweepError(f"{where} (preset {preset}): {exc}") from None
    return Sweep(
        name=str(d.get("name", Path(source).stem)), description=str(d.get("description", "")),
        preset=preset, source=source, specs=tuple(specs), mixes=tuple(m for m, _ in mixes),
        widths=tuple(widths), seeds=tuple(seeds), sizes=tuple(sizes),
    )


def load_sweep(path, preset: str = "quick") -> Sweep:
    """Read and validate ``path`` (``yaml.safe_load``) at ``preset``."""
    path = Path(path)
    if not path.exists():
        raise SweepError(f"sweep file {path} does not exist")
    with open(path) as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise SweepError(f"{path}: not valid YAML: {exc}") from None
    return parse_sweep(data, preset, str(path))


# ------------------------------------------------------------------------------------------------
# Execution
# ------------------------------------------------------------------------------------------------


def _group_job(root: str, spec_dicts: list[dict], device: str, threads: int, max_stack: int | None) -> list[str]:
    """One stacked job (runs in a worker process or a Dask worker): train, write records."""
    import torch

    torch.set_num_threads(threads)
    specs = [RunSpec.from_dict(d) for d in spec_dicts]
    # Another worker (or an earlier, killed sweep) may have finished some of these already.
    todo = [s for s in specs if load_record(root, s) is None]
    if todo:
        train_group(root, todo, device=device, progress=False, max_stack=max_stack)
    return [s.key() for s in specs]


def pending(sweep_or_specs, root) -> list[RunSpec]:
    """The runs of a sweep that have no record under ``root`` yet (deduplicated, in order)."""
    specs = sweep_or_specs.specs if isinstance(sweep_or_specs, Sweep) else sweep_or_specs
    seen, out = set(), []
    for s in specs:
        if s.key() not in seen and load_record(root, s) is None:
            seen.add(s.key())
            out.append(s)
    return out


def run_specs(
    specs,
    root,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    local_cluster: bool = False,
    device: str = "auto",
    threads: int | None = None,
    force: bool = False,
    progress: bool = True,
    max_stack: int | None = None,
) -> list[dict]:
    """Train every run of ``specs`` that has no record (all of them with ``force``); return the
    records of all of ``specs`` in order."""
    check_int("workers", workers, lo=1)
    root = str(root)
    if force:
        import shutil

        from .runs import run_dir

        for s in specs:
            shutil.rmtree(run_dir(root, s), ignore_errors=True)
    _clean_stale_temporaries(root)
    todo = pending(specs, root)
    inits = pending([s.init for s in todo if s.init is not None], root)
    if inits:  # pretraining runs first, so parallel workers never train one twice
        run_specs(inits, root, workers=workers, scheduler=scheduler, local_cluster=local_cluster,
                  device=device, threads=threads, progress=progress, max_stack=max_stack)
    groups = group_specs(todo)
    jobs = [[s.to_dict() for s in g] for g in groups]
    if threads is None:
        # One thread per process: on a shared 2-core machine two threads made a smoke stack 17x
        # slower (41.6 s vs 2.4 s at load 11); parallelism comes from worker processes instead.
        threads = 1
    if jobs:
        if scheduler or local_cluster:
            _run_dask(jobs, root, device, threads, max_stack, scheduler, workers, progress)
        elif workers > 1:
            _run_pool(jobs, root, device, threads, max_stack, workers, progress)
        else:
            import torch

            torch.set_num_threads(threads)
            for g in _progress(groups, progress, "stacks"):
                train_group(root, g, device=device, progress=progress, max_stack=max_stack)
    return [load_record(root, s) for s in specs]


def run_sweep(sweep: Sweep, root, **kw) -> list[dict]:
    return run_specs(list(sweep.specs), root, **kw)


def _progress(it, on: bool, desc: str):
    if not on:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc)


def _run_pool(jobs, root, device, threads, max_stack, workers, progress) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # Jobs are sorted by width; start the widest (slowest) first so the pool stays busy.
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i][0]["arch"]["n_embed"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
        futs = [ex.submit(_group_job, root, jobs[i], device, threads, max_stack) for i in order]
        for f in _progress(as_completed(futs), progress, "stacks"):
            f.result()


def _run_dask(jobs, root, device, threads, max_stack, scheduler, workers, progress) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
    try:
        futs = client.map(_group_job, [root] * len(jobs), jobs, [device] * len(jobs),
                          [threads] * len(jobs), [max_stack] * len(jobs), pure=False)
        for f in _progress(as_completed(futs), progress, "stacks"):
            f.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _clean_stale_temporaries(root) -> None:
    """Remove temporary files a killed writer left behind (never a finished record)."""
    base = Path(root) / "runs"
    if base.exists():
        for p in base.glob("*/.*.tmp"):
            p.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------
# Adaptive width search
# ------------------------------------------------------------------------------------------------


def adaptive_widths(
    make_specs,
    root,
    *,
    op: str,
    lo: int,
    hi: int,
    n_initial: int = 3,
    ratio: float = 1.3,
    threshold: float = 0.8,
    multiple: int = 2,
    max_rounds: int = 4,
    **run_kw,
) -> tuple[list[int], list[dict]]:
    """Refine around the learning transition instead of training a full grid of widths.

    ``make_specs(width) -> list[RunSpec]`` gives the runs (seeds, mixes) at one width.  Start with
    ``n_initial`` widths spaced geometrically in ``[lo, hi]``; after each round find the bracket
    where the mean accuracy on ``op`` first reaches ``threshold`` times the best mean seen, and add
    the geometric midpoint of the bracket (rounded to a multiple of ``multiple``) until the bracket
    is narrower than ``ratio`` or nothing new can be added.  Returns (widths trained, records).
    """
    check_int("lo", lo, lo=2)
    check_int("hi", hi, lo=lo + 1)
    check_int("n_initial", n_initial, lo=2)

    def rnd(w):
        return max(multiple, int(round(w / multiple)) * multiple)

    widths = sorted({rnd(lo * (hi / lo) ** (i / (n_initial - 1))) for i in range(n_initial)})
    records: dict[int, list[dict]] = {}
    for _ in range(max_rounds + 1):
        new = [w for w in widths if w not in records]
        if new:
            specs = [s for w in new for s in make_specs(w)]
            recs = run_specs(specs, root, **run_kw)
            for w in new:
                keys = {s.key() for s in make_specs(w)}
                records[w] = [r for r in recs if r["key"] in keys]
        means = {w: _mean_acc(records[w], op) for w in widths}
        best = max(means.values())
        above = [w for w in widths if means[w] >= threshold * best]
        first = min(above)
        below = [w for w in widths if w < first]
        if not below:
            break
        a = max(below)
        if first / a <= ratio:
            break
        mid = rnd(math.sqrt(a * first))
        if mid in widths or mid <= a or mid >= first:
            break
        widths = sorted(widths + [mid])
    return widths, [r for w in widths for r in records[w]]


def _mean_acc(records: list[dict], op: str) -> float:
    vals = [r["metrics"]["per_op"][op]["gen_acc"] for r in records if op in r["metrics"].get("per_op", {})]
    return sum(vals) / len(vals) if vals else 0.0


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------


def summary_rows(records: list[dict]) -> list[tuple]:
    """(mix, size, width, params, seeds, mean gen_acc per op) rows for printing."""
    from collections import defaultdict

    acc = defaultdict(list)
    meta = {}
    for r in records:
        s = r["spec"]
        size = s["task"]["modulus"] if s["task"]["family"] == "listops" else s["task"]["perm_k"]
        key = ("+".join(s["task"]["ops"]), size, s["arch"]["n_embed"])
        acc[key].append(r["metrics"])
        meta[key] = r["n_params"]
    rows = []
    for key in sorted(acc, key=lambda k: (k[0], k[1], k[2])):
        ms = acc[key]
        per_op = {}
        for m in ms:
            for op, v in m["per_op"].items():
                per_op.setdefault(op, []).append(v["gen_acc"])
        cells = " ".join(f"{op}={sum(v) / len(v):.3f}" for op, v in per_op.items())
        rows.append((*key, meta[key], len(ms), cells))
    return rows


def cmd_sweep(a) -> int:
    sweep = load_sweep(a.sweep, a.preset)
    root = a.results
    todo = pending(sweep, root) if not a.force else list(sweep.specs)
    print(f"sweep {sweep.name} ({sweep.preset}): {len(sweep)} runs, {len(todo)} to train -> {root}")
    records = run_sweep(sweep, root, workers=a.workers, scheduler=a.scheduler, local_cluster=a.local_cluster,
                        device=a.device, threads=a.threads, force=a.force, progress=not a.no_progress)
    print(f"{'mix':<16} {'n':>4} {'width':>6} {'params':>8} {'seeds':>5}  mean gen_acc per op")
    for mix, size, w, p, n, cells in summary_rows(records):
        print(f"{mix:<16} {size:>4} {w:>6} {p:>8} {n:>5}  {cells}")
    return 0


def register_cli(sub) -> None:
    p = sub.add_parser("sweep", help="train every run of a sweep file (resumable)")
    p.add_argument("sweep", help="a params/sweeps/*.yaml file")
    p.add_argument("--preset", default="quick", help="smoke | quick | paper")
    p.add_argument("--results", default="results", help="results root (records under runs/)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (or LocalCluster workers)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786")
    g.add_argument("--local-cluster", action="store_true", help="run on a Dask LocalCluster here")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--force", action="store_true", help="retrain runs that already have records")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_sweep)
