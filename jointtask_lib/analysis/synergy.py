"""Can we predict, *before training*, which partner operations help a hard one?  An a priori score.

Paper A lists "can compatible pairings be predicted before training?" as an open question, and
offers two partial explanations: (i) *shared computational primitives* — easy tasks shape the
number embeddings (order, parity, divisibility) and the hard task reuses that structure; (ii) the
*output-distribution hypothesis* — operations whose outputs are peaked (far from uniform) are
easier to learn.  The score defined here turns both into numbers computed from the operation
tables alone — no model, no training — so that it can be correlated with measured reduction
factors (notebook 08).  Everything is exact (full enumeration of the operand tuples).

Step 1 — value features
-----------------------
A *feature* is a coarse description of a number ``v`` in ``0..n-1``.  For every ``q`` from 2 to
``n // 2`` we use two q-class partitions of the values:

* ``res q`` — the residue ``v mod q`` (interleaved classes: parity is ``res 2``);
* ``blk q`` — the block ``floor(q v / n)`` (contiguous classes: "low/high" is ``blk 2``).

These are exactly the kinds of structure the embedding notebook (06) scores (parity,
divisibility, order); ``blk`` is order at resolution ``q``.  ``kinds`` selects the dictionary
(``("res", "blk")`` by default; ``("res",)`` or ``("blk",)`` to test one mechanism alone — a
parameter of notebook 08).

Step 2 — which features does an operation respect?  (closure)
-------------------------------------------------------------
For an operation ``A`` and a feature ``phi``, draw the operands ``X = (X_1..X_k)`` uniformly
(every tuple once, for each arity ``k`` of the task) and ask how much of the *output's* feature
is determined by the *operands'* features::

    closure_A(phi) = I( phi(A(X)) ; phi(X_1), ..., phi(X_k) ) / H( phi(A(X)) )

It is 1 when ``phi`` is a *congruence* of ``A``: ``A`` can be computed on the coarse description
alone ("even + odd = odd": parity for ADD; "the max of the high/low labels is the high/low label
of the max": blocks for MAX), 0 when the operands' features say nothing about the output's.  (If
the output's feature is constant, ``H = 0``, we set the closure to 0: nothing is computed.)
Such a feature is a primitive the operation can be partly solved with, and a representation that
encodes it serves every operation that respects it.

Even a random table respects fine features a little (with ``q`` close to ``n`` the feature nearly
*is* the value), so we subtract what a random operation gives: ``c0(phi)``, the mean closure of
``n_null`` random commutative tables applied as a left fold (the construction of ``RTAB``), and
keep the *excess* ``e_A(phi) = clip((closure - c0) / (1 - c0), 0, 1)``.  The vector ``e_A`` over
all features is the operation's *structure profile*.

Step 3 — alignment, easiness, synergy
-------------------------------------
* ``alignment(T, A)`` = weighted Jaccard similarity of the profiles,
  ``sum_phi min(e_T, e_A) / sum_phi max(e_T, e_A)``: how much of the structure either
  operation respects is respected by both.  An operation with itself gives 1; operations
  respecting disjoint features give 0; a random table gives about 0.  (Not the cosine: a cosine
  ignores magnitudes, so an operation with almost no labelled structure, such as ADD mod a
  prime, would look "aligned" with anything that points the same way.)
* ``easiness(A)`` = ``1 - H(A(X)) / log2 n``, one minus the normalised entropy of the output
  distribution (:func:`jointtask_lib.tasks.output_distribution`): 0 for uniform outputs (ADD),
  larger for peaked ones (MAX, PROD mod a composite n).
* ``synergy(T, A) = alignment(T, A) * max(0, easiness(A) - easiness(T))``: a partner helps a
  target if it teaches structure the target can use (alignment) *and* is easier, so that the
  structure is learned first (paper A: pairing two hard tasks, ADD+NADD, gives nothing).
  For a set of partners (ADD with MAX and MED) the score is the best single partner's, so a
  set ties with its best member, and mirror-image partners (MIN is MAX with the values reversed,
  ``v -> n-1-v``) can tie too.  Tied scores are tied ranks in the correlation below.

Why this design.  It is derived from paper A's two hypotheses and uses only the operation
tables; nothing in it is estimated from training runs.  It has no free parameter except the
feature dictionary, which is the structure the paper itself reports.  Its
known blind spots: it sees only features that are functions of the labels (a relabelled ADD,
``SADD``, is as learnable as ADD but shares no labelled structure with MAX — the score says
"no synergy", which is paper A's result for that control); it ignores the chain of thought and
the nesting; and its easiness factor is a hypothesis, not a measurement.

For comparison, :func:`output_mi` is the naive score "how much does one operation's output
tell about the other's on the same operands" (normalised mutual information).  It is 1 for an
operation and any relabelling of its outputs and high for ADD/NADD (same parity of the output),
so it predicts that NADD is ADD's best partner — the opposite of paper A's result.

:func:`spearman_test` gives the rank correlation with an exact (or Monte Carlo) permutation
p-value and a bootstrap interval; ties (equal scores) get average ranks and the permutation null
is built from those same ranks, so the p-value stays exact with ties.  With five to ten pairings
it can show a tendency, not establish a law.  :func:`as_point` turns a transition or reduction
factor into the number a correlation uses (a bound counts as its value), :func:`tied_groups`
lists tied scores and :func:`describe_correlation` words a result for the notebook.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from ..tasks import Domain, entropy_bits, output_distribution
from ..validate import check_int

__all__ = [
    "value_features", "closure", "null_closure", "structure_profile", "alignment", "easiness", "synergy",
    "output_mi", "synergy_rows", "spearman_test", "as_point", "tied_groups", "describe_correlation",
    "correlation_claim", "FEATURE_KINDS",
]

FEATURE_KINDS = ("res", "blk")

_TABLES: dict = {}
_MAX_TABLES = 128


def _arities(arities, op: str | None = None) -> tuple[int, ...]:
    """The argument counts to average over: a sequence (every op), or a mapping ``{op: [k, ...]}``
    giving each op its own (the task's arity per operation, ``TaskConfig.arity``: with MED at 3
    arguments and ADD at 2, MED must not be scored at 2, where it is MIN)."""
    if isinstance(arities, Mapping):
        if op not in arities:
            raise ValueError(f"'arities' has no entry for {op}; it gives {', '.join(map(str, arities))}")
        arities = arities[op]
    out = tuple(int(k) for k in arities)
    if not out or min(out) < 1:
        raise ValueError(f"'arities' must be a non-empty list of positive ints; got {arities!r}")
    return out


def _kinds(kinds) -> tuple[str, ...]:
    out = tuple(kinds)
    if not out or any(k not in FEATURE_KINDS for k in out) or len(set(out)) != len(out):
        raise ValueError(f"'kinds' must be a non-empty list of distinct feature kinds from {list(FEATURE_KINDS)}; "
                         f"got {kinds!r}")
    return out


def value_features(n: int, q_max: int | None = None, kinds=FEATURE_KINDS) -> dict[str, np.ndarray]:
    """``{"res q": v mod q, "blk q": floor(q v / n)}`` for ``q = 2..q_max`` (default ``n // 2``),
    restricted to the feature ``kinds`` (``"res"``, ``"blk"``)."""
    check_int("n", n, lo=2)
    kinds = _kinds(kinds)
    q_max = n // 2 if q_max is None else check_int("q_max", q_max, lo=2, hi=n)
    v = np.arange(n)
    out = {}
    for q in range(2, max(2, q_max) + 1):
        if q > n:
            break
        if "res" in kinds:
            out[f"res {q}"] = v % q
        if "blk" in kinds:
            out[f"blk {q}"] = (q * v) // n
    return out


def _op_outputs(domain: Domain, op: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(all operand tuples ``[N, k]``, outputs ``[N]``) for ``op`` at arity ``k`` (memoised)."""
    key = (id(domain), op, k)
    hit = _TABLES.get(key)
    if hit is not None and hit[0] is domain:
        return hit[1], hit[2]
    if op not in domain.ops:
        raise ValueError(f"'op' must be one of {sorted(domain.ops)}; got {op!r}")
    o = domain.ops[op]
    if not (o.min_arity <= k <= o.max_arity):
        raise ValueError(f"{op} takes {o.min_arity}..{o.max_arity} arguments; got arity {k}")
    leaves = np.asarray(list(domain.operands(op)), dtype=np.int64)
    tuples = leaves[np.array(list(itertools.product(range(len(leaves)), repeat=k)), dtype=np.int64)]
    outs = np.fromiter((domain.apply(op, t) for t in map(tuple, tuples.tolist())), dtype=np.int64,
                       count=len(tuples))
    if len(_TABLES) >= _MAX_TABLES:
        _TABLES.pop(next(iter(_TABLES)))
    _TABLES[key] = (domain, tuples, outs)
    return tuples, outs


def _h(counts: np.ndarray) -> float:
    c = counts[counts > 0].astype(float)
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def _info_ratio(y: np.ndarray, x: np.ndarray, ny: int, nx: int) -> float:
    """``I(Y; X) / H(Y)`` from paired integer samples (``0`` when ``H(Y) = 0``)."""
    joint = np.bincount(x * ny + y, minlength=nx * ny).reshape(nx, ny)
    hy = _h(joint.sum(0))
    if hy <= 1e-12:
        return 0.0
    mi = hy + _h(joint.sum(1)) - _h(joint.ravel())
    return float(min(1.0, max(0.0, mi / hy)))


def _closure_from(tuples: np.ndarray, outs: np.ndarray, feat: np.ndarray) -> float:
    m = int(feat.max()) + 1
    k = tuples.shape[1]
    code = (feat[tuples] * (m ** np.arange(k))).sum(1)
    return _info_ratio(feat[outs], code, m, m**k)


def closure(domain: Domain, op: str, feature: np.ndarray, arities: Sequence[int] = (2, 3)) -> float:
    """``I(phi(A(X)); phi(X_1..X_k)) / H(phi(A(X)))``, averaged over ``arities`` (exact)."""
    feat = np.asarray(feature, dtype=np.int64)
    if feat.shape != (domain.n_values,) or feat.min() < 0:
        raise ValueError(f"'feature' must give a class index >= 0 for each of the {domain.n_values} values")
    return float(np.mean([_closure_from(*_op_outputs(domain, op, k), feat) for k in _arities(arities, op)]))


def _random_fold_outputs(n: int, k: int, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tuples = np.array(list(itertools.product(range(n), repeat=k)), dtype=np.int64)
    acc = tuples[:, 0]
    for j in range(1, k):
        acc = table[acc, tuples[:, j]]
    return tuples, acc


def null_closure(n: int, feature: np.ndarray, arities: Sequence[int] = (2, 3), n_null: int = 8,
                 seed: int = 0) -> float:
    """Mean :func:`closure` of ``n_null`` random operations: left folds of uniformly random
    commutative tables ``Z_n x Z_n -> Z_n`` drawn from ``numpy.random.default_rng([seed, n, i])``."""
    check_int("n_null", n_null, lo=1)
    feat = np.asarray(feature, dtype=np.int64)
    vals = []
    for i in range(n_null):
        rng = np.random.default_rng([seed, n, i])
        upper = rng.integers(n, size=(n, n))
        table = np.triu(upper) + np.triu(upper, 1).T
        for k in _arities(arities):
            vals.append(_closure_from(*_random_fold_outputs(n, k, table), feat))
    return float(np.mean(vals))


_NULLS: dict = {}


def structure_profile(domain: Domain, op: str, arities: Sequence[int] = (2, 3), *, q_max: int | None = None,
                      n_null: int = 8, kinds=FEATURE_KINDS) -> dict[str, dict[str, float]]:
    """``{feature: {"closure", "null", "excess"}}`` for every feature of :func:`value_features`."""
    ar = _arities(arities, op)
    out = {}
    for name, feat in value_features(domain.n_values, q_max, kinds).items():
        key = (domain.n_values, name, ar, n_null)
        if key not in _NULLS:
            _NULLS[key] = null_closure(domain.n_values, feat, ar, n_null)
        c0 = _NULLS[key]
        c = closure(domain, op, feat, ar)
        ex = 0.0 if c0 >= 1.0 else float(np.clip((c - c0) / (1.0 - c0), 0.0, 1.0))
        out[name] = {"closure": c, "null": c0, "excess": ex}
    return out


def _excess(domain, op, arities, q_max, n_null, kinds) -> np.ndarray:
    prof = structure_profile(domain, op, arities, q_max=q_max, n_null=n_null, kinds=kinds)
    return np.array([v["excess"] for v in prof.values()])


def alignment(domain: Domain, target: str, partner: str, arities: Sequence[int] = (2, 3), *,
              q_max: int | None = None, n_null: int = 8, kinds=FEATURE_KINDS) -> float:
    """Weighted Jaccard (Ruzicka) similarity of the two structure profiles:
    ``sum_phi min(e_T, e_A) / sum_phi max(e_T, e_A)`` (0 if both are all zero)."""
    a = _excess(domain, target, arities, q_max, n_null, kinds)
    b = _excess(domain, partner, arities, q_max, n_null, kinds)
    den = float(np.maximum(a, b).sum())
    return 0.0 if den < 1e-12 else float(np.minimum(a, b).sum() / den)


def easiness(domain: Domain, op: str, arities: Sequence[int] = (2, 3)) -> float:
    """``1 - H(output) / log2 n`` (0 = uniform outputs; larger = more peaked)."""
    p = output_distribution(domain, op, arities=_arities(arities, op))
    return float(max(0.0, 1.0 - entropy_bits(p) / math.log2(domain.n_values)))


def synergy(domain: Domain, target: str, partners, arities: Sequence[int] = (2, 3), *,
            q_max: int | None = None, n_null: int = 8, kinds=FEATURE_KINDS) -> float:
    """``max over partners A of alignment(target, A) * max(0, easiness(A) - easiness(target))``."""
    partners = [partners] if isinstance(partners, str) else list(partners)
    if not partners:
        raise ValueError("'partners' must name at least one operation")
    e_t = easiness(domain, target, arities)
    return max(alignment(domain, target, a, arities, q_max=q_max, n_null=n_null, kinds=kinds)
               * max(0.0, easiness(domain, a, arities) - e_t) for a in partners)


def output_mi(domain: Domain, a: str, b: str, arities: Sequence[int] = (2, 3)) -> float:
    """Naive score: ``I(A(X); B(X)) / sqrt(H(A(X)) H(B(X)))`` on shared uniform operands, averaged
    over ``arities`` (1 for an op with itself or with a relabelling of its outputs).  With an arity
    per op (a mapping), over the argument counts of either op (both are evaluated on the same
    operand tuples)."""
    vals = []
    n = domain.n_values
    ks = sorted(set(_arities(arities, a)) | set(_arities(arities, b))) if isinstance(arities, Mapping) else _arities(arities)
    for k in ks:
        ta, ya = _op_outputs(domain, a, k)
        tb, yb = _op_outputs(domain, b, k)
        if ta.shape != tb.shape or not np.array_equal(ta, tb):
            raise ValueError(f"{a} and {b} must take the same operands to compare their outputs")
        joint = np.bincount(ya * n + yb, minlength=n * n).reshape(n, n).astype(float)
        ha, hb, hab = _h(joint.sum(1)), _h(joint.sum(0)), _h(joint.ravel())
        vals.append(0.0 if ha * hb <= 1e-12 else (ha + hb - hab) / math.sqrt(ha * hb))
    return float(np.mean(vals))


def synergy_rows(domain: Domain, pairings, arities: Sequence[int] = (2, 3), *, q_max: int | None = None,
                 n_null: int = 8, kinds=FEATURE_KINDS) -> list[dict]:
    """One dict per ``(target, partners)`` pairing: ``alignment`` (best partner), ``easiness``
    of target and partners, ``synergy`` and the naive ``output_mi`` (best partner)."""
    rows = []
    for target, partners in pairings:
        partners = [partners] if isinstance(partners, str) else list(partners)
        al = {a: alignment(domain, target, a, arities, q_max=q_max, n_null=n_null, kinds=kinds) for a in partners}
        ez = {a: easiness(domain, a, arities) for a in partners}
        rows.append({
            "target": target, "partners": tuple(partners),
            "alignment": max(al.values()),
            "easiness_target": easiness(domain, target, arities),
            "easiness_partners": max(ez.values()),
            "synergy": synergy(domain, target, partners, arities, q_max=q_max, n_null=n_null, kinds=kinds),
            "output_mi": max(output_mi(domain, target, a, arities) for a in partners),
        })
    return rows


def spearman_test(x, y, *, n_perm: int = 20000, n_boot: int = 2000, ci: float = 0.95, seed: int = 0) -> dict:
    """Spearman's rho between ``x`` and ``y`` with a two-sided permutation p-value and a
    bootstrap percentile interval.

    Ties: both sides are ranked with average ranks (``scipy.stats.rankdata``), ``rho`` is the
    Pearson correlation of those ranks (= ``scipy.stats.spearmanr``), and the null distribution
    permutes the *same* tied ranks of ``y`` against those of ``x`` — so the p-value is the exact
    permutation p-value with ties, not the no-ties formula.  A permuted statistic equal to the
    observed one up to round-off counts as "at least as extreme" (ties with the observed value
    are frequent when ranks are tied).  The p-value is exact (all ``n!`` orderings of ``y``) for
    ``n <= 8``, otherwise Monte Carlo with ``n_perm`` shuffles and ``p = (1 + count) / (1 +
    n_perm)`` (never 0).  The interval resamples (x, y) pairs; resamples with a constant side are
    dropped (counted in ``n_boot_used``).  Returns ``{"rho", "p", "lo", "hi", "n", "exact",
    "n_boot_used", "ties"}`` (``ties``: whether either side has tied values); ``rho`` is NaN (and
    ``p`` 1) with fewer than 3 pairs or a constant side.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"'x' and 'y' must be 1-D and of equal length; got {x.shape} and {y.shape}")
    check_int("n_perm", n_perm, lo=1)
    check_int("n_boot", n_boot, lo=0)
    n = len(x)
    ties = bool(n and (len(np.unique(x)) < n or len(np.unique(y)) < n))
    nan = {"rho": float("nan"), "p": 1.0, "lo": float("nan"), "hi": float("nan"), "n": n, "exact": n <= 8,
           "n_boot_used": 0, "ties": ties}
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return nan
    rx, ry = stats.rankdata(x), stats.rankdata(y)

    def rho_of(a, b):
        a, b = a - a.mean(), b - b.mean()
        den = math.sqrt(float((a * a).sum() * (b * b).sum()))
        return float((a * b).sum() / den) if den > 0 else float("nan")

    rho = rho_of(rx, ry)
    rng = np.random.default_rng(seed)
    exact = n <= 8
    if exact:
        perms = np.array(list(itertools.permutations(range(n))))
    else:
        perms = np.array([rng.permutation(n) for _ in range(n_perm)])
    a = rx - rx.mean()
    b = ry[perms] - ry.mean()
    null = (b @ a) / math.sqrt(float((a * a).sum() * ((ry - ry.mean()) ** 2).sum()))
    count = int(np.sum(np.abs(null) >= abs(rho) - 1e-9))
    p = count / len(perms) if exact else (count + 1) / (len(perms) + 1)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if np.ptp(x[idx]) == 0 or np.ptp(y[idx]) == 0:
            continue
        r = rho_of(stats.rankdata(x[idx]), stats.rankdata(y[idx]))
        if math.isfinite(r):
            boots.append(r)
    lo = hi = float("nan")
    if boots:
        lo, hi = (float(v) for v in np.quantile(boots, [(1 - ci) / 2, (1 + ci) / 2]))
    return {"rho": rho, "p": float(p), "lo": lo, "hi": hi, "n": n, "exact": exact, "n_boot_used": len(boots),
            "ties": ties}


def as_point(t) -> tuple[float | None, str | None]:
    """The number a correlation uses for a transition or reduction factor ``t`` and its kind.

    An estimate counts as its value; a bound (``"above"``: ``> x``, ``"below"``: ``< x``) counts
    as the value it bounds, ``x`` — a simplification the notebooks state; an ``"inconclusive"``
    reduction (both transitions bounds in the same direction) or a missing ``t`` gives ``None``.
    Returns ``(value or None, kind or None)``.
    """
    if t is None:
        return None, None
    if t.kind == "estimate":
        return float(t.value), t.kind
    if t.kind in ("above", "below"):
        return float(t.bound), t.kind
    return None, t.kind


def tied_groups(rows, key: str, label: str = "label", *, tol: float = 1e-9) -> list[list[str]]:
    """Groups (of two or more) of ``rows`` whose ``key`` values are equal within ``tol``; each
    group is a list of the rows' ``label`` in row order, groups in order of first appearance."""
    groups: list[tuple[float, list[str]]] = []
    for r in rows:
        v = float(r[key])
        for g in groups:
            if abs(g[0] - v) <= tol:
                g[1].append(r[label])
                break
        else:
            groups.append((v, [r[label]]))
    return [g[1] for g in groups if len(g[1]) > 1]


def describe_correlation(t: dict, x: str, y: str, *, alpha: float = 0.05, expected_sign: int = 1) -> str:
    """A plain-language sentence on a :func:`spearman_test` result ``t`` of ``x`` against ``y``
    (what it shows and what it does not), for notebook prose."""
    if not math.isfinite(t["rho"]):
        return (f"With {t['n']} usable point(s) (or no spread on one side) there is no correlation between {x} and "
                f"{y} to compute: this run says nothing about whether {x} predicts {y}.")
    how = "exact" if t["exact"] else "Monte Carlo"
    stat = f"Spearman rho = {t['rho']:.2f} over {t['n']} points ({how} permutation p = {t['p']:.3f}"
    if math.isfinite(t["lo"]):
        stat += f", bootstrap 95% interval [{t['lo']:.2f}, {t['hi']:.2f}]"
    stat += ")"
    if t.get("ties"):
        stat += "; tied values share a rank"
    if t["p"] < alpha:
        agrees = t["rho"] * expected_sign > 0
        verdict = (f"the ranking by {x} agrees with the measured {y} beyond chance" if agrees else
                   f"the ranking by {x} runs *against* the measured {y}, beyond chance")
        return f"{stat}: {verdict} — with this few points a tendency, not a law."
    return (f"{stat}: not distinguishable from no association at p < {alpha}; with {t['n']} points only a strong "
            f"rank agreement could be detected, so this neither supports nor rules out that {x} predicts {y}.")


def correlation_claim(*, id: str, claim: str, paper_value: str, test: dict, what: str, units: str, preset: str,
                      notebook: str, note: str = "", alpha: float = 0.05, expected_sign: int = 1) -> dict:
    """A paper-A scorecard row for a rank-correlation claim from a :func:`spearman_test` result:
    ``ours`` states ``rho``, ``p`` and ``n`` (``what`` names the two quantities, e.g.
    ``"H/log2 n, transition"``; ``units`` what the points are, e.g. ``"ops (mod 10)"``) and the
    verdict is :func:`jointtask_lib.scorecard.verdict_correlation` (inconclusive with too few
    points)."""
    from .. import scorecard

    ours = (f"Spearman rho({what}) = {test['rho']:.2f}, p = {test['p']:.3f}, n = {test['n']} {units}"
            f"{'; tied values share ranks' if test.get('ties') and math.isfinite(test['rho']) else ''}")
    return scorecard.claim(id=id, paper="A", claim=claim, paper_value=paper_value, ours=ours,
                           verdict=scorecard.verdict_correlation(test["rho"], test["p"], expected_sign=expected_sign,
                                                                 alpha=alpha),
                           preset=preset, notebook=notebook, note=note, **_correlation_stats(test, expected_sign))


def _correlation_stats(test: dict, expected_sign: int) -> dict:
    """The statistics columns of a correlation row: the two-sided permutation p counts for the
    direction the correlation has (level 0.05 two-sided = 0.025 per side); ``n_runs`` is the
    number of points."""
    rho, p = test.get("rho"), test.get("p")
    out = {"test": "Spearman rank correlation, permutation (two-sided)", "alpha": 0.05, "n_runs": int(test["n"]),
           "family": "output structure"}
    if rho is None or p is None or not math.isfinite(rho) or not math.isfinite(p):
        return out
    key = "p" if rho * expected_sign > 0 else "p_against"
    return out | {key: float(p)}
