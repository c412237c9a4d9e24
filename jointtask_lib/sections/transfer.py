"""Section ``04_transfer``: pretraining on MAX+MED, then ADD (paper A: ~7x smaller); continual vs
joint presentation and fine-tuning on ADD after joint training (reviewers' requests, no paper
number); the accuracies at one width below ADD's own transition.

* **Transfer**: the reduction factor from scratch ÷ after pretraining,
  :func:`~jointtask_lib.scorecard.verdict_benefit`, and whether paper A's 7x lies in our CI.
* **Transfer at one width**: the pretrained model's accuracy above the from-scratch model's, CI
  against CI (:func:`~jointtask_lib.scorecard.verdict_greater`).
* **Continual vs joint**: factor = transition(joint) / transition(continual).
* **Fine-tuning after joint training**: the CI of the per-seed change (same seed, same model
  before and after) above 0 improves; below 0 loses; otherwise inconclusive.
"""

from __future__ import annotations

from .. import experiments, scorecard
from . import extra as claims_extra

NOTEBOOK = "04_transfer"


def accuracies_at_width(records_by_condition: dict, mix_of: dict, *, target: str, size: int, width: int) -> dict:
    """``{condition: {seed: accuracy on target}}`` at ``n_embed == width``."""
    return {c: experiments.accuracy_by_seed(records_by_condition[c], ops=m, op=target, size=size, width=width)
            for c, m in mix_of.items()}


def change_word(mci) -> str:
    """How a (mean, lo, hi) change reads: improved, lost, or no detectable change."""
    m, lo, hi = mci
    return "improved" if lo > 0 else "lost" if hi < 0 else "no detectable change (the CI includes 0)"


