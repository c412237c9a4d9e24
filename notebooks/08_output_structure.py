# %% [markdown]
# # 08 · Can we predict, before training, which tasks are easy and which pairings help?
#
# Paper A offers two explanations it does not fully test: the **output-distribution
# hypothesis** — an operation whose results are *peaked* (some values much more frequent than
# others) is easier to learn, because a model can get the frequent cases right first — and
# **shared primitives** — an easy task helps a hard one when both use the same structure of the
# numbers (parity, order, divisibility). It also lists "can compatible pairings be predicted
# before training?" as an **open question**.
#
# This notebook puts both ideas to a test against our own measurements:
#
# 1. the exact output distribution of every operation at several moduli, its entropy, and the
#    measured single-task learning transitions (notebook 02's runs);
# 2. an **a priori synergy score** for a pair of tasks, computed from the operation tables alone
#    (`jointtask_lib/analysis/synergy.py`), against the measured reduction factors of joint
#    training (notebook 03's runs).
#
# **What you will learn**
#
# 1. How to compute an operation's output distribution exactly, and what entropy says about it.
# 2. How to turn a hypothesis into a number that is fixed *before* looking at the results.
# 3. How (little) a rank correlation over six to ten points can tell you, and how to say so:
#    exact permutation p-values and bootstrap intervals.

# %% [markdown]
# ## Parameters
#
# * `seed_offset`: added to every seed of the sweeps (e.g. 100: the same experiment on fresh seeds;
#   0: the runs as written).
# * `single_sweep`, `joint_sweep`, `sweep_preset`: the sweeps whose runs give the measured
#   transitions (single tasks) and reduction factors (pairings); nothing new is trained if
#   notebooks 02 and 03 ran at this preset. Every modulus of each sweep is used.
# * `extra_sweeps`: more pairings (controls, prime modulus), used **only if all their runs are
#   already in the cache** (notebook 03 trains them) unless `train_extra` is true.
# * `moduli`: where the output distributions are tabulated.
# * `target`: the hard operation (paper A: ADD); `level`, `n_boot`: transition threshold and
#   bootstrap resamples; `n_perm`: permutations for p-values when there are more than 8 points;
#   `alpha`: the level for the correlation verdicts.
# * `synergy_features`: the value features the synergy score may use — `["res", "blk"]`
#   (residues and blocks, the default), `["res"]` (divisibility only) or `["blk"]` (order only).
# * `threads`, `workers`, `device`, `results_dir`, `save_figures`, `progress`, `interactive`: as before.

# %% tags=["parameters"]
single_sweep = "single_task"
joint_sweep = "joint_training"
extra_sweeps = ["controls", "prime_modulus"]
train_extra = False
sweep_preset = "quick"
seed_offset = 0
moduli = [5, 10, 11, 20, 43, 45]
target = "ADD"
level = 0.8
n_boot = 500
n_perm = 20000
alpha = 0.05
synergy_features = ["res", "blk"]
threads = 1
workers = 1
device = "auto"
results_dir = ""
save_figures = True
progress = True
interactive = False

# %% [markdown]
# ## Checking the parameters

# %%
# NBVAL_CHECK_OUTPUT
import math

import torch

from jointtask_lib import experiments, paths, plots, scorecard, tables
from jointtask_lib.analysis import synergy as SY
from jointtask_lib.analysis import viz
from jointtask_lib.analysis.models import cached_records
from jointtask_lib.sweep import load_sweep, run_sweep
from jointtask_lib.tasks import LISTOPS_OPS, TaskConfig, entropy_bits
from jointtask_lib.notebook import check_parameters

check_parameters("08_output_structure", globals())  # every parameter, by the rules presets obey
torch.set_num_threads(threads)
sweep_dir = paths.repo_root() / "params" / "sweeps"
single_sw = load_sweep(sweep_dir / f"{single_sweep}.yaml", sweep_preset, seed_offset)
joint_sw = load_sweep(sweep_dir / f"{joint_sweep}.yaml", sweep_preset, seed_offset)
extras = [load_sweep(sweep_dir / f"{name}.yaml", sweep_preset, seed_offset) for name in extra_sweeps]
if (target,) not in joint_sw.mixes:
    raise ValueError(f"'target' = {target!r} must be trained alone in sweep {joint_sweep}")
results = paths.results_dir(results_dir)
base_task = joint_sw.specs[0].task
ops = list(LISTOPS_OPS)
# each operation's own argument counts in the trained task (MED has 3 where ADD has 2: MED of two is MIN)
arities = {op: tuple(range(base_task.arity(op)[0], base_task.arity(op)[1] + 1)) for op in ops}
train_moduli = sorted(set(single_sw.sizes) | set(joint_sw.sizes))
print(f"operations: {', '.join(ops)}; arities {', '.join(f'{o} {list(k)}' for o, k in arities.items())}; moduli {moduli}")
print(f"single tasks: {single_sw.name} ({single_sw.preset}) mixes {[experiments.fmt_mix(m) for m in single_sw.mixes]}; "
      f"moduli {list(single_sw.sizes)}")
