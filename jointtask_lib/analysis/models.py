"""Picking trained runs out of a sweep and loading them for analysis (notebooks 06-08).

The analysis notebooks compare *conditions* — for example "ADD alone" against "ADD+MAX+MED" —
at one model width, over the seeds of a sweep.  The helpers here:

* :func:`specs_for` — the runs of one task mix at one width (one per seed, sorted by seed);
* :func:`matched_width` — the width at which the conditions are compared (the smallest width at
  which *every* condition has learned the target operation, so that "how does the model do it?"
  is asked of models that do it; the largest width if there is none);
* :func:`cached_records` — records of runs that are already trained, *without* training the
  missing ones (for optional columns such as the transfer runs of notebook 04);
* :func:`load_stack` — trained runs of one group as one stacked model (one forward pass for all);
* :func:`select_op` — the examples of one operation of a mixed dataset;
* :func:`value_embeddings` — the rows of the token embedding ``wte`` for the value tokens.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from ..data import TaskData
from ..model import GPT
from ..runs import load_record, run_dir
from ..train import RunSpec, stack_models

__all__ = ["specs_for", "matched_width", "cached_records", "load_stack", "select_op", "value_embeddings"]


def specs_for(specs, *, ops, width: int, size: int | None = None, init: bool = False) -> list[RunSpec]:
    """The runs of ``specs`` (a list or a :class:`~jointtask_lib.sweep.Sweep`) with task mix
    ``ops`` (in order), width ``width`` and, if given, modulus / k ``size``; sorted by seed.

    ``init=False`` keeps only runs trained from scratch, ``init=True`` only pretrained ones.
    """
    specs = getattr(specs, "specs", specs)
    out = []
    for s in specs:
        if tuple(s.task.ops) != tuple(ops) or s.arch.n_embed != width:
            continue
        if size is not None and (s.task.modulus if s.task.family == "listops" else s.task.perm_k) != size:
            continue
        if (s.init is not None) != init:
            continue
        out.append(s)
    return sorted(out, key=lambda s: s.seed)


def _mean_acc_by_width(records, ops, op, size=None, metric="gen_acc") -> dict[int, float]:
    by = defaultdict(list)
    for r in records:
        if r is None or "error" in r or tuple(r["spec"]["task"]["ops"]) != tuple(ops):
            continue
        t = r["spec"]["task"]
        if size is not None and t.get("modulus" if t.get("family", "listops") == "listops" else "perm_k") != size:
            continue
        per = r["metrics"].get("per_op", {})
        if op in per:
            by[r["spec"]["arch"]["n_embed"]].append(per[op][metric])
    return {w: float(np.mean(v)) for w, v in by.items()}


def matched_width(records, conditions, op: str, widths, *, size: int | None = None,
                  min_acc: float = 0.8) -> tuple[int, str]:
    """The width at which to compare ``conditions`` (task mixes) on operation ``op`` (at modulus /
    k ``size`` if given).

    The smallest of ``widths`` at which every condition's mean (over seeds) ``gen_acc`` on ``op``
    is at least ``min_acc``; if no width qualifies, the largest width.  Returns ``(width, why)``.
    """
    widths = sorted(int(w) for w in widths)
    if not widths:
        raise ValueError("'widths' must name at least one width")
    accs = [_mean_acc_by_width(records, c, op, size) for c in conditions]
    for w in widths:
        if all(a.get(w, -1.0) >= min_acc for a in accs):
            return w, f"smallest width at which every condition reaches {min_acc:.0%} on {op}"
    return widths[-1], f"no width has every condition at {min_acc:.0%} on {op}: the largest width"


def cached_records(specs, root) -> list[dict | None]:
    """The records of ``specs`` that are already trained (``None`` for the others); trains nothing."""
    return [load_record(root, s) for s in specs]


def load_stack(root, specs: list[RunSpec], device: str = "cpu") -> GPT:
    """Trained runs (one group: same architecture, recipe and vocabulary) as one stacked model."""
    if not specs:
        raise ValueError("'specs' must hold at least one run")
    states = [torch.load(run_dir(root, s) / "model.pt", map_location="cpu", weights_only=True) for s in specs]
    return stack_models(list(specs), states, device)


def select_op(data: TaskData, op: str) -> TaskData:
    """The examples of operation ``op`` in ``data`` (a mixed dataset with one op per example)."""
    if op not in data.task.ops:
        raise ValueError(f"'op' must be one of the dataset's operations {list(data.task.ops)}; got {op!r}")
    idx = torch.nonzero(data.task_id == data.task.ops.index(op)).flatten()
    if len(data.task.ops) == 1 and data.task.mixing != "expression":
        idx = torch.arange(len(data))
    rows = idx.tolist()
    return TaskData(
        task=data.task, vocab=data.vocab, tokens=data.tokens[idx], lengths=data.lengths[idx],
        prompt_len=data.prompt_len[idx], answer=data.answer[idx], task_id=data.task_id[idx],
        exprs=[data.exprs[i] for i in rows],
    )


def value_embeddings(model: GPT, spec: RunSpec) -> np.ndarray:
    """``[M, n, d]``: the embedding rows of the value tokens ``0..n-1`` (in value order) of every
    model of the stack (``Vocab.value_ids``)."""
    ids = spec.vocab().value_ids(spec.task)
    return model.wte.detach()[:, ids, :].cpu().numpy().astype(np.float64)
