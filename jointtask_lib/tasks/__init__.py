"""Task families: one registry per family, one :class:`TaskConfig` to describe a task mix.

``TaskConfig`` is the single description of *what* a model is trained on; it is validated on
construction (bad values raise ``ValueError`` naming the field and the allowed values) and is
hashable, so it can key caches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

from ..schema import TASK, check_fields
from ..validate import check_choice, check_int, shown
from .core import (  # noqa: F401  (re-exported)
    COT_MODES,
    MIXING_MODES,
    SAMPLING_MODES,
    SPECIAL_TOKENS,
    Domain,
    Op,
    TreeSpec,
    check_against_domain,
    check_spec,
    count_expressions,
    entropy_bits,
    evaluate,
    example_tokens,
    expr_tokens,
    output_distribution,
    random_tree,
    reduce_innermost,
    sample_iid,
    sample_unique,
    split_u,
)
from .listops import LISTOPS_OPS, listops_domain
from .permutations import PERM_OPS, perm_domain

#: Each family's operation registry (looked up at call time, so a test may add an entry to a copy).
FAMILIES = {
    "listops": LISTOPS_OPS,
    "perm": PERM_OPS,
}


@dataclass(frozen=True)
class TaskFamily:
    """What differs between task families, declared once per family (:data:`TASK_FAMILIES`):
    the :class:`TaskConfig` field that gives its size and the sweep grid list of sizes, how a size
    is written in tables and run names, and how its :class:`Domain` (value tokens and tables) is
    built.  Code that needs any of these asks the family instead of testing its name."""

    name: str
    doc: str  # what the family is, in words
    size_field: str  # the TaskConfig field of its size (modulus, perm_k)
    grid_key: str  # the sweep file's list of sizes (grid.moduli, grid.perm_ks)
    label_format: str  # a size in tables: "mod {}" / "S_{}"
    tag_prefix: str  # a size in run names: "n" / "S"
    make_domain: Callable[["TaskConfig"], Domain] = field(repr=False)

    @property
    def ops(self) -> dict[str, Op]:
        return FAMILIES[self.name]

    def size(self, task: "TaskConfig") -> int:
        return getattr(task, self.size_field)

    def label(self, size: int) -> str:
        """``mod 10`` / ``S_3``."""
        return self.label_format.format(size)

    def tag(self, size: int) -> str:
        """``n10`` / ``S3`` (the size in a run's name)."""
        return f"{self.tag_prefix}{size}"

    def default_size(self) -> int:
        return TaskConfig.__dataclass_fields__[self.size_field].default


def _listops(task: "TaskConfig") -> Domain:
    return _listops_domain_cached(task.modulus, task.relabel_seed)


def _perm(task: "TaskConfig") -> Domain:
    return perm_domain(task.perm_k)


#: Every task family, registered once.
TASK_FAMILIES: dict[str, TaskFamily] = {
    "listops": TaskFamily("listops", "arithmetic mod n", "modulus", "moduli", "mod {}", "n", _listops),
    "perm": TaskFamily("perm", "products in S_k", "perm_k", "perm_ks", "S_{}", "S", _perm),
}
#: The size fields of all families (each applies to its own family only).
SIZE_FIELDS = tuple(f.size_field for f in TASK_FAMILIES.values())


def task_family(name: str) -> TaskFamily:
    """The family ``name`` (``ValueError`` naming ``family`` and the allowed ones otherwise)."""
    check_choice("family", name, TASK_FAMILIES)
    return TASK_FAMILIES[name]


def stored_size(task: dict) -> int:
    """The family size (modulus or k) of a *stored* task (``record["spec"]["task"]``, a dict),
    without rebuilding and re-validating a :class:`TaskConfig`."""
    return task[TASK_FAMILIES[task["family"]].size_field]


def check_size_fields(family: str, given, flag=lambda f: f"--{f.replace('_', '-')}") -> None:
    """A size field of another family among ``given`` (the fields a user set) is an error, not
    silently ignored; ``flag`` names the field to use instead (default: its CLI flag)."""
    fam = task_family(family)
    for f in SIZE_FIELDS:
        if f != fam.size_field and f in given:
            raise ValueError(f"'{shown(f)}' does not apply to family {fam.name}; use "
                             f"{flag(fam.size_field)} (family {fam.name}: {fam.doc})")


@dataclass(frozen=True)
class TaskConfig:
    """What a model is trained on.

    ``family`` selects the registry (``listops``: arithmetic mod ``modulus``; ``perm``: products in
    S_``perm_k``).  ``ops`` is the task mix, ``weights`` its proportions (default: equal).  See
    :mod:`jointtask_lib.tasks.core` for ``depth``, ``min_args``/``max_args``, ``p_nest``, ``cot``
    and ``mixing``; ``relabel_seed`` fixes the tables of ``SADD`` and ``RTAB``.

    ``op_args`` gives an operation its own number of arguments: a mapping ``{op: k}`` or
    ``{op: [min, max]}`` (also for ops outside ``ops``: a sweep sets it once for all its mixes,
    so every mix shares one context length and models transfer between mixes).  E.g.
    ``{MED: 3}`` with ``min_args = max_args = 2`` makes MED a true median of 3 while ADD keeps 2
    arguments.  Stored as a sorted tuple of ``(op, min, max)``; left out of :meth:`to_dict` when
    empty, so run keys of tasks without it are unchanged.  MED with at most 2 arguments is MIN
    and is rejected.

    How datasets are drawn (:func:`jointtask_lib.data.make_datasets`): ``sampling="iid"``
    (default) splits the *expressions* by a seeded hash — a fraction ``test_frac`` held out for
    testing, ``val_frac`` for validation (early stopping), the rest for training — and draws every
    split independently from the generator restricted to its part, so all splits follow the same
    distribution; ``sampling="unique"`` draws distinct expressions instead (see
    :func:`~jointtask_lib.tasks.core.sample_unique` for why that skews small supports).
    """

    ops: tuple[str, ...] = ("ADD",)
    family: str = "listops"
    modulus: int = 10
    perm_k: int = 3
    weights: tuple[float, ...] | None = None
    depth: int = 3
    min_args: int = 2
    max_args: int = 3
    p_nest: float = 0.5
    cot: str = "reduce"
    mixing: str = "expression"
    relabel_seed: int = 0
    sampling: str = "iid"
    test_frac: float = 0.2
    val_frac: float = 0.05
    op_args: tuple[tuple[str, int, int], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "op_args", _normalise_op_args(self.op_args))
        ops = self.ops
        if isinstance(ops, str):
            ops = tuple(o.strip() for o in ops.split(",") if o.strip())
        object.__setattr__(self, "ops", tuple(ops))
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        fam = task_family(self.family)
        for op, _, _ in self.op_args:
            check_choice("op_args", op, fam.ops)
        # Entries equal to min_args..max_args say nothing: dropped, so they never change a key.
        object.__setattr__(self, "op_args", tuple(
            e for e in self.op_args if (e[1], e[2]) != (self.min_args, self.max_args)))
        # Bounds declared once (jointtask_lib.schema.TASK); another family's size field is unused.
        check_fields(self, TASK, [f for f in TASK if f not in SIZE_FIELDS or f == fam.size_field])
        if self.test_frac + self.val_frac >= 1.0:
            raise ValueError(f"'{shown('test_frac')}' + '{shown('val_frac')}' must be below 1 (the rest is "
                             f"for training); got {self.test_frac} + {self.val_frac}")
        check_against_domain(self.spec(), self.domain())  # the checks that need the registry

    # -- derived objects -------------------------------------------------------------------
    @property
    def task_family(self) -> TaskFamily:
        return TASK_FAMILIES[self.family]

    @property
    def size(self) -> int:
        """The family's size: ``modulus`` (listops) or ``perm_k`` (perm)."""
        return self.task_family.size(self)

    def domain(self) -> Domain:
        return self.task_family.make_domain(self)

    def spec(self) -> TreeSpec:
        return TreeSpec(
            ops=self.ops, weights=self.weights, min_args=self.min_args, max_args=self.max_args,
            depth=self.depth, p_nest=self.p_nest, cot=self.cot, mixing=self.mixing,
            op_args=self.op_args,
        )

    def arity(self, op: str) -> tuple[int, int]:
        """``(min, max)`` arguments of an ``op`` node (its ``op_args`` entry, else min/max_args)."""
        return self.spec().arity(op)

    @property
    def n_values(self) -> int:
        return self.domain().n_values

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ops"] = list(self.ops)
        d["weights"] = None if self.weights is None else list(self.weights)
        if self.op_args:
            d["op_args"] = {op: [lo, hi] for op, lo, hi in self.op_args}
        else:
            del d["op_args"]  # absent when empty: keys of runs without it never change
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TaskConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"unknown task field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(known))}"
            )
        d = dict(d)
        if "ops" in d and not isinstance(d["ops"], str):
            d["ops"] = tuple(d["ops"])
        if d.get("weights") is not None:
            d["weights"] = tuple(d["weights"])
        return cls(**d)

    def with_ops(self, ops, weights=None) -> "TaskConfig":
        d = self.to_dict()
        d["ops"], d["weights"] = tuple(ops), weights
        return TaskConfig.from_dict(d)


