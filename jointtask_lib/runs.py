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

import contextvars
import errno
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
from .checkpoints import atomic_torch_save
from .paths import atomic_write_json
from .records import Record
from .train import RunResult, RunSpec, load_model, train_stack
from .workers import worker_pool
from .validate import check_int


class CorruptRecord(RuntimeError):
    """A run record exists but cannot be read or fails its checks (not JSON, a key that is not the
    hash of its spec, content that does not match its checksum, a missing field); reported by
    path, never silently skipped and never used."""


class StaleRecord(CorruptRecord):
    """A record written before records carried a checksum: it cannot be verified, so it is not
    used; retrain it (``--force``)."""


def record_checksum(record: dict) -> str:
    """SHA-256 of a record's content (every field but ``checksum``, canonical JSON)."""
    body = {k: v for k, v in record.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=True).encode()).hexdigest()


def write_record(record: dict, path) -> dict:
    """Atomically write a run record with its ``checksum`` (filled in here; returns the record)."""
    # Through JSON first (tuples become lists), so the checksum is over what a reader will see.
    record = json.loads(json.dumps({k: v for k, v in record.items() if k != "checksum"}))
    record["checksum"] = record_checksum(record)
    atomic_write_json(record, path)
    return record


def run_dir(root, spec_or_key) -> Path:
    key = spec_or_key if isinstance(spec_or_key, str) else spec_or_key.key()
    return Path(root) / "runs" / key


def environment_info(device: str) -> dict:
    """Provenance of a run: versions, device, torch threads, the machine, and the stack it was
    trained in (``stack``: how many models and which keys; set by :func:`train_group`).  Models
    trained in different stacks agree to float rounding only (README, "Reliability")."""
    import numpy

    info = {"jointtask": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "device": device, "threads": torch.get_num_threads(),
            "machine": platform.machine(), "platform": platform.platform(), "host": platform.node()}
    stack = _STACK.get()
    if stack is not None:
        info["stack"] = {"size": len(stack), "keys": list(stack)}
    return info


