"""Multiplicity: Holm's step-down adjustment within one family of claims.

With m tests in a family, sort the p-values p_(1) <= ... <= p_(m); the adjusted value of the
i-th smallest is ``max_{j <= i} min(1, (m - j + 1) p_(j))``.  Rejecting where the adjusted p is at
most alpha keeps the chance of *any* false claim in the family at most alpha (Holm 1979), with no
assumption on how the tests depend on each other.  Missing p-values (``None`` / NaN: a row decided
by no test) take no part and stay ``None``.
"""

from __future__ import annotations

import math


def holm(pvalues) -> list[float | None]:
    """Holm-adjusted p-values, in the order given (``None`` / NaN entries stay ``None``).

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    ps = list(pvalues)
    idx = []
    for i, p in enumerate(ps):
        if p is None or (isinstance(p, float) and math.isnan(p)):
            continue
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"'pvalues' must lie in [0, 1]; got {p!r} at position {i}")
        idx.append((p, i))
    idx.sort()
    m = len(idx)
    out: list[float | None] = [None] * len(ps)
    running = 0.0
    for rank, (p, i) in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = round(running, 15)
    return out
