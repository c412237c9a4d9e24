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


def claim_row(c, r, *, preset: str, notebook: str = NOTEBOOK) -> dict:
    """The row of comparison ``c`` with measured reduction ``r`` (``None``: too few sizes).  A
    *benefit* claim: :func:`~jointtask_lib.scorecard.verdict_benefit`; a *no-benefit* control:
    :func:`~jointtask_lib.scorecard.verdict_no_benefit`; an extension: "lowers", with no paper number."""
    benefit = c.expect in ("benefit", "extension")
    verdict = scorecard.verdict_benefit(r) if benefit else scorecard.verdict_no_benefit(r)
    _, magnitude = scorecard.magnitude_check(r, c.paper_factor)
    what = f"{c.label}: {'lowers' if benefit else 'does not lower'} the {c.op} transition"
    if c.expect == "extension":
        what = f"extension (paper A has no expectation): {what}"
    return scorecard.claim(
        id=c.id, paper="A", claim=what, paper_value=c.paper_value,
        ours=r.describe() if r is not None else "no estimate (too few sizes)",
        verdict=verdict, magnitude=magnitude, preset=preset, notebook=notebook)


def claims(comparisons, reductions: dict, *, preset: str) -> list[dict]:
    """One row per comparison (``reductions`` keyed by the comparisons' labels)."""
    return [claim_row(c, reductions[c.label], preset=preset) for c in comparisons]
