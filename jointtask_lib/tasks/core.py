"""Expression trees, chain-of-thought text and exact sampling — shared by every task family.

A *task family* (ListOps arithmetic mod n, products of permutations, ...) is a :class:`Domain`: a
list of value tokens (``0``..``n-1``, or ``p0213``...) and a registry of :class:`Op` entries, each
with its token, its arity range and its evaluation.  Everything else — random expression trees,
the text format, chain-of-thought (CoT) traces, exact counting of how many distinct expressions
exist, and sampling of unique examples — is defined once, here, for all families.

Text format (fixed, so that tools outside the project can check it)
-------------------------------------------------------------------
Word-level tokens separated by single spaces: value tokens, op names, ``(``, ``)``, ``=`` and the
end token ``e``.  With ``cot="reduce"`` every step after an ``=`` is the previous expression with
*every innermost operation* (one whose arguments are all values) replaced by its value::

    ( ADD 3 ( MAX 4 9 1 ) 7 ) = ( ADD 3 9 7 ) = 9 e

With ``cot="none"`` the text is ``( ADD 3 ( MAX 4 9 1 ) 7 ) = 9 e``.  The answer is the token after
the last ``=``.

Trees
-----
An expression is a nested tuple ``(op_name, (arg, arg, ...))`` whose arguments are value indices
(ints) or expressions.  A random tree is grown top-down: the root is an operation at depth 1;
each argument of an operation at depth ``< max_depth`` is itself an operation with probability
``p_nest`` (a project choice, default 0.5 — paper A does not give its generator) and a uniformly
random value otherwise.  The number of arguments of each operation is uniform in
``[min_args, max_args]``, or in the operation's own range where ``op_args`` gives one (an arity per
operation: e.g. ``op_args = (("MED", 3, 3),)`` gives every MED node exactly 3 arguments while ADD
keeps ``min_args..max_args``).

Mixing several operations
-------------------------
``mixing="expression"`` (default): each example draws *one* operation from the mixture (with the
given weights) and uses it at every node, so every example belongs to exactly one task and
per-task accuracy is well defined.  ``mixing="node"``: every node draws its own operation.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..schema import COT_MODES, MIXING_MODES, SAMPLING_MODES, TASK, check_fields  # noqa: F401 (re-exported)
from ..validate import check_choice, check_float, check_int, shown

Expr = tuple  # (op_name: str, args: tuple[int | Expr, ...])

#: The fields of :class:`TreeSpec` whose bounds :data:`jointtask_lib.schema.TASK` declares.
TREE_FIELDS = ("depth", "min_args", "max_args", "p_nest", "cot", "mixing")
SPECIAL_TOKENS = ("<pad>", "(", ")", "=", "e")


@dataclass(frozen=True)
class Op:
    """One operation of a task family: its token, arity range and evaluation.

    ``fn(args, domain)`` receives a tuple of value indices and the :class:`Domain` (so that ops
    may use fixed tables drawn from a seed) and returns a value index.  ``operands`` restricts the
    values that may appear as leaves of this op (``None``: all values); the op must be closed on
    that set, as a subgroup is.
    """

    name: str
    min_arity: int
    max_arity: int
    fn: Callable[[tuple[int, ...], "Domain"], int]
    doc: str = ""
    operands: Callable[["Domain"], Sequence[int]] | None = None
    # (k, name): with at most k arguments at every node, the op *is* another op (the lower median
    # of two numbers is their minimum); a task that allows no more than k is rejected.
    degenerate: tuple[int, str] | None = None


@dataclass
class Domain:
    """A task family instantiated at one size: value tokens plus the op registry."""

    family: str
    value_tokens: tuple[str, ...]
    ops: dict[str, Op]
    tables: dict = field(default_factory=dict)  # per-domain fixed tables (relabelling, ...)

    @property
    def n_values(self) -> int:
        return len(self.value_tokens)

    def operands(self, op: str) -> Sequence[int]:
        o = self.ops[op]
        return range(self.n_values) if o.operands is None else o.operands(self)

    def apply(self, op: str, args: tuple[int, ...]) -> int:
        return self.ops[op].fn(args, self)


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeSpec:
    """How random expressions are grown (validated against a domain by :func:`check_spec`)."""

    ops: tuple[str, ...]
    weights: tuple[float, ...] | None = None
    min_args: int = 2
    max_args: int = 3
    depth: int = 3
    p_nest: float = 0.5
    cot: str = "reduce"
    mixing: str = "expression"
    op_args: tuple[tuple[str, int, int], ...] = ()  # per-op (op, min, max) overriding min/max_args

    def arity(self, op: str) -> tuple[int, int]:
        """``(min, max)`` number of arguments of an ``op`` node."""
        for name, lo, hi in self.op_args:
            if name == op:
                return lo, hi
        return self.min_args, self.max_args

    def longest_arity(self) -> int:
        """The most arguments any node can have (over ``max_args`` and every ``op_args`` entry,
        also for ops outside the mix: the context length of a family's models depends on it)."""
        return max([self.max_args] + [hi for _, _, hi in self.op_args])

    def op_probs(self) -> np.ndarray:
        w = np.ones(len(self.ops)) if self.weights is None else np.asarray(self.weights, float)
        return w / w.sum()


def check_spec(spec: TreeSpec, domain: Domain) -> TreeSpec:
    """Raise ``ValueError`` naming the offending field if ``spec`` is not valid for ``domain``."""
    check_fields(spec, TASK, TREE_FIELDS)
    return check_against_domain(spec, domain)


def check_against_domain(spec: TreeSpec, domain: Domain) -> TreeSpec:
    """The checks that need the family's registry (which ops exist, how many arguments each
    takes) or relate several fields; the single-field bounds are :data:`~jointtask_lib.schema.TASK`'s
    (:func:`check_spec` checks both).  Fields are named as the user wrote them
    (:func:`jointtask_lib.validate.shown`)."""
    ops_, weights_, op_args_ = shown("ops"), shown("weights"), shown("op_args")
    if len(spec.ops) == 0:
        raise ValueError(f"'{ops_}' must name at least one operation from {', '.join(domain.ops)}")
    for op in spec.ops:
        check_choice("ops", op, domain.ops)
    if len(set(spec.ops)) != len(spec.ops):
        raise ValueError(f"'{ops_}' must not repeat an operation; got {', '.join(spec.ops)}")
    if spec.weights is not None:
        if len(spec.weights) != len(spec.ops):
            raise ValueError(
                f"'{weights_}' must have one entry per op ({len(spec.ops)}); got {len(spec.weights)}"
            )
        for w in spec.weights:
            check_float("weights", w, lo=0.0, lo_open=True)
    check_int("max_args", spec.max_args, lo=spec.min_args)
    seen_args: set[str] = set()
    for entry in spec.op_args:
        if not (isinstance(entry, tuple) and len(entry) == 3):
            raise ValueError(f"'{op_args_}' entries must be (op, min, max); got {entry!r}")
        name, lo, hi = entry
        check_choice("op_args", name, domain.ops)
        if name in seen_args:
            raise ValueError(f"'{op_args_}' must not repeat an operation; got {name} twice")
        seen_args.add(name)
        check_int("op_args", lo, lo=1)
        check_int("op_args", hi, lo=lo)
        o = domain.ops[name]
        if lo < o.min_arity or hi > o.max_arity:
            raise ValueError(f"'{op_args_}' = {lo}..{hi} is out of range for {name}, which takes "
                             f"{o.min_arity}..{o.max_arity} arguments")
    for op in spec.ops:
        o = domain.ops[op]
        lo, hi = spec.arity(op)
        if lo < o.min_arity or hi > o.max_arity:
            raise ValueError(
                f"'{shown('min_args')}'/'{shown('max_args')}' = {lo}..{hi} is out of range for "
                f"{op}, which takes {o.min_arity}..{o.max_arity} arguments"
            )
        if o.degenerate is not None and hi <= o.degenerate[0]:
            fld = op_args_ if op in seen_args else f"{shown('min_args')}'/'{shown('max_args')}"
            raise ValueError(
                f"'{fld}' = {lo}..{hi} for {op}: with at most {o.degenerate[0]} arguments "
                f"{op} is {o.degenerate[1]}, not itself (a setting that silently changes an "
                f"operation's meaning); give {op} more arguments, e.g. op_args {{{op}: 3}}"
            )
    if spec.mixing == "node" and any(domain.ops[o].operands is not None for o in spec.ops):
        restricted = [o for o in spec.ops if domain.ops[o].operands is not None]
        raise ValueError(
            f"'{shown('mixing')}' must be 'expression' when an op works on a restricted operand set "
            f"({', '.join(restricted)}); got 'node'"
        )
    return spec


# --------------------------------------------------------------------------------------------
# Evaluation, reduction and text
# --------------------------------------------------------------------------------------------


def evaluate(expr: Expr | int, domain: Domain) -> int:
    """The value of an expression (recursively)."""
    if isinstance(expr, int):
        return expr
    op, args = expr
    return domain.apply(op, tuple(evaluate(a, domain) for a in args))


def reduce_innermost(expr: Expr | int, domain: Domain) -> Expr | int:
    """One CoT step: replace every operation whose arguments are all values by its value."""
    if isinstance(expr, int):
        return expr
    op, args = expr
    if all(isinstance(a, int) for a in args):
        return domain.apply(op, args)
    return (op, tuple(reduce_innermost(a, domain) for a in args))


def expr_tokens(expr: Expr | int, domain: Domain, out: list[str] | None = None) -> list[str]:
    """The tokens of one expression, e.g. ``['(', 'ADD', '3', '4', ')']``."""
    if out is None:
        out = []
    if isinstance(expr, int):
        out.append(domain.value_tokens[expr])
        return out
    op, args = expr
    out.append("(")
    out.append(op)
    for a in args:
        expr_tokens(a, domain, out)
    out.append(")")
    return out


def example_tokens(expr: Expr, domain: Domain, cot: str = "reduce") -> list[str]:
    """Full example tokens: the expression, its CoT steps (if any), the answer and ``e``."""
    toks = expr_tokens(expr, domain)
    if cot == "reduce":
        cur: Expr | int = expr
        while not isinstance(cur, int):
            cur = reduce_innermost(cur, domain)
            toks.append("=")
            expr_tokens(cur, domain, toks)
    else:
        toks.append("=")
        toks.append(domain.value_tokens[evaluate(expr, domain)])
    toks.append("e")
    return toks


def ops_in(expr: Expr | int) -> set[str]:
    if isinstance(expr, int):
        return set()
    op, args = expr
    s = {op}
    for a in args:
        s |= ops_in(a)
    return s


def tree_depth(expr: Expr | int) -> int:
    if isinstance(expr, int):
        return 0
    return 1 + max(tree_depth(a) for a in expr[1])


# --------------------------------------------------------------------------------------------
# Random trees, counting and unique sampling
# --------------------------------------------------------------------------------------------


def random_tree(spec: TreeSpec, domain: Domain, rng, op: str | None = None) -> Expr:
    """Grow one random expression (see the module docstring for the rule).

    ``rng`` is a :class:`numpy.random.Generator` or a :class:`random.Random`; the inner loop uses
    the latter (scalar draws from numpy are ~10x slower), seeded from the former.
    """
    if not isinstance(rng, random.Random):
        rng = random.Random(int(rng.integers(2**63)))
    return _grow(spec, domain, rng, _Sampler(spec, domain), op, level=1)


class _Sampler:
    """Pre-computed op choices and leaf sets for fast growth."""

    def __init__(self, spec: TreeSpec, domain: Domain):
        self.ops = list(spec.ops)
        self.cum = list(itertools.accumulate(spec.op_probs().tolist()))
        self.cum[-1] = 1.0
        self.leaves = {op: list(domain.operands(op)) for op in spec.ops}
        self.arity = {op: spec.arity(op) for op in spec.ops}

    def pick(self, r: random.Random) -> str:
        return self.ops[bisect.bisect_right(self.cum, r.random())] if len(self.ops) > 1 else self.ops[0]


def _grow(spec, domain, r: random.Random, s: _Sampler, fixed_op, level) -> Expr:
    if fixed_op is None and spec.mixing == "expression":
        fixed_op = s.pick(r)
    op = fixed_op if fixed_op is not None else s.pick(r)
    leaves = s.leaves[op]
    nl = len(leaves)
    args = []
    lo, hi = s.arity[op]
    for _ in range(lo + int(r.random() * (hi - lo + 1))):
        if level < spec.depth and r.random() < spec.p_nest:
            args.append(_grow(spec, domain, r, s, fixed_op, level + 1))
        else:
            args.append(leaves[int(r.random() * nl)])
    return (op, tuple(args))


def count_expressions(spec: TreeSpec, domain: Domain) -> int:
    """Exact number of distinct expressions the generator can produce (its support)."""
    groups = [(op,) for op in spec.ops] if spec.mixing == "expression" else [tuple(spec.ops)]
    return sum(_count(spec, domain, g, spec.depth) for g in groups)


def _count(spec: TreeSpec, domain: Domain, ops: tuple[str, ...], depth: int) -> int:
    sub = _count(spec, domain, ops, depth - 1) if depth > 1 and spec.p_nest > 0 else 0
    total = 0
    for op in ops:
        n_leaf = len(domain.operands(op)) if spec.p_nest < 1 or depth == 1 else 0
        per_arg = n_leaf + sub
        lo, hi = spec.arity(op)
        total += sum(per_arg**k for k in range(lo, hi + 1))
    return total


def enumerate_expressions(spec: TreeSpec, domain: Domain) -> Iterator[Expr]:
    """Every expression in the support, in a fixed order (for small supports only)."""
    groups = [(op,) for op in spec.ops] if spec.mixing == "expression" else [tuple(spec.ops)]
    for g in groups:
        yield from _enum(spec, domain, g, spec.depth)


def _enum(spec, domain, ops, depth) -> Iterator[Expr]:
    subs = list(_enum(spec, domain, ops, depth - 1)) if depth > 1 and spec.p_nest > 0 else []
    for op in ops:
        leaves = list(domain.operands(op)) if spec.p_nest < 1 or depth == 1 else []
        choices = leaves + subs
        lo, hi = spec.arity(op)
        for k in range(lo, hi + 1):
            for args in itertools.product(choices, repeat=k):
                yield (op, tuple(args))


ENUMERATE_LIMIT = 200_000


def split_u(expr: Expr, seed: int) -> float:
    """A uniform number in [0, 1) fixed by ``(expr, seed)``: the expression's place in the split.

    :func:`jointtask_lib.data.make_datasets` holds out an expression for testing iff
    ``split_u(expr, seed) < test_frac``.  The rule depends on nothing but the expression and the
    seed, so it is the same for every dataset size and every task mix: an ``ADD`` expression held
    out from an ``ADD``-only model is also held out from an ``ADD+MAX+MED`` model with the same
    seed (no leakage between pretraining and transfer), and no enumeration of the support is needed.
    """
    h = hashlib.blake2b(f"{int(seed)}|{expr!r}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


def _max_tries(n: int) -> int:
    return 50 * n + 10_000


def sample_iid(
    spec: TreeSpec,
    domain: Domain,
    n: int,
    rng: np.random.Generator,
    accept: Callable[[Expr], bool] | None = None,
    what: str = "n",
) -> list[Expr]:
    """``n`` independent draws from the generative distribution, conditioned on ``accept``.

    Duplicates are kept: the result is a sample of the distribution the generator defines
    (restricted to the accepted expressions), so frequent expressions (short ones, when the
    support is small) appear as often as the generator makes them.  Deterministic given ``rng``.
    Raises ``ValueError`` (naming ``what``) if ``accept`` admits almost nothing.
    """
    check_int(what, n, lo=0)
    r = random.Random(int(rng.integers(2**63)))
    sampler = _Sampler(spec, domain)
    out: list[Expr] = []
    tries, max_tries = 0, _max_tries(n)
    while len(out) < n:
        tries += 1
        if tries > max_tries:
            raise ValueError(
                f"{what!r} = {n}: the split admits too few of the generator's expressions "
                f"(found {len(out)} in {max_tries} draws); raise 'test_frac' or the size of the task"
            )
        e = _grow(spec, domain, r, sampler, None, 1)
        if accept is None or accept(e):
            out.append(e)
    return out


def sample_unique(
    spec: TreeSpec,
    domain: Domain,
    n: int,
    rng: np.random.Generator,
    exclude: set | frozenset = frozenset(),
    accept: Callable[[Expr], bool] | None = None,
    enumerate_support: bool | None = None,
) -> list[Expr]:
    """``n`` distinct expressions, none in ``exclude``, all passing ``accept``; deterministic given ``rng``.

    Expressions are drawn from the generative distribution and duplicates rejected.  When the
    request is a large fraction of a small support (or ``enumerate_support=True``), the support is
    enumerated and sampled without replacement instead (uniformly), which always terminates.
    *Either way, a request that is a large fraction of the support is close to uniform over it,
    not distributed like the generator* (short expressions are rare in the support but frequent in
    the generator); :func:`sample_iid` keeps the generator's distribution.  Asking for more
    distinct expressions than exist raises ``ValueError``.
    """
    check_int("n", n, lo=0)
    if n == 0:
        return []
    support = count_expressions(spec, domain)

    def too_many(available: int) -> ValueError:
        return ValueError(
            f"'n' = {n} distinct expressions asked for, but only {available} exist "
            f"(support {support}, {support - available} reserved for the other split) with "
            f"ops={','.join(spec.ops)}, depth={spec.depth}, args={spec.min_args}..{spec.max_args}"
            f"{''.join(f' {o}:{a}..{b}' for o, a, b in spec.op_args)}, "
            f"{domain.family} size {domain.n_values}; allowed: n <= {available}"
        )

    if accept is None and n > support - len(exclude):
        raise too_many(support - len(exclude))
    if enumerate_support is None:
        enumerate_support = support <= ENUMERATE_LIMIT and n > (support - len(exclude)) // 4
    if enumerate_support:
        if support > ENUMERATE_LIMIT:
            raise ValueError(f"the support ({support} expressions) is too large to enumerate "
                             f"(limit {ENUMERATE_LIMIT})")
        pool = [e for e in enumerate_expressions(spec, domain)
                if e not in exclude and (accept is None or accept(e))]
        if n > len(pool):
            raise too_many(len(pool))
        idx = rng.permutation(len(pool))[:n]
        return [pool[i] for i in idx]
    seen: set = set()
    out: list[Expr] = []
    max_tries = _max_tries(n)
    tries = 0
    r = random.Random(int(rng.integers(2**63)))
    sampler = _Sampler(spec, domain)
    while len(out) < n:
        tries += 1
        if tries > max_tries:
            raise ValueError(
                f"'n' = {n} is too close to the number of distinct expressions the generator "
                f"reaches with useful probability (found {len(out)} in {max_tries} draws); "
                f"ask for fewer, or raise 'depth', 'max_args' or the size of the domain"
            )
        e = _grow(spec, domain, r, sampler, None, 1)
        if e in seen or e in exclude or (accept is not None and not accept(e)):
            continue
        seen.add(e)
        out.append(e)
    return out


def entropy_bits(p: np.ndarray) -> float:
    """Shannon entropy (bits) of a probability vector."""
    p = np.asarray(p, float)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def output_distribution(domain: Domain, op: str, arities: Sequence[int] = (2, 3), max_enum: int = 200_000,
                        n_mc: int = 200_000, seed: int = 0) -> np.ndarray:
    """Distribution of ``op``'s result over uniformly random operands (one level, no nesting).

    Averaged uniformly over the given arities.  Exact enumeration when ``|operands|**k`` is at most
    ``max_enum``; Monte Carlo with ``n_mc`` draws otherwise (seeded).  Paper A ties how learnable an
    operation is to how structured (peaked, non-uniform) this distribution is.
    """
    leaves = np.asarray(list(domain.operands(op)))
    hist = np.zeros(domain.n_values)
    rng = np.random.default_rng(seed)
    for k in arities:
        h = np.zeros(domain.n_values)
        if len(leaves) ** k <= max_enum:
            for args in itertools.product(leaves.tolist(), repeat=k):
                h[domain.apply(op, tuple(args))] += 1
        else:
            draws = rng.integers(len(leaves), size=(n_mc, k))
            for row in leaves[draws].tolist():
                h[domain.apply(op, tuple(row))] += 1
        hist += h / h.sum()
    return hist / len(arities)


def log2_count(x: int) -> float:
    return math.log2(x) if x > 0 else float("-inf")
