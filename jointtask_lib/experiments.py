"""From run records to the paper's quantities: accuracy curves, transitions, reduction factors.

The notebooks and the scorecard share these functions, so a number in a table and the same number
in the scorecard are computed once, by the same code.

Size axis: the number of trainable parameters of one model (:func:`jointtask_lib.model.count_params`),
as paper A reports model size.  Accuracy: ``gen_acc`` on the examples of one operation (the
model generates its own CoT), so a joint model's accuracy "on ADD" is measured on ADD examples only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .records import Record, RecordTable
from .transition import estimate_transition, reduction_factor
from .validate import check_float


def select(records, *, ops=None, size=None, **task_fields) -> list[dict]:
    """Records (the stored dicts) of one task mix (``ops`` in order) and size, optionally matching
    more task fields (:meth:`jointtask_lib.records.Record.matches`); ``None`` and corrupt entries
    are left out."""
    return [r for r in records if r is not None and "error" not in r
            and Record.from_dict(r).matches(ops=ops, size=size, **task_fields)]


def accuracy_points(records, *, ops, op, size=None, metric: str = "gen_acc", x: str = "n_params", **task_fields):
    """Long-format arrays ``(sizes, accs, seeds)`` of accuracy on ``op`` for the mix ``ops``
    (:meth:`jointtask_lib.records.RecordTable.points`).

    ``x="n_params"`` (default) or ``"n_embed"`` chooses the size axis.
    """
    table = RecordTable.from_dicts(records).select(ops=ops, size=size, **task_fields)
    return table.points(op, metric=metric, x=x, label=f"{fmt_mix(ops)} (op {op}, size {size})")


def chance_accuracy(records, *, ops, op, size=None) -> float:
    """1 / number of values: the accuracy of a uniform guess (documented floor for fits)."""
    sel = RecordTable.from_dicts(records).select(ops=ops, size=size)
    if not len(sel):
        return 0.0
    t = sel.records[0].task
    n = t["modulus"] if t["family"] == "listops" else int(np.prod(range(1, t["perm_k"] + 1)))
    return 1.0 / n


def known_floor(records, *, ops, op, size=None) -> float | None:
    """The accuracy floor to fix in the logistic fit (``chance`` of
    :func:`jointtask_lib.transition.estimate_transition`), or ``None`` to leave it free.

    When ``op``'s outputs are uniform over the n values (ADD, NADD mod n; PMUL in S_k) no answer is
    more likely than another, so a model that learned nothing scores exactly ``1 / n``
    (:func:`chance_accuracy`): that is a known floor, and fixing it makes the fit better determined.
    When the outputs are skewed (MAX, MIN, MED, PROD, SGN, ...), a model can beat ``1 / n`` by always
    giving the most common answer, so the floor is not known and is fitted.  Uniformity is checked
    exactly on the two-operand distribution (:func:`jointtask_lib.tasks.output_distribution`; for
    the group-like uniform ops it is uniform for every number of operands).  ``None`` also when
    there are no records.
    """
    from .tasks import TaskConfig, output_distribution

    sel = RecordTable.from_dicts(records).select(ops=ops, size=size)
    if not len(sel):
        return None
    task = TaskConfig.from_dict(sel.records[0].task)
    dom = task.domain()
    p = output_distribution(dom, op, arities=(2,), max_enum=10**9)
    if np.max(np.abs(p * p.size - 1.0)) > 1e-9:
        return None
    return chance_accuracy(records, ops=ops, op=op, size=size)


def unique_records(records) -> list[dict]:
    """``records`` with each run (its ``key``, the hash of its full configuration) once, in first
    order.  Sweeps share runs through the cache (ADD alone is in several), so concatenating their
    records repeats runs; a repeated run must not count as an extra seed."""
    seen, out = set(), []
    for r in records:
        if r is None:
            continue
        k = r.get("key")
        if k is None:
            raise ValueError("every record must have a 'key' (the run's configuration hash)")
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def transition_of(records, *, ops, op, size=None, n_boot: int = 500, **kw):
    """The learning transition (in parameters) of ``op`` when trained in the mix ``ops``."""
    xs, ys, seeds = accuracy_points(records, ops=ops, op=op, size=size)
    if len(set(xs.tolist())) < 3:
        return None
    return estimate_transition(xs, ys, seeds, n_boot=n_boot, **kw)


def reduction_of(records, *, single, joint, op, size=None, n_boot: int = 500, joint_records=None, **kw):
    """Reduction factor transition(single) / transition(joint) for ``op``, with a CI.

    ``joint_records`` (default: ``records``) holds the joint condition's runs — for comparisons
    whose two conditions share a task mix, such as ADD from scratch vs ADD after pretraining.
    """
    a = accuracy_points(records, ops=single, op=op, size=size)
    b = accuracy_points(records if joint_records is None else joint_records, ops=joint, op=op, size=size)
    if len(set(a[0].tolist())) < 3 or len(set(b[0].tolist())) < 3:
        return None
    return reduction_factor(a, b, n_boot=n_boot, **kw)


def width_ticks(records) -> dict:
    """``{n_params: n_embed}`` over ``records``: the width behind each parameter count (the tick
    labels of :func:`jointtask_lib.plots.plot_transition_curves`)."""
    return {float(r.n_params): r.width for r in RecordTable.from_dicts(records)}


def pooled_reduction_of(records, *, single, joint, op, size=None, joint_records=None,
                        threshold: float = 0.8, **kw):
    """The pooled reduction factor transition(single) / transition(joint) for ``op``, with its
    profile-likelihood CI and tests (:func:`jointtask_lib.stats.pooled_reduction`): every run of
    both mixes is one outcome, learned when its accuracy on ``op`` reaches ``threshold`` (an
    absolute bar, the same for both conditions).  The verdicts use this; :func:`reduction_of`
    (the seed bootstrap of two fitted curves) stays as the descriptive curve fit.  ``None`` when
    either condition has no runs.  ``joint_records`` as in :func:`reduction_of`; other keywords go
    to :func:`~jointtask_lib.stats.pooled_reduction` (``lapse``, ``seed_effect``, ``ci``, ...)."""
    from .stats import pooled_reduction

    a = accuracy_points(records, ops=single, op=op, size=size)
    b = accuracy_points(records if joint_records is None else joint_records, ops=joint, op=op, size=size)
    if a[0].size == 0 or b[0].size == 0:
        return None
    return pooled_reduction(a, b, threshold=threshold, **kw)


def comparison_family(c) -> str:
    """The scorecard family (Holm's correction runs within it) of a :class:`Comparison`:
    ``"pairings"`` where paper A expects a benefit, ``"controls"`` where it expects none,
    ``"extensions"`` where it has no expectation (scored apart, not counted)."""
    return {"benefit": "pairings", "none": "controls"}.get(c.expect, "extensions")


def mean_curve(records, *, ops, op, size=None, x: str = "n_params") -> list[tuple[float, float, float, int]]:
    """(size, mean accuracy, sd across seeds, n seeds) per size, for tables."""
    table = RecordTable.from_dicts(records).select(ops=ops, size=size)
    return table.mean_curve(op, x=x, label=f"{fmt_mix(ops)} (op {op}, size {size})")


def fmt_mix(ops) -> str:
    return "+".join(ops)


def interval(t) -> tuple[float, float]:
    """The range a transition is known to lie in: its CI, or ``(bound, inf)`` / ``(0, bound)``."""
    inf = float("inf")
    if t is None:
        return (0.0, inf)
    if t.kind == "above":
        return (t.bound, inf)
    if t.kind == "below":
        return (0.0, t.bound)
    lo = 0.0 if getattr(t, "lo_kind", None) == "below" or t.lo is None else t.lo
    hi = inf if getattr(t, "hi_kind", None) == "above" or t.hi is None else t.hi
    return (lo, hi)


def hardness_order(transitions: dict) -> list[str]:
    """Operations from easiest to hardest, by estimate or bound (``< x`` sorts as x, before an
    estimate at x; ``> x`` after it); operations without a transition come last."""
    def key(op):
        t = transitions[op]
        if t is None:
            return (float("inf"), 3)
        if t.kind == "below":
            return (t.bound, 0)
        if t.kind == "above":
            return (t.bound, 2)
        return (t.value, 1)

    return sorted(transitions, key=key)


def hardest_verdict(transitions: dict, op: str) -> tuple[str, str]:
    """Is ``op`` the hardest?  *reproduced* when its interval lies wholly above every other
    operation's; *not reproduced* when some other operation's interval lies wholly above it;
    otherwise *inconclusive*.  Returns (verdict, explanation)."""
    if transitions.get(op) is None:
        return "inconclusive", f"no transition could be estimated for {op}"
    lo, hi = interval(transitions[op])
    harder = [o for o, t in transitions.items() if o != op and interval(t)[0] > hi]
    not_separated = [o for o, t in transitions.items() if o != op and interval(t)[1] >= lo]
    if harder:
        return "not reproduced", f"clearly harder than {op}: {', '.join(harder)}"
    if not_separated:
        return "inconclusive", f"not separated from {op} within the CIs: {', '.join(not_separated)}"
    return "reproduced", f"{op}'s transition lies above every other operation's CI"


def hardest_test(points: dict, op: str, *, threshold: float = 0.8, alpha: float = 0.025) -> dict:
    """Is ``op`` the hardest?  A pre-registered test on the pooled transition model
    (:func:`jointtask_lib.stats.pooled_reduction`): for every other operation ``o`` the factor
    transition(op) / transition(o) from all runs of both (``points[o]`` = ``(sizes, accs, seeds)``
    of ``o`` trained alone, :func:`accuracy_points`), one-sided p for factor > 1.  ``op`` is the
    hardest when it is harder than *every* other one, so the claim's p is the largest of those
    p-values (an intersection-union test: no multiplicity penalty); the p against the claim is
    the Bonferroni-corrected smallest p for factor < 1 (some operation is harder).  Returns
    ``{"verdict", "detail", "p", "p_against", "n_runs", "factors"}``; operations without runs are
    skipped, and with none left the verdict is inconclusive."""
    from .stats import pooled_reduction

    if op not in points:
        return {"verdict": "inconclusive", "detail": f"no runs of {op}", "p": None, "p_against": None,
                "n_runs": None, "factors": {}}
    factors, ps, p_less = {}, {}, {}
    n_runs = len(points[op][0])
    for o, pts in points.items():
        if o == op or len(pts[0]) == 0:
            continue
        red = pooled_reduction(points[op], pts, threshold=threshold)
        factors[o] = red
        ps[o] = red.p
        p_less[o] = 1.0 - red.p if math.isfinite(red.factor) else 1.0
        n_runs += len(pts[0])
    if not factors:
        return {"verdict": "inconclusive", "detail": "no other operation to compare with", "p": None,
                "p_against": None, "n_runs": n_runs, "factors": {}}
    p = max(ps.values())
    p_against = min(1.0, len(p_less) * min(p_less.values()))
    worst = max(ps, key=ps.get)
    if p <= alpha:
        verdict = "reproduced"
        detail = f"harder than every other operation (largest one-sided p {p:.2g}, vs {worst})"
    elif p_against <= alpha:
        verdict = "not reproduced"
        harder = min(p_less, key=p_less.get)
        detail = f"{harder} is harder than {op} (Bonferroni p {p_against:.2g})"
    else:
        verdict = "inconclusive"
        detail = f"not shown harder than {worst} (one-sided p {ps[worst]:.2g})"
    return {"verdict": verdict, "detail": detail, "p": p, "p_against": p_against, "n_runs": n_runs,
            "factors": factors}


def joint_mix(target=("ADD",), pretrain=("MAX", "MED")) -> tuple[str, ...]:
    """The mix of the joint condition: the target first, then the pretraining ops — the same mix
    (and so the same cached runs) as the joint-training sweep's ``ADD+MAX+MED``."""
    target = tuple(target)
    return target + tuple(o for o in pretrain if o not in target)


def transfer_conditions(base_specs, *, target=("ADD",), pretrain=("MAX", "MED")) -> dict:
    """The runs of the transfer experiment, built from the ``target`` runs of a sweep.

    For every (width, seed) of ``base_specs`` whose mix is ``target``:

    * ``scratch``   — ``target`` from a random initialisation, for the same number of steps as
      the target stage of every other condition (step-matched);
    * ``scratch_matched`` — ``target`` from a random initialisation for as many steps as
      pretraining plus the target stage (compute-matched: the step budget of the whole history of
      ``transfer``; early stopping still ends a run that converged or stays at chance);
    * ``transfer``  — ``target`` initialised from a model trained on ``pretrain`` (same width and
      seed): paper A's pretraining experiment, and the reviewers' "continual" presentation;
    * ``joint``     — ``target + pretrain`` together from scratch (the "joint" presentation);
    * ``joint_then_target`` — ``target`` initialised from the joint model (fine-tuning on ADD
      alone after joint training, another reviewer request);
    * ``pretrain``  — the ``pretrain`` runs themselves.

    Data seeds: a run that starts from another run's weights uses that run's data seed, so no
    test expression of the target stage was a training expression of the earlier stage.  When the
    sweep gives every run its own data seed (``data_seeds: per_run``, detected from the target runs'
    ``train.data_seed``), ``pretrain`` and ``joint`` get their own mix's per-run seeds — the same
    runs, through the cache, as the joint-training sweep's — and ``transfer`` /
    ``joint_then_target`` inherit them.
    """
    from dataclasses import replace

    from .sweep import per_run_data_seed

    target, pretrain = tuple(target), tuple(pretrain)
    joint_ops = joint_mix(target, pretrain)
    out = {"scratch": [], "scratch_matched": [], "transfer": [], "joint": [], "joint_then_target": [],
           "pretrain": []}
    for s in base_specs:
        if tuple(s.task.ops) != target or s.init is not None:
            continue
        w = s.arch.n_embed
        per_run = s.train.data_seed is not None and s.train.data_seed == per_run_data_seed(s.task, s.seed, w)

        def stage(ops):
            task = s.task.with_ops(ops)
            train = replace(s.train, data_seed=per_run_data_seed(task, s.seed, w)) if per_run else s.train
            return replace(s, task=task, train=train)

        pre, joint = stage(pretrain), stage(joint_ops)
        out["scratch"].append(s)
        out["scratch_matched"].append(replace(s, train=replace(s.train, steps=pre.train.steps + s.train.steps)))
        out["pretrain"].append(pre)
        out["transfer"].append(replace(s, init=pre, train=replace(s.train, data_seed=pre.train.data_seed)))
        out["joint"].append(joint)
        out["joint_then_target"].append(replace(s, init=joint, train=replace(s.train, data_seed=joint.train.data_seed)))
    return out


def evaluate_on(root, specs, task, *, device: str = "cpu") -> list[dict]:
    """Metrics of trained runs ``specs`` (one group) on the test set of another ``task`` of the
    same family and size — e.g. whether a model fine-tuned on ADD still does MAX and MED."""
    import torch

    from .data import make_datasets
    from .runs import run_dir
    from .train import evaluate_stack, stack_models

    if not specs:
        return []
    states = [torch.load(run_dir(root, s) / "model.pt", map_location="cpu", weights_only=True) for s in specs]
    model = stack_models(list(specs), states, device=device)
    datas = []
    for s in specs:
        seed = s.seed if s.train.data_seed is None else s.train.data_seed
        datas.append(make_datasets(task, s.train.n_train, s.train.n_test, seed)[1])
    return evaluate_stack(model, datas, specs[0].vocab(), specs[0].model_config().block_size)


# ------------------------------------------------------------------------------------------------
# Paper A's comparisons and their expected values
# ------------------------------------------------------------------------------------------------

#: Paper A's reported reduction factors: (text for the scorecard, number or range for
#: :func:`jointtask_lib.scorecard.magnitude_check`).  "No benefit" is a factor of 1.
PAPER_A = {
    "joint": ("helps: 2-7x fewer parameters overall", (2.0, 7.0)),
    "prod_composite": ("≈3.6x smaller (composite n)", 3.6),
    "prod_prime": ("no benefit (prime n)", 1.0),
    "nadd": ("no benefit", 1.0),
    "relabelled": ("no benefit (labels disagree with MAX/MED's order)", 1.0),
    "perm_helper": ("structured auxiliary ops help (2-7x overall)", (2.0, 7.0)),
    "perm_unrelated": ("no shared primitives: no benefit", 1.0),
    "transfer": ("~7x smaller (n_embed 48, mod 20)", 7.0),
}


@dataclass(frozen=True)
class Comparison:
    """One reduction-factor comparison: ``op`` trained in ``single`` vs in ``joint``, at ``size``
    (modulus or k), measured on the runs of sweep ``sweep``.  ``expect`` is paper A's claim
    ("benefit" or "none"), or "extension" for a pairing paper A has no expectation for
    (:data:`PAIRING_EXPECTATIONS`); ``paper_value`` / ``paper_factor`` its text and number
    (:data:`PAPER_A`; :data:`NO_EXPECTATION` and ``None`` for an extension); ``id`` the scorecard
    id (unique)."""

    id: str
    label: str
    single: tuple[str, ...]
    joint: tuple[str, ...]
    op: str
    size: int
    expect: str
    paper_value: str
    paper_factor: float | tuple[float, float] | None
    sweep: str


#: The pairings paper A writes an expectation for: ``(target, partners)`` -> the :data:`PAPER_A`
#: entry (``"prod"``: by the modulus, ``prod_prime`` or ``prod_composite``).  A pairing that is
#: not here has **no** paper expectation: it is scored as an extension (:data:`NO_EXPECTATION`),
#: never against "2-7x" by default.  Adding a row needs the paper's text for it.
PAIRING_EXPECTATIONS: dict[tuple[str, frozenset], str] = {
    ("ADD", frozenset({"MAX"})): "joint",
    ("ADD", frozenset({"MIN"})): "joint",
    ("ADD", frozenset({"MED"})): "joint",
    ("ADD", frozenset({"MAX", "MED"})): "joint",
    ("ADD", frozenset({"PROD"})): "prod",
    ("ADD", frozenset({"NADD"})): "nadd",
    ("SADD", frozenset({"MAX", "MED"})): "relabelled",
    ("RTAB", frozenset({"MAX", "MED"})): "relabelled",
}

#: What a comparison without a paper expectation carries (``expect == "extension"``).
NO_EXPECTATION = "extension / no paper expectation"


def _listops_expectation(mix, target: str, n: int) -> str | None:
    """The :data:`PAPER_A` entry for ``target`` paired in ``mix`` at modulus ``n``, from the
    explicit table :data:`PAIRING_EXPECTATIONS`; ``None`` when paper A has no expectation."""
    from .tables import is_prime

    key = PAIRING_EXPECTATIONS.get((target, frozenset(mix) - {target}))
    if key == "prod":
        return "prod_prime" if is_prime(n) else "prod_composite"
    return key


def _comparison(sweep_name: str, single, mix, op: str, n: int, key: str | None, label: str) -> Comparison:
    if key is None:
        return Comparison(id=f"A-joint-{fmt_mix(mix)}-n{n}", label=label, single=tuple(single), joint=tuple(mix),
                          op=op, size=n, expect="extension", paper_value=NO_EXPECTATION, paper_factor=None,
                          sweep=sweep_name)
    text, factor = PAPER_A[key]
    expect = "benefit" if factor != 1.0 else "none"
    return Comparison(id=f"A-joint-{fmt_mix(mix)}-n{n}", label=label, single=tuple(single), joint=tuple(mix),
                      op=op, size=n, expect=expect, paper_value=text, paper_factor=factor, sweep=sweep_name)


def unique_comparisons(comps) -> list[Comparison]:
    """``comps`` with each id once (first kept, order kept).  The same claim may come from two
    sweeps (ADD+PROD mod 10 is both a pairing and the composite half of the prime/composite
    control); two comparisons with one id but different conditions or expectations raise."""
    seen: dict[str, Comparison] = {}
    out = []
    for c in comps:
        prev = seen.get(c.id)
        if prev is None:
            seen[c.id] = c
            out.append(c)
        elif (prev.single, prev.joint, prev.op, prev.size, prev.expect) != (c.single, c.joint, c.op, c.size, c.expect):
            raise ValueError(f"comparison id {c.id!r} is defined twice with different conditions: {prev} vs {c}")
    return out


def joint_comparisons(joint, controls=None, prime=None, *, target: str = "ADD") -> list[Comparison]:
    """Notebook 03's comparisons, at every modulus of every sweep (:class:`~jointtask_lib.sweep.Sweep`):

    * ``joint``: ``target`` alone vs each mix containing it (PROD at a prime modulus and NADD are
      controls where paper A reports no benefit);
    * ``controls``: SADD and RTAB alone vs paired with other ops (no benefit expected);
    * ``prime``: ADD alone vs ADD+PROD at each of its moduli, prime (no benefit) or composite (≈3.6x).

    Ids are unique (:func:`unique_comparisons`).
    """
    from .tables import is_prime

    comps = []
    for n in joint.sizes:
        for m in joint.mixes:
            if m == (target,) or target not in m:
                continue
            kind = f" ({'prime' if is_prime(n) else 'composite'})" if "PROD" in m else ""
            comps.append(_comparison(joint.name, (target,), m, target, n, _listops_expectation(m, target, n),
                                     f"{fmt_mix(m)} vs {target}, mod {n}{kind}"))
    if controls is not None:
        for base in ("SADD", "RTAB"):
            for n in controls.sizes:
                for m in controls.mixes:
                    if m[0] == base and len(m) > 1:
                        comps.append(_comparison(controls.name, (base,), m, base, n,
                                                 _listops_expectation(m, base, n), f"{fmt_mix(m)} vs {base}, mod {n}"))
    if prime is not None:
        for n in prime.sizes:
            kind = "prime" if is_prime(n) else "composite"
            comps.append(_comparison(prime.name, ("ADD",), ("ADD", "PROD"), "ADD", n,
                                     "prod_prime" if kind == "prime" else "prod_composite",
                                     f"ADD+PROD vs ADD, mod {n} ({kind})"))
    return unique_comparisons(comps)


# ------------------------------------------------------------------------------------------------
# Accuracy at one width (notebook 04)
# ------------------------------------------------------------------------------------------------


def accuracy_by_seed(records, *, ops, op, width: int, size=None, metric: str = "gen_acc") -> dict:
    """``{seed: accuracy on op}`` of the runs of mix ``ops`` at ``n_embed == width``."""
    xs, ys, seeds = accuracy_points(records, ops=ops, op=op, size=size, metric=metric, x="n_embed")
    return {s.item() if hasattr(s, "item") else s: float(y) for x, y, s in zip(xs, ys, seeds) if x == width}


def largest_failing_width(records, *, ops, op, threshold: float, size=None) -> int | None:
    """The largest width (``n_embed``) at which the mean accuracy over seeds on ``op`` stays below
    ``threshold`` -- the transition's own criterion (``Transition.threshold`` = level x asymptote):
    a width below the task's transition.  ``None`` when every width reaches it (nothing fails)."""
    check_float("threshold", threshold, lo=0.0, hi=1.0)
    failing = [int(w) for w, mean, _, _ in mean_curve(records, ops=ops, op=op, size=size, x="n_embed")
               if mean < threshold]
    return max(failing) if failing else None


def seed_mean_ci(values, ci: float = 0.95, *, clip: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """``(mean, lo, hi)`` of a quantity measured once per seed: the Student-t interval
    ``mean +- t(n-1) * sd / sqrt(n)`` (sd with ``n - 1``).  Seeds are the independent
    repetitions; with 2 or 3 of them the t quantile (12.7 and 4.3 for 95%) makes the interval wide,
    which is honest (a bootstrap of the mean would be far too narrow).  One value: ``(v, -inf, inf)``
    (nothing is known about the spread).  ``clip=(a, b)`` cuts the interval to the range the
    quantity can take (``(0, 1)`` for an accuracy, ``(-1, 1)`` for a change of accuracy)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"'values' must be a non-empty 1-D sequence of finite numbers; got {values!r}")
    check_float("ci", ci, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    m = float(v.mean())
    if v.size == 1:
        return m, -math.inf, math.inf
    half = float(stats.t.ppf((1 + ci) / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    lo, hi = m - half, m + half
    if clip is not None:
        lo, hi = max(lo, clip[0]), min(hi, clip[1])
    return m, lo, hi


def fmt_mean_ci(mci: tuple[float, float, float], digits: int = 3) -> str:
    m, lo, hi = mci
    if not math.isfinite(lo):
        return f"{m:.{digits}f} (one seed: no CI)"
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