print(f"pairings: {joint_sw.name} ({joint_sw.preset}) mixes {[experiments.fmt_mix(m) for m in joint_sw.mixes]}; "
      f"moduli {list(joint_sw.sizes)}")
print(f"synergy features: {synergy_features}")

# %% [markdown]
# ## Part 1 — the output distributions
#
# For every operation and modulus: the distribution of its result when its 2 or 3 operands are
# drawn uniformly (one level, no nesting), by **exact enumeration** of all operand tuples.
# Entropy `H` in bits measures how spread out it is; `log2 n` is the maximum (uniform outputs).
# Read the table for which operations come out uniform (`H = log2 n`) and which are skewed:
# MAX, MIN and MED by construction lean toward high, low or middle values, and PROD piles up on
# 0 and on the non-units when `n` is composite.

# %%
# NBVAL_CHECK_OUTPUT
def listops_tasks(mods):
    return [TaskConfig(ops=tuple(ops), modulus=m, depth=base_task.depth, min_args=base_task.min_args,
                       max_args=base_task.max_args, op_args=base_task.op_args) for m in mods]


dists = tables.output_distributions(listops_tasks(moduli))
print(tables.entropy_table(dists))
fig = plots.plot_normalised_entropy(dists, title="Normalised output entropy (1 = uniform) by modulus")
plots.show_figure(fig, "08_normalised_entropy", results, save=save_figures)

# %% [markdown]
# At each training modulus, the distributions themselves and two simple "structure" numbers:
# the probability of the most frequent value, and (for even `n`) the probability that the
# result is even — the "even + even = even" kind of regularity paper A mentions.

# %%
# NBVAL_CHECK_OUTPUT
dists.update(tables.output_distributions(listops_tasks([m for m in train_moduli if m not in moduli])))
for n in train_moduli:
    label = tables.task_label(TaskConfig(ops=("ADD",), modulus=n))
    rows = []
    for op in ops:
        p = dists[(op, label)]
        rows.append([op, f"{entropy_bits(p):.3f}", f"{entropy_bits(p) / math.log2(n):.3f}", f"{p.max():.3f}",
                     f"{p[::2].sum():.3f}" if n % 2 == 0 else "-"])
    print(f"{label}:")
    print(tables.format_table(["op", "H (bits)", "H / log2 n", "P(mode)", "P(even)"], rows))
    fig = plots.plot_output_distributions({k: v for k, v in dists.items() if k[1] == label},
                                          title=f"Output distributions, {label}")
    plots.show_figure(fig, f"08_output_distributions_mod{n}", results, save=save_figures)

# %% [markdown]
# ## Part 2 — does a peaked output mean an easy task?
#
# The measured single-task transitions (notebook 02's sweep, through the run cache) against the
# normalised entropy, one test per modulus. A transition is the size (in parameters) at which
# accuracy reaches 80% of its asymptote; when an operation was not learned at any size we only
# know a **lower bound** (`>`), and when it was learned at the smallest size an **upper bound**
# (`<`). For the rank correlation a bound counts as the value it bounds — a simplification we
# state (`SY.as_point`).

# %%
single_records = run_sweep(single_sw, results, workers=workers, device=device, progress=progress)
ent_rows, ent_tests = {}, {}
for ns in single_sw.sizes:
    label = tables.task_label(TaskConfig(ops=("ADD",), modulus=ns))
    ent_rows[ns] = []
    for (op,) in single_sw.mixes:
        t = experiments.transition_of(single_records, ops=(op,), op=op, size=ns, level=level, n_boot=n_boot)
        value, kind = SY.as_point(t)
        p = dists[(op, label)]
        ent_rows[ns].append({"op": op, "norm_entropy": entropy_bits(p) / math.log2(ns), "transition": value,
                             "kind": kind, "describe": "n/a" if t is None else t.describe()})
    print(f"{label}:")
    print(tables.format_table(["op", "H / log2 n", "transition (params)"],
                              [[r["op"], f"{r['norm_entropy']:.3f}", r["describe"]] for r in ent_rows[ns]]))
    usable = [r for r in ent_rows[ns] if r["transition"] is not None]
    t = ent_tests[ns] = SY.spearman_test([r["norm_entropy"] for r in usable], [r["transition"] for r in usable],
                                         n_perm=n_perm)
    print(SY.describe_correlation(t, "output entropy", "transition", alpha=alpha))
    fig = viz.plot_entropy_vs_transition(ent_rows[ns], title=f"Output entropy vs single-task transition "
                                                             f"({label}, {single_sw.preset})")
    plots.show_figure(fig, f"08_entropy_vs_transition_mod{ns}", results, save=save_figures)

