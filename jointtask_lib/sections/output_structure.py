"""Section ``08_output_structure``: the output-distribution hypothesis (peaked outputs, easier
tasks) and an a priori synergy score (paper A's open question: can compatible pairings be
predicted before training?).

The pairings are typed comparisons (:func:`jointtask_lib.experiments.joint_comparisons`): the
joint-training sweep's mixes holding the target, plus the controls (SADD / RTAB with MAX+MED) and
the prime-modulus sweep when their runs are available.  Both claims are rank correlations judged by
:func:`jointtask_lib.scorecard.verdict_correlation` (through
:func:`jointtask_lib.analysis.synergy.correlation_claim`)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import experiments
from ..analysis import synergy as SY
from ..tasks import TaskConfig

NOTEBOOK = "08_output_structure"

#: Extra sweeps with a role in :func:`experiments.joint_comparisons`; any other extra sweep gives
#: the pairings of its mixes (each mix vs its first operation alone, when the sweep trains that).
EXTRA_ROLES = {"controls": "controls", "prime_modulus": "prime"}


def mix_comparisons(sw) -> list[experiments.Comparison]:
    """Each mix of sweep ``sw`` with a partner vs its first operation alone (when ``sw`` trains it
    alone), at every size; the expectation from :data:`experiments.PAIRING_EXPECTATIONS`."""
    comps = []
    for n in sw.sizes:
        for m in sw.mixes:
            if len(m) > 1 and (m[0],) in sw.mixes:
                comps.append(experiments._comparison(sw.name, (m[0],), m, m[0], n,
                                                     experiments._listops_expectation(m, m[0], n),
                                                     f"{experiments.fmt_mix(m)} vs {m[0]}, mod {n}"))
    return comps


@dataclass(frozen=True)
class Pairing:
    """One measured pairing: its comparison, the label of the section's tables and figures, the
    records of its sweep and that sweep's base task (for the relabelling tables of SADD / RTAB)."""

    label: str
    comparison: experiments.Comparison
    records: list
    task: TaskConfig

    @property
    def partners(self) -> list[str]:
        return [o for o in self.comparison.joint if o != self.comparison.op]


def pairings(joint_sw, joint_records, extras: dict, *, target: str) -> list[Pairing]:
    """The pairings of ``joint_sw`` (records ``joint_records``) and of the available extra sweeps
    ``extras`` (``{sweep name: (Sweep, records)}``; roles: :data:`EXTRA_ROLES`), each once.  A label
    carries ``(mod n)`` when the joint sweep has several moduli or ``n`` is not one of them."""
    roles = {EXTRA_ROLES[name]: sw for name, (sw, _) in extras.items() if name in EXTRA_ROLES}
    comps = experiments.joint_comparisons(joint_sw, roles.get("controls"), roles.get("prime"), target=target)
    comps += [c for name, (sw, _) in extras.items() if name not in EXTRA_ROLES for c in mix_comparisons(sw)]
    comps = experiments.unique_comparisons(comps)
    source = {joint_sw.name: (joint_records, joint_sw.specs[0].task)}
    source.update({sw.name: (recs, sw.specs[0].task) for sw, recs in extras.values()})
    multi = len(joint_sw.sizes) > 1
    out = []
    for c in comps:
        recs, task = source[c.sweep]
        suffix = f" (mod {c.size})" if multi or c.size not in joint_sw.sizes else ""
        out.append(Pairing(label=experiments.fmt_mix(c.joint) + suffix, comparison=c, records=recs, task=task))
    return out


def synergy_rows(pairs: list[Pairing], arities, *, kinds, level: float, n_boot: int) -> list[dict]:
    """One row per pairing: its a priori scores (:func:`~jointtask_lib.analysis.synergy.synergy_rows`)
    and its measured reduction factor (``reduction``: the value, a bound counted as its value, or
    ``None``; ``kind``; ``describe``)."""
    rows = []
    for p in pairs:
        c = p.comparison
        dom = TaskConfig(ops=c.joint, modulus=c.size, relabel_seed=p.task.relabel_seed).domain()
        s = SY.synergy_rows(dom, [(c.op, p.partners)], arities, kinds=kinds)[0]
        red = experiments.reduction_of(p.records, single=c.single, joint=c.joint, op=c.op, size=c.size, level=level,
                                       n_boot=n_boot)
        value, kind = SY.as_point(red)
        rows.append({**s, "label": p.label, "reduction": value, "kind": kind,
                     "describe": "n/a" if red is None else red.describe()})
    return rows


def claims(ent_tests: dict, ent_rows: dict, tests: dict, syn_rows: list[dict], *, synergy_features, alpha: float,
           single_preset: str, joint_preset: str) -> list[dict]:
    """The rows: one output-entropy correlation per modulus (``ent_tests[n]``, over the operations
    ``ent_rows[n]``) and the synergy-score correlation (``tests["synergy"]``, over ``syn_rows``)."""
    rows = []
    for ns, t in ent_tests.items():
        uniform = [r["op"] for r in ent_rows[ns] if r["norm_entropy"] > 1 - 1e-9]
        peaked = [r["op"] for r in ent_rows[ns] if r["norm_entropy"] <= 1 - 1e-9]
        rows.append(SY.correlation_claim(
            id=f"A-output-entropy-mod{ns}", test=t, what="H/log2 n, transition",
            units=f"ops (mod {ns}; bounds counted as values)",
            claim=f"operations with more peaked output distributions are learned at smaller sizes (mod {ns})",
            paper_value="hypothesis: peaked outputs allow divide-and-conquer (incomplete theory)",
            preset=single_preset, notebook=NOTEBOOK, alpha=alpha,
            note=(f"uniform outputs: {', '.join(uniform) or 'none'}; peaked: {', '.join(peaked) or 'none'}; "
                  f"{t['n']} of {len(ent_rows[ns])} ops with a usable transition; few points, so a weak test")))
    meas = [r for r in syn_rows if r["reduction"] is not None]
    rows.append(SY.correlation_claim(
        id="A-synergy-prediction", test=tests["synergy"], what="synergy, reduction",
        units=f"pairings; features {'+'.join(synergy_features)}",
        claim="an a priori synergy score (from the operation tables alone) ranks pairings by their measured "
              "reduction factor",
        paper_value="open question (paper A: can compatible pairings be predicted before training?)",
        preset=joint_preset, notebook=NOTEBOOK, alpha=alpha,
        note=(f"{len(meas)} of {len(syn_rows)} pairings with a usable reduction factor (bounds counted as values); "
              "score defined in jointtask_lib/analysis/synergy.py; naive output MI: "
              f"rho = {tests['output_mi']['rho']:.2f}, p = {tests['output_mi']['p']:.3f}")))
    return rows
