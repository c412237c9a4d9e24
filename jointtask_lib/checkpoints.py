"""Storage of torch objects, on the bottom floor beside :mod:`jointtask_lib.paths`: atomic
``torch.save`` and the checkpoints of a stack being trained (written by
:meth:`jointtask_lib.train.StackEngine.save`, restored by :meth:`~jointtask_lib.train.StackEngine.resume`).

Every trainer (paper A's :func:`jointtask_lib.train.train_stack`, paper B's
:func:`jointtask_lib.paper_b.icl_train.train_icl_stack`) and the run cache (:mod:`jointtask_lib.runs`)
write through here, so none of them imports another for its storage.  Checkpoints are read back
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from .paths import atomic_write_bytes


def atomic_torch_save(obj, path) -> None:
    """``torch.save(obj)`` to ``path`` atomically (a reader sees the old file or the new one)."""
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


def save_stack_checkpoint(path, keys: list[str], step: int, model, opt, gens, **extra) -> None:
    """Atomically save a stack mid-training: parameters, optimiser, random streams and ``extra``.

    ``opt`` is a :class:`~jointtask_lib.train.StackedAdamW` (``state()``/``load()``); ``gens`` the
    stack's ``torch.Generator`` objects; ``extra`` anything else the trainer needs to resume
    (tensors, numbers, strings: ``torch.load(weights_only=True)`` must read it back).  Read back by
    :meth:`jointtask_lib.train.StackEngine.resume` (through :func:`load_checkpoint`), the one place
    a stack is restored.
    """
    atomic_torch_save({"keys": list(keys), "step": int(step), "model": model.state_dict(), "opt": opt.state(),
                       "gens": [g.get_state() for g in gens], **extra}, path)
