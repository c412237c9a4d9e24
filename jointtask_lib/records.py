"""Run records as typed objects, one table of them, and one "learned" criterion (issue 13, item 2).

A ListOps run record on disk is a dict (:func:`jointtask_lib.runs.save_result`): its spec, its
parameter count, its final metrics per operation and how training stopped.  It is read **once**
into a :class:`Record` (mix, size, width, seed, accuracies per operation, ...) and a
:class:`RecordTable` does the selecting and grouping:

* :meth:`RecordTable.select` — one task mix (in order) and size, optionally more task fields;
* :meth:`RecordTable.group` — ``{(field values): sub-table}`` by record fields (mix, size, width...);
* :meth:`RecordTable.points` — long-format ``(sizes, accuracies, seeds)`` on one operation (what
  the transition fits read), refusing two runs at one ``(size, seed)``;
* :meth:`RecordTable.mean_accuracy`, :meth:`RecordTable.mean_by_width`,
  :meth:`RecordTable.mean_curve` — means over runs / seeds;
* :meth:`Record.rows` — flat rows, one per operation of a run (``runs.records_table``).

Every aggregator of the library (``experiments``, ``analysis.models``, the sweep summary, the
adaptive search, ``runs.records_table``, ``jointtask train``'s table) reads records through it.
Paper B's ICL records have their own small types, :mod:`jointtask_lib.paper_b.records` (``ICLRun``).

**Learned.**  :func:`learned_bar` is the one rule for "is this accuracy learned?": accuracy at least
``level x A`` (``level`` 0.8), with ``A`` the asymptotic accuracy — a given one, else the observed
plateau (the fitted top of a transition fit, or the best mean of an adaptive search) when it shows
real learning (at least ``min_asymptote``, default halfway from chance to 1, and ``level x A`` above
chance), else 1.0.  With no plateau it is the project's absolute bar, 0.8 x 1.0 (README,
"Statistics").  :mod:`jointtask_lib.transition`, :func:`jointtask_lib.sweep.learned_bracket`,
:func:`jointtask_lib.analysis.models.matched_width` and the pooled statistics' per-run outcome
(:func:`jointtask_lib.stats.pooled.outcomes`) all call it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .tasks import TASK_FAMILIES

METRICS = ("gen_acc", "tf_acc", "seq_acc")
LEVEL = 0.8  # learned: accuracy >= LEVEL x asymptotic accuracy (README, "Statistics")
DIVERGED = "diverged"  # the stop reason of a run whose loss became NaN or infinite (train.DIVERGED)


# ------------------------------------------------------------------------------------------------
# Learned
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LearnedBar:
    """``threshold = level x asymptote``: an accuracy at least ``threshold`` is learned.

    ``source`` says where the asymptote came from: ``"given"``, ``"plateau"`` (the observed plateau
    showed real learning), ``"fallback"`` (it did not: 1.0) or ``"absolute"`` (no plateau: 1.0)."""

    level: float
    asymptote: float
    source: str
    threshold: float

    def learned(self, acc) -> Any:
        """Whether ``acc`` (a number, or an array: element-wise) reaches the threshold; NaN (a
        diverged run) and ``None`` (not evaluated) are not learned."""
        if acc is None:
            return False
        if np.ndim(acc):
            return np.asarray(acc, float) >= self.threshold
        return bool(acc >= self.threshold)


def learned_bar(level: float = LEVEL, *, asymptote: float | None = None, plateau: float | None = None,
                chance: float | None = None, min_asymptote: float | None = None) -> LearnedBar:
    """The one "learned" rule: accuracy at least ``level x A``.

    ``A`` is ``asymptote`` if given; else ``plateau`` (the fitted top of a transition curve, or the
    best mean accuracy of a search) if it shows real learning — at least ``min_asymptote`` (default
    halfway from ``chance`` to 1, 0.5 without ``chance``) and, with ``chance``, ``level x plateau >
    chance`` — else 1.0 (a flat run at chance must not count as learned against its own plateau).
    Without ``plateau`` and ``asymptote`` it is the absolute bar ``level x 1.0``.

    Cheap (the transition bootstrap calls it once per replicate): the callers validate their
    parameters (a transition needs ``0 < level < 1``; a bar above 1, as ``min_acc = 1.01`` in
    :func:`jointtask_lib.analysis.models.matched_width`, is one that nothing reaches).
    """
    if asymptote is not None:
        a, src = float(asymptote), "given"
    elif plateau is None:
        a, src = 1.0, "absolute"
    else:
        if min_asymptote is None:
            c = 0.0 if chance is None else chance
            min_asymptote = c + (1.0 - c) / 2.0
        if plateau >= min_asymptote and (chance is None or level * plateau > chance):
            a, src = float(plateau), "plateau"
        else:
            a, src = 1.0, "fallback"
    return LearnedBar(level=level, asymptote=a, source=src, threshold=level * a)


def is_learned(acc, level: float = LEVEL) -> Any:
    """The absolute bar: ``acc >= level x 1.0`` (one run, or a mean at one width)."""
    return learned_bar(level).learned(acc)


# ------------------------------------------------------------------------------------------------
# ListOps / permutation records
# ------------------------------------------------------------------------------------------------


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
    name: str = ""
    steps_trained: int | None = None
    stop_reason: str | None = None
    overall: dict = field(default_factory=dict, hash=False)  # metrics over all operations (as stored)

    @classmethod
    def from_dict(cls, r: dict) -> "Record":
        """A record dict as stored by the run cache (raises ``ValueError`` naming a missing field)."""
        try:
            spec, task = r["spec"], r["spec"]["task"]
            family = task.get("family", "listops")
            size = task.get(TASK_FAMILIES[family].size_field) if family in TASK_FAMILIES else None
            metrics = r["metrics"]
            return cls(key=r.get("key", ""), ops=tuple(task["ops"]), family=family,
                       size=None if size is None else int(size), width=int(spec["arch"]["n_embed"]),
                       n_params=None if r.get("n_params") is None else int(r["n_params"]),
                       seed=None if spec.get("seed") is None else int(spec["seed"]),
                       per_op=dict(metrics.get("per_op", {})), task=dict(task), name=r.get("name", ""),
                       steps_trained=r.get("steps_trained"), stop_reason=r.get("stop_reason"),
                       overall={k: v for k, v in metrics.items() if k != "per_op"})
        except (KeyError, TypeError) as exc:
            raise ValueError(f"record {r.get('key', '?') if isinstance(r, dict) else r!r} lacks field {exc}") from None

    @property
    def mix(self) -> str:
        """The task mix as printed: ``"ADD+MAX"``."""
        return "+".join(self.ops)

    @property
    def diverged(self) -> bool:
        """Training stopped because the loss became NaN or infinite (its accuracies are those of
        the broken model)."""
        return self.stop_reason == DIVERGED

    def accuracy(self, op: str | None, metric: str = "gen_acc") -> float | None:
        """Accuracy on ``op`` (``None`` when the run was not evaluated on it); ``op=None``: over
        all operations (``NaN`` when not stored)."""
        if op is None:
            return self.overall.get(metric, math.nan)
        m = self.per_op.get(op)
        return None if m is None else m[metric]

    def learned(self, op: str, *, level: float = LEVEL, metric: str = "gen_acc") -> bool:
        """Whether this run learned ``op``: its accuracy reaches the absolute bar (:func:`is_learned`)."""
        return is_learned(self.accuracy(op, metric), level)

    def matches(self, *, ops=None, size=None, **task_fields: Any) -> bool:
        """Whether this run is of task mix ``ops`` (in order) and size ``size`` (each ``None``: any)
        and has the given values of further task fields (e.g. ``cot="direct"``)."""
        return ((ops is None or self.ops == tuple(ops)) and (size is None or self.size == size)
                and all(self.task.get(k) == v for k, v in task_fields.items()))

    def value(self, name: str) -> Any:
        """A field by name for :meth:`RecordTable.group`: ``mix``, ``ops``, ``family``, ``size``,
        ``width``, ``n_params``, ``seed``, ``stop_reason``, or a task field (``modulus``, ...)."""
        if name in ("mix", "ops", "family", "size", "width", "n_params", "seed", "stop_reason", "key", "name"):
            return getattr(self, name)
        if name in self.task:
            return self.task[name]
        raise ValueError(f"'{name}' is not a record field (mix, ops, family, size, width, n_params, seed, "
                         f"stop_reason, key, name) nor a task field ({', '.join(self.task)})")

    def x(self, axis: str) -> float:
        """The size axis: ``"n_params"`` or ``"n_embed"`` (the width)."""
        if axis == "n_params":
            return self.n_params
        if axis == "n_embed":
            return self.width
        raise ValueError(f"'x' must be one of n_params, n_embed; got {axis!r}")

    def rows(self) -> list[dict]:
        """Flat rows, one per operation: task, width, params, seed, how training stopped, accuracies."""
        base = {"key": self.key, "ops": self.mix, "family": self.task["family"], "modulus": self.task["modulus"],
                "perm_k": self.task["perm_k"], "n_embed": self.width, "n_params": self.n_params,
                "seed": self.seed, "steps_trained": self.steps_trained, "stop_reason": self.stop_reason,
                "diverged": self.diverged}
        return [{**base, "op": op, "gen_acc": m.get("gen_acc"), "tf_acc": m.get("tf_acc"),
                 "seq_acc": m.get("seq_acc"), "n": m.get("n")} for op, m in self.per_op.items()]


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
        return RecordTable([r for r in self.records if r.matches(ops=ops, size=size, **task_fields)])

    def group(self, *fields: str) -> dict[tuple, "RecordTable"]:
        """``{(values of fields): sub-table}`` in order of first appearance (fields as in
        :meth:`Record.value`: ``"mix"``, ``"size"``, ``"width"``, a task field, ...)."""
        groups: dict[tuple, list[Record]] = {}
        for r in self.records:
            groups.setdefault(tuple(r.value(f) for f in fields), []).append(r)
        return {k: RecordTable(v) for k, v in groups.items()}

    def ops(self) -> list[str]:
        """Every operation some run was evaluated on, in order of first appearance."""
        return list(dict.fromkeys(op for r in self.records for op in r.per_op))

    def accuracies(self, op: str, metric: str = "gen_acc") -> list[float]:
        """The accuracy on ``op`` of every run evaluated on it, in record order."""
        return [r.accuracy(op, metric) for r in self.records if op in r.per_op]

    def mean_accuracy(self, op: str, metric: str = "gen_acc", *, empty: float | None = None) -> float | None:
        """Mean accuracy on ``op`` over the runs evaluated on it (a diverged run's NaN makes it
        NaN); ``empty`` when none was."""
        vals = self.accuracies(op, metric)
        return sum(vals) / len(vals) if vals else empty

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


__all__ = ["Record", "RecordTable", "METRICS", "LEVEL", "LearnedBar", "learned_bar", "is_learned"]
