"""ListOps arithmetic mod n (paper A's main testbed): the operation registry.

Every operation is **one entry** in :data:`LISTOPS_OPS`: its token, its arity range and its
evaluation on value indices ``0..n-1``.  To add an operation, add an entry; the generator, the
vocabulary, the CLI and the notebooks pick it up.

==========  ======================================================================================
``MAX``     largest argument
``MIN``     smallest argument
``MED``     lower median: ``sorted(a)[(k-1)//2]`` for k arguments.  With two arguments that is the
            minimum, so a task whose MED nodes never have more than two arguments is rejected
            (MED would silently be MIN); give MED its own arity (``op_args: {MED: 3}``).
``ADD``     sum mod n
``PROD``    product mod n
``NADD``    alternating sum ``a1 - a2 + a3 - ...`` mod n (paper A's "alternating-sign ADD")
``SADD``    ADD seen through a fixed relabelling sigma of 0..n-1 drawn from ``relabel_seed``:
            ``SADD(a...) = sigma(sum(sigma^-1(a_i)) mod n)``.  Isomorphic to ADD as a group
            operation, but its labels no longer agree with the order MAX/MIN/MED use (paper A's
            "shuffled ADD" control).
``RTAB``    a fixed random *commutative* table ``T`` (drawn from ``relabel_seed``) applied as a
            left fold: ``RTAB(a, b, c) = T[T[a, b], c]``.  No arithmetic structure at all.
==========  ======================================================================================
"""

from __future__ import annotations

import numpy as np

from .core import Domain, Op

MAX_ARITY = 8


def _nadd(a, d):
    return sum(x if i % 2 == 0 else -x for i, x in enumerate(a)) % d.n_values


def _sadd(a, d):
    sigma, inv = d.tables["sigma"], d.tables["sigma_inv"]
    return int(sigma[sum(int(inv[x]) for x in a) % d.n_values])


def _rtab(a, d):
    t = d.tables["rtab"]
    acc = a[0]
    for x in a[1:]:
        acc = int(t[acc, x])
    return acc


def _prod(a, d):
    r = 1
    for x in a:
        r = (r * x) % d.n_values
    return r


LISTOPS_OPS: dict[str, Op] = {
    o.name: o
    for o in [
        Op("MAX", 1, MAX_ARITY, lambda a, d: max(a), "largest argument"),
        Op("MIN", 1, MAX_ARITY, lambda a, d: min(a), "smallest argument"),
        Op("MED", 1, MAX_ARITY, lambda a, d: sorted(a)[(len(a) - 1) // 2], "lower median",
           degenerate=(2, "MIN (the lower median of two numbers is their minimum)")),
        Op("ADD", 1, MAX_ARITY, lambda a, d: sum(a) % d.n_values, "sum mod n"),
        Op("PROD", 1, MAX_ARITY, _prod, "product mod n"),
        Op("NADD", 1, MAX_ARITY, _nadd, "alternating sum a1-a2+a3-... mod n"),
        Op("SADD", 1, MAX_ARITY, _sadd, "ADD under a fixed random relabelling (relabel_seed)"),
        Op("RTAB", 2, MAX_ARITY, _rtab, "left fold of a fixed random commutative table"),
    ]
}


def relabel_tables(n: int, relabel_seed: int) -> dict[str, np.ndarray]:
    """The fixed random relabelling sigma (and its inverse) and the random commutative table."""
    rng = np.random.default_rng([relabel_seed, n, 0x5ADD])
    sigma = rng.permutation(n)
    inv = np.empty(n, dtype=np.int64)
    inv[sigma] = np.arange(n)
    upper = rng.integers(n, size=(n, n))
    table = np.triu(upper) + np.triu(upper, 1).T  # symmetric: T[a, b] == T[b, a]
    return {"sigma": sigma, "sigma_inv": inv, "rtab": table}


def listops_domain(modulus: int, relabel_seed: int = 0) -> Domain:
    return Domain(
        family="listops",
        value_tokens=tuple(str(v) for v in range(modulus)),
        ops=LISTOPS_OPS,
        tables=relabel_tables(modulus, relabel_seed),
    )
