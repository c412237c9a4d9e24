"""Paper B's section (notebook ``09_icl_function_classes``): its claims as scorecard rows.

The trainer (:mod:`jointtask_lib.paper_b.icl_train`) trains and evaluates the models; this module
reads what it produced — one :class:`~jointtask_lib.paper_b.records.ICLRun` per model and the baselines —
and turns it into paper B's five claims: the summary statistics of the error curves
(:func:`tail_error`, :func:`late_error`, :func:`least_squares_gap`, :func:`retention`), one verdict
rule per claim (each ``verdict_*`` states its criterion in its docstring; with ``explain=True`` it
also returns the sentence saying which branch decided, which the row carries in its note) and
:func:`paper_b_claims`, which builds the rows.  Verdicts: "reproduced", "not reproduced",
"inconclusive" (as in :mod:`jointtask_lib.scorecard`).  Nothing here trains: the claims can be
built and tested from records alone (``tests/test_sections.py``).
"""

from __future__ import annotations

import numpy as np

from ..scorecard import claim as make_claim
from .icl_train import late_error, tail_error  # noqa: F401  (re-exported: the section's statistics)
from .records import ICLRun, pick, snapshot_has, snapshot_tails

VERDICTS = ("reproduced", "not reproduced", "inconclusive")


def _seeds(n: int, what: str) -> str:
    return f"{n} {what} seed{'s' if n != 1 else ''}"


def _n_seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _out(verdict: str, why: str, explain: bool):
    return (verdict, why) if explain else verdict


def verdict_data_efficiency(mixed_mean: float, single_mean: float, mixed_late: float, single_late: float,
                            single_constant_level: float, cubic_fraction: float, *, tol: float = 0.2,
                            fail: float = 0.5, learned: float = 0.5, max_fraction: float = 0.15,
                            explain: bool = False):
    """Claim "mixed reaches single-task cubic error with ~1/9 of the cubic data".

    Inputs: cubic evaluation error of the mixed and the single-task cubic models, mean over seeds,
    two ways: averaged over **all** positions (``*_mean``, as the paper's Fig. 4 averages its loss
    over positions) and over the positions ``k >= d`` (``*_late``, :func:`late_error`); the
    constant-predictor level of the cubic class; the fraction of mixed's steps that were cubic.
    The all-k mean alone would flatter the mixed model: at small k every model is near the
    constant level, which pulls any ratio towards 1, so the rule needs both.

    * *inconclusive* if the cubic fraction is not about 1/9 (above ``max_fraction`` = 0.15), or
      the single-task model did not clearly learn cubic in context (its error at ``k >= d`` above
      ``learned`` = 0.5 x the constant level; the paper's single-task cubic model ends at 0.21 x):
      "as good as a model that learned little" says nothing;
    * *reproduced* if mixed <= (1 + ``tol``) x single on **both** measures (within 20%, or better);
    * *not reproduced* if mixed > (1 + ``fail``) x single on **either** measure (> 50% worse);
    * otherwise *inconclusive*.
    """
    rm, rl = mixed_mean / single_mean, mixed_late / single_late
    ratios = f"mixed / single-task = {rm:.2f} over all k, {rl:.2f} at k >= d"
    if cubic_fraction > max_fraction:
        return _out("inconclusive", f"the mixed model's cubic share of steps is {cubic_fraction:.3f}, "
                    f"not about 1/9 (at most {max_fraction})", explain)
    if single_late > learned * single_constant_level:
        return _out("inconclusive", f"the single-task cubic model did not learn cubic in context (its error at "
                    f"k >= d is {single_late / single_constant_level:.2f} x the constant level, above {learned}): "
                    f"matching it says nothing ({ratios})", explain)
    if rm <= 1 + tol and rl <= 1 + tol:
        return _out("reproduced", f"{ratios}: both within {1 + tol:g}x", explain)
    if rm > 1 + fail or rl > 1 + fail:
        return _out("not reproduced", f"{ratios}: more than {1 + fail:g}x on at least one", explain)
    return _out("inconclusive", f"{ratios}: between {1 + tol:g}x and {1 + fail:g}x", explain)