def claims(*, moduli, reductions: dict, chosen: dict, at_width: dict, labels: dict, pretrain, target: str,
           joint_mix, width_given: bool, preset: str, records: dict, mix_of: dict, level: float = 0.8) -> list[dict]:
    """Every row of the section.

    ``reductions[n]``: ``{labels["transfer"]: Reduction, "continual vs joint": Reduction}``;
    ``chosen[n]``: the width below ``target``'s transition (``None``: learned at every width);
    ``at_width[n]``: :func:`accuracies_at_width` there, with conditions ``transfer``, ``scratch``,
    ``joint`` and ``joint_then_target``; ``width_given``: the width was a parameter, not chosen;
    ``records``/``mix_of``: the records and the mix of each condition (``scratch``, ``transfer``,
    ``joint``, and ``scratch_matched`` — from scratch with as many steps as pretraining plus
    target training — which adds the two extension rows of :mod:`jointtask_lib.sections.extra`).  The two factor rows are judged on the pooled transition model
    (:func:`~jointtask_lib.experiments.pooled_reduction_of`, absolute bar ``level``); the curve
    fits in ``reductions`` are shown beside it.
    """
    pre = "+".join(pretrain)
    paper_value, paper_factor = experiments.PAPER_A["transfer"]
    rows = []
    for n in moduli:
        fit = reductions[n][labels["transfer"]]
        red = experiments.pooled_reduction_of(records["scratch"], single=(target,), joint=mix_of["transfer"],
                                              op=target, size=n, joint_records=records["transfer"], threshold=level)
        verdict = scorecard.verdict_benefit(red)
        rows.append(scorecard.claim(
            id=f"A-transfer-n{n}", paper="A",
            claim=f"Pretraining on {pre} lets {target} be learned by a smaller model (mod {n})",
            paper_value=paper_value, ours=(red.describe() if red is not None else "no runs")
            + f"; curve fit {fit.describe() if fit is not None else 'n/a'}",
            verdict=verdict, magnitude=scorecard.magnitude_check(red, paper_factor)[1],
            preset=preset, notebook=NOTEBOOK, **scorecard.factor_stats(red, family="transfer", verdict=verdict)))
        fit = reductions[n]["continual vs joint"]
        red = experiments.pooled_reduction_of(records["joint"], single=tuple(joint_mix), joint=(target,), op=target,
                                              size=n, joint_records=records["transfer"], threshold=level)
        rows.append(scorecard.claim(
            id=f"A-continual-vs-joint-n{n}", paper="A",
            claim=f"Continual ({pre} then {target}) learns {target} at a smaller size than joint "
                  f"({'+'.join(joint_mix)}) (mod {n}; reviewers' request)",
            paper_value="no direct comparison in the paper",
            ours=(red.describe() if red is not None else "no runs")
            + f"; curve fit {fit.describe(labels=('joint', 'continual')) if fit is not None else 'n/a'}",
            verdict=scorecard.verdict_benefit(red), magnitude=scorecard.magnitude_check(red, None)[1],
            preset=preset, notebook=NOTEBOOK, note="factor = transition(joint) / transition(continual)",
            **scorecard.factor_stats(red, family="extensions")))
        if "scratch_matched" in records:  # extensions (sections.extra): scored apart
            red_cm = experiments.pooled_reduction_of(records["scratch_matched"], single=(target,), joint=(target,),
                                                     op=target, size=n, joint_records=records["transfer"],
                                                     threshold=level)
            rows.append(claims_extra.compute_matched_transfer_claim(
                red_cm, n=n, target=target, pretrain=pretrain, preset=preset,
                curve_fit=reductions[n].get("transfer vs compute-matched")))
            rows.append(claims_extra.transfer_at_smallest_width_claim(
                records["transfer"], records["scratch"], n=n, target=target, pretrain=pretrain, preset=preset))
        w = chosen[n]
        if w is None:
            for cid, what in (("A-transfer-at-width", "transfer at one width"), ("A-finetune-after-joint", "fine-tuning")):
                rows.append(scorecard.claim(
                    id=f"{cid}-n{n}", paper="A", claim=f"{what} below {target}'s own transition (mod {n})",
                    paper_value=paper_value if cid == "A-transfer-at-width" else "no paper value",
                    ours=f"{target} from scratch learned at every width: no width below its transition",
                    verdict="inconclusive", preset=preset, notebook=NOTEBOOK))
            continue
        acc = at_width[n]
        tr, sc = (experiments.seed_mean_ci(list(acc[c].values()), clip=(0, 1)) for c in ("transfer", "scratch"))
        rows.append(scorecard.claim(
            id=f"A-transfer-at-width-n{n}", paper="A",
            claim=f"At n_embed {w}, below {target}'s own transition, {pre} pretraining makes {target} "
                  f"more accurate than training from scratch (mod {n})",
            paper_value="n_embed 48: learned after pretraining, not from scratch",
            ours=f"after pretraining {experiments.fmt_mean_ci(tr)} vs from scratch {experiments.fmt_mean_ci(sc)}",
            verdict=scorecard.verdict_greater(tr[0], tr[1:], sc[0], sc[1:]), preset=preset, notebook=NOTEBOOK,
            note=f"width {w}: " + ("given" if width_given else "largest width where ADD from scratch fails")))
        seeds = sorted(set(acc["joint"]) & set(acc["joint_then_target"]))
        diff = experiments.seed_mean_ci([acc["joint_then_target"][s] - acc["joint"][s] for s in seeds], clip=(-1, 1))
        joint_acc = experiments.seed_mean_ci([acc["joint"][s] for s in seeds], clip=(0, 1))
        rows.append(scorecard.claim(
            id=f"A-finetune-after-joint-n{n}", paper="A",
            claim=f"Fine-tuning on {target} alone after joint training improves the joint model's {target} accuracy "
                  f"(n_embed {w}, mod {n}; reviewers' request)",
            paper_value="no paper value",
            ours=f"joint {experiments.fmt_mean_ci(joint_acc)}; change after fine-tuning {experiments.fmt_mean_ci(diff)} "
                 f"over {len(seeds)} seed(s): {change_word(diff)}",
            verdict=scorecard.verdict_greater(diff[0], diff[1:], 0.0, (0.0, 0.0)), magnitude="no paper value",
            preset=preset, notebook=NOTEBOOK))
    return rows