#: Keys of the stack being trained in this context (provenance for :func:`environment_info`).
_STACK: contextvars.ContextVar = contextvars.ContextVar("jointtask_stack", default=None)


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
    * ``checkpoint_every``: default steps between checkpoints;
    * ``spec_key(spec_dict)``: the key of a stored spec (``None``: not checked), so a record whose
      spec was edited is caught even when its checksum was recomputed;
    * ``checksummed``: records carry a ``checksum`` (:func:`write_record`) that loading verifies;
      one without is a :class:`StaleRecord`.
    """

    name: str
    train_stack: Callable[..., list]
    save_result: Callable[..., dict]
    required: tuple[str, ...]
    order: Callable[[Any], Any]
    dependencies: Callable[[Any], list]
    checkpoint_every: int = 500
    spec_key: Callable[[dict], str] | None = None
    checksummed: bool = True


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
    return write_record(record, d / "record.json")


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


def _listops_spec_key(d: dict) -> str:
    return RunSpec.from_dict(d).key()


#: Paper A's ListOps / permutation models (:mod:`jointtask_lib.train`).
LISTOPS = RunKind(name="listops", train_stack=_listops_stack, save_result=save_result,
                  required=("spec", "name", "n_params", "metrics", "steps_trained", "stop_reason"),
                  order=_listops_order, dependencies=_listops_dependencies, checkpoint_every=500,
                  spec_key=_listops_spec_key)


# ------------------------------------------------------------------------------------------------
# The cache
# ------------------------------------------------------------------------------------------------


def load_record(root, spec_or_key, *, kind: RunKind = LISTOPS) -> dict | None:
    """The record of a finished run, ``None`` if unfinished; :class:`CorruptRecord` if it fails its
    checks: not a JSON object, another run's key, a stored key that is not the hash of the stored
    spec (``kind.spec_key``), content that does not match its checksum (edited metrics), a field
    ``kind.required`` names missing or null.  A record without a checksum is a
    :class:`StaleRecord`.  Every message names the file and says how to retrain (``--force``)."""
    p = run_dir(root, spec_or_key) / "record.json"
    if not p.exists():
        return None
    key = spec_or_key if isinstance(spec_or_key, str) else spec_or_key.key()
    fix = "retrain it with --force (or delete its directory)"
    try:
        rec = json.loads(p.read_text())
        if not isinstance(rec, dict):
            raise ValueError("not a JSON object")
        if rec.get("key") != key:
            raise ValueError(f"key mismatch (stored {rec.get('key')!r}, directory {key!r})")
        if kind.checksummed:
            if "checksum" not in rec:
                raise StaleRecord(f"stale run record {p}: written before records carried a checksum, so it "
                                  f"cannot be verified; {fix}")
            if rec["checksum"] != record_checksum(rec):
                raise ValueError("content does not match its checksum (edited after it was written)")
        missing = [f for f in kind.required if rec.get(f) is None]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        if kind.spec_key is not None:
            if not isinstance(rec.get("spec"), dict):
                raise ValueError("'spec' is not a mapping")
            try:
                stored = kind.spec_key(rec["spec"])
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise ValueError(f"invalid spec ({exc})") from None
            if stored != key:
                raise ValueError(f"key mismatch: the stored spec hashes to {stored}, not {key}")
        return rec
    except StaleRecord:
        raise
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise CorruptRecord(f"corrupt run record {p}: {exc}; {fix}") from None


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


class RunLock:
    """An exclusive lock on one run (``runs/<key>/.lock``, ``fcntl.flock``), held while it trains.

    The lock file says who holds it (``host pid``).  The operating system releases the lock when
    its holder exits, however it exits (SIGKILL included), so a lock is never stale; two processes
    sharing a results folder never train one run twice: the second waits (or skips it, see
    :func:`train_group`).  Local filesystems only (``flock`` over NFS depends on the mount).
    """

    def __init__(self, root, key: str):
        self.path = run_dir(root, key) / ".lock"
        self.fd: int | None = None

    def acquire(self, block: bool = False) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{platform.node()} {os.getpid()}\n".encode())
        self.fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def _train_chunk(root, chunk: list, *, kind: RunKind, dev: str, progress: bool, every: int) -> list[dict]:
    ck = group_checkpoint(root, chunk)
    token = _STACK.set([s.key() for s in chunk])
    try:
        out = [kind.save_result(root, r, dev)
               for r in kind.train_stack(root, chunk, device=dev, progress=progress, checkpoint_path=ck,
                                         checkpoint_every=every)]
    finally:
        _STACK.reset(token)
    if ck.exists():
        ck.unlink()
    return out


def train_group(root, specs: list, *, device: str = "auto", progress: bool = False,
                checkpoint_every: int | None = None, max_stack: int | None = None,
                kind: RunKind = LISTOPS, force: bool = False) -> list[dict]:
    """Train one group of runs (stacks of at most ``max_stack``, each resuming from its
    checkpoint) and write their records; their ``dependencies`` first, through the cache.

    Each run is locked (:class:`RunLock`) while it trains.  A run locked by another process (a
    second sweep into the same results folder) is not trained here: the others are trained
    first, then this waits for that process and takes its record (or trains the run itself if
    that process died before finishing it).  Unless ``force``, a run whose record appeared
    meanwhile is read, not trained again.
    """
    from .train import resolve_device

    dev = str(resolve_device(device))
    deps = [d for s in specs for d in kind.dependencies(s)]
    if deps:
        train_or_load(root, deps, device=device, progress=progress, max_stack=max_stack, kind=kind)
    every = kind.checkpoint_every if checkpoint_every is None else checkpoint_every
    locks = {s.key(): RunLock(root, s.key()) for s in specs}
    out: list[dict] = []
    try:
        mine, busy = [], []
        for s in specs:
            (mine if locks[s.key()].acquire() else busy).append(s)
        todo = []
        for s in mine:
            rec = None if force else load_record(root, s, kind=kind)  # finished meanwhile?
            if rec is None:
                todo.append(s)
            else:
                out.append(rec)
        for chunk in _chunks(todo, max_stack):
            out += _train_chunk(root, chunk, kind=kind, dev=dev, progress=progress, every=every)
        for s in mine:  # released before waiting for anything, so two processes never deadlock
            locks[s.key()].release()
        # Runs another process was training: wait for it (holding no other lock), read its
        # record, or train the run here if that process died before finishing it.
        for s in sorted(busy, key=lambda s: s.key()):
            locks[s.key()].acquire(block=True)
            try:
                rec = load_record(root, s, kind=kind)
                out += [rec] if rec is not None else _train_chunk(root, [s], kind=kind, dev=dev,
                                                                  progress=progress, every=every)
            finally:
                locks[s.key()].release()
    finally:
        for lock in locks.values():
            lock.release()
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


def _worker_job(root, specs, device, threads, checkpoint_every, max_stack, kind, force=False) -> list[dict]:
    """One job in a worker process: ``threads`` torch threads, train, write, return the records."""
    torch.set_num_threads(threads)
    return train_group(root, specs, device=device, progress=False, checkpoint_every=checkpoint_every,
                       max_stack=max_stack, kind=kind, force=force)


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
                                   checkpoint_every=checkpoint_every, kind=kind, force=force):
                records[rec["key"]] = rec
        return [records[s.key()] for s in specs]
    from concurrent.futures import as_completed

    deps = [d for s in unique for d in kind.dependencies(s)]
    if deps:  # before the pool, so no two workers train the same dependency
        train_or_load(root, deps, device=device, progress=progress, max_stack=max_stack, kind=kind)
    jobs = split_for_workers(groups, workers)
    with worker_pool(min(workers, len(jobs))) as ex:
        futs = [ex.submit(_worker_job, str(root), job, device, worker_threads, checkpoint_every, max_stack, kind,
                          force) for job in jobs]
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
    """Flat rows (one per run and op) for analysis: task, width, params, seed, accuracies
    (:meth:`jointtask_lib.records.Record.rows`).

    A corrupt record (``load_records(strict=False)``) becomes one row ``{"key", "error"}``, so
    a table shows it instead of silently losing the run.
    """
    rows = []
    for r in records:
        rows += [{"key": r["key"], "error": r["error"]}] if "error" in r else Record.from_dict(r).rows()
    return rows
