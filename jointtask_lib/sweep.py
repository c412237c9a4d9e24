"""Sweeps: grids of runs from ``params/sweeps/*.yaml``, executed locally or on Dask.

A sweep file describes a base configuration and a grid, plus presets that override both::

    name: single_task
    description: single-task learning transitions
    task:  {family: listops, depth: 2, min_args: 2, max_args: 3}
    arch:  {recurrence: 4, n_heads: 1}
    train: {steps: 1500, batch_size: 32}
    grid:
      mixes:  [[ADD], [MAX], [ADD, MAX, MED]]    # each mix: a list of ops, or {ops: [...], weights: [...]}
                                                 # (a mapping may also give the mix its own seeds / widths)
      moduli: [10]
      widths: [8, 16, 32]
      seeds:  [0, 1, 2]
    presets:
      smoke: {train: {steps: 60}, grid: {widths: [8, 16], seeds: [0]}}
      quick: {}
      paper: {grid: {moduli: [10, 20, 26, 43, 45], widths: [16, 24, 32, 48, 64, 96, 128]}}

Two optional top-level keys (also allowed inside a preset):

* ``data_seeds: shared | per_run``.  ``shared`` (default): a run's data seed is its seed, so the
  runs of one seed at every width (and every mix) train and test on one draw of the data, and one
  unlucky draw moves a whole curve.  ``per_run``: every run (mix, seed, width) gets its own data
  seed, :func:`per_run_data_seed` — a hash of the mix, the modulus (or k), the seed and the width
  written into ``train.data_seed`` — so the points of a curve are independent draws.  Runs that
  start from another run's weights (transfer) keep the data seed of the run they start from (see
  :func:`jointtask_lib.experiments.transfer_conditions`), so no test expression of the later
  stage was a training expression of the earlier one.
* ``seed_offset`` (:func:`load_sweep`'s argument, ``jointtask sweep --seed-offset``): every grid
  seed is shifted by it, to repeat an experiment on fresh seeds.  0 (default) leaves the sweep,
  and every run key, exactly as it was.

The file is validated when it is loaded (unknown key, wrong type, impossible value: an error that
names the file, the key and what is allowed) — before anything is trained.

Execution: the grid is expanded into :class:`~jointtask_lib.train.RunSpec` s; finished runs (those
with a record under the results root) are skipped; the rest are grouped by width into stacked jobs
(:func:`jointtask_lib.runs.group_specs`) and run in this process, in a pool of single-threaded
worker processes, or on a ``dask.distributed`` cluster (``scheduler`` address, or
``local_cluster=True`` for a ``LocalCluster`` on this machine).  Each job writes its records
atomically as its stack finishes; a killed sweep, re-run, trains only what is missing.  Jobs
start most expensive first (:func:`schedule_order`); :func:`run_named` trains several sweeps (or
lists of runs) in one call, so they share stacks and one pool.

* **Workers.**  ``jointtask sweep`` (and ``workers=None``) uses one worker process per available
  CPU core, never more than there are stacked jobs, each with one torch thread: on the 2-core
  benchmark machine two single-threaded workers beat one 2-thread process at every width
  measured (1.07-1.49x, ``benchmarks/README.md``).  One job, or ``workers=1`` (the library
  default: spawned workers need a script with an ``if __name__ == "__main__":`` guard), runs in
  this process; a CUDA device gets one worker (one GPU).
* **``force``** retrains every run *without deleting anything first*: each retrained run's weights
  and record replace the old ones atomically as its stack finishes, so a ``--force`` sweep that is
  interrupted keeps every finished run (the retrained ones new, the others as they were) and never
  leaves a run without a record.  Checkpoints of interrupted stacks of those runs are discarded
  (a forced run starts from scratch).
* **A Dask cluster needs a shared filesystem.**  Workers write the records themselves, under the
  results root *as an absolute path on the client*; every worker must see that path, and the same
  files, as the client does (NFS or similar mounted at the same place).  After the jobs finish the
  client checks that every record exists and raises :class:`RecordsMissing`, naming the worker
  hosts and the expected paths, if a worker wrote somewhere the client cannot see.
* **Adaptive widths** (:func:`adaptive_sweep`, ``jointtask sweep --adaptive``): instead of the whole
  grid of widths, train a few, find where the tracked operation is first learned, and add widths
  only inside that bracket (:func:`adaptive_widths`).  It never reports a transition when nothing
  beats chance: that is an ``"above"`` bound.  ``benchmarks/adaptive_width.py`` measures the saving.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import progress as _progress_mod
from .runs import group_specs, load_record, run_dir, train_group
from .records import LEVEL, Record, RecordTable, learned_bar
from .workers import worker_pool
from .sweep_file import (TOP_KEYS, SweepError, _check_keys, _check_types, apply_preset,  # noqa: F401 (re-exported)
                         read_sweep_file)
from .schema import ARCH, GRID_FIELDS, TASK, TRAIN, param, sweep_paths
from .tasks import TaskConfig, check_size_fields, task_family
from .train import Arch, RunSpec, TrainConfig
from .validate import PRESETS, check_choice, check_float, check_int, field_names

DATA_SEED_RULES = ("shared", "per_run")


def per_run_data_seed(task: TaskConfig, seed: int, width: int) -> int:
    """The data seed of one run under ``data_seeds: per_run``: a 31-bit hash of the task mix (ops
    and weights), its size (modulus or k), the run's seed and its width.  Deterministic, the same
    in every sweep file (a mix's runs are shared between sweeps through the cache), and different
    for every (mix, seed, width), so the points of a transition curve are independent draws."""
    import hashlib

    blob = f"data|{task.family}|{'+'.join(task.ops)}|{task.weights}|{task.size}|{int(seed)}|{int(width)}"
    return int.from_bytes(hashlib.blake2b(blob.encode(), digest_size=8).digest(), "little") % (2**31 - 1)
#: The lists of a sweep's ``grid:``: the task mixes, and one list per field of :data:`schema.GRID_FIELDS`.
GRID_KEYS = {"mixes": list, **{k: list for k in GRID_FIELDS}}


class RecordsMissing(RuntimeError):
    """Jobs finished but some records are not where this process looks for them (a Dask worker
    that does not share the client's filesystem, or wrote under another path)."""


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
    seed_offset: int = 0
    data_seeds: str = "shared"

    def __len__(self) -> int:
        return len(self.specs)


def parse_sweep(data: dict, preset: str = "quick", source: str = "<sweep>", seed_offset: int = 0) -> Sweep:
    """Validate a sweep description (already parsed from YAML) and expand its grid.

    ``seed_offset`` is added to every grid seed (0: the sweep as written)."""
    where = source
    try:
        check_int("seed_offset", seed_offset, lo=0)
    except ValueError as exc:
        raise SweepError(f"{where}: {exc}") from None
    d = apply_preset(data, preset, where)

    in_grid = {"ops", "weights", *GRID_FIELDS.values()}  # set by grid.mixes and the grid lists
    _check_keys(where, "task.", d.get("task", {}), set(TASK) - in_grid)
    _check_keys(where, "arch.", d.get("arch", {}), set(ARCH) - in_grid)
    _check_keys(where, "train.", d.get("train", {}), set(TRAIN))
    grid = d.get("grid", {})
    _check_keys(where, "grid.", grid, GRID_KEYS)
    _check_types(where, "grid.", grid, GRID_KEYS)
    _check_types(where, "", d, TOP_KEYS)
    data_seeds = d.get("data_seeds", "shared")
    if data_seeds not in DATA_SEED_RULES:
        raise SweepError(f"{where} (preset {preset}): 'data_seeds' must be one of "
                         f"{', '.join(DATA_SEED_RULES)}; got {data_seeds!r}")
    if data_seeds == "per_run" and d.get("train", {}).get("data_seed") is not None:
        raise SweepError(f"{where} (preset {preset}): 'train.data_seed' must not be set with "
                         f"'data_seeds: per_run' (every run gets its own); got {d['train']['data_seed']}")
    for k in ("mixes", "widths", "seeds"):
        if not grid.get(k):
            raise SweepError(f"{where}: 'grid.{k}' must be a non-empty list")

    def fail(exc):
        return SweepError(f"{where} (preset {preset}): {exc}")

    # Every field is validated once, by the configuration classes against jointtask_lib.schema,
    # with each field named by its path in this file (schema.sweep_paths).
    try:
        with field_names(sweep_paths()):
            fam = task_family(d.get("task", {}).get("family", TaskConfig.family))
            check_size_fields(fam.name, {f for k, f in GRID_FIELDS.items() if k in grid},
                              flag=lambda f: f"'{sweep_paths()[f]}'")
    except ValueError as exc:
        raise SweepError(f"{where}: {exc}") from None
    sizes = grid.get(fam.grid_key) or [fam.default_size()]
    mixes = []
    own: dict[int, dict] = {}  # per-mix seeds / widths overriding the grid's
    for i, m in enumerate(grid["mixes"]):
        if isinstance(m, dict):
            _check_keys(where, f"grid.mixes[{i}].", m, {"ops", "weights", "seeds", "widths"})
            ops, weights = m.get("ops"), m.get("weights")
            for k in ("seeds", "widths"):
                if k in m and (not isinstance(m[k], list) or not m[k]):
                    raise SweepError(f"{where}: 'grid.mixes[{i}].{k}' must be a non-empty list")
            own[i] = {k: m[k] for k in ("seeds", "widths") if k in m}
        else:
            ops, weights = m, None
        if isinstance(ops, str):
            ops = [o.strip() for o in ops.split(",")]
        if not isinstance(ops, list) or not ops:
            raise SweepError(f"{where}: 'grid.mixes[{i}]' must be a list of ops or {{ops: [...], weights: [...]}}")
        mixes.append((tuple(ops), None if weights is None else tuple(weights)))

    width_param, seed_param = param("n_embed"), param("seed")
    try:
        with field_names(sweep_paths()):
            widths = [width_param.check("n_embed", w) for w in grid["widths"]]
            seeds = [seed_param.check("seed", s) + seed_offset for s in grid["seeds"]]
        for i, o in own.items():
            with field_names(sweep_paths(i, own_widths=True, own_seeds=True)):
                if "widths" in o:
                    o["widths"] = [width_param.check("n_embed", w) for w in o["widths"]]
                if "seeds" in o:
                    o["seeds"] = [seed_param.check("seed", v) + seed_offset for v in o["seeds"]]
        with field_names(sweep_paths()):
            train = TrainConfig(**d.get("train", {}))
    except (ValueError, TypeError) as exc:
        raise fail(exc) from None
    arch_base = dict(d.get("arch", {}))
    specs = []
    for size in sizes:
        for i, (ops, weights) in enumerate(mixes):
            tkw = dict(d.get("task", {}), ops=ops, weights=weights)
            tkw[fam.size_field] = size
            with field_names(sweep_paths(i, own_widths="widths" in own.get(i, {}),
                                         own_seeds="seeds" in own.get(i, {}))):
                try:
                    task = TaskConfig.from_dict(tkw)
                    for w in own.get(i, {}).get("widths", widths):
                        arch = Arch(n_embed=w, **arch_base)
                        for s in own.get(i, {}).get("seeds", seeds):
                            run_train = train
                            if data_seeds == "per_run":
                                run_train = replace(train, data_seed=per_run_data_seed(task, s, w))
                            specs.append(RunSpec(task=task, arch=arch, train=run_train, seed=s))
                except (ValueError, TypeError) as exc:
                    raise fail(exc) from None
    return Sweep(
        name=str(d.get("name", Path(source).stem)), description=str(d.get("description", "")),
        preset=preset, source=source, specs=tuple(specs), mixes=tuple(m for m, _ in mixes),
        widths=tuple(sorted({*widths, *(w for o in own.values() for w in o.get("widths", ()))})),
        seeds=tuple(sorted({*seeds, *(v for o in own.values() for v in o.get("seeds", ()))})),
        sizes=tuple(sizes), seed_offset=seed_offset,
        data_seeds=data_seeds,
    )


def load_sweep(path, preset: str = "quick", seed_offset: int = 0) -> Sweep:
    """Read and validate ``path`` (``yaml.safe_load``) at ``preset``; ``seed_offset`` shifts every
    grid seed (0: the sweep as written, same run keys)."""
    path = Path(path)
    data = read_sweep_file(path)
    return parse_sweep(data, preset, str(path), seed_offset)


# ------------------------------------------------------------------------------------------------
# Execution
# ------------------------------------------------------------------------------------------------


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_workers(n_jobs: int, device: str = "auto") -> int:
    """The fastest measured setting: one single-threaded worker per core, at most ``n_jobs``.

    ``benchmarks/README.md``: two 1-thread worker processes beat one 2-thread process by
    1.07-1.49x at every width on the 2-core machine.  On a CUDA device: 1 (one GPU, one process).
    """
    if device == "cuda" or (device == "auto" and _cuda_available()):
        return 1
    return max(1, min(available_cores(), n_jobs))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _group_job(root: str, spec_dicts: list[dict], device: str, threads: int, max_stack: int | None,
               force: bool = False) -> dict:
    """One stacked job (runs in a worker process or a Dask worker): train, write records.

    Returns where this worker wrote (host, absolute record paths), so the client can tell a
    worker that does not share its filesystem.
    """
    import torch

    torch.set_num_threads(threads)
    specs = [RunSpec.from_dict(d) for d in spec_dicts]
    # Another worker (or an earlier, killed sweep) may have finished some of these already.
    todo = specs if force else [s for s in specs if load_record(root, s) is None]
    if todo:
        train_group(root, todo, device=device, progress=False, max_stack=max_stack, force=force)
    return {"host": socket.gethostname(),
            "records": [str((run_dir(root, s) / "record.json").resolve()) for s in specs]}


def pending(sweep_or_specs, root) -> list[RunSpec]:
    """The runs of a sweep that have no record under ``root`` yet (deduplicated, in order)."""
    specs = sweep_or_specs.specs if isinstance(sweep_or_specs, Sweep) else sweep_or_specs
    seen, out = set(), []
    for s in specs:
        if s.key() not in seen and load_record(root, s) is None:
            seen.add(s.key())
            out.append(s)
    return out


def _unique(specs) -> list[RunSpec]:
    return list({s.key(): s for s in specs}.values())


def run_specs(
    specs,
    root,
    *,
    workers: int | None = 1,
    scheduler: str | None = None,
    local_cluster: bool = False,
    device: str = "auto",
    threads: int | None = None,
    force: bool = False,
    progress: bool = True,
    max_stack: int | None = None,
    connect_timeout: float | None = None,
) -> list[dict]:
    """Train every run of ``specs`` that has no record (all of them with ``force``); return the
    records of all of ``specs`` in order.

    ``workers``: processes (or ``LocalCluster`` workers); ``None`` = :func:`default_workers`, one
    single-threaded process per core (the ``jointtask sweep`` default).  The library default, 1,
    trains in this process: worker processes are *spawned*, which needs the calling script to
    guard its entry point (``if __name__ == "__main__":``).
    ``threads``: torch threads per process (default 1).  ``force`` retrains and replaces records
    one by one as each stack finishes (nothing is deleted first; see the module docstring).  With
    ``scheduler`` the results root must be on a filesystem every Dask worker shares; a scheduler
    that does not answer within ``connect_timeout`` seconds (:func:`connect_timeout`) raises
    :class:`SchedulerUnreachable`.
    """
    if workers is not None:
        check_int("workers", workers, lo=1)
    if threads is not None:
        check_int("threads", threads, lo=1)
    # Workers (possibly on other hosts, with another working directory) get an absolute path.
    root = os.path.abspath(os.fspath(root))
    _clean_stale_temporaries(root)
    specs = list(specs)
    todo = _unique(specs) if force else pending(specs, root)
    run_kw = dict(workers=workers, scheduler=scheduler, local_cluster=local_cluster, device=device,
                  threads=threads, progress=progress, max_stack=max_stack, connect_timeout=connect_timeout)
    # Pretraining runs first, so parallel workers never train one twice and every dependent run
    # starts from the pretrained weights that this call leaves behind.
    todo_keys = {s.key() for s in todo}
    inits = _unique(s.init for s in todo if s.init is not None)
    forced_inits = [s for s in inits if s.key() in todo_keys]
    if forced_inits:
        run_specs(forced_inits, root, force=True, **run_kw)
        done = {s.key() for s in forced_inits}
        todo = [s for s in todo if s.key() not in done]
    missing_inits = pending([s for s in inits if s.key() not in todo_keys], root)
    if missing_inits:
        run_specs(missing_inits, root, **run_kw)
    groups = group_specs(todo)
    if force and groups:
        _drop_checkpoints(root, {s.key() for s in todo})
    jobs = [[s.to_dict() for s in g] for g in groups]
    if threads is None:
        # One thread per process: on a shared 2-core machine two threads made a smoke stack 17x
        # slower (41.6 s vs 2.4 s at load 11); parallelism comes from worker processes instead.
        threads = 1
    reports: list[dict] = []
    if jobs:
        n_workers = workers if workers is not None else default_workers(len(jobs), device)
        if scheduler or local_cluster:
            reports = _run_dask(jobs, root, device, threads, max_stack, scheduler, n_workers, progress, force,
                                connect_timeout)
        elif n_workers > 1 and len(jobs) > 1:
            _run_pool(jobs, root, device, threads, max_stack, min(n_workers, len(jobs)), progress, force)
        else:
            import torch

            torch.set_num_threads(threads)
            # One bar of runs done / total; per-step bars too in a terminal, not in a notebook.
            step_bars = progress and not _progress_mod.text_mode()
            for g in _progress(groups, progress, "runs", sum(map(len, groups)), weight=len):
                train_group(root, g, device=device, progress=step_bars, max_stack=max_stack, force=force)
    records = [load_record(root, s) for s in specs]
    missing = [s for s, r in zip(specs, records) if r is None]
    if missing:
        raise _missing_error(root, missing, reports, scheduler)
    return records


def _missing_error(root: str, missing: list[RunSpec], reports: list[dict], scheduler) -> RecordsMissing:
    paths = [str(run_dir(root, s) / "record.json") for s in missing]
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    msg = f"{len(missing)} run(s) finished but their records are not under {root}: {shown}"
    if reports:
        hosts = sorted({r["host"] for r in reports})
        msg += (f". The Dask workers ({', '.join(hosts)}; this client: {socket.gethostname()}) wrote "
                "their records on their own filesystems: --scheduler needs the results root on a "
                "filesystem every worker shares with the client, at the same absolute path")
    elif scheduler:
        msg += ". --scheduler needs a filesystem shared by the client and every worker"
    return RecordsMissing(msg)


def run_sweep(sweep: Sweep, root, **kw) -> list[dict]:
    return run_specs(list(sweep.specs), root, **kw)


def run_named(named: dict, root, **kw) -> dict[str, list[dict]]:
    """Train several named lists of runs (sweeps, or the conditions of an experiment) in **one**
    :func:`run_specs` call and return each name's records, in its order.

    ``named`` maps a name to a :class:`Sweep` or a list of :class:`RunSpec`.  Compared with one call
    per name, every stacked job of all of them is scheduled together (longest first), runs of
    one width share one stack, and a run that several names hold is trained once; with a
    pool there is one end-of-pool idle tail instead of one per name.  ``kw``: as for
    :func:`run_specs`.
    """
    lists = {name: list(v.specs) if isinstance(v, Sweep) else list(v) for name, v in named.items()}
    records = run_specs([s for specs in lists.values() for s in specs], root, **kw)
    out, start = {}, 0
    for name, specs in lists.items():
        out[name] = records[start:start + len(specs)]
        start += len(specs)
    return out


# Progress (runs done / total, ETA): jointtask_lib.progress; the names below are kept for callers.
ENV_PROGRESS = _progress_mod.ENV_PROGRESS
progress_bar = _progress_mod.progress_bar
_progress = _progress_mod.progress_iter


#: Per-model cost of a stacked job grows about as ``n_embed + JOB_COST_OFFSET`` per step: measured
#: on the 2-core machine, 12-model stacks of the single-task sweep (quick) trained in 92 s at
#: d = 8 and 193 s at d = 32 — fixed per-step work dominates small widths (benchmarks/README.md).
JOB_COST_OFFSET = 14


def job_cost(job: list[dict]) -> float:
    """Relative cost of a stacked job (run dicts): models x step budget x (width + offset).

    Only the order of jobs uses it (longest first); it need not be exact.
    """
    train = job[0]["train"]
    steps = train.get("steps", TrainConfig.steps)
    return len(job) * steps * (job[0]["arch"].get("n_embed", Arch.n_embed) + JOB_COST_OFFSET)


def schedule_order(jobs: list[list[dict]]) -> list[int]:
    """Indices of ``jobs``, most expensive first (:func:`job_cost`; ties: given order).

    A pool that hands the next job to whichever worker is free then makes the classic
    longest-processing-time schedule: the long stacks start first and the short ones fill in at
    the end, so no worker sits idle while another finishes a long stack.
    """
    return sorted(range(len(jobs)), key=lambda i: (-job_cost(jobs[i]), i))


def _run_pool(jobs, root, device, threads, max_stack, workers, progress, force) -> None:
    from concurrent.futures import as_completed

    order = schedule_order(jobs)
    with worker_pool(workers) as ex:  # Ctrl-C kills the workers at once (workers.worker_pool)
        futs = [ex.submit(_group_job, root, jobs[i], device, threads, max_stack, force) for i in order]
        runs = {f: len(jobs[i]) for f, i in zip(futs, order)}
        for f in _progress(as_completed(futs), progress, "runs", sum(runs.values()), weight=runs.get):
            f.result()


#: Seconds to wait for a Dask scheduler (``--connect-timeout``; ``$JOINTTASK_CONNECT_TIMEOUT``).
CONNECT_TIMEOUT = 10.0


class SchedulerUnreachable(ValueError):
    """The Dask scheduler did not answer within the connect timeout."""


def connect_timeout(value: float | None = None) -> float:
    """The Dask connect timeout: ``value``, else ``$JOINTTASK_CONNECT_TIMEOUT``, else
    :data:`CONNECT_TIMEOUT` seconds (a positive finite number)."""
    if value is None:
        env = os.environ.get("JOINTTASK_CONNECT_TIMEOUT", "")
        if not env:
            return CONNECT_TIMEOUT
        try:
            value = float(env)
        except ValueError:
            raise ValueError(f"'JOINTTASK_CONNECT_TIMEOUT' must be a number of seconds; got {env!r}") from None
    return check_float("connect_timeout", value, lo=0.0, lo_open=True, hi=3600.0)


def _connect(scheduler: str, timeout: float):
    from dask.distributed import Client

    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise SchedulerUnreachable(f"Dask scheduler {scheduler} did not answer within {timeout:g} s "
                                   f"(--connect-timeout): {type(exc).__name__}") from None


def _run_dask(jobs, root, device, threads, max_stack, scheduler, workers, progress, force,
              timeout: float | None = None) -> list[dict]:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    futs = []
    if scheduler:
        client = _connect(scheduler, connect_timeout(timeout))
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
    n = len(jobs)
    try:
        jobs = [jobs[i] for i in schedule_order(jobs)]  # submitted longest first
        futs = client.map(_group_job, [root] * n, jobs, [device] * n, [threads] * n, [max_stack] * n,
                          [force] * n, pure=False)
        runs = {f: len(job) for f, job in zip(futs, jobs)}
        reports = [f.result() for f in _progress(as_completed(futs), progress, "runs", sum(runs.values()),
                                                  weight=runs.get)]
    except BaseException:  # Ctrl-C included: stop now, do not wait for running jobs
        _stop_dask(client, cluster, futs)
        raise
    client.close()
    if cluster is not None:
        cluster.close()
    return reports


def _stop_dask(client, cluster, futs) -> None:
    """Stop a Dask computation at once: a ``LocalCluster``'s worker processes (children of this
    process) are killed; on a remote scheduler the jobs are cancelled.  Errors of the shutdown
    itself are swallowed (the interrupt or error that caused it is what gets reported)."""
    import contextlib
    import multiprocessing as mp

    if cluster is not None:
        for p in mp.active_children():
            with contextlib.suppress(Exception):
                p.kill()
    else:
        with contextlib.suppress(Exception):
            client.cancel(futs, force=True)
    with contextlib.suppress(BaseException):
        client.close(timeout=1)
    if cluster is not None:
        with contextlib.suppress(BaseException):
            cluster.close(timeout=1)


def _clean_stale_temporaries(root) -> None:
    """Remove temporary files whose writer is gone (never a finished record, never the temporary
    file of a live writer: the writer's host and pid are in the name, see
    :func:`jointtask_lib.paths.atomic_write`)."""
    from .paths import temp_writer_gone

    base = Path(root) / "runs"
    if base.exists():
        for p in base.glob("*/.*.tmp"):
            if temp_writer_gone(p):
                p.unlink(missing_ok=True)


def _drop_checkpoints(root, keys: set[str]) -> None:
    """Delete checkpoints of interrupted stacks holding any of ``keys`` (a forced run restarts)."""
    base = Path(root) / "groups"
    if not base.exists():
        return
    import torch

    for p in base.glob("*/ckpt.pt"):
        ck = torch.load(p, map_location="cpu", weights_only=True)
        if keys & set(ck.get("keys", [])):
            p.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------
# Adaptive width search
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdaptiveResult:
    """What an adaptive width search found for one operation in one task mix.

    ``kind``: ``"bracket"`` (learned at ``bracket[1]`` but not at ``bracket[0]``, the two closest
    widths trained on either side of the first learned one), ``"above"`` (learned at no width
    trained: the transition is above the largest; also when nothing beats chance) or ``"below"``
    (learned at the smallest width tried already).  ``means`` is the mean accuracy over seeds per
    width trained, ``threshold`` the accuracy that counted as learned.
    """

    op: str
    kind: str
    bracket: tuple[int, int] | None
    widths: tuple[int, ...]
    means: dict
    threshold: float
    chance: float
    rounds: int
    records: tuple = field(default=(), repr=False)

    def describe(self) -> str:
        if self.kind == "above":
            return f"not learned at any width tried (> {max(self.widths)})"
        if self.kind == "below":
            return f"learned at the smallest width tried (<= {min(self.widths)})"
        a, b = self.bracket
        return f"learned between width {a} (not) and {b}"


def learned_bracket(means: dict, *, chance: float, level: float = LEVEL,
                    min_asymptote: float | None = None) -> tuple[str, tuple[int, int] | None, float]:
    """Where accuracy is first "learned": ``(kind, bracket, threshold)`` from mean accuracy per width.

    A width counts as learned when its mean reaches ``threshold = level x A``
    (:func:`jointtask_lib.records.learned_bar`, the rule of
    :func:`jointtask_lib.transition.estimate_transition`, with the best mean as the plateau).  ``A``
    is the best mean seen if that shows real learning (at least ``min_asymptote``, default halfway
    from chance to 1), else 1.0 — so a search in
    which nothing beats chance by that margin reports ``"above"`` (not learned within the widths
    tried), never a transition at the smallest width.
    """
    if not means:
        raise ValueError("'means' must hold the mean accuracy of at least one width")
    chance = check_float("chance", chance, lo=0.0, hi=1.0, hi_open=True)
    level = check_float("level", level, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    if level <= chance:
        raise ValueError(f"'level' must exceed 'chance' ({chance}), or chance counts as learned; got {level}")
    bar = learned_bar(level, plateau=max(means.values()), chance=chance, min_asymptote=min_asymptote)
    widths = sorted(means)
    learned = [w for w in widths if bar.learned(means[w])]
    threshold = bar.threshold
    if not learned:
        return "above", None, threshold
    first = learned[0]
    if first == widths[0]:
        return "below", None, threshold
    return "bracket", (max(w for w in widths if w < first), first), threshold


def _log_nearest(cands: list[int], target: float) -> int:
    return min(cands, key=lambda c: (abs(math.log(c) - math.log(target)), c))


@dataclass
class _Search:
    make_specs: object
    op: str
    candidates: list[int]
    chance: float
    widths: list[int] = field(default_factory=list)
    records: dict = field(default_factory=dict)
    done: bool = False
    rounds: int = 0
    kind: str = ""
    bracket: tuple | None = None
    threshold: float = 0.0


def adaptive_search(
    problems: list[dict],
    root,
    *,
    n_initial: int = 3,
    ratio: float = 1.3,
    level: float = 0.8,
    max_rounds: int = 4,
    metric: str = "gen_acc",
    **run_kw,
) -> list[AdaptiveResult]:
    """Several adaptive width searches run in lock-step (each round is one :func:`run_specs` call,
    so the runs of all searches share the workers).  Each problem is a dict with ``make_specs``
    (``width -> list[RunSpec]``: the seeds at one width), ``op`` (the operation whose accuracy is
    tracked), ``candidates`` (the widths allowed, e.g. a sweep's grid) and optionally ``chance``
    (default ``1 / number of values`` of the task).  See :func:`adaptive_widths` for the rule.
    """
    check_int("n_initial", n_initial, lo=2)
    check_float("ratio", ratio, lo=1.0, lo_open=True)
    check_int("max_rounds", max_rounds, lo=0)
    check_choice("metric", metric, ("gen_acc", "tf_acc", "seq_acc"))
    searches = []
    for i, p in enumerate(problems):
        cands = sorted(set(p["candidates"]))
        if len(cands) < 2:
            raise ValueError(f"problem {i}: 'candidates' must hold at least 2 widths; got {cands}")
        for c in cands:
            check_int("candidates", c, lo=2)
        first = p["make_specs"](cands[0])
        if not first:
            raise ValueError(f"problem {i}: 'make_specs' gave no runs at width {cands[0]}")
        task = first[0].task
        if p["op"] not in task.ops:
            raise ValueError(f"problem {i}: 'op' must be one of the mix {', '.join(task.ops)}; got {p['op']!r}")
        chance = p.get("chance")
        chance = 1.0 / task.n_values if chance is None else chance
        lo, hi = cands[0], cands[-1]
        init = {_log_nearest(cands, lo * (hi / lo) ** (k / (n_initial - 1))) for k in range(n_initial)}
        searches.append(_Search(p["make_specs"], p["op"], cands, chance, widths=sorted(init)))
    for _ in range(max_rounds + 1):
        new = [(s, w) for s in searches if not s.done for w in s.widths if w not in s.records]
        if new:
            per = [(s, w, s.make_specs(w)) for s, w in new]
            recs = run_specs([x for _, _, specs in per for x in specs], root, **run_kw)
            by_key = {r["key"]: r for r in recs}
            for s, w, specs in per:
                s.records[w] = [by_key[x.key()] for x in specs]
        for s in searches:
            if s.done:
                continue
            means = {w: _mean_acc(s.records[w], s.op, metric) for w in s.widths}
            s.kind, s.bracket, s.threshold = learned_bracket(means, chance=s.chance, level=level)
            if s.kind != "bracket" or s.rounds >= max_rounds:
                s.done = True  # a bound (nothing to refine), or out of rounds
                continue
            a, b = s.bracket
            inside = [c for c in s.candidates if a < c < b]
            if not inside or b / a <= ratio:
                s.done = True
                continue
            s.widths = sorted(s.widths + [_log_nearest(inside, math.sqrt(a * b))])
            s.rounds += 1
        if all(s.done for s in searches):
            break
    out = []
    for s in searches:
        means = {w: _mean_acc(s.records[w], s.op, metric) for w in s.widths}
        out.append(AdaptiveResult(op=s.op, kind=s.kind, bracket=s.bracket, widths=tuple(s.widths),
                                  means=means, threshold=s.threshold, chance=s.chance, rounds=s.rounds,
                                  records=tuple(r for w in s.widths for r in s.records[w])))
    return out


def adaptive_widths(
    make_specs,
    root,
    *,
    op: str,
    lo: int | None = None,
    hi: int | None = None,
    candidates=None,
    multiple: int = 2,
    chance: float | None = None,
    **kw,
) -> AdaptiveResult:
    """Refine around the learning transition instead of training a full grid of widths.

    ``make_specs(width) -> list[RunSpec]`` gives the runs (seeds) at one width.  The widths allowed
    are ``candidates`` (e.g. a sweep's grid), or every multiple of ``multiple`` in ``[lo, hi]``.
    Start with ``n_initial`` of them spaced geometrically from the smallest to the largest; after
    each round find the first width whose mean accuracy on ``op`` counts as learned
    (:func:`learned_bracket`: ``level`` x the best mean, or x 1.0 when nothing really learns) and
    add the allowed width nearest the geometric midpoint of the bracket below it, until the
    bracket is no wider than ``ratio``, no allowed width is left inside it, or ``max_rounds``
    refinements were made.  Nothing learned: ``"above"``; learned at the smallest: ``"below"``;
    no further widths are trained in either case.  Runs go through :func:`run_specs` (the run
    cache: a width trained before is not trained again).
    """
    if candidates is None:
        if lo is None or hi is None:
            raise ValueError("give 'candidates' or both 'lo' and 'hi'")
        check_int("lo", lo, lo=2)
        check_int("hi", hi, lo=lo + 1)
        check_int("multiple", multiple, lo=1)
        first = -(-lo // multiple) * multiple
        candidates = list(range(max(first, multiple), hi + 1, multiple))
    return adaptive_search([{"make_specs": make_specs, "op": op, "candidates": candidates, "chance": chance}],
                           root, **kw)[0]


def adaptive_sweep(sweep: Sweep, root, *, op: str | None = None, **kw) -> list[AdaptiveResult]:
    """An adaptive width search for every task mix and size of ``sweep`` over its grid widths.

    Each mix tracks ``op`` if it contains it, else its first operation.  Only runs of the sweep's
    own grid are trained, so a later full ``run_sweep`` reuses them through the cache.
    """
    if op is not None:
        in_mixes = sorted({o for m in sweep.mixes for o in m})
        if op not in in_mixes:
            raise ValueError(f"'adaptive_op' must be an operation of one of the sweep's mixes "
                             f"({', '.join(in_mixes)}); got {op!r}")
    cells: dict = {}
    for s in sweep.specs:
        cells.setdefault(s.task, {}).setdefault(s.arch.n_embed, []).append(s)
    problems = []
    for task, by_width in cells.items():
        track = op if op is not None and op in task.ops else task.ops[0]
        problems.append({"make_specs": (lambda w, m=by_width: m[w]), "op": track,
                         "candidates": sorted(by_width)})
    return adaptive_search(problems, root, **kw)


def _mean_acc(records: list[dict], op: str, metric: str = "gen_acc") -> float:
    """Mean accuracy on ``op`` over the runs evaluated on it (0.0 when none was: not learned)."""
    return RecordTable.from_dicts(records).mean_accuracy(op, metric, empty=0.0)


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------


def summary_rows(records: list[dict]) -> list[tuple]:
    """(mix, size, width, params, seeds, mean gen_acc per op) rows for printing."""
    rows = []
    groups = RecordTable.from_dicts(records).group("mix", "size", "width")
    for key in sorted(groups):
        table = groups[key]
        cells = " ".join(f"{op}={table.mean_accuracy(op):.3f}" for op in table.ops())
        n_diverged = sum(r.diverged for r in table)
        if n_diverged:  # their accuracies are those of the diverged (NaN) models, in the means
            cells += f"  ({n_diverged} diverged)"
        rows.append((*key, table.records[-1].n_params, len(table), cells))
    return rows


def _print_table(records: list[dict]) -> None:
    print(f"{'mix':<16} {'n':>4} {'width':>6} {'params':>8} {'seeds':>5}  mean gen_acc per op")
    for mix, size, w, p, n, cells in summary_rows(records):
        print(f"{mix:<16} {size:>4} {w:>6} {p:>8} {n:>5}  {cells}")


def interrupt_note(a) -> str:
    """What an interrupted ``sweep`` kept (the one line :func:`jointtask_lib.cli.main` prints)."""
    root = Path(a.results)
    n = len(list((root / "runs").glob("*/record.json"))) if (root / "runs").is_dir() else 0
    m = len(list((root / "groups").glob("*/ckpt.pt"))) if (root / "groups").is_dir() else 0
    return (f"workers stopped; kept {n} finished run record(s) in {a.results} and {m} stack "
            "checkpoint(s); re-run the same command to resume")


def cmd_sweep(a) -> int:
    from .paths import check_input_file, check_output_dir

    check_input_file("sweep", a.sweep, what="a sweep file (params/sweeps/*.yaml)")
    check_output_dir("results", a.results)  # before anything is trained
    timeout = connect_timeout(a.connect_timeout)
    sweep = load_sweep(a.sweep, a.preset, a.seed_offset)
    root = os.path.abspath(a.results)
    if a.scheduler:  # fail within the timeout, before any run is trained here
        _connect(a.scheduler, timeout).close()
    kw = dict(workers=a.workers, scheduler=a.scheduler, local_cluster=a.local_cluster, device=a.device,
              threads=a.threads, force=a.force, progress=not a.no_progress, connect_timeout=timeout)
    if a.adaptive:
        before = {s.key() for s in sweep.specs} - {s.key() for s in pending(sweep, root)}
        print(f"sweep {sweep.name} ({sweep.preset}), adaptive widths within {list(sweep.widths)}: "
              f"{len(sweep)} runs in the full grid, {len(before)} already trained -> {root}")
        results = adaptive_sweep(sweep, root, op=a.adaptive_op, **kw)
        records = list({r["key"]: r for res in results for r in res.records}.values())
        _print_table(records)
        print(f"{'mix':<16} {'op':<5} {'widths trained':<22} result")
        for res in results:
            mix = Record.from_dict(res.records[0]).mix
            print(f"{mix:<16} {res.op:<5} {','.join(map(str, res.widths)):<22} {res.describe()}")
        print(f"adaptive: {len(records)} of the grid's {len(sweep)} runs needed")
        return 0
    todo = _unique(sweep.specs) if a.force else pending(sweep, root)
    print(f"sweep {sweep.name} ({sweep.preset}): {len(sweep)} runs, {len(todo)} to train -> {root}")
    records = run_sweep(sweep, root, **kw)
    _print_table(records)
    return 0


def register_cli(sub) -> None:
    p = sub.add_parser(
        "sweep", help="train every run of a sweep file (resumable)",
        description="Train the runs of a sweep file that have no record yet, stacked by width. "
                    "Records are written atomically as each stack finishes; re-running trains only "
                    "what is missing.")
    p.add_argument("sweep", help="a params/sweeps/*.yaml file")
    p.add_argument("--preset", default="quick", help=" | ".join(PRESETS))
    p.add_argument("--seed-offset", type=int, default=0,
                   help="add this to every grid seed (repeat the sweep on fresh seeds; 0: as written)")
    p.add_argument("--results", default="results", help="results root (records under runs/)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (or LocalCluster workers); default: one per CPU core, at most "
                        "one per stacked job, each with one thread (the fastest measured, "
                        "benchmarks/README.md); 1 on a CUDA device")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scheduler", default=None,
                   help="Dask scheduler address, e.g. tcp://host:8786. Workers write the records "
                        "themselves: the results root (made absolute here) must be on a filesystem "
                        "every worker shares at the same path; a missing record is an error")
    g.add_argument("--local-cluster", action="store_true", help="run on a Dask LocalCluster here")
    p.add_argument("--connect-timeout", type=float, default=None,
                   help=f"seconds to wait for the --scheduler before failing (default "
                        f"$JOINTTASK_CONNECT_TIMEOUT or {CONNECT_TIMEOUT:g})")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process (default 1)")
    p.add_argument("--force", action="store_true",
                   help="retrain runs that already have records; each record is replaced as its run "
                        "finishes (nothing is deleted first, so an interrupted --force keeps every run)")
    p.add_argument("--adaptive", action="store_true",
                   help="adaptive width search: train a few of the grid's widths per mix and refine "
                        "only around the learning transition (not learned anywhere: a bound)")
    p.add_argument("--adaptive-op", default=None,
                   help="operation whose transition --adaptive tracks in mixes that contain it "
                        "(default: each mix's first operation)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_sweep, on_interrupt=interrupt_note)
