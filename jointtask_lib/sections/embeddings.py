"""Section ``06_embeddings``: does joint training give the number embeddings parity, divisibility
and order structure that ADD alone lacks (paper A)?

One row per score (parity, every divisibility score, order), per modulus and per comparison (joint,
and transferred when available).  The rule: an exact one-sided permutation test over seeds
(:func:`jointtask_lib.analysis.scores.verdict_seeds`); a *reproduced* also needs the joint (or
transferred) mean above the 95th percentile of random embeddings; when no width reached the
accuracy bar on the target, every row is *inconclusive*
(:func:`jointtask_lib.analysis.scores.analysis_verdict`)."""

from __future__ import annotations

from .. import experiments, scorecard
from . import extra as claims_extra
from ..analysis import scores as SC

NOTEBOOK = "06_embeddings"

PAPER_VALUE = {"parity": "strong parity separation after joint training; weak clustering for ADD alone",
               "order": "numbers ordered in the PCA after joint training; weak for ADD alone",
               "div": "divisor (modular) clusters after joint training; weak clustering for ADD alone"}


def claims(comps: dict, values: dict, summ: dict, null: dict, *, joint, pretrain, target: str, alpha: float,
           preset: str) -> list[dict]:
    """The rows.  ``comps[n]``: the :class:`~jointtask_lib.analysis.models.Conditions` compared at
    modulus n; ``values[n][condition][score]``: per-seed scores
    (:func:`~jointtask_lib.analysis.scores.embedding_scores`); ``summ[n][condition][score]``:
    ``(mean, lo, hi)`` (:func:`~jointtask_lib.analysis.scores.summarise`); ``null[n][score]``:
    ``(mean, 95th percentile)`` of random embeddings."""
    rows = []
    for n, comp in comps.items():
        comparisons = [("joint", experiments.fmt_mix(joint))]
        if "transferred" in comp.specs:
            comparisons.append(("transferred", f"{experiments.fmt_mix(pretrain)} then {target}"))
        for key in SC.score_names(n):
            for cond, what in comparisons:
                test_verdict, test = SC.verdict_seeds(values[n][cond][key], values[n]["single"][key], alpha=alpha)
                a, b = summ[n][cond][key], summ[n]["single"][key]
                verdict, reasons = SC.analysis_verdict(test_verdict, learned=comp.learned_by("single", cond),
                                                       what=target, above_null=a[0] > null[n][key][1])
                rows.append(scorecard.claim(
                    id=f"A-emb-{key.replace(' ', '')}-{cond}-mod{n}", paper="A",
                    claim=f"{what} gives number embeddings more {key} structure than {target} alone (mod {n})",
                    paper_value=PAPER_VALUE["div" if key.startswith("div") else key],
                    ours=(f"{key} {cond} {a[0]:.2f} [{a[1]:.2f}, {a[2]:.2f}] vs single {b[0]:.2f} [{b[1]:.2f}, "
                          f"{b[2]:.2f}]; random {null[n][key][0]:.2f} (95%: {null[n][key][1]:.2f}); permutation p = "
                          f"{test['p_greater']:.3f}; width {comp.width}, {comp.n_seeds['single']} seeds"),
                    verdict=verdict, preset=preset, notebook=NOTEBOOK,
                    **SC.permutation_stats(test, family="embedding scores"),
                    note="; ".join([SC.describe_test(test, cond, "single", alpha=alpha), *reasons])))
    return rows


def structure_claims(by_width: dict, null_by_width: dict, *, sizes, prime_sw, results, preset: str,
                     log=print) -> list[dict]:
    """Rows the scorecard used to miss (issue 15), from scores measured at every width:

    * ADD+PROD parity at every even modulus (paper A: joint ADD+PROD separates even and odd
      numbers) — ``by_width[n]["parity"]["ADD+PROD"]`` against the random embeddings'
      ``null_by_width[n]["parity"]``;
    * no structure at a prime modulus (paper A), from the ADD+PROD runs of the prime sweep
      ``prime_sw`` that are in the run cache under ``results`` (none: a line is logged, no row).
    """
    from ..analysis import scores as SC

    rows = []
    for n in sizes:
        if n % 2 == 0 and "ADD+PROD" in by_width[n]["parity"]:
            rows.append(claims_extra.structure_by_width_claim(
                by_width[n]["parity"]["ADD+PROD"], null_by_width[n]["parity"], score="parity", mix="ADD+PROD", n=n,
                preset=preset, paper_value="joint ADD+PROD: parity separation (even and odd numbers apart)"))
    for p in [m for m in prime_sw.sizes if claims_extra.is_prime(m)]:
        specs_p = [s for s in prime_sw.specs if s.task.modulus == p and s.task.ops == ("ADD", "PROD")]
        keys = [k for k in SC.score_names(p) if k != "order"]  # parity (a prime has no other divisor)
        got = claims_extra.embedding_scores_by_width(specs_p, results, p, keys)
        if not got[keys[0]]:
            log(f"mod {p}: no ADD+PROD runs of {prime_sw.name} in the cache (run notebook 03 first): no prime rows")
            continue
        null_p = SC.null_summary(p, max(prime_sw.widths), 50)
        for key in keys:
            rows.append(claims_extra.structure_by_width_claim(
                got[key]["ADD+PROD"], null_p[key], score=key, mix="ADD+PROD", n=p, preset=preset, expect="none",
                paper_value="prime moduli: uniform outputs, no structure in the embeddings"))
    return rows
