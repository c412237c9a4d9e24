"""Claim rows the scorecard used to miss (issue 15), used by the transfer and embeddings sections
and built through the existing claim-row API (:func:`jointtask_lib.scorecard.claim`).

* :func:`compute_matched_transfer_claim` — *extension* (paper A compares pretrained and
  from-scratch models at equal ADD steps): does pretraining still lower ADD's transition when the
  from-scratch model gets as many steps as pretraining plus ADD training?
* :func:`transfer_at_smallest_width_claim` — *extension*: at the smallest trained width, is ADD
  more accurate after pretraining than from scratch (CI over seeds against CI over seeds)?
* :func:`structure_by_width_claim` — "ADD+PROD embeddings carry parity structure" (paper A:
  joint ADD+PROD separates even and odd numbers) and, with ``expect="none"``, "no structure at a
  prime modulus" (paper A: prime moduli show no structure).  Judged at every trained width
  against random embeddings of the same shape (module docstring of the function).

Extensions are marked in their id (``A-ext-...``), their claim text (``[extension]``) and their
note, so that they are scored apart from the papers' own claims.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .. import experiments, scorecard
from ..records import RecordTable

EXTENSION_NOTE = "extension: paper A makes no such claim; scored apart from the paper's claims"


def compute_matched_transfer_claim(red, *, n: int, target: str, pretrain: Sequence[str], preset: str,
                                   notebook: str = "04_transfer", curve_fit=None) -> dict:
    """Row for the factor transition(target from scratch, compute-matched) / transition(after
    pretraining): ``red`` is that factor — the pooled model's
    (:func:`jointtask_lib.experiments.pooled_reduction_of`; its test and CI go into the row's
    statistics columns) or a curve-fit :class:`~jointtask_lib.transition.Reduction` — or ``None``;
    judged by :func:`jointtask_lib.scorecard.verdict_benefit`.  ``curve_fit``: the seed-bootstrap
    factor, shown beside it."""
    pre = "+".join(pretrain)
    ours = red.describe() if red is not None else "no estimate"
    if curve_fit is not None:
        ours += f"; curve fit {curve_fit.describe()}"
    verdict = scorecard.verdict_benefit(red)
    return scorecard.claim(
        id=f"A-ext-transfer-compute-matched-n{n}", paper="A",
        claim=(f"[extension] Pretraining on {pre} lets {target} be learned by a smaller model even against "
               f"{target} from scratch trained for as many steps as pretraining plus {target} training (mod {n})"),
        paper_value="not claimed: paper A compares at equal ADD steps", ours=ours,
        verdict=verdict, magnitude=scorecard.magnitude_check(red, None)[1],
        preset=preset, notebook=notebook, extension=True,
        note=(f"{EXTENSION_NOTE}; factor = transition({target} from scratch, compute-matched) / "
              f"transition({pre} then {target})"),
        **scorecard.factor_stats(red, family="extensions", verdict=verdict))


def transfer_at_smallest_width_claim(transfer_records, scratch_records, *, n: int, target: str,
                                     pretrain: Sequence[str], preset: str, notebook: str = "04_transfer") -> dict:
    """Row: at the smallest width both conditions trained, ``target`` accuracy after pretraining
    exceeds accuracy from scratch — mean over seeds with a Student-t CI over seeds for each
    (:func:`jointtask_lib.experiments.seed_mean_ci`), judged CI against CI
    (:func:`jointtask_lib.scorecard.verdict_greater`)."""
    pre = "+".join(pretrain)
    widths = sorted({r.width for r in RecordTable.from_dicts(transfer_records)}
                    & {r.width for r in RecordTable.from_dicts(scratch_records)})
    cid = f"A-ext-transfer-smallest-width-n{n}"
    if not widths:
        return scorecard.claim(id=cid, paper="A", claim=f"[extension] transfer at the smallest width (mod {n})",
                               paper_value="not claimed", ours="no width trained in both conditions",
                               verdict="inconclusive", preset=preset, notebook=notebook, note=EXTENSION_NOTE,
                               extension=True, family="extensions")
    w = widths[0]
    tr = experiments.accuracy_by_seed(transfer_records, ops=(target,), op=target, width=w, size=n)
    sc = experiments.accuracy_by_seed(scratch_records, ops=(target,), op=target, width=w, size=n)
    a = experiments.seed_mean_ci(list(tr.values()), clip=(0, 1))
    b = experiments.seed_mean_ci(list(sc.values()), clip=(0, 1))
    return scorecard.claim(
        id=cid, paper="A",
        claim=(f"[extension] At the smallest trained width (n_embed {w}), {pre} pretraining makes {target} more "
               f"accurate than training from scratch (mod {n})"),
        paper_value="not claimed at this width (paper A: n_embed 48, learned after pretraining only)",
        ours=(f"after pretraining {experiments.fmt_mean_ci(a)} ({len(tr)} seeds) vs from scratch "
              f"{experiments.fmt_mean_ci(b)} ({len(sc)} seeds); 95% CIs over seeds"),
        verdict=scorecard.verdict_greater(a[0], a[1:], b[0], b[1:]), preset=preset, notebook=notebook,
        note=EXTENSION_NOTE, extension=True, family="extensions", test="95% CIs over seeds compared (no p-value)",
        n_runs=len(tr) + len(sc))


def structure_by_width_verdict(scores_by_width: Mapping[int, Sequence[float]],
                               null: Mapping[int, tuple[float, float]] | tuple[float, float],
                               expect: str = "structure") -> tuple[str, list[str]]:
    """Verdict and per-width lines for "a score lies above random embeddings at every width".

    ``scores_by_width[w]``: the score of each seed at width ``w``; ``null``: ``(mean, q95)`` of
    random embeddings (one for all widths, or one per width).  At each width the seeds' mean gets
    a 95% Student-t CI over seeds.  A width is *above* random when the CI's lower end exceeds the
    null's 95th percentile, *at* random when the CI's upper end lies below it, otherwise
    *unclear*.  With ``expect="structure"``: *reproduced* when every width is above, *not
    reproduced* when every width is at random, otherwise *inconclusive*; ``expect="none"`` (a "no
    structure" claim) swaps the two.  A width with a single seed has no CI and is unclear.
    """
    if expect not in ("structure", "none"):
        raise ValueError(f"'expect' must be one of structure, none; got {expect!r}")
    if not scores_by_width:
        return "inconclusive", ["no widths"]
    states, lines = [], []
    for w in sorted(scores_by_width):
        v = [float(x) for x in scores_by_width[w]]
        q95 = (null[w] if isinstance(null, Mapping) else null)[1]
        m, lo, hi = experiments.seed_mean_ci(v)
        state = "above" if lo > q95 else "at random" if hi < q95 else "unclear"
        states.append(state)
        lines.append(f"d={w}: {m:.2f} [{lo:.2f}, {hi:.2f}] vs random q95 {q95:.2f} ({len(v)} seeds): {state}")
    if all(s == "above" for s in states):
        v = "reproduced" if expect == "structure" else "not reproduced"
    elif all(s == "at random" for s in states):
        v = "not reproduced" if expect == "structure" else "reproduced"
    else:
        v = "inconclusive"
    return v, lines


def structure_by_width_claim(scores_by_width, null, *, score: str, mix: str, n: int, preset: str,
                             expect: str = "structure", paper_value: str, notebook: str = "06_embeddings") -> dict:
    """Row for :func:`structure_by_width_verdict` (``score``: e.g. ``"parity"``; ``mix``: e.g.
    ``"ADD+PROD"``)."""
    verdict, lines = structure_by_width_verdict(scores_by_width, null, expect)
    what = (f"{mix} number embeddings carry {score} structure above random embeddings at every trained width"
            if expect == "structure" else
            f"{mix} number embeddings carry no {score} structure beyond random embeddings at a prime modulus")
    return scorecard.claim(
        id=f"A-emb-{score.replace(' ', '')}-{mix}-by-width-mod{n}" + ("" if expect == "structure" else "-none"),
        paper="A", claim=f"{what} (mod {n})", paper_value=paper_value, ours="; ".join(lines),
        verdict=verdict, preset=preset, notebook=notebook, family="embedding scores",
        test="per width: 95% CI over seeds vs random embeddings' q95 (no p-value)",
        n_runs=sum(len(v) for v in scores_by_width.values()),
        note="per width: 95% CI over seeds against the 95th percentile of random embeddings of the same shape")


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % q for q in range(2, int(n**0.5) + 1))


def embedding_scores_by_width(specs, root, n: int, keys: Sequence[str] = ("parity",)) -> dict:
    """``{key: {mix: {width: [score of each seed]}}}`` of the trained runs ``specs`` at modulus
    ``n`` (:func:`jointtask_lib.analysis.scores.embedding_scores` of their value embeddings).
    Runs without a record are skipped (nothing is trained)."""
    from ..analysis import models as AM
    from ..analysis import scores as SC

    out: dict = {k: {} for k in keys}
    have = [s for s, r in zip(specs, AM.cached_records(specs, root)) if r is not None and s.task.modulus == n]
    for w in sorted({s.arch.n_embed for s in have}):
        specs_w = [s for s in have if s.arch.n_embed == w]
        for group in _by_group(specs_w):
            E_w = AM.value_embeddings(AM.load_stack(root, group), group[0])
            for s, E in zip(group, E_w):
                sc = SC.embedding_scores(E[None], n)
                for k in keys:
                    out[k].setdefault(experiments.fmt_mix(s.task.ops), {}).setdefault(w, []).append(float(sc[k][0]))
    return out


def _by_group(specs):
    groups: dict = {}
    for s in specs:
        groups.setdefault(s.group_key(), []).append(s)
    return list(groups.values())
