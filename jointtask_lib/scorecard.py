"""The reproduction scorecard: one row per claim of paper A (and paper B).

Each notebook that tests a claim writes ``<results>/claims/<notebook>.json`` — a list of claim rows
built with :func:`claim` — and ``jointtask report`` (or notebook ``00_scorecard``) collects them all
into ``<results>/SCORECARD.md``.  A row carries the paper's value, ours (with its CI and the preset
it was measured at) and a verdict:

* **reproduced** — our measurement supports the claim beyond its uncertainty;
* **not reproduced** — our measurement contradicts it beyond its uncertainty;
* **inconclusive** — the uncertainty (or a bound where a number was needed) does not decide.

The verdict rules are functions here, each documenting its criterion, so that no notebook decides a
verdict by hand.  A claim that does not reproduce at our scale is a result, and is reported as such.
"""

from __future__ import annotations

import json
from pathlib import Path

from .runs import atomic_write_bytes, atomic_write_json
from .validate import check_choice

VERDICTS = ("reproduced", "not reproduced", "inconclusive")


def claim(
    *, id: str, paper: str, claim: str, paper_value: str, ours: str, verdict: str, preset: str,
    notebook: str, note: str = "",
) -> dict:
    """One scorecard row (validated)."""
    check_choice("verdict", verdict, VERDICTS)
    check_choice("paper", paper, ("A", "B"))
    return {"id": id, "paper": paper, "claim": claim, "paper_value": paper_value, "ours": ours,
            "verdict": verdict, "preset": preset, "notebook": notebook, "note": note}


def write_claims(results_dir, notebook: str, rows: list[dict]) -> Path:
    """Atomically write the claim rows of one notebook."""
    for r in rows:
        check_choice("verdict", r["verdict"], VERDICTS)
    path = Path(results_dir) / "claims" / f"{notebook}.json"
    atomic_write_json(rows, path)
    return path


def load_claims(results_dir) -> list[dict]:
    """Every claim row under ``<results>/claims/``, ordered by paper then notebook."""
    rows = []
    base = Path(results_dir) / "claims"
    if base.exists():
        for p in sorted(base.glob("*.json")):
            rows.extend(json.loads(p.read_text()))
    return sorted(rows, key=lambda r: (r["paper"], r["notebook"], r["id"]))


# ------------------------------------------------------------------------------------------------
# Verdict rules
# ------------------------------------------------------------------------------------------------


def verdict_benefit(red, *, min_factor: float = 1.0) -> str:
    """Claim "joint training lowers the transition" (reduction factor single/joint > 1).

    *reproduced* when the whole CI of the factor lies above ``min_factor`` (or the factor is a
    lower bound ``> x`` with ``x > min_factor``); *not reproduced* when the CI lies at or below 1
    (or the factor is an upper bound ``< x`` with ``x <= 1``); otherwise *inconclusive*.
    """
    if red is None or red.kind == "inconclusive":
        return "inconclusive"
    if red.kind == "above":
        return "reproduced" if red.value > min_factor else "inconclusive"
    if red.kind == "below":
        return "not reproduced" if red.value <= 1.0 else "inconclusive"
    lo, hi = red.lo, red.hi
    if lo is not None and lo > min_factor:
        return "reproduced"
    if hi is not None and hi <= 1.0:
        return "not reproduced"
    return "inconclusive"


def verdict_no_benefit(red, *, tolerance: float = 1.5) -> str:
    """Claim "this pairing does *not* lower the transition" (paper A's controls).

    *reproduced* when the CI of the factor lies below ``tolerance`` (no benefit beyond a modest
    factor; an upper bound ``< x`` with ``x <= tolerance`` counts); *not reproduced* when the CI lies
    above ``tolerance`` (a clear benefit; a lower bound ``> x`` with ``x >= tolerance`` counts);
    otherwise *inconclusive*.
    """
    if red is None or red.kind == "inconclusive":
        return "inconclusive"
    if red.kind == "above":
        return "not reproduced" if red.value >= tolerance else "inconclusive"
    if red.kind == "below":
        return "reproduced" if red.value <= tolerance else "inconclusive"
    if red.hi is not None and red.hi < tolerance:
        return "reproduced"
    if red.lo is not None and red.lo > tolerance:
        return "not reproduced"
    return "inconclusive"


def verdict_greater(a_mean: float, a_ci: tuple[float, float], b_mean: float, b_ci: tuple[float, float]) -> str:
    """Claim "quantity A exceeds quantity B": *reproduced* when A's CI lies wholly above B's,
    *not reproduced* when wholly below or equal, otherwise *inconclusive*."""
    if a_ci[0] > b_ci[1]:
        return "reproduced"
    if a_ci[1] <= b_ci[0]:
        return "not reproduced"
    return "inconclusive"


def verdict_correlation(rho: float, p: float, *, expected_sign: int = 1, alpha: float = 0.05) -> str:
    """Claim "two quantities are (rank-)correlated with sign ``expected_sign``", from a correlation
    ``rho`` and its two-sided permutation p-value ``p``: *reproduced* when ``rho`` has the expected
    sign and ``p < alpha``; *not reproduced* when it has the opposite sign and ``p < alpha``;
    otherwise (including a NaN ``rho``: too few points) *inconclusive*."""
    import math

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
        "the preset says at what scale it was measured."
    )
    names = {"A": "Paper A — Both et al., *Small Models, Smarter Learning* (arXiv 2505.18369)",
             "B": "Paper B — Bhasin et al., *How does Multi-Task Training Affect Transformer "
                  "In-Context Capabilities?* (NAACL 2024)"}
    for paper in ("A", "B"):
        sel = [r for r in rows if r["paper"] == paper]
        if not sel:
            continue
        lines += ["", f"## {names[paper]}", "",
                  "| claim | paper | ours | verdict | preset | notebook |",
                  "|---|---|---|---|---|---|"]
        for r in sel:
            cells = [r["claim"], r["paper_value"], r["ours"], _MARK[r["verdict"]], r["preset"], r["notebook"]]
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
        path = write_scorecard(a.results)
        rows = load_claims(a.results)
        print(f"{path}: {len(rows)} claims")
        return 0

    p.set_defaults(func=run)