def _normalise_op_args(value) -> tuple[tuple[str, int, int], ...]:
    """``{op: k}`` / ``{op: [min, max]}`` / ``[(op, min, max), ...]`` -> sorted tuple of triples."""
    if value is None:
        return ()
    if isinstance(value, dict):
        items = []
        for op, v in value.items():
            if isinstance(v, (list, tuple)):
                if len(v) != 2:
                    raise ValueError(f"'op_args' values must be k or [min, max]; got {op}: {v!r}")
                items.append((op, v[0], v[1]))
            else:
                items.append((op, v, v))
    elif isinstance(value, (list, tuple)):
        items = []
        for e in value:
            if not isinstance(e, (list, tuple)) or len(e) != 3:
                raise ValueError(f"'op_args' entries must be (op, min, max); got {e!r}")
            items.append(tuple(e))
    else:
        raise ValueError(f"'op_args' must be a mapping {{op: k or [min, max]}}; got {value!r}")
    for op, lo, hi in items:
        if not isinstance(op, str):
            raise ValueError(f"'op_args' keys must be operation names; got {op!r}")
        check_int("op_args", lo, lo=1)
        check_int("op_args", hi, lo=lo)
    names = [op for op, _, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"'op_args' must not repeat an operation; got {', '.join(names)}")
    return tuple(sorted((str(op), int(lo), int(hi)) for op, lo, hi in items))


_DOMAINS: dict = {}


def _listops_domain_cached(modulus: int, relabel_seed: int) -> Domain:
    key = (modulus, relabel_seed)
    if key not in _DOMAINS:
        _DOMAINS[key] = listops_domain(modulus, relabel_seed)
    return _DOMAINS[key]


def all_ops(family: str) -> list[str]:
    check_choice("family", family, FAMILIES)
    return list(FAMILIES[family])


__all__ = [
    "FAMILIES", "TASK_FAMILIES", "TaskFamily", "task_family", "SIZE_FIELDS", "stored_size", "TaskConfig", "all_ops", "Domain", "Op", "TreeSpec", "evaluate", "example_tokens",
    "expr_tokens", "reduce_innermost", "random_tree", "sample_unique", "sample_iid", "split_u", "SAMPLING_MODES", "count_expressions",
    "output_distribution", "entropy_bits", "SPECIAL_TOKENS", "COT_MODES", "MIXING_MODES",
    "field",
]
