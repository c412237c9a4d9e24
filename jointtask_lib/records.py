"""Run records as typed objects, and one table of them (issue 13, item 2: a first step).

A ListOps run record on disk is a dict (:func:`jointtask_lib.runs.save_result`): its spec, its
parameter count and its final metrics per operation.  Analysis code used to read it by string
paths (``r["spec"]["task"]["ops"]``, ``r["metrics"]["per_op"][op]["gen_acc"]``) in several
near-identical aggregators.  Here a record is read **once** into a :class:`Record` (mix, size,
width, seed, accuracies per operation) and a :class:`RecordTable` does the selecting and grouping:

* :meth:`RecordTable.select` — one task mix (in order) and size, optionally more task fields;
* :meth:`RecordTable.points` — long-format ``(sizes, accuracies, seeds)`` on one operation (what
  the transition fits read), refusing two runs at one ``(size, seed)``;
* :meth:`RecordTable.mean_by_width` / :meth:`RecordTable.mean_curve` — means over seeds.

:func:`jointtask_lib.experiments.accuracy_points`, :func:`~jointtask_lib.experiments.mean_curve`
and the width means of :mod:`jointtask_lib.analysis.models` are built on it (same results as
before, tested).  The sweep summary (``sweep.summary_rows``, ``sweep._mean_acc``) and
``runs.records_table`` still read dicts: moving them is left to after the concurrent edits of
those files.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

METRICS = ("gen_acc", "tf_acc", "seq_acc")


@dataclass(frozen=True)
class Record:
    """One finished ListOps / permutation run, as the analysis reads it."""

    key: str
    ops: tuple[str, ...]
    family: str
    size: int | None  # modulus (listops) or k (perm); None in a hand-made record without it
    width: int  # n_embed
    n_params: int | None
    seed: int | None
    per_op: dict = field(hash=False)  # op -> {"gen_acc", "tf_acc", "seq_acc", "n"} (as stored)
    task: dict = field(hash=False)  # the stored task fields (for selection by other fields)

    @classmethod
    def from_dict(cls, r: dict) -> "Record":
        """A record dict as stored by the run cache (raises ``ValueError`` naming a missing field)."""
        try:
            spec, task = r["spec"], r["spec"]["task"]
            family = task.get("family", "listops")
            size = task.get("modulus" if family == "listops" else "perm_k")
            return cls(key=r.get("key", ""), ops=tuple(task["ops"]), family=family,
                       size=None if size is None else int(size), width=int(spec["arch"]["n_embed"]),
                       n_params=None if r.get("n_params") is None else int(r["n_params"]),
                       seed=None if spec.get("seed") is None else int(spec["seed"]),
                       per_op=dict(r["metrics"].get("per_op", {})), task=dict(task))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"record {r.get('key', '?') if isinstance(r, dict) else r!r} lacks field {exc}") from None

    def accuracy(self, op: str, metric: str = "gen_acc") -> float | None:
        """Accuracy on ``op`` (``None`` when the run was not evaluated on it)."""
        m = self.per_op.get(op)
        return None if m is None else m[metric]

    def x(self, axis: str) -> float:
        """The size axis: ``"n_params"`` or ``"n_embed"`` (the width)."""
        if axis == "n_params":
            return self.n_params
        if axis == "n_embed":
            return self.width
        raise ValueError(f"'x' must be one of n_params, n_embed; got {axis!r}")


class RecordTable:
    """Records of finished runs (``None`` entries and corrupt ``{"key", "error"}`` entries are
    kept apart in :attr:`errors`, never silently mixed into the numbers)."""

    def __init__(self, records: list[Record], errors: list[dict] | None = None):
        self.records = list(records)
        self.errors = list(errors or [])

    @classmethod
    def from_dicts(cls, records) -> "RecordTable":
        recs, errors = [], []
        for r in records:
            if r is None:
                continue
            if "error" in r:
                errors.append(r)
                continue
            recs.append(Record.from_dict(r))
        return cls(recs, errors)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def select(self, *, ops=None, size=None, **task_fields: Any) -> "RecordTable":
        """The runs of one task mix (``ops`` in order) and size, matching any further task fields."""
        out = [r for r in self.records
               if (ops is None or r.ops == tuple(ops)) and (size is None or r.size == size)
               and all(r.task.get(k) == v for k, v in task_fields.items())]
        return RecordTable(out)

    def points(self, op: str, *, metric: str = "gen_acc", x: str = "n_params", label: str = "") -> tuple:
        """``(sizes, accuracies, seeds)`` on ``op``, sorted by size then seed (runs not evaluated on
        ``op`` are left out).  Two runs at one ``(size, seed)`` raise ``ValueError``: a repeated run
        or two configurations must not count as two seeds."""
        rows = [(r.x(x), r.accuracy(op, metric), r.seed) for r in self.records if op in r.per_op]
        pairs = [(a, s) for a, _, s in rows]
        if len(set(pairs)) < len(pairs):
            dup = sorted({p for p in pairs if pairs.count(p) > 1})[:3]
            raise ValueError(f"the records hold more than one run of {label or '?'} at the same (size, seed): {dup}; "
                             "pass each run once (unique_records) and select one configuration (another task "
                             "field, e.g. weights=...)")
        xs = np.asarray([a for a, _, _ in rows], float)
        ys = np.asarray([b for _, b, _ in rows], float)
        seeds = np.asarray([s for _, _, s in rows])
        order = np.lexsort((seeds, xs)) if len(rows) else []
        return xs[order], ys[order], seeds[order]

    def by(self, op: str, *, metric: str = "gen_acc", x: str = "n_embed") -> dict:
        """``{size: [accuracy per run]}`` on ``op`` (in record order)."""
        groups = defaultdict(list)
        for r in self.records:
            if op in r.per_op:
                groups[r.x(x)].append(r.accuracy(op, metric))
        return dict(groups)

    def mean_by_width(self, op: str, *, metric: str = "gen_acc") -> dict[int, float]:
        """``{width: mean accuracy on op over its runs}``."""
        return {int(w): float(np.mean(v)) for w, v in self.by(op, metric=metric, x="n_embed").items()}

    def mean_curve(self, op: str, *, x: str = "n_params", metric: str = "gen_acc",
                   label: str = "") -> list[tuple[float, float, float, int]]:
        """``(size, mean, sd across seeds, n seeds)`` per size, sorted by size (one run per
        ``(size, seed)``, as :meth:`points` checks)."""
        xs, ys, _ = self.points(op, metric=metric, x=x, label=label)
        groups = defaultdict(list)
        for a, b in zip(xs, ys):
            groups[a].append(b)
        return [(k, float(np.mean(v)), float(np.std(v)), len(v)) for k, v in sorted(groups.items())]


__all__ = ["Record", "RecordTable", "METRICS"]
