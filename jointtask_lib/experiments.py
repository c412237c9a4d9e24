"""From run records to the paper's quantities: accuracy curves, transitions, reduction factors.

The notebooks and the scorecard share these functions, so a number in a table and the same number
in the scorecard are computed once, by the same code.

Size axis: the number of trainable parameters of one model (:func:`jointtask_lib.model.count_params`),
as paper A reports model size.  Accuracy: ``gen_acc`` on the examples of one operation (the
model generates its own CoT), so a joint model's accuracy "on ADD" is measured on ADD examples only.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .transition import estimate_transition, reduction_factor


def _mix_of(rec) -> tuple[str, ...]:
    return tuple(rec["spec"]["task"]["ops"])


def _size_of(rec) -> int:
    t = rec["spec"]["task"]
    return t["modulus"] if t["family"] == "listops" else t["perm_k"]


def select(records, *, ops=None, size=None, **task_fields) -> list[dict]:
    """Records of one task mix (``ops`` in order) and size, optionally matching more task fields."""
    out = []
    for r in records:
        if r is None or "error" in r:
            continue
        if ops is not None and _mix_of(r) != tuple(ops):
            continue
        if size is not None and _size_of(r) != size:
            continue
        if any(r["spec"]["task"].get(k) != v for k, v in task_fields.items()):
            continue
        out.append(r)
    return out


def accuracy_points(records, *, ops, op, size=None, metric: str = "gen_acc", x: str = "n_params", **task_fields):
    """Long-format arrays ``(sizes, accs, seeds)`` of accuracy on ``op`` for the mix ``ops``.

    ``x="n_params"`` (default) or ``"n_embed"`` chooses the size axis.
    """
    sel = select(records, ops=ops, size=size, **task_fields)
    xs, ys, seeds = [], [], []
    for r in sel:
        per = r["metrics"].get("per_op", {})
        if op not in per:
            continue
        xs.append(r["n_params"] if x == "n_params" else r["spec"]["arch"]["n_embed"])
        ys.append(per[op][metric])
        seeds.append(r["spec"]["seed"])
    order = np.lexsort((seeds, xs)) if xs else []
    return (np.asarray(xs, float)[order], np.asarray(ys, float)[order], np.asarray(seeds)[order])


def chance_accuracy(records, *, ops, op, size=None) -> float:
    """1 / number of values: the accuracy of a uniform guess (documented floor for fits)."""
    sel = select(records, ops=ops, size=size)
    if not sel:
        return 0.0
    t = sel[0]["spec"]["task"]
    n = t["modulus"] if t["family"] == "listops" else int(np.prod(range(1, t["perm_k"] + 1)))
    return 1.0 / n


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


def mean_curve(records, *, ops, op, size=None, x: str = "n_params") -> list[tuple[float, float, float, int]]:
    """(size, mean accuracy, sd across seeds, n seeds) per size, for tables."""
    xs, ys, _ = accuracy_points(records, ops=ops, op=op, size=size, x=x)
    groups = defaultdict(list)
    for a, b in zip(xs, ys):
        groups[a].append(b)
    return [(k, float(np.mean(v)), float(np.std(v)), len(v)) for k, v in sorted(groups.items())]


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


def transfer_conditions(base_specs, *, target=("ADD",), pretrain=("MAX", "MED")) -> dict:
    """The runs of the transfer experiment, built from the ``target`` runs of a sweep.

    For every (width, seed) of ``base_specs`` whose mix is ``target``:

    * ``scratch``   — ``target`` from a random initialisation;
    * ``transfer``  — ``target`` initialised from a model trained on ``pretrain`` (same width and
      seed): paper A's pretraining experiment, and the reviewers' "continual" presentation;
    * ``joint``     — ``pretrain + target`` together from scratch (the "joint" presentation);
    * ``joint_then_target`` — ``target`` initialised from the joint model (fine-tuning on ADD
      alone after joint training, another reviewer request);
    * ``pretrain``  — the ``pretrain`` runs themselves.

    Every condition trains for the same number of steps with the same recipe.
    """
    from dataclasses import replace

    target, pretrain = tuple(target), tuple(pretrain)
    joint_ops = pretrain + tuple(o for o in target if o not in pretrain)
    out = {"scratch": [], "transfer": [], "joint": [], "joint_then_target": [], "pretrain": []}
    for s in base_specs:
        if tuple(s.task.ops) != target or s.init is not None:
            continue
        pre = replace(s, task=s.task.with_ops(pretrain))
        joint = replace(s, task=s.task.with_ops(joint_ops))
        out["scratch"].append(s)
        out["pretrain"].append(pre)
        out["transfer"].append(replace(s, init=pre))
        out["joint"].append(joint)
        out["joint_then_target"].append(replace(s, init=joint))
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
