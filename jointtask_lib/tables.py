"""Plain-text tables and the numbers behind them, for notebooks and reports.

Every function returns a string (or plain Python data) that is deterministic for its inputs, so a
notebook cell printing it can be checked by nbval (``# NBVAL_CHECK_OUTPUT``).  Floats are rounded
where they are formatted (3 decimals by default); big counts are shown in scientific notation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .tasks import TaskConfig, task_family, count_expressions, entropy_bits, example_tokens, output_distribution, random_tree
from .validate import check_int


def format_table(headers: Sequence[str], rows: Iterable[Sequence], align: str | None = None) -> str:
    """A fixed-width text table; ``align`` has one ``<`` or ``>`` per column (default: first
    column left, the others right)."""
    rows = [[str(c) for c in r] for r in rows]
    headers = [str(h) for h in headers]
    ncol = len(headers)
    for r in rows:
        if len(r) != ncol:
            raise ValueError(f"'rows' must have {ncol} cells each (one per header); got {len(r)}")
    align = align or "<" + ">" * (ncol - 1)
    if len(align) != ncol or set(align) - {"<", ">"}:
        raise ValueError(f"'align' must be {ncol} characters from '<' and '>'; got {align!r}")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def task_label(task: TaskConfig) -> str:
    """``mod 10`` for ListOps, ``S_3`` for permutations."""
    return task.task_family.label(task.size)


def sci(x: int | float, digits: int = 3) -> str:
    """Scientific notation, e.g. ``8.123e+14`` (exact integers below 10**6 are printed as is)."""
    if isinstance(x, int) and abs(x) < 10**6:
        return str(x)
    return f"{float(x):.{digits}e}"


# ------------------------------------------------------------------------------------------
# Operations and examples
# ------------------------------------------------------------------------------------------


def op_table(family: str, ops: Sequence[str] | None = None) -> str:
    """The registry entries of a family: name, arity range and definition."""
    registry = task_family(family).ops
    names = list(registry) if ops is None else list(ops)
    rows = []
    for name in names:
        if name not in registry:
            raise ValueError(f"'ops' must be from {', '.join(registry)}; got {name!r}")
        o = registry[name]
        rows.append([name, f"{o.min_arity}..{o.max_arity}", "subset" if o.operands else "all", o.doc])
    return format_table(["op", "arity", "operands", "definition"], rows, align="<><<")


def format_example(task: TaskConfig, expr, indent: int = 0) -> str:
    """One example, one chain-of-thought step per line::

        ( ADD 3 ( ADD 4 9 1 ) 7 )
          = ( ADD 3 4 7 )
          = 4 e
    """
    text = " ".join(example_tokens(expr, task.domain(), task.cot))
    first, *steps = text.split(" = ")
    pad = " " * indent
    return "\n".join([pad + first] + [pad + "  = " + s for s in steps])


def example_lines(task: TaskConfig, n_per_op: int, seed: int = 0) -> str:
    """``n_per_op`` random examples of every op in ``task.ops`` (deterministic in ``seed``)."""
    check_int("n_examples", n_per_op, lo=0)
    check_int("seed", seed, lo=0)
    rng = np.random.default_rng([seed, 0xE8])
    spec, dom = task.spec(), task.domain()
    blocks = []
    for op in task.ops:
        for _ in range(n_per_op):
            expr = random_tree(spec, dom, rng, op=op)
            blocks.append(f"[{op}]\n" + format_example(task, expr, indent=2))
    return "\n".join(blocks)


# ------------------------------------------------------------------------------------------
# Output distributions and entropy
# ------------------------------------------------------------------------------------------


def output_distributions(tasks: Sequence[TaskConfig]) -> dict[tuple[str, str], np.ndarray]:
    """``{(op, label): p}``: each op's result distribution over uniform random operands.

    One level (no nesting), averaged over each op's argument counts (:meth:`TaskConfig.arity`); see
    :func:`jointtask_lib.tasks.output_distribution`.  ``label`` is :func:`task_label`.
    """
    out = {}
    for task in tasks:
        dom = task.domain()
        for op in task.ops:
            lo, hi = task.arity(op)
            out[(op, task_label(task))] = output_distribution(dom, op, arities=tuple(range(lo, hi + 1)))
    return out


def dist_axes(dists: Mapping[tuple[str, str], np.ndarray]) -> tuple[list[str], list[str]]:
    ops, labels = [], []
    for op, label in dists:
        if op not in ops:
            ops.append(op)
        if label not in labels:
            labels.append(label)
    return ops, labels


def entropy_table(dists: Mapping[tuple[str, str], np.ndarray], digits: int = 3) -> str:
    """Entropy (bits) of each op's output distribution; one column per task, plus the maximum
    ``log2(number of values)`` a uniform distribution reaches."""
    ops, labels = dist_axes(dists)
    n_values = {label: len(p) for (_, label), p in dists.items()}
    rows = []
    for op in ops:
        rows.append([op] + [f"{entropy_bits(dists[(op, lb)]):.{digits}f}" if (op, lb) in dists else "-"
                            for lb in labels])
    rows.append(["uniform"] + [f"{math.log2(n_values[lb]):.{digits}f}" for lb in labels])
    return format_table(["op \\ H (bits)"] + labels, rows)


def support_size(dist: np.ndarray) -> int:
    """How many values an op can produce at all."""
    return int((np.asarray(dist) > 0).sum())


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def prime_composite_table(dists: Mapping[tuple[str, str], np.ndarray], tasks: Sequence[TaskConfig],
                          op: str = "PROD", digits: int = 3) -> str:
    """Why ``op`` (default ``PROD``) behaves differently mod a prime and mod a composite.

    Per ListOps task: is n prime, how many units (invertible values, Euler's phi) there are, the
    probability that ``op`` returns 0, and its entropy.  Mod a prime every non-zero value is a
    unit, so a product is 0 only if an operand is 0; mod a composite, zero divisors (2 * 5 = 0
    mod 10) pile extra mass on 0 and on the non-units.
    """
    rows = []
    for t in tasks:
        if t.family != "listops":
            continue
        p = dists.get((op, task_label(t)))
        if p is None:
            raise ValueError(f"'dists' has no entry for ({op!r}, {task_label(t)!r}); "
                             f"compute it with output_distributions(tasks)")
        n = t.modulus
        units = sum(1 for v in range(1, n) if math.gcd(v, n) == 1)
        rows.append([task_label(t), "prime" if is_prime(n) else "composite", units,
                     f"{p[0]:.{digits}f}", f"{entropy_bits(p):.{digits}f}", f"{math.log2(n):.{digits}f}"])
    return format_table(["task", "n is", "units", f"P({op}=0)", f"H({op})", "log2 n"], rows)


def perm_elements_table(task: TaskConfig) -> str:
    """The elements of S_k: token, parity, and membership of the subgroups C_k and A_k."""
    if task.family != "perm":
        raise ValueError(f"'family' must be perm for perm_elements_table; got {task.family!r}")
    dom = task.domain()
    t = dom.tables
    cyc, alt = set(t["cyclic"]), set(t["alternating"])
    rows = []
    for i, tok in enumerate(dom.value_tokens):
        rows.append([i, tok, "odd" if int(t["sign"][i]) else "even",
                     "C_k" if i in cyc else "", "A_k" if i in alt else "",
                     "identity" if i == t["identity"] else ("swap (0 1)" if i == t["swap01"] else "")])
    head = (f"S_{task.perm_k}: {len(dom.value_tokens)} elements, |C_{task.perm_k}| = {len(cyc)}, "
            f"|A_{task.perm_k}| = {len(alt)}")
    return head + "\n" + format_table(["id", "token", "parity", "cyclic", "alternating", "note"], rows,
                                       align="><<<<<")


# ------------------------------------------------------------------------------------------
# Dataset sizes and the vocabulary
# ------------------------------------------------------------------------------------------


def size_table(tasks: Sequence[TaskConfig]) -> str:
    """Per task: how many distinct expressions exist (the support) and the default split sizes."""
    from .data import default_sizes

    rows = []
    for task in tasks:
        spec, dom = task.spec(), task.domain()
        support = count_expressions(spec, dom)
        per_op = [count_expressions(task.with_ops([op]).spec(), dom) for op in task.ops]
        n_train, n_test = default_sizes(task)
        rows.append([
            task_label(task), len(task.ops), sci(min(per_op)) if min(per_op) == max(per_op)
            else f"{sci(min(per_op))}..{sci(max(per_op))}", sci(support), n_train, n_test,
            f"{(n_train + n_test) / support:.3e}",
        ])
    return format_table(["task", "ops", "support/op", "support", "n_train", "n_test", "used"], rows)


def vocab_text(vocab, per_line: int = 8) -> str:
    """Token ids and tokens, ``per_line`` to a line."""
    check_int("per_line", per_line, lo=1)
    cells = [f"{i:>3} {t:<6}" for i, t in enumerate(vocab.tokens)]
    lines = ["".join(cells[i:i + per_line]).rstrip() for i in range(0, len(cells), per_line)]
    return f"{len(vocab)} tokens\n" + "\n".join(lines)


def dataset_summary(train, test, n_show: int = 2) -> str:
    """Shapes of both splits and the first ``n_show`` training rows, decoded and as fields."""
    lines = [
        f"train: tokens {tuple(train.tokens.shape)}, test: tokens {tuple(test.tokens.shape)}",
        f"longest example: {max([0, *train.lengths.tolist(), *test.lengths.tolist()])} tokens",
        f"train and test share {len(set(train.exprs) & set(test.exprs))} expressions",
    ]
    for i in range(min(n_show, len(train))):
        ans, tid = int(train.answer[i]), int(train.task_id[i])
        task = train.task.ops[tid] if tid >= 0 else "mixed ops"
        lines += [
            f"example {i}: {train.texts([i])[0]}",
            f"  ids        {train.tokens[i, : train.lengths[i]].tolist()}",
            f"  prompt_len {int(train.prompt_len[i])} (tokens up to the first '='), "
            f"answer id {ans} = {train.vocab.tokens[ans]!r}, task_id {tid} = {task}",
        ]
    return "\n".join(lines)


def transition_table(transitions: dict, label: str = "op") -> str:
    """One row per operation (or mix): transition in parameters with CI, or a bound."""
    rows = []
    for name, t in transitions.items():
        if t is None:
            rows.append([name, "n/a (fewer than 3 sizes)", "", ""])
            continue
        rows.append([name, t.describe(), t.kind, t.n_seeds])
    return format_table([label, "transition (params)", "kind", "seeds"], rows)


def reduction_table(reductions: dict, expect: dict | None = None) -> str:
    """One row per comparison: the reduction factor with CI (or bound) and paper A's expectation."""
    rows = []
    for label, r in reductions.items():
        rows.append([label, (expect or {}).get(label, ""), r.describe() if r is not None else "n/a"])
    return format_table(["comparison", "paper A expects", "reduction factor"], rows)


def transition_matrix(by_size: dict, *, size_name: str = "n", label: str = "op") -> str:
    """Transitions side by side: one row per operation (or mix), one column per task size.
    ``by_size[size][name]`` is a :class:`~jointtask_lib.transition.Transition` (or ``None``)."""
    sizes = list(by_size)
    names: list = []
    for size in sizes:
        names += [k for k in by_size[size] if k not in names]
    rows = []
    for name in names:
        row = [name]
        for size in sizes:
            t = by_size[size].get(name)
            row.append("n/a" if t is None else t.describe())
        rows.append(row)
    return format_table([label] + [f"{size_name} = {size}" for size in sizes], rows)