def converged(tail: float, constant_level: float, frac: float = 0.25) -> bool:
    """A model *converged* on a class if its tail error is at most ``frac`` x the constant level.

    Default 0.25: with unit-norm ``w`` the best predictor that is linear in x leaves half the
    quadratic class's variance unexplained (0.5 x constant level), so reaching 0.25 requires the
    non-linear part to be learned in context.  The paper's converged mixed models reach about
    0.5 / 12 ~ 4% of the constant level at k = 90, its failed single-task models stay near 100%.
    """
    return bool(tail <= frac * constant_level)


def verdict_convergence(mixed_tails, single_tails, constant_level: float, *, frac: float = 0.25,
                        min_seeds: int = 3, explain: bool = False):
    """Claim "mixed converges on quadratic where single-task does not" (paper: 3/5 vs 0/5).

    Each seed counts as converged by :func:`converged`.  With ``p`` the converged fractions:

    * *inconclusive* with fewer than ``min_seeds`` seeds on either side;
    * *inconclusive* if **no** seed of either converged (``p_mixed = p_single = 0``): at this
      budget neither learned quadratic in context, so the comparison was never put to the test
      (a budget failure, not evidence against the claim);
    * *reproduced* if ``p_mixed - p_single >= 0.5``;
    * *not reproduced* if ``p_mixed <= p_single`` with some seed converged (no advantage: e.g.
      both succeed);
    * otherwise *inconclusive* (an advantage too small for the seed count).
    """
    nm, ns = len(mixed_tails), len(single_tails)
    if nm < min_seeds or ns < min_seeds:
        return _out("inconclusive", f"{_n_seeds(nm)} of mixed and {_n_seeds(ns)} of single-task: at least {min_seeds} of each "
                    "are needed to compare convergence rates", explain)
    km = sum(converged(t, constant_level, frac) for t in mixed_tails)
    ks = sum(converged(t, constant_level, frac) for t in single_tails)
    counts = f"converged: mixed {km}/{nm}, single-task {ks}/{ns}"
    pm, ps = km / nm, ks / ns
    if km == 0 and ks == 0:
        return _out("inconclusive", f"{counts}: neither curriculum converged at this budget, so the comparison "
                    "is untested (a budget failure, not evidence against the claim)", explain)
    if pm - ps >= 0.5:
        return _out("reproduced", f"{counts}: a difference of at least half the seeds", explain)
    if pm <= ps:
        return _out("not reproduced", f"{counts}: mixed converged no more often than single-task", explain)
    return _out("inconclusive", f"{counts}: an advantage too small for {nm} and {ns} seeds", explain)


def verdict_forgetting(tail_after_own_block: float, tail_final: float, constant_level: float, *,
                       ratio: float = 2.0, explain: bool = False):
    """Claim "the sequential curriculum forgets" (it "is unable to learn any of the tasks").

    Inputs: the sequential model's tail error on its *first* task (linear) at the end of that
    task's block (block-end snapshot) and at the end of training; that class's constant level.

    * *inconclusive* if the task was never learned (error after its own block above half the
      constant level): nothing to forget;
    * *reproduced* if the final error is at least ``ratio`` x the error after its own block **and**
      at least half the constant level (the in-context skill is mostly gone, not just a bit worse);
    * *not reproduced* if the final error is at most 1.25 x the error after its own block (retained);
    * otherwise *inconclusive*.
    """
    growth = tail_final / tail_after_own_block if tail_after_own_block > 0 else float("inf")
    facts = (f"linear tail error {tail_after_own_block / constant_level:.2f} x the constant level after its "
             f"own third, {tail_final / constant_level:.2f} x at the end (x{growth:.1f})")
    if tail_after_own_block > 0.5 * constant_level:
        return _out("inconclusive", f"{facts}: linear was never learned in its third, so there was nothing to "
                    "forget", explain)
    if tail_final >= ratio * tail_after_own_block and tail_final >= 0.5 * constant_level:
        return _out("reproduced", f"{facts}: the skill is mostly gone", explain)
    if tail_final <= 1.25 * tail_after_own_block:
        return _out("not reproduced", f"{facts}: retained", explain)
    return _out("inconclusive", f"{facts}: worse, but not mostly gone", explain)


