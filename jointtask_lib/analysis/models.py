"""Picking trained runs out of a sweep and loading them for analysis (notebooks 06-08).

The analysis notebooks compare *conditions* — for example "ADD alone" against "ADD+MAX+MED" —
at one model width and one modulus, over the seeds of a sweep.  The helpers here:

* :func:`load_analysis_sweep` — a sweep file, with the compared task mixes and width checked;
* :func:`specs_for` — the runs of one task mix at one width (one per seed, sorted by seed);
* :func:`matched_width` — the width at which the conditions are compared: the smallest width at
  which *every* condition has learned the target operation, so that "how does the model do it?"
  is asked of models that do it.  If there is none it falls back to the largest width and says
  so (``learned=False``): a verdict about *how* a model adds is then inconclusive by rule;
* :func:`load_conditions` — all of the above for one modulus: the width, whether the models
  learned the target, the runs and their accuracies per condition;
* :func:`cached_records` — records of runs that are already trained, *without* training the
  missing ones (for optional columns such as the transfer runs of notebook 04);
* :func:`load_stack` — trained runs of one group as one stacked model (one forward pass for all);
* :func:`condition_stack` — every run of the compared conditions as one stacked model;
* :func:`split_by_label` — a per-model result of a stack (array or dict of arrays) split by
  condition;
* :func:`shared_examples` — expressions in every model's test set (to show to all of them);
* :func:`select_op` — the examples of one operation of a mixed dataset;
* :func:`value_embeddings` — the rows of the token embedding ``wte`` for the value tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..data import TaskData
from ..model import GPT
from ..records import LEVEL, Record, RecordTable, learned_bar
from ..runs import load_record, run_dir
from ..train import RunSpec, stack_models

__all__ = ["specs_for", "WidthChoice", "matched_width", "learned_at", "Conditions", "load_analysis_sweep",
           "load_conditions", "cached_records", "load_stack", "condition_stack", "split_by_label", "shared_examples",
           "select_op", "value_embeddings"]


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
        if size is not None and _spec_size(s) != size:
            continue
        if (s.init is not None) != init:
            continue
        out.append(s)
    return sorted(out, key=lambda s: s.seed)


def _spec_size(s: RunSpec) -> int:
    return s.task.size


def _mean_acc_by_width(records, ops, op, size=None, metric="gen_acc") -> dict[int, float]:
    return RecordTable.from_dicts(records).select(ops=ops, size=size).mean_by_width(op, metric=metric)


class WidthChoice(NamedTuple):
    """The compared width, why it was chosen, and whether every condition learned the target
    there (mean ``gen_acc`` over seeds at least ``min_acc``)."""

    width: int
    why: str
    learned: bool


def learned_at(records, conditions, op: str, width: int, *, size: int | None = None, min_acc: float = LEVEL) -> bool:
    """Whether every condition's mean (over seeds) ``gen_acc`` on ``op`` at ``width`` is at least
    ``min_acc`` (a condition without runs at that width has not learned it)."""
    bar = learned_bar(min_acc)  # the absolute bar: min_acc x 1.0
    return all(bar.learned(_mean_acc_by_width(records, c, op, size).get(int(width))) for c in conditions)


def matched_width(records, conditions, op: str, widths, *, size: int | None = None,
                  min_acc: float = LEVEL) -> WidthChoice:
    """The width at which to compare ``conditions`` (task mixes) on operation ``op`` (at modulus /
    k ``size`` if given).

    The smallest of ``widths`` at which every condition's mean (over seeds) ``gen_acc`` on ``op``
    is at least ``min_acc`` (``learned=True``).  If no width qualifies: the largest width, with
    ``learned=False`` — the models there have *not* learned ``op``, and any claim about how they
    compute it must be reported as inconclusive.
    """
    widths = sorted(int(w) for w in widths)
    if not widths:
        raise ValueError("'widths' must name at least one width")
    for w in widths:
        if learned_at(records, conditions, op, w, size=size, min_acc=min_acc):
            return WidthChoice(w, f"smallest width at which every condition reaches {min_acc:.0%} on {op}", True)
    return WidthChoice(widths[-1], f"no width has every condition at {min_acc:.0%} on {op}: the largest width, "
                                   "where the models have NOT learned it", False)


def load_analysis_sweep(name: str, preset: str, mixes: Mapping[str, Sequence[str]], *, width: int = 0,
                        seed_offset: int = 0):
    """The sweep ``params/sweeps/<name>.yaml`` at ``preset``, after checking that every compared
    task mix (``mixes[parameter name]``) is one of its mixes and that ``width`` is ``0`` or one of
    its widths (``ValueError`` naming the parameter and the allowed values otherwise).
    ``seed_offset`` shifts the sweep's seeds (:func:`jointtask_lib.sweep.load_sweep`)."""
    from .. import paths
    from ..experiments import fmt_mix
    from ..sweep import load_sweep

    sw = load_sweep(paths.repo_root() / "params" / "sweeps" / f"{name}.yaml", preset, seed_offset)
    for field, mix in mixes.items():
        if tuple(mix) not in sw.mixes:
            raise ValueError(f"'{field}' = {list(mix)} must be a mix of sweep {name}; its mixes are "
                             f"{[fmt_mix(m) for m in sw.mixes]}")
    if width and width not in sw.widths:
        raise ValueError(f"'width' must be 0 or one of the sweep's widths {list(sw.widths)}; got {width}")
    return sw