# %% [markdown]
# ## Part 3 — an a priori synergy score
#
# The score is defined in `jointtask_lib/analysis/synergy.py` (read its docstring); in short:
#
# 1. **Features** of a number `v`: its residue `v mod q` ("res q") and its block `⌊q·v/n⌋`
#    ("blk q", order at resolution q), for q = 2 … n/2 (`synergy_features` picks the kinds).
# 2. **Closure**: how much of the *result's* feature the *operands'* features determine,
#    `I(φ(A(X)); φ(X₁),…,φ(X_k)) / H(φ(A(X)))`, minus what a random table gives. 1 means the
#    operation can be computed on that coarse description ("odd + odd = even": parity for ADD;
#    "the max of high/low labels": blocks for MAX). The heatmap shows each operation's profile.
# 3. **Alignment** of two operations: the overlap of their profiles (weighted Jaccard).
#    **Easiness**: `1 − H/log2 n` of the output distribution (Part 1).
# 4. **Synergy** = alignment × how much easier the partner is than the target
#    (0 if it is not easier); for several partners, the best one.
#
# The naive alternative, the mutual information between the two operations' *outputs* on the
# same operands, is shown next to it.

# %%
for n in joint_sw.sizes:
    profiles = {op: {f: v["excess"] for f, v in SY.structure_profile(TaskConfig(ops=(op,), modulus=n).domain(), op,
                                                                       arities, kinds=synergy_features).items()}
                for op in ops}
    fig = viz.plot_structure_profiles(profiles, title=f"Which features does each operation respect? (mod {n})")
    plots.show_figure(fig, f"08_structure_profiles_mod{n}", results, save=save_figures)

# %% [markdown]
# The pairings we can measure: every mix of the joint-training sweep that contains the target,
# at every modulus of the sweep, plus the controls and the prime modulus when their runs are
# available.

# %%
from jointtask_lib.sections import output_structure as section

joint_records = run_sweep(joint_sw, results, workers=workers, device=device, progress=progress)
available = {}
for sw in extras:
    recs = run_sweep(sw, results, workers=workers, device=device, progress=progress) if train_extra \
        else cached_records(sw.specs, results)
    if any(r is None for r in recs):
        print(f"{sw.name} ({sw.preset}): {sum(r is None for r in recs)} of {len(recs)} runs not trained yet; "
              "its pairings are skipped (run notebook 03 first, or set train_extra = True)")
        continue
    available[sw.name] = (sw, recs)
pairings = section.pairings(joint_sw, joint_records, available, target=target)
print(f"{len(pairings)} pairings: {', '.join(p.label for p in pairings)}")

# %%
syn_rows = section.synergy_rows(pairings, arities, kinds=synergy_features, level=level, n_boot=n_boot)
print(tables.format_table(
    ["pairing", "alignment", "easiness gap", "synergy", "output MI", "measured reduction"],
    [[r["label"], f"{r['alignment']:.3f}", f"{max(0.0, r['easiness_partners'] - r['easiness_target']):.3f}",
      f"{r['synergy']:.3f}", f"{r['output_mi']:.3f}", r["describe"]] for r in syn_rows]))
ties = SY.tied_groups(syn_rows, "synergy")
for g in ties:
    print(f"tied synergy scores: {', '.join(g)} (the same rank in the correlation below)")
if not ties:
    print("no two pairings have the same synergy score")

# %% [markdown]
# Tied scores are expected, not a bug: a set of partners scores as its best member (so ADD+MAX+MED
# ties with whichever of ADD+MAX and ADD+MED is higher), and mirror-image partners such as MAX and
# MIN can respect the same features to the same degree. In the rank correlation tied scores share
# their average rank, and the permutation p-value is computed from those same tied ranks, so it
# stays exact.

# %% [markdown]
# ## Part 4 — does the score predict the measured reductions?
#
# Spearman's rank correlation between each score and the measured reduction factor, over the
# pairings with a usable measurement (an estimate, or a bound counted as its value; pairings
# where both transitions are bounds in the same direction say nothing and are left out). The
# p-value is exact (all orderings) up to 8 points. With this few points even a perfect ranking is
# only weak evidence, and a bootstrap interval over so few pairs is very wide — read both.

# %%
meas = [r for r in syn_rows if r["reduction"] is not None]
tests = {}
for score in ("synergy", "alignment", "output_mi"):
    tests[score] = SY.spearman_test([r[score] for r in meas], [r["reduction"] for r in meas], n_perm=n_perm)
    t = tests[score]
    print(f"{score:>10}: rho = {t['rho']:.2f}, p = {t['p']:.3f} ({'exact' if t['exact'] else 'Monte Carlo'}), "
          f"bootstrap 95% [{t['lo']:.2f}, {t['hi']:.2f}], n = {t['n']}{', with ties' if t['ties'] else ''}")
