"""Section ``03_joint_training`` (paper A's headline): the reduction factor of every pairing —
the target operation's transition alone ÷ its transition in the mix — and one scorecard row each.

The comparisons are :func:`jointtask_lib.experiments.joint_comparisons` (typed, each claim once);
their expectation comes from the explicit table
:data:`jointtask_lib.experiments.PAIRING_EXPECTATIONS`.  A pairing paper A has no expectation for
is an **extension**: its row says so (claim text, paper value) and is judged as "lowers the
transition" without a paper number.
"""

from __future__ import annotations

from .. import experiments, scorecard

NOTEBOOK = "03_joint_training"


def reductions(records_by_sweep: dict, comparisons, *, level: float, n_boot: int) -> dict:
    """``{comparison label: Reduction | None}`` measured on the records of each comparison's sweep
    (the single condition's chance floor fixed where it is known)."""
    out = {}
    for c in comparisons:
        recs = records_by_sweep[c.sweep]
        floor = experiments.known_floor(recs, ops=c.single, op=c.op, size=c.size)
        out[c.label] = experiments.reduction_of(recs, single=c.single, joint=c.joint, op=c.op, size=c.size,
                                                level=level, n_boot=n_boot, chance=floor)
    return out


def pooled(records_by_sweep: dict, comparisons, *, level: float) -> dict:
    """``{comparison label: PooledReduction | None}``: the pooled transition model
    (:func:`jointtask_lib.experiments.pooled_reduction_of`, README *Statistics*) on every run of
    the two mixes, learned when the accuracy on the target reaches the absolute bar ``level``.
    The verdicts rest on these; :func:`reductions` is the descriptive curve fit."""
    return {c.label: experiments.pooled_reduction_of(records_by_sweep[c.sweep], single=c.single, joint=c.joint,
                                                     op=c.op, size=c.size, threshold=level)
            for c in comparisons}


def claim_row(c, r, fit=None, *, preset: str, notebook: str = NOTEBOOK) -> dict:
    """The row of comparison ``c`` with the pooled reduction ``r`` (``None``: no runs) and the
    descriptive curve fit ``fit``.  A *benefit* claim:
    :func:`~jointtask_lib.scorecard.verdict_benefit`; a *no-benefit* control:
    :func:`~jointtask_lib.scorecard.verdict_no_benefit`; an extension: "lowers", with no paper
    number, in the extensions family (scored apart)."""
    benefit = c.expect in ("benefit", "extension")
    verdict = scorecard.verdict_benefit(r) if benefit else scorecard.verdict_no_benefit(r)
    _, magnitude = scorecard.magnitude_check(r, c.paper_factor)
    what = f"{c.label}: {'lowers' if benefit else 'does not lower'} the {c.op} transition"
    if c.expect == "extension":
        what = f"extension (paper A has no expectation): {what}"
    return scorecard.claim(
        id=c.id, paper="A", claim=what, paper_value=c.paper_value,
        ours=(r.describe() if r is not None else "no runs") + f"; curve fit {fit.describe() if fit is not None else 'n/a'}",
        verdict=verdict, magnitude=magnitude, preset=preset, notebook=notebook,
        **scorecard.factor_stats(r, expect="benefit" if benefit else "none",
                                 family=experiments.comparison_family(c), verdict=verdict))


def claims(comparisons, pooled: dict, *, preset: str, fits: dict | None = None) -> list[dict]:
    """One row per comparison (``pooled`` and the curve ``fits`` keyed by the comparisons' labels)."""
    fits = fits or {}
    return [claim_row(c, pooled[c.label], fits.get(c.label), preset=preset) for c in comparisons]
