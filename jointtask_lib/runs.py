"""Run records on disk: atomic writes, a cache keyed by the config hash, resumable groups.

Layout under a results root (git-ignored)::

    <root>/runs/<key>/record.json   config, key, versions, device, curve, final metrics
    <root>/runs/<key>/model.pt      the model's weights (state dict; load with weights_only=True)
    <root>/groups/<gkey>/ckpt.pt    checkpoint of a stack being trained (deleted when it finishes)

A record is written last and atomically (temporary file + ``os.replace``), so a run directory
either holds a complete record or is treated as unfinished; a killed sweep loses at most the
stacks that were mid-training, which resume from their checkpoints.  :func:`train_or_load` is the
cache every notebook and sweep goes through: it trains only the runs that have no record.

One cache, several kinds of run
-------------------------------
The cache does not care what a run is.  A :class:`RunKind` tells it how to train a stack of runs,
how to write a finished run's files, which fields a complete record has and how to order groups;
a run spec only needs ``key()`` (its hash) and ``group_key()`` (equal for runs that can share a
stack).  Paper A's ListOps models are :data:`LISTOPS` (the default everywhere here); paper B's
in-context models are ``jointtask_lib.paper_b.icl_train.ICL_RUNS``, under their own root
(``<results>/icl``), so each kind's record tables only ever meet records of that kind.

``train_or_load(..., workers=N)`` trains the missing runs in ``N`` single-threaded worker
processes (each group split into ``N`` stacks): on a CPU, where one stack of small models is
compute-bound and two threads in one process are slower than one (``benchmarks/README.md``), two
workers on two cores are the fastest setting.  Results do not depend on it beyond rounding: a
model trained in any stack equals the same model trained alone (tests, tolerance 1e-5).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import __version__
from . import progress as progress_mod
from .checkpoints import (  # noqa: F401  (re-exported: the run cache's storage layer)
    atomic_torch_save, load_checkpoint, resume_stack_checkpoint, save_stack_checkpoint,
)
from .paths import atomic_write, atomic_write_bytes, atomic_write_json  # noqa: F401  (re-exported)
from .train import RunResult, RunSpec, load_model, train_stack
from .validate import check_int


class CorruptRecord(RuntimeError):
    """A run record exists but cannot be read; reported, never silently skipped."""


def run_dir(root, spec_or_key) -> Path:
    key = spec_or_key if isinstance(spec_or_key, str) else spec_or_key.key()
    return Path(root) / "runs" / key


def environment_info(device: str) -> dict:
    import numpy

    return {"jointtask": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "device": device, "threads": torch.get_num_threads()}


# ------------------------------------------------------------------------------------------------
# Kinds of run
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunKind:
    """What the generic cache needs to know about one kind of run (all module-level functions,
    so a kind can be sent to a worker process).

    * ``train_stack(root, specs, *, device, progress, checkpoint_path, checkpoint_every)`` trains
      one stack of runs (resuming from ``checkpoint_path``) and returns one result per spec;
    * ``save_result(root, result, device)`` writes a finished run (record last) and returns the record;
    * ``required``: fields every complete record has (a record without one is corrupt);
    * ``order(spec)``: sort key of a group by its first run (e.g. the width), for a stable order;
    * ``dependencies(spec)``: runs that must be finished before this one starts (pretraining);
    * ``checkpoint_every``: default steps between checkpoints.
    """

    name: str
    train_stack: Callable[..., list]
    save_result: Callable[..., dict]
    required: tuple[str, ...]
    order: Callable[[Any], Any]
    dependencies: Callable[[Any], list]
    checkpoint_every: int = 500


def save_result(root, res: RunResult, device: str) -> dict:
    """Write a finished ListOps run: weights first, then the record (atomically) that marks it done."""
    d = run_dir(root, res.spec)
    atomic_torch_save(res.state, d / "model.pt")
    record = {
        "key": res.spec.key(),
        "name": res.spec.name(),
        "spec": res.spec.to_dict(),
        "n_params": res.spec.n_params(),
        "curve": res.curve,
        "metrics": res.metrics,
        "steps_trained": res.steps_trained,
        "stop_reason": res.stop_reason,
        "train_seconds": res.train_seconds,
        "env": environment_info(device),
    }
    atomic_write_json(record, d / "record.json")
    return record


def _listops_stack(root, specs: list[RunSpec], *, device, progress, checkpoint_path, checkpoint_every):
    init_states = None
    if any(s.init is not None for s in specs):  # pretrained runs: start from their weights
        init_states = [None if s.init is None else
                       torch.load(run_dir(root, s.init) / "model.pt", map_location="cpu", weights_only=True)
                       for s in specs]
    return train_stack(specs, device=device, progress=progress, checkpoint_path=checkpoint_path,
                       checkpoint_every=checkpoint_every, init_states=init_states)


def _listops_order(spec: RunSpec):
    return spec.arch.n_embed


def _listops_dependencies(spec: RunSpec) -> list:
    return [] if spec.init is None else [spec.init]


#: Paper A's ListOps / permutation models (:mod:`jointtask_lib.train`).
LISTOPS = RunKind(name="listops", train_stack=_listops_stack, save_result=save_result, required=("metrics",),
                  order=_listops_order, dependencies=_listops_dependencies, checkpoint_every=500)


# ------------------------------------------------------------------------------------------------
# The cache
# ------------------------------------------------------------------------------------------------


def load_record(root, spec_or_key, *, kind: RunKind = LISTOPS) -> dict | None:
    """The record of a finished run, ``None`` if unfinished; :class:`CorruptRecord` if unreadable
    (not JSON, another run's key, or missing a field ``kind.required`` names)."""
    p = run_dir(root, spec_or_key) / "record.json"
    if not p.exists():
        return None
    try:
        rec = json.loads(p.read_text())
        key = spec_or_key if isinstance(spec_or_key, str) else spec_or_key.key()
        if not isinstance(rec, dict) or rec.get("key") != key:
            raise ValueError("key mismatch")
        missing = [f for f in kind.required if f not in rec]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        return rec
    except (ValueError, json.JSONDecodeError) as exc:
        raise CorruptRecord(f"corrupt run record {p}: {exc}; delete the directory to retrain") from exc


def load_weights(root, spec: RunSpec, device: str = "cpu"):
    """The trained model of a finished run (weights loaded with ``weights_only=True``)."""
    state = torch.load(run_dir(root, spec) / "model.pt", map_location="cpu", weights_only=True)
    return load_model(spec, state, device)


def group_specs(specs: list, *, order: Callable[[Any], Any] = _listops_order) -> list[list]:
    """Split runs into stackable groups (equal ``group_key()``), in a deterministic order."""
    groups: dict[str, list] = {}
    for s in specs:
        groups.setdefault(s.group_key(), []).append(s)
    return [groups[k] for k in sorted(groups, key=lambda k: (order(groups[k][0]), k))]


def group_checkpoint(root, specs: list) -> Path:
    gkey = hashlib.sha256("|".join(s.key() for s in specs).encode()).hexdigest()[:16]
    return Path(root) / "groups" / gkey / "ckpt.pt"


def _chunks(specs: list, n: int | None) -> list[list]:
    return [specs] if not n else [specs[i:i + n] for i in range(0, len(specs), n)]


def train_group(root, specs: list, *, device: str = "auto", progress: bool = False,
                checkpoint_every: int | None = None, max_stack: int | None = None,
                kind: RunKind = LISTOPS) -> list[dict]:
    """Train one group of runs (stacks of at most ``max_stack``, each resuming from its
    checkpoint) and write their records; their ``dependencies`` first, through the cache."""
    from .train import resolve_device

    dev = str(resolve_device(device))
    deps = [d for s in specs for d in kind.dependencies(s)]
    if deps:
        train_or_load(root, deps, device=device, progress=progress, max_stack=max_stack, kind=kind)
    every = kind.checkpoint_every if checkpoint_every is None else checkpoint_every
    out = []
    for chunk in _chunks(specs, max_stack):
        ck = group_checkpoint(root, chunk)
        for r in kind.train_stack(root, chunk, device=dev, progress=progress, checkpoint_path=ck,
                                  checkpoint_every=every):
            out.append(kind.save_result(root, r, dev))
        if ck.exists():
            ck.unlink()
    return out


def split_for_workers(groups: list[list], workers: int) -> list[list]:
    """Jobs for ``workers`` processes: each group cut into ``min(workers, len(group))`` stacks of
    near-equal size (contiguous, in order), so every worker gets an equal share of each group."""
    check_int("workers", workers, lo=1)
    jobs = []
    for g in groups:
        n = min(workers, len(g))
        size, extra = divmod(len(g), n)
        start = 0
        for i in range(n):
            stop = start + size + (i < extra)
            jobs.append(g[start:stop])
            start = stop
    return jobs


def _worker_job(root, specs, device, threads, checkpoint_every, max_stack, kind) -> list[dict]:
    """One job in a worker process: ``threads`` torch threads, train, write, return the records."""
    torch.set_num_threads(threads)
    return train_group(root, specs, device=device, progress=False, checkpoint_every=checkpoint_every,
                       max_stack=max_stack, kind=kind)


def train_or_load(root, specs: list, *, device: str = "auto", progress: bool = False, force: bool = False,
                  max_stack: int | None = None, kind: RunKind = LISTOPS, workers: int = 1,
                  worker_threads: int = 1, checkpoint_every: int | None = None) -> list[dict]:
    """Records for ``specs`` (in order): finished runs are read, missing ones trained (stacked).

    ``workers > 1`` trains in that many spawned processes with ``worker_threads`` torch threads
    each (see the module docstring); dependencies are trained first, in this process.
    """
    check_int("workers", workers, lo=1)
    check_int("worker_threads", worker_threads, lo=1)
    records: dict[str, dict] = {}
    todo = []
    for s in specs:
        rec = None if force else load_record(root, s, kind=kind)
        if rec is None:
            todo.append(s)
        else:
            records[s.key()] = rec
    unique = list({s.key(): s for s in todo}.values())
    groups = group_specs(unique, order=kind.order)
    if workers == 1 or len(unique) < 2:
        # One bar of runs done / total; per-step bars too in a terminal, not in a notebook.
        step_bars = progress and not progress_mod.text_mode()
        for group in progress_mod.progress_iter(groups, progress, "runs", len(unique), weight=len):
            for rec in train_group(root, group, device=device, progress=step_bars, max_stack=max_stack,
                                   checkpoint_every=checkpoint_every, kind=kind):
                records[rec["key"]] = rec
        return [records[s.key()] for s in specs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    deps = [d for s in unique for d in kind.dependencies(s)]
    if deps:  # before the pool, so no two workers train the same dependency
        train_or_load(root, deps, device=device, progress=progress, max_stack=max_stack, kind=kind)
    jobs = split_for_workers(groups, workers)
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=mp.get_context("spawn")) as ex:
        futs = [ex.submit(_worker_job, str(root), job, device, worker_threads, checkpoint_every, max_stack, kind)
                for job in jobs]
        runs = {f: len(job) for f, job in zip(futs, jobs)}
        for f in progress_mod.progress_iter(as_completed(futs), progress, "runs", sum(runs.values()),
                                            weight=runs.get):
            for rec in f.result():
                records[rec["key"]] = rec
    return [records[s.key()] for s in specs]


def load_records(root, *, strict: bool = True, kind: RunKind = LISTOPS) -> list[dict]:
    """Every finished record under ``root/runs`` (for tables).  Corrupt ones raise (``strict``)
    or are returned as ``{"key": ..., "error": ...}`` entries, never silently dropped."""
    out = []
    base = Path(root) / "runs"
    if not base.exists():
        return out
    for d in sorted(base.iterdir()):
        if not (d / "record.json").exists():
            continue
        try:
            out.append(load_record(root, d.name, kind=kind))
        except CorruptRecord as exc:
            if strict:
                raise
            out.append({"key": d.name, "error": str(exc)})
    return out


def records_table(records: list[dict]) -> list[dict]:
    """Flat rows (one per run and op) for analysis: task, width, params, seed, accuracies.

    A corrupt record (``load_records(strict=False)``) becomes one row ``{"key", "error"}``, so
    a table shows it instead of silently losing the run.
    """
    rows = []
    for r in records:
        if "error" in r:
            rows.append({"key": r["key"], "error": r["error"]})
            continue
        s = r["spec"]
        base = {
            "key": r["key"], "ops": "+".join(s["task"]["ops"]), "family": s["task"]["family"],
            "modulus": s["task"]["modulus"], "perm_k": s["task"]["perm_k"],
            "n_embed": s["arch"]["n_embed"], "n_params": r["n_params"], "seed": s["seed"],
            "steps_trained": r["steps_trained"], "stop_reason": r["stop_reason"],
        }
        for op, m in r["metrics"].get("per_op", {}).items():
            rows.append({**base, "op": op, "gen_acc": m.get("gen_acc"), "tf_acc": m.get("tf_acc"),
                         "seq_acc": m.get("seq_acc"), "n": m.get("n")})
    return rows