fig = viz.plot_synergy_vs_reduction(syn_rows, title=f"A priori synergy vs measured reduction ({joint_sw.preset})")
plots.show_figure(fig, "08_synergy_vs_reduction", results, save=save_figures)

# %% [markdown]
# ## Scorecard rows
#
# 1. **The output-distribution hypothesis** (a claim of paper A, presented there as incomplete):
#    more peaked outputs, easier tasks — a *positive* rank correlation between normalised entropy
#    and transition, one row per modulus.
# 2. **Predicting synergy** is an *open question* in paper A, not a claim; we record how our a
#    priori score fares as a row whose paper value is "open question": *reproduced* would mean
#    "our score predicts the measured reductions" (positive correlation), not that the paper said
#    so.
#
# Both use `scorecard.verdict_correlation`: *reproduced* when the correlation has the expected
# sign with permutation p < `alpha`, *not reproduced* when it has the opposite sign with
# p < `alpha`, otherwise (including too few points for a correlation) *inconclusive*.

# %%
rows = section.claims(ent_tests, ent_rows, tests, syn_rows, synergy_features=synergy_features, alpha=alpha,
                      single_preset=single_sw.preset, joint_preset=joint_sw.preset)
scorecard.write_claims(results, section.NOTEBOOK, rows)
for r in rows:
    print(f"{r['verdict']:>15}  {r['claim']}  [{r['ours']}]")

# %% [markdown]
# ## How far does this get?
#
# Generated from this run's numbers: what the score predicts for each pairing, and what the
# correlation with the measured reductions does and does not show.

# %%
order = sorted(syn_rows, key=lambda r: -r["synergy"])
zero = [r["label"] for r in syn_rows if r["synergy"] <= 1e-12]
print("The score ranks the pairings (highest first): "
      + ", ".join(f"{r['label']} {r['synergy']:.3f}" for r in order) + ".")
if zero:
    print(f"It predicts no benefit for: {', '.join(zero)} (no easier partner, or no shared labelled structure).")
print(SY.describe_correlation(tests["synergy"], "the synergy score", "reduction factor", alpha=alpha))
print(SY.describe_correlation(tests["output_mi"], "the naive output MI", "reduction factor", alpha=alpha))
print("Blind spots, whatever the numbers: the score only sees structure that is a function of the number labels "
      "(not the chain of thought, the nesting, or Fourier-like structure), and its easiness factor is a "
      "hypothesis, not a measurement.")

# %% [markdown] tags=["exercise"]
# ## Exercises
#
# **Exercise 1 (★, 5 min).** At each trained modulus, which operation has the most peaked output
# distribution, and what was its single-task transition?

# %% tags=["solution"]
from jointtask_lib import course

for ns, rs in ent_rows.items():
    peak = min(rs, key=lambda r: r["norm_entropy"])
    print(f"mod {ns}: most peaked {peak['op']} (H/log2 n {peak['norm_entropy']:.3f}), transition {peak['describe']}")

# %% [markdown] tags=["exercise"]
# **Exercise 2 (★★, 10 min).** Which pairing does the a priori synergy score rank first, and what
# reduction factor was measured for it? Does the ranking agree with the measured ranking?

# %% tags=["solution"]
best = max(syn_rows, key=lambda r: r["synergy"])
print(f"top score: {best['label']} (synergy {best['synergy']:.3f}); measured {best['describe']}")
print(SY.describe_correlation(tests["synergy"], "the synergy score", "reduction factor", alpha=alpha))

# %% [markdown]
# ## What we saw
#
# Read from this run's correlation tests and from the claims it wrote:

# %%
from jointtask_lib import course  # also imported by the solutions, which students do not have

course.what_we_saw("08_output_structure", results, preset=joint_sw.preset, facts=[
    *[f"mod {ns}: " + SY.describe_correlation(t, "output entropy", "transition", alpha=alpha)
      for ns, t in ent_tests.items()],
    SY.describe_correlation(tests["synergy"], "the synergy score", "reduction factor", alpha=alpha),
])

# %% [markdown]
# ## Try this
#
# 1. Add `MIN` and `PROD` as partners of `MAX` (`[ADD, MAX, MIN]`, …) to the joint sweep. Does
#    the "best partner" rule for sets of partners hold, or do two partners add up?
# 2. Set `synergy_features = ["res"]` (only residues: divisibility) or `["blk"]` (only blocks:
#    order). Which pairings change rank, and which mechanism does that point to?
# 3. The score predicts no benefit from NADD because its outputs are uniform. Construct an
#    operation that is aligned with ADD *and* peaked (for instance ADD of only even operands) and
#    predict its reduction factor before training it.
