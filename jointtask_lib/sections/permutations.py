"""Section ``05_permutations``: products in S_k trained alone vs with a partner operation.

Paper A reports that structured auxiliary operations help the product (2-7x overall); PMAX, which
shares no structure with it, is the control where no benefit is expected.  The verdicts follow the
one rule of :func:`jointtask_lib.scorecard.classify_factor`."""

from __future__ import annotations

from .. import experiments, scorecard

NOTEBOOK = "05_permutations"

#: Partners of the product with no shared structure (paper A: no benefit expected).
UNRELATED = ("PMAX",)


def expectation(mix) -> str:
    """``"none"`` for a mix holding an unrelated partner (:data:`UNRELATED`), else ``"benefit"``."""
    return "none" if any(o in mix for o in UNRELATED) else "benefit"


def reductions(records, mixes, *, target: str, k: int, level: float, n_boot: int, floor) -> tuple[dict, dict]:
    """``({label: Reduction | None}, {label: expectation})`` of every mix with a partner, in S_k."""
    red, expect = {}, {}
    for m in mixes:
        if tuple(m) == (target,):
            continue
        label = experiments.fmt_mix(m)
        expect[label] = expectation(m)
        red[label] = experiments.reduction_of(records, single=(target,), joint=m, op=target, size=k,
                                              level=level, n_boot=n_boot, chance=floor)
    return red, expect


def claims(records, reductions: dict, expect: dict, *, target: str, k: int, preset: str,
           level: float = 0.8) -> list[dict]:
    """One row per pairing in S_k.  The verdict rests on the pooled transition model
    (:func:`jointtask_lib.experiments.pooled_reduction_of` on ``records``, absolute bar ``level``);
    ``reductions`` (the curve fits of :func:`reductions`) are shown beside it."""
    rows = []
    for label, fit in reductions.items():
        benefit = expect[label] == "benefit"
        paper_value, paper_factor = experiments.PAPER_A["perm_helper" if benefit else "perm_unrelated"]
        r = experiments.pooled_reduction_of(records, single=(target,), joint=tuple(label.split("+")), op=target,
                                            size=k, threshold=level)
        verdict = scorecard.verdict_benefit(r) if benefit else scorecard.verdict_no_benefit(r)
        rows.append(scorecard.claim(
            id=f"A-perm-{label}-S{k}", paper="A",
            claim=f"{label} vs {target} in S_{k}: {'lowers' if benefit else 'does not lower'} the product's transition",
            paper_value=paper_value, ours=(r.describe() if r is not None else "no runs")
            + f"; curve fit {fit.describe() if fit is not None else 'n/a'}",
            verdict=verdict, magnitude=scorecard.magnitude_check(r, paper_factor)[1], preset=preset,
            notebook=NOTEBOOK, **scorecard.factor_stats(r, expect="benefit" if benefit else "none",
                                                        family="pairings" if benefit else "controls",
                                                        verdict=verdict)))
    return rows
