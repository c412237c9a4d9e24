"""Paper B's run records as typed objects (issue 13, item 2).

On disk nothing changes: :mod:`jointtask_lib.paper_b.icl_train` writes and reads the same record
dicts (``exposure``, ``snapshots``, ``evals``, ...) and evaluation dicts (``curves[class][condition]``
with ``mean``/``lo``/``hi``, ``head_scores``, ``masked_heads``).  This module is the one place that
knows those key paths; the section (:mod:`jointtask_lib.paper_b.section`), the figures
(:mod:`jointtask_lib.paper_b.plots_icl`) and notebook 09 read through it:

* :class:`Curve` — an error curve per position k (``mean``, optional ``lo``/``hi`` band);
* :class:`ICLEval` — one evaluation of one model: its curves per class and masking condition,
  head scores and masked heads;
* :class:`ICLRun` — one trained model: its spec, its training record, its evaluation;
  :func:`icl_runs` zips the trainer's outputs into them, :func:`pick` / :func:`first` select by
  label;
* :func:`snapshot_tails` — a run's tail errors at its training snapshots.

Nothing here imports torch or the trainer (``ICLRunSpec`` is only a type hint).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .icl_train import ICLRunSpec

#: Masking conditions of an evaluation: unmasked, then the top heads and the two controls.
CONDITIONS = ("none", "top", "bottom", "random")


@dataclass(frozen=True, eq=False)
class Curve:
    """Squared error / d per position k (``mean``), with its band (``lo``, ``hi``) when known."""

    mean: np.ndarray
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    @classmethod
    def of(cls, c: "Curve | Mapping") -> "Curve":
        """A :class:`Curve` from a stored curve dict (``{"mean", "lo"?, "hi"?, ...}``, as the
        evaluations and :func:`~jointtask_lib.paper_b.icl_train.baseline_curves` write) or a Curve."""
        if isinstance(c, Curve):
            return c
        try:
            mean = c["mean"]
        except (KeyError, TypeError):
            raise ValueError(f"a curve must be a Curve or a dict with 'mean'; got {type(c).__name__}") from None
        lo, hi = c.get("lo"), c.get("hi")
        return cls(np.asarray(mean, dtype=float), None if lo is None else np.asarray(lo, dtype=float),
                   None if hi is None else np.asarray(hi, dtype=float))

    @property
    def has_band(self) -> bool:
        return self.lo is not None and self.hi is not None

    def __len__(self) -> int:
        return len(self.mean)


@dataclass(frozen=True, eq=False)
class ICLEval:
    """One evaluation of one model (:func:`~jointtask_lib.paper_b.icl_train.evaluate_or_load`)."""

    curves: Mapping  # class -> condition -> curve dict (as stored)
    head_scores: Mapping = field(default_factory=dict)  # class -> [layers][heads]
    masked: Mapping = field(default_factory=dict)  # condition -> [[layer, head], ...]
    raw: Mapping = field(default_factory=dict)  # the stored dict

    @classmethod
    def of(cls, e: "ICLEval | Mapping") -> "ICLEval":
        if isinstance(e, ICLEval):
            return e
        if not isinstance(e, Mapping) or "curves" not in e:
            raise ValueError(f"an evaluation must be an ICLEval or a dict with 'curves'; got {type(e).__name__}")
        return cls(curves=e["curves"], head_scores=e.get("head_scores", {}), masked=e.get("masked_heads", {}), raw=e)

    @property
    def classes(self) -> list[str]:
        """The evaluated function classes, in stored order."""
        return list(self.curves)

    def curve(self, cls: str, cond: str = "none") -> Curve:
        """The error curve on class ``cls`` under masking condition ``cond``."""
        try:
            return Curve.of(self.curves[cls][cond])
        except KeyError:
            have = {c: list(v) for c, v in self.curves.items()}
            raise ValueError(f"no curve for class {cls!r}, condition {cond!r}; evaluated: {have}") from None

    def error(self, cls: str, cond: str = "none") -> np.ndarray:
        """The mean error per position on ``cls`` under ``cond`` (``curve(cls, cond).mean``)."""
        return self.curve(cls, cond).mean

    def conditions(self, cls: str) -> dict[str, Curve]:
        """``{condition: curve}`` on ``cls`` (``none``, and ``top``/``bottom``/``random`` when masked)."""
        return {cond: Curve.of(c) for cond, c in self.curves[cls].items()}

    def by_class(self, classes: Sequence[str] | None = None, cond: str = "none") -> dict[str, Curve]:
        """``{class: curve}`` under ``cond`` for ``classes`` (default: every evaluated class)."""
        return {c: self.curve(c, cond) for c in (self.classes if classes is None else classes)}

    def masking(self) -> dict[str, dict[str, Curve]]:
        """``{class: {condition: curve}}``: every curve of the evaluation."""
        return {c: self.conditions(c) for c in self.curves}

    def masked_heads(self, cond: str = "top") -> list[tuple[int, int]]:
        """The ``(layer, head)`` pairs (from 0) masked under ``cond``."""
        return [(int(h[0]), int(h[1])) for h in self.masked.get(cond, [])]


@dataclass(frozen=True, eq=False)
class ICLRun:
    """One trained model of paper B: its spec, its training record and its evaluation."""

    spec: "ICLRunSpec"
    record: Mapping  # as stored by icl_train (exposure, snapshots, curves, stack, ...)
    eval: ICLEval

    @classmethod
    def of(cls, r: "ICLRun | Mapping") -> "ICLRun":
        """An :class:`ICLRun`, or one from a dict ``{"spec", "record", "eval"}``."""
        if isinstance(r, ICLRun):
            return r
        try:
            return cls(spec=r["spec"], record=r["record"], eval=ICLEval.of(r["eval"]))
        except (KeyError, TypeError):
            raise ValueError("a run must be an ICLRun or a dict with 'spec', 'record' and 'eval'") from None

    @property
    def label(self) -> str:
        return self.spec.label()

    @property
    def seed(self) -> int:
        return self.spec.seed

    def error(self, cls: str, cond: str = "none") -> np.ndarray:
        return self.eval.error(cls, cond)

    def curve(self, cls: str, cond: str = "none") -> Curve:
        return self.eval.curve(cls, cond)

    def exposure(self, cls: str, what: str = "steps") -> Any:
        return exposure(self.record, cls, what)

    @property
    def snapshots(self) -> list:
        """The stored snapshots (end of each training third)."""
        return list(self.record.get("snapshots", []))

    def snapshot_tails(self, cls: str) -> list[float]:
        """The tail error on ``cls`` at each snapshot."""
        return snapshot_tails(self.snapshots, cls)


def exposure(record: Mapping, cls: str, what: str = "steps") -> Any:
    """How much of class ``cls`` a run's training showed (its record's ``exposure``): ``steps``
    (batches), ``prompts``, ``examples`` or ``fraction`` of the steps; 0 for a class it never
    trained on."""
    ex = record.get("exposure", {})
    return ex[cls][what] if cls in ex else 0


def training_stacks(records: Sequence[Mapping]) -> dict:
    """``{stack id: stack info}`` over records (``size``, ``wall_seconds``, ``cpu_seconds``, ...):
    each stack once, however many of its models are in ``records``."""
    return {r["stack"]["id"]: r["stack"] for r in records}


def snapshot_tails(snapshots: Sequence[Mapping], cls: str) -> list[float]:
    """The tail error on ``cls`` at each snapshot of a record (``record["snapshots"]``)."""
    return [float(s["classes"][cls]["tail"]) for s in snapshots]


def snapshot_has(snapshots: Sequence[Mapping], cls: str) -> bool:
    """Whether the snapshots evaluated class ``cls``."""
    return bool(snapshots) and cls in snapshots[0]["classes"]


def icl_runs(specs, records, evals) -> list[ICLRun]:
    """One :class:`ICLRun` per spec, from :func:`~jointtask_lib.paper_b.icl_train.train_or_load`'s
    records and :func:`~jointtask_lib.paper_b.icl_train.evaluate_or_load`'s evaluations (in order)."""
    specs, records, evals = list(specs), list(records), list(evals)
    if not len(specs) == len(records) == len(evals):
        raise ValueError(f"'specs', 'records' and 'evals' must have one entry per run; got "
                         f"{len(specs)}, {len(records)}, {len(evals)}")
    return [ICLRun(spec=s, record=r, eval=ICLEval.of(e)) for s, r, e in zip(specs, records, evals)]


def pick(runs, label: str) -> list[ICLRun]:
    """The runs with ``label`` (``"mixed"``, ``"single:cubic"``, ...), sorted by seed."""
    return sorted((r for r in map(ICLRun.of, runs) if r.label == label), key=lambda r: r.seed)


def first(runs, label: str) -> ICLRun:
    """The run with the lowest seed among those with ``label``."""
    got = pick(runs, label)
    if not got:
        raise ValueError(f"no run with label {label!r}")
    return got[0]


__all__ = ["CONDITIONS", "Curve", "ICLEval", "ICLRun", "icl_runs", "pick", "first", "exposure", "training_stacks",
           "snapshot_tails", "snapshot_has"]
