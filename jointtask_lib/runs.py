"""Run records on disk: atomic writes, a cache keyed by the config hash, resumable groups.

Layout under a results root (git-ignored)::

    <root>/runs/<key>/record.json   config, key, versions, device, curve, final metrics
    <root>/runs/<key>/model.pt      the model's weights (state dict; load with weights_only=True)
    <root>/groups/<gkey>/ckpt.pt    checkpoint of a stack being trained (deleted when it finishes)

A record is written last and atomically (temporary file + ``os.replace``), so a run directory
either holds a complete record or is treated as unfinished; a killed sweep loses at most the
stacks that were mid-training, which resume from their checkpoints.  :func:`train_or_load` is the
cache every notebook and sweep goes through: it trains only the runs that have no record.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path

import torch

from . import __version__
from .train import RunResult, RunSpec, load_model, train_stack


class CorruptRecord(RuntimeError):
    """A run record exists but cannot be read; reported, never silently skipped."""


def atomic_write_bytes(data: bytes, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(obj, path) -> None:
    atomic_write_bytes((json.dumps(obj, indent=1, sort_keys=True) + "\n").encode(), path)


def atomic_torch_save(obj, path) -> None:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(buf.getvalue(), path)


def load_checkpoint(path, keys: list[str]) -> dict | None:
    """The checkpoint at ``path`` if it belongs to exactly these runs, else ``None``."""
    path = Path(path)
    if not path.exists():
        return None
    ck = torch.load(path, map_location="cpu", weights_only=True)
    return ck if list(ck.get("keys", [])) == list(keys) else None


def run_dir(root, spec_or_key) -> Path:
    key = spec_or_key if isinstance(spec_or_key, str) else spec_or_key.key()
    return Path(root) / "runs" / key


def environment_info(device: str) -> dict:
    import numpy

    return {"jointtask": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "device": device, "threads": torch.get_num_threads()}


def save_result(root, res: RunResult, device: str) -> dict:
    """Write a finished run: weights first, then the record (atomically) that marks it done."""
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


def load_record(root, spec_or_key) -> dict | None:
    """The record of a finished run, ``None`` if unfinished; :class:`CorruptRecord` if unreadable."""
    p = run_dir(root, spec_or_key) / "record.json"
    if not p.exists():
        return None
    try:
        rec = json.loads(p.read_text())
        key = spec_or_key if isinstance(spec_or_key, str) else spec_or_key.key()
        if rec.get("key") != key or "metrics" not in rec:
            raise ValueError("key mismatch or missing metrics")
        return rec
    except (ValueError, json.JSONDecodeError) as exc:
        raise CorruptRecord(f"corrupt run record {p}: {exc}; delete the directory to retrain") from exc


def load_weights(root, spec: RunSpec, device: str = "cpu"):
    """The trained model of a finished run (weights loaded with ``weights_only=True``)."""
    state = torch.load(run_dir(root, spec) / "model.pt", map_location="cpu", weights_only=True)
    return load_model(spec, state, device)


def group_specs(specs: list[RunSpec]) -> list[list[RunSpec]]:
    """Split runs into stackable groups (same width and recipe), in a deterministic order."""
    groups: dict[str, list[RunSpec]] = {}
    for s in specs:
        groups.setdefault(s.group_key(), []).append(s)
    return [groups[k] for k in sorted(groups, key=lambda k: (groups[k][0].arch.n_embed, k))]


def group_checkpoint(root, specs: list[RunSpec]) -> Path:
    gkey = hashlib.sha256("|".join(s.key() for s in specs).encode()).hexdigest()[:16]
    return Path(root) / "groups" / gkey / "ckpt.pt"


def train_group(root, specs: list[RunSpec], *, device: str = "auto", progress: bool = False,
                checkpoint_every: int = 500, max_stack: int | None = None) -> list[dict]:
    """Train one group of runs (resuming from its checkpoint) and write their records."""
    from .train import resolve_device

    dev = str(resolve_device(device))
    out = []
    chunks = [specs] if not max_stack else [specs[i:i + max_stack] for i in range(0, len(specs), max_stack)]
    inits = [s.init for s in specs if s.init is not None]
    if inits:  # pretrained runs first (through the cache), then load their weights
        train_or_load(root, inits, device=device, progress=progress, max_stack=max_stack)
    for chunk in chunks:
        ck = group_checkpoint(root, chunk)
        init_states = None
        if any(s.init is not None for s in chunk):
            init_states = [None if s.init is None else
                           torch.load(run_dir(root, s.init) / "model.pt", map_location="cpu", weights_only=True)
                           for s in chunk]
        results = train_stack(chunk, device=dev, progress=progress, checkpoint_path=ck,
                              checkpoint_every=checkpoint_every, init_states=init_states)
        for r in results:
            out.append(save_result(root, r, dev))
        if ck.exists():
            ck.unlink()
    return out


def train_or_load(root, specs: list[RunSpec], *, device: str = "auto", progress: bool = False,
                  force: bool = False, max_stack: int | None = None) -> list[dict]:
    """Records for ``specs`` (in order): finished runs are read, missing ones trained (stacked)."""
    records: dict[str, dict] = {}
    todo = []
    for s in specs:
        rec = None if force else load_record(root, s)
        if rec is None:
            todo.append(s)
        else:
            records[s.key()] = rec
    unique = list({s.key(): s for s in todo}.values())
    for group in group_specs(unique):
        for rec in train_group(root, group, device=device, progress=progress, max_stack=max_stack):
            records[rec["key"]] = rec
    return [records[s.key()] for s in specs]


def load_records(root, *, strict: bool = True) -> list[dict]:
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
            out.append(load_record(root, d.name))
        except CorruptRecord as exc:
            if strict:
                raise
            out.append({"key": d.name, "error": str(exc)})
    return out


def records_table(records: list[dict]) -> list[dict]:
    """Flat rows (one per run and op) for analysis: task, width, params, seed, accuracies."""
    rows = []
    for r in records:
        if "error" in r:
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