@dataclass(frozen=True)
class Conditions:
    """Task mixes compared at one width and one modulus (:func:`load_conditions`)."""

    size: int
    target: str
    width: int
    why: str
    learned: bool
    min_acc: float
    specs: dict  # label -> [RunSpec], sorted by seed
    accs: dict   # label -> [gen_acc on target], per seed, in the order of specs

    @property
    def n_seeds(self) -> dict:
        return {c: len(s) for c, s in self.specs.items()}

    def learned_by(self, *labels: str) -> bool:
        """Whether each named condition's mean accuracy on the target reaches ``min_acc``."""
        return all(learned_bar(self.min_acc).learned(float(np.mean(self.accs[c]))) for c in labels)

    def with_condition(self, label: str, specs: Sequence[RunSpec], accs: Sequence[float]) -> "Conditions":
        """A copy with one more condition (e.g. transferred runs trained outside the sweep).
        ``learned`` is unchanged: it refers to the sweep's conditions that chose the width."""
        from dataclasses import replace

        if len(specs) != len(accs):
            raise ValueError(f"'accs' must hold one accuracy per run ({len(specs)}); got {len(accs)}")
        return replace(self, specs={**self.specs, label: list(specs)},
                       accs={**self.accs, label: [float(a) for a in accs]})

    def describe(self) -> str:
        """A few lines: the width and why, and every condition's accuracy per seed."""
        from ..experiments import fmt_mix

        lines = [f"mod {self.size}: width {self.width} ({self.why})"]
        for label, specs in self.specs.items():
            acc = ", ".join(f"{a:.2f}" for a in self.accs[label])
            lines.append(f"  {label:>12}: {fmt_mix(specs[0].task.ops)}, {len(specs)} seeds, "
                         f"{self.target} accuracy {acc}")
        return "\n".join(lines)


