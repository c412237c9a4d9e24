"""Section ``02_learning_transition``: single-task transitions; is ADD the hardest operation, and
how does its transition grow with the modulus n?"""

from __future__ import annotations

from .. import experiments, scorecard

NOTEBOOK = "02_learning_transition"


def transitions(records, *, ops, moduli, level: float, n_boot: int) -> dict:
    """``{n: {op: Transition | None}}``: each operation trained alone, at each modulus (the chance
    floor fixed where it is known, :func:`~jointtask_lib.experiments.known_floor`)."""
    return {n: {op: experiments.transition_of(records, ops=(op,), op=op, size=n, level=level, n_boot=n_boot,
                                              chance=experiments.known_floor(records, ops=(op,), op=op, size=n))
                for op in ops}
            for n in moduli}


def hardest_claims(transitions: dict, *, moduli, preset: str, target: str = "ADD") -> list[dict]:
    """One row per modulus: "``target`` is the hardest single operation" (paper A, v1), judged by
    :func:`~jointtask_lib.experiments.hardest_verdict` (an operation is easier only when its CI lies
    wholly below ``target``'s).  Moduli where ``target`` was not trained give no row."""
    rows = []
    for n in moduli:
        if target not in transitions[n]:
            continue
        order = experiments.hardness_order(transitions[n])
        verdict, detail = experiments.hardest_verdict(transitions[n], target)
        t = transitions[n][target]
        rows.append(scorecard.claim(
            id=f"A-hardest-n{n}", paper="A", claim=f"ADD (sum mod n) is the hardest single operation (mod {n})",
            paper_value="hardest of MAX/MIN/MED/SUM (v1)",
            ours=f"order: {' < '.join(order)}; ADD {t.describe() if t else 'n/a'}",
            verdict=verdict, preset=preset, notebook=NOTEBOOK, note=detail))
    return rows


def scaling_claim(exponents: dict, *, moduli, preset: str, target: str = "ADD") -> list[dict]:
    """The row "``target``'s transition grows sub-linearly with n" from the fitted exponent ``b``
    (:func:`jointtask_lib.transition.scaling_exponent`; :func:`~jointtask_lib.scorecard.verdict_sublinear`).
    Empty when ``target`` has no exponent."""
    if target not in exponents:
        return []
    e = exponents[target]
    return [scorecard.claim(
        id="A-scaling-ADD", paper="A", claim="ADD's transition grows sub-linearly with the modulus n",
        paper_value="sub-linear in n, data scaled linearly with n (paper's summary)",
        ours=f"b = {e.describe()} over moduli {moduli}",
        verdict=scorecard.verdict_sublinear(e), preset=preset, notebook=NOTEBOOK,
        note="" if len(moduli) > 1 else "one modulus at this preset: run the paper preset")]


def claims(transitions: dict, exponents: dict, *, moduli, preset: str, target: str = "ADD") -> list[dict]:
    """Every row of the section."""
    return (hardest_claims(transitions, moduli=moduli, preset=preset, target=target)
            + scaling_claim(exponents, moduli=moduli, preset=preset, target=target))