def retention(masked_tail: float, unmasked_tail: float, constant_level: float) -> float:
    """Share of the in-context improvement that survives masking:
    ``(constant - masked) / (constant - unmasked)`` (1 = untouched, 0 = back to the constant
    predictor, negative = worse than it)."""
    gain = constant_level - unmasked_tail
    return float((constant_level - masked_tail) / gain) if gain > 0 else float("nan")


def verdict_masking(cases: list[dict], *, explain: bool = False):
    """Claim "masking the retrospective heads destroys ICL (masking other heads does not)".

    ``cases``: one dict per (model, class) with tail errors ``unmasked``, ``top`` (the ``n_mask``
    highest-scoring heads masked), the controls ``bottom`` (the same number of lowest-scoring
    heads) and, optionally, ``random`` (as many random heads other than the top ones), and the
    class's ``constant`` level.  Only cases where the unmasked model learned (tail <= 0.5 x
    constant) count.  With medians of :func:`retention` over those cases, and ``r_control`` the
    smallest of the controls' medians (the most destructive control):

    * *reproduced* if ``r_top <= 0.25`` (at most a quarter of the in-context gain survives) and
      ``r_control >= 0.5`` (every control keeps at least half);
    * *not reproduced* if ``r_top >= r_control - 0.1`` (top masking no more destructive than a
      control);
    * otherwise, or with no case that counts, *inconclusive*.
    """
    ok = [c for c in cases if c["unmasked"] <= 0.5 * c["constant"]]
    if not ok:
        return _out("inconclusive", "no model learned in context (nothing to destroy)", explain)
    med = {k: float(np.median([retention(c[k], c["unmasked"], c["constant"]) for c in ok]))
           for k in ("top", "bottom", "random") if all(k in c for c in ok)}
    controls = {k: v for k, v in med.items() if k != "top"}
    if not controls:
        return _out("inconclusive", "no control condition (bottom or random heads) was evaluated", explain)
    rc = min(controls.values())
    facts = (f"median retention of the in-context gain over {len(ok)} case(s): top heads masked "
             f"{med['top']:.2f}, " + ", ".join(f"{k} control {v:.2f}" for k, v in controls.items()))
    if med["top"] <= 0.25 and rc >= 0.5:
        return _out("reproduced", f"{facts}: only the top heads destroy it", explain)
    if med["top"] >= rc - 0.1:
        return _out("not reproduced", f"{facts}: the top heads are no more destructive than a control", explain)
    return _out("inconclusive", f"{facts}: partial", explain)


def least_squares_gap(model_curve, ls_curve, zero_level: float) -> dict:
    """Gap ``(model - least squares) / zero level`` per position k >= 1: its mean and max."""
    m, ls = np.asarray(model_curve, dtype=np.float64), np.asarray(ls_curve, dtype=np.float64)
    gap = (m[1:] - ls[1:]) / zero_level
    return {"mean": float(gap.mean()), "max": float(gap.max())}


def verdict_least_squares(mean_gap: float, max_gap: float, model_late: float, zero_level: float, *,
                          tol_mean: float = 0.05, tol_max: float = 0.15, fail_mean: float = 0.15,
                          learned: float = 0.5, explain: bool = False):
    """Claim "the transformer matches least squares on linear functions" (Garg et al.).

    Gaps are :func:`least_squares_gap` (in units of the zero predictor's error, so 1 = "no better
    than predicting 0"); ``model_late`` is the model's own error at ``k >= d`` (:func:`late_error`),
    where least squares is exact.

    * *inconclusive* if the model never learned linear regression in context: ``model_late`` above
      ``learned`` (0.5) x the zero level (a budget failure says nothing about the claim);
    * *reproduced* if the mean gap over k >= 1 is at most ``tol_mean`` (5%) and the largest at
      most ``tol_max`` (15%);
    * *not reproduced* if the mean gap exceeds ``fail_mean`` (15%);
    * otherwise *inconclusive* (close, but measurably short of least squares).
    """
    facts = f"mean gap {mean_gap:.3f}, largest {max_gap:.3f} (x zero level)"
    if model_late > learned * zero_level:
        return _out("inconclusive", f"the model never learned in context (error at k >= d is "
                    f"{model_late / zero_level:.2f} x the zero level, above {learned}); {facts}", explain)
    if mean_gap <= tol_mean and max_gap <= tol_max:
        return _out("reproduced", f"{facts}: within {tol_mean} on average and {tol_max} everywhere", explain)
    if mean_gap > fail_mean:
        return _out("not reproduced", f"{facts}: more than {fail_mean} on average", explain)
    return _out("inconclusive", f"{facts}: close, but short of the thresholds {tol_mean} / {tol_max}", explain)


