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


def hardest_tests(points: dict, *, moduli, target: str = "ADD", level: float = 0.8) -> dict:
    """``{n: test}``: the pre-registered test "``target`` is the hardest" at each modulus where
    ``target`` was trained (:func:`~jointtask_lib.experiments.hardest_test`: the pooled transition
    model of ``target`` against every other operation, an intersection-union test).
    ``points[n]``: ``{op: (sizes, accs, seeds)}`` (:func:`~jointtask_lib.experiments.accuracy_points`)."""
    return {n: experiments.hardest_test(points[n], target, threshold=level) for n in moduli if target in points[n]}


def hardest_claims(transitions: dict, tests: dict, *, moduli, preset: str, target: str = "ADD") -> list[dict]:
    """One row per modulus: "``target`` is the hardest single operation" (paper A, v1), judged by
    the pooled test ``tests[n]`` (:func:`hardest_tests`); the CI comparison of the fitted curves
    (:func:`~jointtask_lib.experiments.hardest_verdict`) is kept in the note as a description.
    Moduli where ``target`` was not trained give no row."""
    rows = []
    for n in moduli:
        if target not in transitions[n] or n not in tests:
            continue
        order = experiments.hardness_order(transitions[n])
        ci_verdict, ci_detail = experiments.hardest_verdict(transitions[n], target)
        test = tests[n]
        t = transitions[n][target]
        rows.append(scorecard.claim(
            id=f"A-hardest-n{n}", paper="A", claim=f"ADD (sum mod n) is the hardest single operation (mod {n})",
            paper_value="hardest of MAX/MIN/MED/SUM (v1)",
            ours=f"order: {' < '.join(order)}; ADD {t.describe() if t else 'n/a'}",
            verdict=test["verdict"], preset=preset, notebook=NOTEBOOK,
            note=f"{test['detail']}; curve-fit CIs: {ci_verdict} ({ci_detail})",
            test="pooled logistic LRT vs each other op (intersection-union)", p=test["p"], p_against=test["p_against"],
            min_p=0.0 if test["p"] is not None else None, n_runs=test["n_runs"], family="transitions"))
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


def claims(transitions: dict, exponents: dict, tests: dict, *, moduli, preset: str, target: str = "ADD") -> list[dict]:
    """Every row of the section (``tests``: :func:`hardest_tests`)."""
    return (hardest_claims(transitions, tests, moduli=moduli, preset=preset, target=target)
            + scaling_claim(exponents, moduli=moduli, preset=preset, target=target))
