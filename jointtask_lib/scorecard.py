"""The reproduction scorecard: one row per claim of paper A (and paper B).

Each notebook that tests a claim writes ``<results>/claims/<notebook>.json`` — a list of claim rows
built with :func:`claim` — and ``jointtask report`` (or notebook ``00_scorecard``) collects them all
into ``<results>/SCORECARD.md``.  A row carries the paper's value, ours (with its CI and the preset
it was measured at), a verdict and, where the paper gives a number, a magnitude statement:

* **reproduced** — our measurement supports the claim beyond its uncertainty;
* **not reproduced** — our measurement contradicts it beyond its uncertainty;
* **inconclusive** — the uncertainty (or a bound where a number was needed) does not decide.

The verdict rules are functions here, each documenting its criterion, so that no notebook decides a
verdict by hand.  A claim that does not reproduce at our scale is a result, and is reported as such.

Reduction factors (transition alone / transition joint) are judged by **one** rule,
:func:`classify_factor`, with ``[lo, hi]`` the CI of the factor (``(x, inf)`` for a bound
``> x``, ``(0, x)`` for ``< x``): *benefit* if ``lo > 1``; else *no benefit* if ``hi < 1.5``
(a benefit of 1.5x or more is ruled out); else *undecided*.  A "joint training helps" claim is
reproduced on *benefit* and not reproduced on *no benefit*; a "this pairing does not help"
control the other way round; *undecided* is inconclusive for both.  So the two verdicts can never
both be "reproduced" on one factor, and a CI end touching a threshold decides nothing.  The
verdict is about the *direction*; whether the paper's *number* (3.6x, 2-7x, ~7x) agrees with ours
is a separate statement, :func:`magnitude_check`, in the row's ``magnitude`` column.  Comparisons
of two quantities (:func:`verdict_greater`) are strict the same way: ties are inconclusive.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .paths import atomic_write_bytes, atomic_write_json, output_dir
from .validate import check_choice, check_float

VERDICTS = ("reproduced", "not reproduced", "inconclusive")


def claim(
    *, id: str, paper: str, claim: str, paper_value: str, ours: str, verdict: str, preset: str,
    notebook: str, note: str = "", magnitude: str = "", test: str = "", p: float | None = None,
    p_against: float | None = None, min_p: float | None = None, alpha: float | None = None, ci: str = "",
    n_runs: int | None = None, family: str = "", power: float | None = None, extension: bool | None = None,
) -> dict:
    """One scorecard row (validated).  ``magnitude``: how the paper's number compares with ours
    (the sentence of :func:`magnitude_check`), empty where the claim has no number.

    The statistics of the row (see :func:`apply_rules`): ``test`` (its name), ``p`` (one-sided
    p-value for the claim's direction), ``p_against`` (for the opposite direction, or the
    equivalence test behind "no benefit"), ``min_p`` (the smallest p the test can give with this
    design), ``alpha`` (the test's level; default :data:`ALPHA`), ``ci`` (text), ``n_runs``,
    ``family`` (one of :data:`FAMILIES`: Holm's correction runs within it), ``power`` (of the
    design at the paper's effect), ``extension`` (``True`` for what the papers do not claim;
    default: :data:`EXTENSIONS` decides by id)."""
    check_choice("verdict", verdict, VERDICTS)
    check_choice("paper", paper, ("A", "B"))
    if family:
        check_choice("family", family, FAMILIES)
    for name, v in (("p", p), ("p_against", p_against), ("min_p", min_p), ("power", power)):
        if v is not None:
            check_float(name, v, lo=0.0, hi=1.0)
    if alpha is not None:
        check_float("alpha", alpha, lo=0.0, hi=0.5, lo_open=True)
    row = {"id": id, "paper": paper, "claim": claim, "paper_value": paper_value, "ours": ours,
           "verdict": verdict, "preset": preset, "notebook": notebook, "note": note, "magnitude": magnitude}
    stats_ = {"test": test, "p": _num(p), "p_against": _num(p_against), "min_p": _num(min_p),
              "alpha": _num(alpha), "ci": ci, "n_runs": n_runs, "family": family, "power": _num(power),
              "extension": extension}
    row.update({k: v for k, v in stats_.items() if v not in (None, "")})
    return row


def _num(v):
    return None if v is None else float(v)


def unique_claims(rows: list[dict]) -> list[dict]:
    """``rows`` with repeated ids merged: identical repeats are dropped (first kept, order kept);
    two rows with one id and different content raise ``ValueError`` naming the id."""
    seen: dict[str, dict] = {}
    out = []
    for r in rows:
        prev = seen.get(r["id"])
        if prev is None:
            seen[r["id"]] = r
            out.append(r)
        elif prev != r:
            diff = sorted(k for k in set(prev) | set(r) if prev.get(k) != r.get(k))
            raise ValueError(f"claim id {r['id']!r} appears twice with different content (fields: "
                             f"{', '.join(diff)}); every claim id must be unique")
    return out


def write_claims(results_dir, notebook: str, rows: list[dict]) -> Path:
    """Atomically write the claim rows of one notebook (duplicate ids: see :func:`unique_claims`)."""
    for r in rows:
        check_choice("verdict", r["verdict"], VERDICTS)
    rows = unique_claims(rows)
    path = output_dir(results_dir) / "claims" / f"{notebook}.json"
    atomic_write_json(rows, path)
    return path


#: Fields every claim row has (:func:`claim`); ``note`` and ``magnitude`` may be absent.
CLAIM_FIELDS = ("id", "paper", "claim", "paper_value", "ours", "verdict", "preset", "notebook")
OPTIONAL_CLAIM_FIELDS = ("note", "magnitude")


class ClaimsError(ValueError):
    """A claims file cannot be used (the message names the file and what is wrong)."""


def read_claims_file(p: Path) -> list[dict]:
    """The claim rows of one claims file, checked (:class:`ClaimsError` naming the file when it is
    not JSON, not a list of rows, or a row lacks a field or has an unknown verdict)."""
    try:
        rows = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ClaimsError(f"malformed claims file {p}: not readable JSON ({exc}); "
                          "re-run its notebook or delete the file") from None
    if not isinstance(rows, list):
        raise ClaimsError(f"malformed claims file {p}: must hold a list of claim rows; "
                          f"got a {type(rows).__name__}")
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise ClaimsError(f"malformed claims file {p}: row {i} is not a mapping")
        missing = [f for f in CLAIM_FIELDS if f not in r]
        if missing:
            raise ClaimsError(f"malformed claims file {p}: row {i} lacks field(s) {', '.join(missing)}")
        bad = [f for f in CLAIM_FIELDS + OPTIONAL_CLAIM_FIELDS if f in r and not isinstance(r[f], str)]
        if bad:
            raise ClaimsError(f"malformed claims file {p}: row {i} ({r.get('id')!r}): field(s) "
                              f"{', '.join(bad)} must be text")
        if r["verdict"] not in VERDICTS or r["paper"] not in ("A", "B"):
            raise ClaimsError(f"malformed claims file {p}: row {i} ({r['id']!r}): 'verdict' must be one of "
                              f"{', '.join(VERDICTS)} and 'paper' A or B; got {r['verdict']!r}, {r['paper']!r}")
    return rows


def load_claims(results_dir, label: str | None = None) -> list[dict]:
    """Every claim row under ``<output_dir(results, label)>/claims/``, ordered by paper then notebook.  A claim id in
    two files raises ``ValueError`` naming both (one claim, one row); a malformed file (not JSON,
    not a list of rows, a row without a field or with an unknown verdict) raises
    :class:`ClaimsError` naming the file."""
    rows = []
    where: dict[str, str] = {}
    base = output_dir(results_dir, label) / "claims"
    if base.exists():
        for p in sorted(base.glob("*.json")):
            for r in read_claims_file(p):
                if r["id"] in where:
                    raise ValueError(f"claim id {r['id']!r} is in both {where[r['id']]} and {p.name}; "
                                     "every claim id must be unique (delete the stale file)")
                where[r["id"]] = p.name
                rows.append(r)
    return sorted(rows, key=lambda r: (r["paper"], r["notebook"], r["id"]))


def check_results_for_report(results_dir) -> Path:
    """The results folder ``jointtask report`` reads, checked before anything is written: it must
    exist and hold ``claims/*.json`` (written by the notebooks); raises ``ValueError`` otherwise."""
    p = Path(results_dir)
    if not p.is_dir():
        raise ValueError(f"'results': {p} is not a results folder (it does not exist or is a file); "
                         "run the notebooks first (make reproduce)")
    if not list((p / "claims").glob("*.json")):
        raise ValueError(f"'results': {p} holds no claims ({p / 'claims'}/*.json); run the notebooks first "
                         "(make reproduce), then report")
    return p


# ------------------------------------------------------------------------------------------------
# Verdict rules
# ------------------------------------------------------------------------------------------------

#: The equivalence margin of the reduction-factor rules: a factor whose whole CI lies below it
#: rules out a benefit of this size or more (paper A's smallest reported benefit is 2x).
NO_BENEFIT_BELOW = 1.5
#: The outcomes of :func:`classify_factor`.
FACTOR_CLASSES = ("benefit", "no benefit", "undecided")


def factor_interval(red) -> tuple[float, float] | None:
    """The range a reduction factor is known to lie in, or ``None`` when it is unknown.

    An estimate gives its CI ``(lo, hi)``; a lower bound ``> x`` gives ``(x, inf)``; an upper
    bound ``< x`` gives ``(0, x)``.  ``None`` for a missing factor, an ``"inconclusive"`` one, or an
    estimate without a CI (a point estimate carries no uncertainty, so it can decide nothing).
    Works on :class:`jointtask_lib.transition.Reduction` (a bound is in ``red.bound``; ``red.value``
    is ``None`` then).
    """
    if red is None or red.kind == "inconclusive":
        return None
    if hasattr(red, "lo_open"):  # a pooled factor (jointtask_lib.stats.PooledReduction)
        if not math.isfinite(red.factor):
            return None
        return (0.0 if red.lo_open else float(red.lo), math.inf if red.hi_open else float(red.hi))
    if red.kind == "above":
        return (float(red.bound), math.inf)
    if red.kind == "below":
        return (0.0, float(red.bound))
    if red.kind != "estimate":
        raise ValueError(f"'kind' of a reduction must be estimate, above, below or inconclusive; got {red.kind!r}")
    if red.lo is None or red.hi is None:
        return None
    return (float(red.lo), float(red.hi))


def classify_factor(red, *, tol: float = NO_BENEFIT_BELOW) -> str:
    """The one rule behind both reduction-factor verdicts (factor = transition alone / joint).

    With ``[lo, hi]`` the range the factor is known to lie in (:func:`factor_interval`):

    * ``"benefit"`` when ``lo > 1``: the whole CI (or bound) says joint training lowers the
      transition;
    * ``"no benefit"`` when not that, and ``hi < tol``: the data rule out a benefit of ``tol``
      (default 1.5x) or more -- an equivalence test, so a wide CI around 1 is *not* evidence of no
      benefit;
    * ``"undecided"`` otherwise (the CI reaches both 1 and ``tol``), or when the factor is unknown.

    The comparisons are strict, so a CI end that touches 1 (or ``tol``) decides nothing.  The
    three classes exclude each other: no CI can support both "benefit" and "no benefit".  How big
    the factor is compared with the paper's number is a separate statement
    (:func:`magnitude_check`).
    """
    check_float("tol", tol, lo=1.0, lo_open=True)
    iv = factor_interval(red)
    if iv is None:
        return "undecided"
    lo, hi = iv
    if lo > 1.0:
        return "benefit"
    if hi < tol:
        return "no benefit"
    return "undecided"


def verdict_benefit(red, *, tol: float = NO_BENEFIT_BELOW) -> str:
    """Claim "joint training lowers the transition" (reduction factor single/joint > 1), by
    :func:`classify_factor`: *reproduced* for "benefit" (the CI, or bound, lies wholly above 1);
    *not reproduced* for "no benefit" (not that, and the CI lies wholly below ``tol`` = 1.5: a
    benefit of 1.5x or more is ruled out); otherwise *inconclusive*."""
    return {"benefit": "reproduced", "no benefit": "not reproduced"}.get(classify_factor(red, tol=tol),
                                                                         "inconclusive")


def verdict_no_benefit(red, *, tol: float = NO_BENEFIT_BELOW) -> str:
    """Claim "this pairing does *not* lower the transition" (paper A's controls), by the same
    rule (:func:`classify_factor`): *reproduced* for "no benefit" (the CI, or bound, lies wholly
    below ``tol`` = 1.5 and not wholly above 1); *not reproduced* for "benefit" (wholly above 1);
    otherwise *inconclusive*.  Always the opposite of :func:`verdict_benefit` on the same factor."""
    return {"no benefit": "reproduced", "benefit": "not reproduced"}.get(classify_factor(red, tol=tol),
                                                                         "inconclusive")


def design_power(red, *, factor: float = 2.0, reps: int = 100, rng=0) -> float | None:
    """Power of the design behind a pooled factor ``red`` (its seeds per condition and sizes) to
    call a true ``factor`` (default 2x, paper A's smallest claimed benefit) at one-sided
    :data:`ALPHA`, simulated from the single-task curve fitted to these runs
    (:func:`jointtask_lib.stats.power.plan_power`).  ``None`` when there is no fitted curve."""
    from .stats.pooled import LAPSE_MAX, TAU_MAX, TransitionCurve
    from .stats.power import plan_power

    if red is None or not hasattr(red, "lo_open") or not math.isfinite(red.factor):
        return None
    curve = TransitionCurve(transition=red.transition_single, slope=red.slope, lapse=min(red.lapse, LAPSE_MAX),
                            tau=min(red.tau, TAU_MAX))
    seeds = max(2, min(red.seeds))
    return plan_power(factor=factor, seeds=seeds, n_params=red.sizes, curve=curve, reps=reps, alpha=ALPHA,
                      rng=rng).power


def factor_stats(red, *, expect: str = "benefit", family: str = "", verdict: str = "", power_reps: int = 100) -> dict:
    """The statistics columns of a reduction-factor row, for ``claim(**factor_stats(red, ...))``.

    For a pooled factor (:class:`jointtask_lib.stats.PooledReduction`): the test is the pooled
    likelihood-ratio test; for a "benefit" claim ``p`` is its one-sided p for factor > 1 and
    ``p_against`` the equivalence p (the data rule out a benefit of 1.5x or more); for a "no
    benefit" claim (``expect="none"``) the other way round.  An older bootstrap
    :class:`~jointtask_lib.transition.Reduction` has no p-value: its row is a CI rule.  With
    ``verdict="not reproduced"`` the design's power at 2x (:func:`design_power`, ``power_reps``
    simulated experiments) is stated too."""
    check_choice("expect", expect, ("benefit", "none"))
    if family:
        check_choice("family", family, FAMILIES)
    out = {"family": family} if family else {}
    if red is None:
        return out
    if hasattr(red, "lo_open"):
        if not math.isfinite(red.factor):
            return out | {"test": "pooled logistic LRT (no estimate)", "n_runs": red.n_runs}
        df = "normal" if math.isinf(red.df) else f"t, {red.df:g} df"
        p, q = (red.p, red.p_equiv) if expect == "benefit" else (red.p_equiv, red.p)
        out |= {"test": f"pooled logistic LRT ({df})", "p": p, "p_against": q, "min_p": red.min_p,
                "ci": red.ci_text(), "n_runs": red.n_runs}
        if verdict == "not reproduced":
            pw = design_power(red, reps=power_reps)
            if pw is not None:
                out["power"] = pw
        return out
    return out | {"test": "seed bootstrap CI (no test)", "ci": red.describe()}


MAGNITUDES = ("consistent", "ours smaller", "ours larger", "not comparable", "no paper value")


def _fmt_x(v: float) -> str:
    return "inf" if v == math.inf else f"{v:.3g}"


def magnitude_check(red, paper: float | tuple[float, float] | None) -> tuple[str, str]:
    """Is the paper's reduction factor (a number, or a range ``(lo, hi)`` such as 2-7x) consistent
    with ours?  Returns ``(status, sentence)``, ``status`` one of :data:`MAGNITUDES`:

    * ``"consistent"``: the paper's value (range) and our CI (or bound) overlap (touching counts);
    * ``"ours smaller"`` / ``"ours larger"``: our CI or bound lies wholly below / above it;
    * ``"not comparable"``: we have no CI or bound (:func:`factor_interval` is ``None``);
    * ``"no paper value"``: ``paper`` is ``None``.

    This is separate from the direction verdict: a benefit can be reproduced (CI above 1) and
    still be smaller than the paper's.
    """
    if paper is None:
        return "no paper value", "no paper value to compare with"
    plo, phi = (paper, paper) if isinstance(paper, (int, float)) else paper
    plo, phi = float(plo), float(phi)
    if not (0 < plo <= phi < math.inf):
        raise ValueError(f"'paper' must be a positive number or a range (lo, hi) with 0 < lo <= hi; got {paper!r}")
    ptxt = f"{_fmt_x(plo)}x" if plo == phi else f"{_fmt_x(plo)}-{_fmt_x(phi)}x"
    iv = factor_interval(red)
    if iv is None:
        return "not comparable", f"paper {ptxt}: not comparable (we have no CI or bound)"
    lo, hi = iv
    ours = (f"> {_fmt_x(lo)}" if red.kind == "above" else f"< {_fmt_x(hi)}" if red.kind == "below"
            else f"CI [{_fmt_x(lo)}, {_fmt_x(hi)}]")
    if hi < plo:
        return "ours smaller", f"paper {ptxt} lies above our {ours}: ours is smaller"
    if lo > phi:
        return "ours larger", f"paper {ptxt} lies below our {ours}: ours is larger"
    return "consistent", f"paper {ptxt} is consistent with our {ours}"


def verdict_greater(a_mean: float, a_ci: tuple[float, float], b_mean: float, b_ci: tuple[float, float]) -> str:
    """Claim "quantity A exceeds quantity B": *reproduced* when A's CI lies strictly above B's
    (``a_lo > b_hi``), *not reproduced* when strictly below (``a_hi < b_lo``), otherwise --
    overlapping or touching CIs, identical values (ties), zero-width CIs at the same value --
    *inconclusive*."""
    if a_ci[0] > b_ci[1]:
        return "reproduced"
    if a_ci[1] < b_ci[0]:
        return "not reproduced"
    return "inconclusive"


def verdict_sublinear(exponent) -> str:
    """Claim "the transition grows sub-linearly with the task size" from a
    :class:`jointtask_lib.transition.Exponent` ``b`` (transition ~ size**b): *reproduced* when its
    CI lies strictly below 1, *not reproduced* when strictly above 1 (the rule of
    :func:`verdict_greater` against the number 1); *inconclusive* when there is no estimate or CI,
    or when a size was skipped because its transition is only a bound (the bound could move the
    exponent either way)."""
    if exponent is None or exponent.value is None or exponent.lo is None or exponent.skipped:
        return "inconclusive"
    return verdict_greater(1.0, (1.0, 1.0), exponent.value, (exponent.lo, exponent.hi))


def verdict_correlation(rho: float, p: float, *, expected_sign: int = 1, alpha: float = 0.05) -> str:
    """Claim "two quantities are (rank-)correlated with sign ``expected_sign``", from a correlation
    ``rho`` and its two-sided permutation p-value ``p``: *reproduced* when ``rho`` has the expected
    sign and ``p < alpha``; *not reproduced* when it has the opposite sign and ``p < alpha``;
    otherwise (including a NaN ``rho``: too few points) *inconclusive*."""
    if expected_sign not in (1, -1):
        raise ValueError(f"'expected_sign' must be 1 or -1; got {expected_sign!r}")
    if rho is None or not math.isfinite(rho) or p is None or not p < alpha:
        return "inconclusive"
    return "reproduced" if rho * expected_sign > 0 else "not reproduced" if rho != 0 else "inconclusive"


# ------------------------------------------------------------------------------------------------
# Scorecard-wide rules: level, multiplicity, power, extensions
# ------------------------------------------------------------------------------------------------

#: The one-sided level of every test behind a verdict (a two-sided 5% test split in two).
ALPHA = 0.025
#: The power a design needs at the paper's effect before a "not reproduced" may rest on it.
POWER_MIN = 0.8
#: The families of claims; Holm's correction runs within each (the chance of any false
#: "reproduced" in a family is at most ALPHA).
FAMILIES = ("transitions", "pairings", "controls", "transfer", "embedding scores", "sublayer usage",
            "output structure", "paper B", "extensions")
#: Claims the papers do not make, scored apart (id prefix -> why).  Not counted among reproduced
#: paper claims.
EXTENSIONS = {
    "A-synergy-prediction": "the synergy predictor is a score this project invented; paper A asks the question only",
    "A-perm-PMUL+AMUL": "AMUL is a helper operation this project invented for the permutation experiment",
    "A-perm-PMUL+CMUL": "CMUL is a helper operation this project invented for the permutation experiment",
    "A-perm-PMUL+SGN": "SGN as a helper is this project's choice for the permutation experiment",
    "A-perm-PMUL+PMAX": "PMAX is a helper operation this project invented for the permutation experiment",
    "A-continual-vs-joint": "a reviewers' request: paper A makes no direct comparison",
    "A-finetune-after-joint": "a reviewers' request: paper A makes no such claim",
    "B5-linear-least-squares": "Garg et al. 2022's result, checked as a sanity test; not a claim of paper B",
}


def is_extension(row: dict) -> bool:
    """``row["extension"]`` when set, else whether its id starts with a key of :data:`EXTENSIONS`."""
    if row.get("extension") is not None:
        return bool(row["extension"])
    return any(row["id"].startswith(k) for k in EXTENSIONS)


def _extension_reason(row: dict) -> str:
    return next((v for k, v in EXTENSIONS.items() if row["id"].startswith(k)), "not a claim of the paper")


def apply_rules(rows: list[dict]) -> list[dict]:
    """The scorecard's verdict rules, applied to the rows of every notebook together.  Returns new
    rows with ``verdict`` possibly downgraded to *inconclusive*, the notebook's verdict kept in
    ``verdict_notebook``, Holm-adjusted p-values in ``p_holm`` / ``p_against_holm`` and the
    reasons in ``rules`` (a list of sentences).  For a row with a test (``p`` given):

    1. **Level.** A test whose smallest attainable p (``min_p``) exceeds its level (``alpha``,
       default :data:`ALPHA` = 0.025 one-sided) can decide nothing: *inconclusive* (3 vs 3 seeds in
       an exact permutation test: 20 relabellings, smallest p 0.05).
    2. **Multiplicity.** Within each ``family`` (:data:`FAMILIES`; extensions form their own),
       p-values are Holm-adjusted (:func:`jointtask_lib.stats.holm`); *reproduced* needs the
       adjusted ``p`` <= alpha, *not reproduced* from a contrary test needs the adjusted
       ``p_against`` <= alpha.
    3. **Power.** *not reproduced* stands only on a significant contrary test (rule 2) or on a
       stated ``power`` >= :data:`POWER_MIN` at the paper's effect; otherwise *inconclusive* -- a
       design that could not have detected the effect says nothing against it.

    Rows without a test (a CI rule: :func:`verdict_greater`, :func:`classify_factor` on a
    bootstrap CI) keep a *reproduced* and are subject to rule 3.
    """
    from .stats import holm

    out = [dict(r) for r in rows]
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(out):
        fam = "extensions" if is_extension(r) else (r.get("family") or f"notebook {r['notebook']}")
        groups.setdefault(fam, []).append(i)
    for idx in groups.values():
        for key in ("p", "p_against"):
            adj = holm([out[i].get(key) for i in idx])
            for i, a in zip(idx, adj):
                if a is not None:
                    out[i][f"{key}_holm"] = a
    for r in out:
        r["verdict_notebook"] = r["verdict"]
        rules = []
        alpha = r.get("alpha") or ALPHA
        v = r["verdict"]
        tested = r.get("p") is not None
        if tested and v != "inconclusive" and r.get("min_p") is not None and r["min_p"] > alpha:
            rules.append(f"the test cannot reach alpha = {alpha:g}: its smallest attainable p is {r['min_p']:.3g}")
            v = "inconclusive"
        if v == "reproduced" and tested and r.get("p_holm", r["p"]) > alpha:
            rules.append(f"Holm-adjusted p = {r.get('p_holm', r['p']):.3g} > alpha = {alpha:g} within its family")
            v = "inconclusive"
        if v == "not reproduced":
            contrary = r.get("p_against") is not None and r.get("p_against_holm", r["p_against"]) <= alpha
            powered = r.get("power") is not None and r["power"] >= POWER_MIN
            if not (contrary or powered):
                pw = "not stated" if r.get("power") is None else f"{r['power']:.2f}"
                rules.append(f"'not reproduced' needs a significant contrary test or power >= {POWER_MIN:g} "
                             f"at the paper's effect (power: {pw})")
                v = "inconclusive"
        r["verdict"] = v
        r["rules"] = rules
    return out


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------

_MARK = {"reproduced": "✅ reproduced", "not reproduced": "❌ not reproduced", "inconclusive": "❔ inconclusive"}


def _fmt_p(v) -> str:
    if v is None:
        return "—"
    return f"{v:.2g}" if v >= 0.001 else f"{v:.1e}"


def _cell(c) -> str:
    return str(c).replace("|", "\\|").replace("\n", " ")


def _table(sel: list[dict]) -> list[str]:
    lines = ["| claim | paper | ours | test | p (Holm) | CI | runs | verdict | paper's number vs ours | preset "
             "| notebook |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sel:
        p = "—" if r.get("p") is None else f"{_fmt_p(r['p'])} ({_fmt_p(r.get('p_holm', r['p']))})"
        if r["verdict"] == "not reproduced" and r.get("p_against") is not None:
            p = (f"against: {_fmt_p(r['p_against'])} ({_fmt_p(r.get('p_against_holm', r['p_against']))})"
                 + ("" if r.get("p") is None else f"; for: {_fmt_p(r['p'])}"))
        cells = [r["claim"], r["paper_value"], r["ours"], r.get("test") or "CI rule (no test)", p,
                 r.get("ci") or "—", "—" if r.get("n_runs") is None else r["n_runs"], _MARK[r["verdict"]],
                 r.get("magnitude") or "—", r["preset"], r["notebook"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _notes(sel: list[dict]) -> list[str]:
    notes = []
    for r in sel:
        parts = [t for t in (r.get("note"), *r.get("rules", ())) if t]
        if r.get("power") is not None:
            parts.append(f"power at the paper's effect {r['power']:.2f}")
        if r.get("verdict_notebook", r["verdict"]) != r["verdict"]:
            parts.append(f"the notebook's rule said {r['verdict_notebook']}; the scorecard's rules make it "
                         f"{r['verdict']}")
        if parts:
            notes.append(f"- **{r['id']}**: " + "; ".join(parts))
    return ["", "Notes:", "", *notes] if notes else []


def render_markdown(rows: list[dict], *, title: str = "Reproduction scorecard") -> str:
    """The scorecard as Markdown: a summary line, the rules, one table per paper, then the
    extensions (claims the papers do not make) in a table of their own, not counted.  The rules
    of :func:`apply_rules` are applied here, to all rows together."""
    lines = [f"# {title}", ""]
    if not rows:
        lines.append("No claims have been evaluated yet: run `make reproduce`.")
        return "\n".join(lines) + "\n"
    rows = apply_rules(rows)
    paper_rows = [r for r in rows if not is_extension(r)]
    ext = [r for r in rows if is_extension(r)]
    counts = {v: sum(r["verdict"] == v for r in paper_rows) for v in VERDICTS}
    lines.append(
        f"{len(paper_rows)} claims of the papers: {counts['reproduced']} reproduced, {counts['not reproduced']} not "
        f"reproduced, {counts['inconclusive']} inconclusive"
        + (f" (and {len(ext)} extensions, scored apart)." if ext else ".")
        + " Every number comes from the run named in its notebook; the preset says at what scale it was "
        "measured. A verdict judges the direction of a claim; the column *paper's number vs ours* says whether "
        "the paper's value lies within our CI or bound."
    )
    lines += ["", f"Rules: every test is one-sided at alpha = {ALPHA:g}; a test whose smallest attainable p "
              "exceeds alpha decides nothing; p-values are Holm-adjusted within each family of claims "
              f"({', '.join(f for f in FAMILIES if f != 'extensions')}; rows without a family: within their "
              "notebook) and the column *p (Holm)* shows both; *not reproduced* needs a significant contrary test "
              f"or a stated power of at least {POWER_MIN:g} at the paper's effect, otherwise the row is "
              "inconclusive. Reduction factors come from the pooled transition model "
              "(`jointtask_lib.stats.pooled`: all runs of both conditions, learned = accuracy >= 0.8, "
              "profile-likelihood CI, likelihood-ratio test)."]
    names = {"A": "Paper A — Both et al., *Small Models, Smarter Learning* (arXiv 2505.18369)",
             "B": "Paper B — Bhasin et al., *How does Multi-Task Training Affect Transformer "
                  "In-Context Capabilities?* (NAACL 2024)"}
    for paper in ("A", "B"):
        sel = [r for r in paper_rows if r["paper"] == paper]
        if not sel:
            continue
        lines += ["", f"## {names[paper]}", "", *_table(sel), *_notes(sel)]
    if ext:
        lines += ["", "## Extensions (not claims of the papers; not counted above)", "",
                  "What this project added: its own scores, helper operations and reviewers' requests. "
                  "Judged by the same rules, Holm-adjusted among themselves.", "", *_table(ext), "",
                  "Why each is an extension:", ""]
        lines += [f"- **{r['id']}**: {_extension_reason(r)}" for r in ext]
        lines += _notes(ext)
    return "\n".join(lines) + "\n"


def write_scorecard(results_dir, label: str | None = None) -> Path:
    """Collect every claim of the output folder (:func:`jointtask_lib.paths.output_dir`) and write
    ``SCORECARD.md`` beside them."""
    rows = load_claims(results_dir, label)
    path = output_dir(results_dir, label) / "SCORECARD.md"
    atomic_write_bytes(render_markdown(rows).encode(), path)
    return path


def report_folder(results, label: str = "") -> tuple[Path, str]:
    """The output folder ``jointtask report`` reads, and what it holds (``"label quick, preset
    quick"``).  ``results`` is a results root or an output folder; ``label`` picks
    ``<results>/<label>``.  Without a label: ``results`` itself when it holds claims, else its one
    labelled sub-folder holding claims; several raise ``ValueError`` listing them."""
    from .paths import MANIFEST, check_label, results_dir

    base = results_dir(results)
    if not base.is_dir():
        raise ValueError(f"'results': {base} is not a results folder (it does not exist or is a file); "
                         "run the notebooks first (make reproduce)")
    if label:
        folder = base / check_label(label)
        if not (folder / "claims").is_dir():
            raise ValueError(f"'label' {label!r}: {folder} holds no claims/ (run `jointtask notebooks "
                             f"--label {label}` first); folders with claims: "
                             f"{', '.join(_labelled(base)) or 'none'}")
    elif (base / "claims").is_dir():
        folder = base
    else:
        found = _labelled(base)
        if len(found) != 1:
            what = ("no folder with claims" if not found
                    else "several folders with claims: " + ", ".join(found))
            raise ValueError(f"'results' {str(base)!r} holds {what}; pick one with --label "
                             f"(e.g. --label quick) or --results <folder>")
        folder = base / found[0]
    manifest = folder / MANIFEST
    preset = ""
    if manifest.is_file():
        try:
            preset = json.loads(manifest.read_text(encoding="utf-8")).get("preset", "")
        except (OSError, ValueError, AttributeError):
            raise ValueError(f"{manifest}: not a readable run manifest (JSON with a 'preset')") from None
    return folder, preset


def _labelled(base: Path) -> list[str]:
    return sorted(d.name for d in base.iterdir() if (d / "claims").is_dir()) if base.is_dir() else []


def check_one_preset(rows: list[dict], folder, manifest_preset: str = "") -> str:
    """The single preset the claim rows were measured at; ``ValueError`` when they mix presets (or
    disagree with the folder's run manifest), naming which notebook holds which."""
    by_preset: dict[str, list[str]] = {}
    for r in rows:
        by_preset.setdefault(str(r.get("preset")), []).append(r["notebook"])
    if len(by_preset) > 1 or (manifest_preset and by_preset and manifest_preset not in by_preset):
        parts = "; ".join(f"{p}: {', '.join(sorted(set(nbs)))}" for p, nbs in sorted(by_preset.items()))
        extra = f" (its RUN.json says preset {manifest_preset!r})" if manifest_preset else ""
        raise ValueError(f"{folder}: refusing to mix presets in one scorecard{extra}; claims by preset: "
                         f"{parts}. Re-run the odd notebooks with one preset, or delete their claims/ files")
    return next(iter(by_preset), manifest_preset)


def register_cli(sub) -> None:
    p = sub.add_parser("report", help="collect the claims of one results folder into SCORECARD.md")
    p.add_argument("--results", default="",
                   help="a results root or one output folder (default: $JOINTTASK_RESULTS, else results/)")
    p.add_argument("--label", default="",
                   help="read <results>/<label> (e.g. quick); needed when several folders hold claims")

    def run(a) -> int:
        from .paths import check_output_dir

        folder, manifest_preset = report_folder(a.results, a.label)
        check_results_for_report(folder)  # holds claims/*.json
        check_output_dir("results", folder)  # SCORECARD.md is written there
        rows = load_claims(folder, label="")  # every claims file validated before anything is written
        preset = check_one_preset(rows, folder, manifest_preset)
        path = write_scorecard(folder, label="")
        print(f"read {folder} (preset {preset or 'unknown'}): {len(rows)} claims from "
              f"{len({r['notebook'] for r in rows})} notebooks; wrote {path}")
        return 0

    p.set_defaults(func=run)
