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

from .runs import atomic_write_bytes, atomic_write_json
from .validate import check_choice, check_float

VERDICTS = ("reproduced", "not reproduced", "inconclusive")


def claim(
    *, id: str, paper: str, claim: str, paper_value: str, ours: str, verdict: str, preset: str,
    notebook: str, note: str = "", magnitude: str = "",
) -> dict:
    """One scorecard row (validated).  ``magnitude``: how the paper's number compares with ours
    (the sentence of :func:`magnitude_check`), empty where the claim has no number."""
    check_choice("verdict", verdict, VERDICTS)
    check_choice("paper", paper, ("A", "B"))
    return {"id": id, "paper": paper, "claim": claim, "paper_value": paper_value, "ours": ours,
            "verdict": verdict, "preset": preset, "notebook": notebook, "note": note, "magnitude": magnitude}


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
    path = Path(results_dir) / "claims" / f"{notebook}.json"
    atomic_write_json(rows, path)
    return path


#: Fields every claim row has (:func:`claim`); ``note`` and ``magnitude`` may be absent.
CLAIM_FIELDS = ("id", "paper", "claim", "paper_value", "ours", "verdict", "preset", "notebook")
OPTIONAL_CLAIM_FIELDS = ("note", "magnitude")


class ClaimsError(ValueError):
    """A claims file cannot be used (the message names the file and what is wrong)."""


def _check_claims_file(p: Path) -> list[dict]:
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


def load_claims(results_dir) -> list[dict]:
    """Every claim row under ``<results>/claims/``, ordered by paper then notebook.  A claim id in
    two files raises ``ValueError`` naming both (one claim, one row); a malformed file (not JSON,
    not a list of rows, a row without a field or with an unknown verdict) raises
    :class:`ClaimsError` naming the file."""
    rows = []
    where: dict[str, str] = {}
    base = Path(results_dir) / "claims"
    if base.exists():
        for p in sorted(base.glob("*.json")):
            for r in _check_claims_file(p):
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
# Rendering
# ------------------------------------------------------------------------------------------------

_MARK = {"reproduced": "✅ reproduced", "not reproduced": "❌ not reproduced", "inconclusive": "❔ inconclusive"}


def render_markdown(rows: list[dict], *, title: str = "Reproduction scorecard") -> str:
    """The scorecard as Markdown: a summary line, then one table per paper."""
    lines = [f"# {title}", ""]
    if not rows:
        lines.append("No claims have been evaluated yet: run `make reproduce`.")
        return "\n".join(lines) + "\n"
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    lines.append(
        f"{len(rows)} claims: {counts['reproduced']} reproduced, {counts['not reproduced']} not reproduced, "
        f"{counts['inconclusive']} inconclusive. Every number comes from the run named in its notebook; "
        "the preset says at what scale it was measured. A verdict judges the direction of a claim; the "
        "column *paper's number vs ours* says whether the paper's value lies within our CI or bound."
    )
    names = {"A": "Paper A — Both et al., *Small Models, Smarter Learning* (arXiv 2505.18369)",
             "B": "Paper B — Bhasin et al., *How does Multi-Task Training Affect Transformer "
                  "In-Context Capabilities?* (NAACL 2024)"}
    for paper in ("A", "B"):
        sel = [r for r in rows if r["paper"] == paper]
        if not sel:
            continue
        lines += ["", f"## {names[paper]}", "",
                  "| claim | paper | ours | verdict | paper's number vs ours | preset | notebook |",
                  "|---|---|---|---|---|---|---|"]
        for r in sel:
            cells = [r["claim"], r["paper_value"], r["ours"], _MARK[r["verdict"]], r.get("magnitude") or "—",
                     r["preset"], r["notebook"]]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
        notes = [r for r in sel if r.get("note")]
        if notes:
            lines += ["", "Notes:", ""]
            lines += [f"- **{r['id']}**: {r['note']}" for r in notes]
    return "\n".join(lines) + "\n"


def write_scorecard(results_dir) -> Path:
    """Collect every claim under ``results_dir`` and write ``SCORECARD.md`` beside them."""
    rows = load_claims(results_dir)
    path = Path(results_dir) / "SCORECARD.md"
    atomic_write_bytes(render_markdown(rows).encode(), path)
    return path


def register_cli(sub) -> None:
    p = sub.add_parser("report", help="collect the claims of every notebook into SCORECARD.md")
    p.add_argument("--results", default="results")

    def run(a) -> int:
        from .paths import check_output_dir

        check_results_for_report(a.results)
        check_output_dir("results", a.results)  # SCORECARD.md is written there
        load_claims(a.results)  # every claims file validated before anything is written
        path = write_scorecard(a.results)
        rows = load_claims(a.results)
        print(f"{path}: {len(rows)} claims")
        return 0

    p.set_defaults(func=run)
