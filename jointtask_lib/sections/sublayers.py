"""Section ``07_attention_vs_ffn``: does the joint model lean on attention where the ADD-only
model leans on its FFN (paper A, v1)?

Two measures per model (:mod:`jointtask_lib.analysis.sublayers`): the attention share of the
sublayer norm ratios and the attention − FFN ablation drop.  Each row's verdict is an exact
one-sided permutation test over seeds (:func:`jointtask_lib.analysis.scores.verdict_seeds`),
*inconclusive* when no width reached the accuracy bar
(:func:`jointtask_lib.analysis.scores.analysis_verdict`)."""

from __future__ import annotations

from .. import experiments, scorecard
from ..analysis import scores as SC

NOTEBOOK = "07_attention_vs_ffn"

#: (key, name, what) of the two measures.
MEASURES = (("attn_share", "attention share (norm ratios)", "norm ratios"),
            ("attn_minus_mlp_drop", "attention - FFN ablation drop", "ablations"))


def claims(comps: dict, per_seed: dict, stats: dict, *, joint, target: str, alpha: float, preset: str,
           measures=MEASURES) -> list[dict]:
    """The rows.  ``per_seed[n][key][condition]``: one value per seed; ``stats[n][key][condition]``:
    ``(mean, lo, hi)``; ``comps[n]``: the :class:`~jointtask_lib.analysis.models.Conditions`."""
    rows = []
    for n, comp in comps.items():
        for key, name, what in measures:
            test_verdict, test = SC.verdict_seeds(per_seed[n][key]["joint"], per_seed[n][key]["single"], alpha=alpha)
            verdict, reasons = SC.analysis_verdict(test_verdict, learned=comp.learned, what=target)
            a, b = stats[n][key]["joint"], stats[n][key]["single"]
            rows.append(scorecard.claim(
                id=f"A-sublayer-{key}-mod{n}", paper="A", verdict=verdict, preset=preset, notebook=NOTEBOOK,
                **SC.permutation_stats(test, family="sublayer usage"),
                claim=f"the joint model ({experiments.fmt_mix(joint)}) leans on attention more than the {target}-only "
                      f"model ({what}, mod {n})",
                paper_value="ADD-only relies on the FFN; joint uses attention more (v1, 'attention output/input ratio')",
                ours=f"joint {a[0]:.3f} [{a[1]:.3f}, {a[2]:.3f}] vs single {b[0]:.3f} [{b[1]:.3f}, {b[2]:.3f}]; "
                     f"permutation p = {test['p_greater']:.3f}; width {comp.width}, {comp.n_seeds['single']} seeds",
                note="; ".join([f"{key}: see jointtask_lib/analysis/sublayers.py",
                                SC.describe_test(test, "joint", "single", alpha=alpha), *reasons])))
    return rows