# --------------------------------------------------------------------------------------------
# The five claims of the notebook, as scorecard rows
# --------------------------------------------------------------------------------------------

NOTEBOOK = "09_icl_function_classes"


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3g}"


def _note(why: str, rests_on: str, rule: str) -> str:
    return f"This run: {why}. Rests on {rests_on}. Rule ({rule})"


def _row(id, claim, paper_value, ours, verdict, preset, note):
    return make_claim(id=id, paper="B", claim=claim, paper_value=paper_value, ours=ours, verdict=verdict,
                      preset=preset, notebook=NOTEBOOK, note=note)


def paper_b_claims(runs: list, baselines: dict, *, preset: str, converge_frac: float = 0.25) -> list[dict]:
    """Scorecard rows (:func:`jointtask_lib.scorecard.claim`) for paper B's five claims.

    ``runs``: one :class:`~jointtask_lib.paper_b.records.ICLRun` per trained model
    (:func:`~jointtask_lib.paper_b.records.icl_runs` of the records from
    :func:`~jointtask_lib.paper_b.icl_train.train_or_load` and the in-distribution evaluations from
    :func:`~jointtask_lib.paper_b.icl_train.evaluate_or_load`; a dict ``{"spec", "record", "eval"}``
    is read as one); ``baselines``: :func:`~jointtask_lib.paper_b.icl_train.baseline_curves` on the same prompts.  Each
    row's verdict comes from the matching ``verdict_*`` function; its ``note`` says which branch of
    the rule decided and why (``explain=True``), how many seeds the row rests on, and the rule.
    A claim whose runs are missing is *inconclusive* with ``ours = "not run"``.
    """
    rows = []
    runs = [ICLRun.of(r) for r in runs]
    lv = {c: b["levels"] for c, b in baselines.items()}

    # 1. data efficiency on cubic
    mixed, single_c = pick(runs, "mixed"), pick(runs, "single:cubic")
    crule = ("verdict_data_efficiency: cubic error averaged over all k and over k >= d, mean over seeds; "
             "reproduced if mixed <= 1.2 x single-task on both; not reproduced if > 1.5 x on either; "
             "inconclusive if the single-task model's error at k >= d stays above 0.5 x the constant level")
    if mixed and single_c and "cubic" in lv:
        d = mixed[0].spec.model.d
        m_all = float(np.mean([np.mean(r.error("cubic")) for r in mixed]))
        s_all = float(np.mean([np.mean(r.error("cubic")) for r in single_c]))
        m_late = float(np.mean([late_error(r.error("cubic"), d) for r in mixed]))
        s_late = float(np.mean([late_error(r.error("cubic"), d) for r in single_c]))
        frac = float(np.mean([r.exposure("cubic", "fraction") for r in mixed]))
        cb = int(np.mean([r.exposure("cubic", "steps") for r in mixed]))
        sb = int(single_c[0].exposure("cubic", "steps"))
        ours = (f"cubic error/d, mixed ({_n_seeds(len(mixed))}) vs single-task ({_n_seeds(len(single_c))}): over all k "
                f"{_fmt(m_all)} vs {_fmt(s_all)} (ratio {m_all / s_all:.2f}); at k >= d {_fmt(m_late)} vs "
                f"{_fmt(s_late)} (ratio {m_late / s_late:.2f}); mixed trained on {cb} cubic batches vs {sb} "
                f"(fraction {frac:.3f}); constant level {_fmt(lv['cubic']['constant'])}")
        v, why = verdict_data_efficiency(m_all, s_all, m_late, s_late, lv["cubic"]["constant"], frac, explain=True)
        rests = f"{_seeds(len(mixed), 'mixed')} and {_seeds(len(single_c), 'single-task cubic')}"
    else:
        ours, v, why, rests = "not run", "inconclusive", "the mixed or single-task cubic runs are missing", "no runs"
    rows.append(_row("B1-cubic-data", "Mixed curriculum matches single-task cubic error with ~1/9 of the cubic data",
                     "cubic val. MSE/d 69.1 (mixed, 55,069 cubic steps) vs 95.8 (single-task, 500k steps)",
                     ours, v, preset, _note(why, rests, crule)))

    # 2. quadratic convergence across seeds
    single_q = pick(runs, "single:quadratic")
    qrule = (f"verdict_convergence: a seed converged if its tail error (last 10% of k, >= 2 positions) "
             f"<= {converge_frac} x the constant level; with >= 3 seeds each: inconclusive if no seed of either "
             "converged; reproduced if the converged fractions differ by >= 0.5; not reproduced if mixed <= "
             "single; else inconclusive")
    if mixed and single_q and "quadratic" in lv:
        c = lv["quadratic"]["constant"]
        tm = [tail_error(r.error("quadratic")) for r in mixed]
        ts = [tail_error(r.error("quadratic")) for r in single_q]
        nm = sum(converged(t, c, converge_frac) for t in tm)
        ns = sum(converged(t, c, converge_frac) for t in ts)
        ours = (f"converged on quadratic: mixed {nm}/{len(tm)}, single-task {ns}/{len(ts)}; tail errors/d "
                f"mixed [{', '.join(_fmt(t) for t in tm)}], single [{', '.join(_fmt(t) for t in ts)}]; "
                f"threshold {_fmt(converge_frac * c)} (constant level {_fmt(c)})")
        v, why = verdict_convergence(tm, ts, c, frac=converge_frac, explain=True)
        rests = f"{_seeds(len(tm), 'mixed')} and {_seeds(len(ts), 'single-task quadratic')}"
    else:
        ours, v, why, rests = "not run", "inconclusive", "the mixed or quadratic-only runs are missing", "no runs"
    rows.append(_row("B2-quadratic-convergence", "Mixed curriculum converges on quadratic where single-task "
                     "training does not", "3/5 mixed vs 0/5 single-task seeds (60% vs 0%)", ours, v, preset,
                     _note(why, rests, qrule)))

    # 3. sequential forgetting
    seq = pick(runs, "sequential")
    frule = ("verdict_forgetting: inconclusive if linear was never learned (tail error after the linear third "
             "> 0.5 x constant level); reproduced if the final linear tail error is >= 2 x its value after the "
             "linear third and >= 0.5 x the constant level; not reproduced if <= 1.25 x")
    snaps = seq[0].snapshots if seq else []
    if len(snaps) >= 3 and "linear" in lv:
        lin = snapshot_tails(snaps, "linear")
        quad = snapshot_tails(snaps, "quadratic") if snapshot_has(snaps, "quadratic") else None
        ours = (f"sequential, linear tail error/d after the linear third {_fmt(lin[0])}, at the end {_fmt(lin[-1])} "
                f"(x{lin[-1] / lin[0]:.1f}; constant level {_fmt(lv['linear']['constant'])})")
        if quad is not None:
            ours += f"; quadratic after its third {_fmt(quad[1])}, at the end {_fmt(quad[-1])}"
        v, why = verdict_forgetting(lin[0], lin[-1], lv["linear"]["constant"], explain=True)
        rests = f"1 sequential seed (seed {seq[0].seed}, the lowest of {len(seq)})"
    else:
        ours, v, why, rests = "not run", "inconclusive", "no sequential run with three snapshots", "no runs"
    rows.append(_row("B3-sequential-forgets", "The sequential curriculum forgets earlier tasks (catastrophic "
                     "forgetting)", "sequential ~10 on linear at k=90 (zero level 1): fails on every class but "
                     "the last", ours, v, preset, _note(why, rests, frule)))

    # 4. head masking
    mrule = ("verdict_masking: retention = (constant - masked)/(constant - unmasked) at the tail, over the "
             "(seed, class) cases where the unmasked model learned; reproduced if median retention <= 0.25 with "
             "the top heads masked and >= 0.5 with each control (as many lowest-scoring heads; as many random "
             "non-top heads); not reproduced if top >= the most destructive control - 0.1")
    cases = []
    for r in mixed:
        for c, cur in r.eval.masking().items():
            if "top" in cur and c in lv:
                cases.append({"unmasked": tail_error(cur["none"].mean), "constant": lv[c]["constant"],
                              **{k: tail_error(cur[k].mean) for k in ("top", "bottom", "random") if k in cur}})
    ok = [c for c in cases if c["unmasked"] <= 0.5 * c["constant"]]
    v, why = verdict_masking(cases, explain=True)
    if ok:
        med = {k: float(np.median([retention(c[k], c["unmasked"], c["constant"]) for c in ok]))
               for k in ("top", "bottom", "random") if all(k in c for c in ok)}
        spec0 = mixed[0].spec
        nmask = len(mixed[0].eval.masked_heads("top"))
        ours = (f"mixed models, {len(ok)} (seed, class) cases: median retention of the in-context gain "
                f"{med['top']:.2f} with the {nmask} top retrospective heads masked vs "
                + " and ".join(f"{med[k]:.2f} with {nmask} {name} heads" for k, name in
                               (("bottom", "lowest-scoring"), ("random", "random other")) if k in med)
                + f" (of {spec0.model.n_layers * spec0.model.n_heads} heads)")
    else:
        ours = "not run" if not cases else "no mixed model learned in context (nothing to destroy)"
    rows.append(_row("B4-retrospective-masking", "Masking the retrospective heads destroys in-context learning "
                     "(masking other heads does not)", "7 of 96 heads masked: error back to about the zero "
                     "level for all k; 7 control heads: ICL intact", ours, v, preset,
                     _note(why, _seeds(len(mixed), "mixed") if mixed else "no runs", mrule)))

    # 5. linear vs least squares (Garg et al.)
    single_l = pick(runs, "single:linear")
    lrule = ("verdict_least_squares: gap = (model - least squares)/zero level per k >= 1; inconclusive if the "
             "model's error at k >= d is above 0.5 x the zero level (never learned); reproduced if mean gap "
             "<= 0.05 and max <= 0.15; not reproduced if mean gap > 0.15")
    if single_l and "linear" in baselines:
        ls = baselines["linear"]["baselines"]["least_squares"]["mean"]
        z = lv["linear"]["zero"]
        d = single_l[0].spec.model.d
        gaps = [least_squares_gap(r.error("linear"), ls, z) for r in single_l]
        gm, gx = float(np.mean([g["mean"] for g in gaps])), float(np.mean([g["max"] for g in gaps]))
        late = float(np.mean([late_error(r.error("linear"), d) for r in single_l]))
        extra = ""
        if "3nn" in baselines["linear"]["baselines"]:
            g3 = least_squares_gap(baselines["linear"]["baselines"]["3nn"]["mean"], ls, z)
            extra = f"; for scale, 3-NN's mean gap {g3['mean']:.3f}"
        ours = (f"single-task linear ({_n_seeds(len(single_l))}): mean gap to least squares {gm:.3f}, max "
                f"{gx:.3f} (units of the zero level); its error at k >= d {_fmt(late)}{extra}")
        v, why = verdict_least_squares(gm, gx, late, z, explain=True)
        rests = _seeds(len(single_l), "linear-only")
    else:
        ours, v, why, rests = "not run", "inconclusive", "the linear-only run is missing", "no runs"
    rows.append(_row("B5-linear-least-squares", "A transformer trained on linear functions matches least squares "
                     "in context (Garg et al. 2022)", "error on the least-squares curve: ~0 for k >= d (d = 20)",
                     ours, v, preset, _note(why, rests, lrule)))
    return rows


def claims_summary(rows: list[dict]) -> str:
    """A plain-text summary of claim rows (what the run showed), generated from the rows alone."""
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    head = (f"{len(rows)} claims at the '{rows[0]['preset'] if rows else '?'}' preset: "
            + ", ".join(f"{n} {v}" for v, n in counts.items()))
    lines = [head]
    for r in rows:
        why = r["note"].split(" Rule (")[0]
        lines += [f"* {r['claim']}: {r['verdict'].upper()}", f"    ours:  {r['ours']}", f"    {why}"]
    return "\n".join(lines)


__all__ = [
    "tail_error", "late_error", "verdict_data_efficiency", "converged", "verdict_convergence", "verdict_forgetting",
    "retention", "verdict_masking", "least_squares_gap", "verdict_least_squares", "VERDICTS", "paper_b_claims",
    "claims_summary", "NOTEBOOK",
]