def load_conditions(sw, root, conditions: Mapping[str, Sequence[str]], target: str, *, size: int,
                    width: int = 0, min_acc: float = LEVEL) -> Conditions:
    """The runs of every condition (``conditions[label]`` is a task mix of sweep ``sw``) at modulus
    / k ``size``, compared at ``width`` (``0``: :func:`matched_width` over the sweep's widths).

    The sweep must have been run (``run_sweep``) into ``root``; a missing run raises.  ``learned``
    says whether every condition reaches ``min_acc`` on ``target`` at the compared width (also
    when ``width`` is given explicitly).
    """
    if size not in sw.sizes:
        raise ValueError(f"'size' must be one of the sweep's sizes {list(sw.sizes)}; got {size}")
    specs_all = [s for s in sw.specs if _spec_size(s) == size]
    records = cached_records(specs_all, root)
    if any(r is None for r in records):
        missing = sum(r is None for r in records)
        raise ValueError(f"{missing} runs of sweep {sw.name} ({sw.preset}) at size {size} are not trained under "
                         f"{root}: run the sweep first")
    mixes = [tuple(m) for m in conditions.values()]
    if width == 0:
        choice = matched_width(records, mixes, target, sw.widths, size=size, min_acc=min_acc)
    else:
        choice = WidthChoice(int(width), "given by the 'width' parameter",
                             learned_at(records, mixes, target, width, size=size, min_acc=min_acc))
    by_key = {s.key(): r for s, r in zip(specs_all, records)}
    specs, accs = {}, {}
    for label, mix in conditions.items():
        specs[label] = specs_for(specs_all, ops=mix, width=choice.width, size=size)
        if not specs[label]:
            raise ValueError(f"sweep {sw.name} has no runs of {list(mix)} at width {choice.width}, size {size}")
        accs[label] = [float(Record.from_dict(by_key[s.key()]).accuracy(target)) for s in specs[label]]
    return Conditions(size=size, target=target, width=choice.width, why=choice.why, learned=choice.learned,
                      min_acc=min_acc, specs=specs, accs=accs)


def cached_records(specs, root) -> list[dict | None]:
    """The records of ``specs`` that are already trained (``None`` for the others); trains nothing."""
    return [load_record(root, s) for s in specs]


def load_stack(root, specs: list[RunSpec], device: str = "cpu") -> GPT:
    """Trained runs (one group: same architecture, recipe and vocabulary) as one stacked model."""
    if not specs:
        raise ValueError("'specs' must hold at least one run")
    states = [torch.load(run_dir(root, s) / "model.pt", map_location="cpu", weights_only=True) for s in specs]
    return stack_models(list(specs), states, device)


def split_by_label(values, labels: Sequence[str]):
    """Split a per-model result of a stack by condition.

    ``values`` is an array whose first axis runs over the models of the stack (``labels[i]`` is
    model ``i``'s condition), or a mapping of such arrays.  Returns ``{label: values[models of
    label]}`` (or ``{label: {key: ...}}``), labels in order of first appearance, models in stack
    order.
    """
    labels = list(labels)
    order = list(dict.fromkeys(labels))
    idx = {c: np.array([i for i, lb in enumerate(labels) if lb == c]) for c in order}
    if isinstance(values, Mapping):
        return {c: {k: _take(v, idx[c], len(labels), k) for k, v in values.items()} for c in order}
    return {c: _take(values, idx[c], len(labels), "values") for c in order}


def _take(v, idx, m, name):
    arr = np.asarray(v)
    if arr.ndim == 0 or arr.shape[0] != m:
        raise ValueError(f"'{name}' must have one entry per model ({m}) on its first axis; got shape {arr.shape}")
    return arr[idx]


def condition_stack(root, comp: Conditions, device: str = "cpu") -> tuple[GPT, list[str], list[RunSpec]]:
    """Every run of ``comp`` (all conditions: one width, one modulus, so one group) as one
    stacked model.  Returns ``(model, labels, specs)``: model ``i`` is ``specs[i]`` of condition
    ``labels[i]``, conditions in the order of ``comp.specs``."""
    specs = [s for c in comp.specs for s in comp.specs[c]]
    labels = [c for c in comp.specs for _ in comp.specs[c]]
    return load_stack(root, specs, device), labels, specs


def shared_examples(datas: Sequence[TaskData], limit: int | None = None) -> list[list[int]]:
    """The expressions that every dataset of ``datas`` holds, in the order of ``datas[0]`` (at most
    ``limit``): for each, its index in every dataset.  With test sets, such an expression is in
    no model's training set (each model's train and test splits are disjoint), so every model
    can be shown it.  Empty if there is none."""
    if not datas:
        raise ValueError("'datas' must hold at least one dataset")
    where = [{e: i for i, e in reversed(list(enumerate(d.exprs)))} for d in datas]
    out = []
    for e in dict.fromkeys(datas[0].exprs):
        if all(e in w for w in where):
            out.append([w[e] for w in where])
            if limit is not None and len(out) >= limit:
                break
    return out


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
