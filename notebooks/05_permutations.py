# %% [markdown]
# # 05 · Permutations: which helper tasks make products in S_k easier to learn?
#
# Paper A's second testbed replaces numbers by **permutations**: an expression such as
# `( PMUL p1203 ( PMUL p0213 p3012 ) )` asks for a product (composition) in the symmetric group
# S_k. Like ADD, the product is a hard task; paper A reports that pairing it with auxiliary
# "sub-block" operations lowers its learning transition. We test four helpers:
#
# * **CMUL** — the product inside the cyclic subgroup C_k (a piece of the same structure);
# * **AMUL** — the product inside the alternating group A_k (even permutations);
# * **SGN** — the sign of the product (the homomorphism S_k → {±1});
# * **PMAX** — the lexicographically largest argument: it shares *no* structure with the product,
#   so it is our negative control.
#
# The composition convention (`PMUL p q` = p∘q, apply q first) is in
# `jointtask_lib/tasks/permutations.py` and in notebook 01.
#
# **What you will learn**: how the same transition machinery applies to a non-arithmetic task,
# and which kinds of helper tasks transfer structure to a group product.

# %% [markdown]
# ## Parameters
#
# * `seed_offset`: added to every seed of the sweeps (e.g. 100: the same experiment on fresh seeds;
#   0: the runs as written).
# * `sweep`, `sweep_preset`: the sweep file and its preset; `target`: the hard operation.
# * `level`, `n_boot`, `workers`, `device`, `results_dir`, `save_figures`, `progress`: as in
#   notebook 02; `interactive`: a widget at the end to look at one curve at a time.

# %% tags=["parameters"]
sweep = "permutations"
sweep_preset = "quick"
seed_offset = 0
target = "PMUL"
level = 0.8
n_boot = 500
workers = 1
device = "auto"
results_dir = ""
save_figures = True
progress = True
interactive = False

# %%
# NBVAL_CHECK_OUTPUT
from jointtask_lib import experiments, paths, plots, scorecard, tables
from jointtask_lib.sweep import load_sweep, run_sweep
from jointtask_lib.notebook import check_parameters

check_parameters("05_permutations", globals())  # every parameter, by the rules presets obey
sw = load_sweep(paths.repo_root() / "params" / "sweeps" / f"{sweep}.yaml", sweep_preset, seed_offset)
if (target,) not in sw.mixes:
    raise ValueError(f"'target' = {target!r} must be trained alone in sweep {sweep}")
results = paths.results_dir(results_dir)
ks = list(sw.sizes)
print(f"{sw.name} ({sw.preset}): {len(sw)} runs; {', '.join(f'S_{k}' for k in ks)}; "
      f"mixes {[experiments.fmt_mix(m) for m in sw.mixes]}; widths {list(sw.widths)}; seeds {list(sw.seeds)}")

# %% [markdown]
# ## Training (through the run cache) and the accuracy curves
#
# Accuracy is measured on the `PMUL` examples of each mix only, one figure per group S_k. A
# product of uniformly random permutations is itself uniform over the k! elements, so a model
# that learned nothing scores 1/k!: the fit's floor is fixed there (`experiments.known_floor`).

# %%
records = experiments.unique_records(run_sweep(sw, results, workers=workers, device=device, progress=progress))
points, transitions, floors = {}, {}, {}
for k in ks:
    floors[k] = experiments.known_floor(records, ops=(target,), op=target, size=k)
    points[k] = {experiments.fmt_mix(m): experiments.accuracy_points(records, ops=m, op=target, size=k)
                 for m in sw.mixes}
    transitions[k] = {experiments.fmt_mix(m): experiments.transition_of(records, ops=m, op=target, size=k,
                                                                        level=level, n_boot=n_boot, chance=floors[k])
                      for m in sw.mixes}
    fig = plots.plot_transition_curves(points[k], transitions[k], level=level, ticks=experiments.width_ticks(records),
                                       title=f"{target} accuracy in S_{k} by training mix ({sw.preset})")
    plots.show_figure(fig, f"05_permutation_curves_S{k}", results, save=save_figures)
    print(f"S_{k} (floor {'fitted' if floors[k] is None else f'{floors[k]:.4f}'})")
    print(tables.transition_table(transitions[k], label="training mix"))

# %%
# NBVAL_CHECK_OUTPUT
# The run's accuracies on the target, rounded (same seeds, same numbers: a change here means training changed).
for size, by_label in points.items():
    for label, (xs, ys, _) in by_label.items():
        print(f"S_{size} {label}: mean {target} accuracy by size",
              " ".join(f"{ys[xs == x].mean():.1f}" for x in sorted(set(xs.tolist()))))

# %% [markdown]
# ## Which pairings lower the transition?
#
# Paper A reports that structured auxiliary operations help the product; PMAX, which shares no
# structure with it, is our control where we expect no benefit. The verdicts follow the one rule
# of notebook 03 (`scorecard.classify_factor`: a benefit when the factor's CI lies above 1, no
# benefit when it lies below 1.5 and not above 1, otherwise inconclusive); whether paper A's
# 2–7x lies in our CI is stated separately.

# %%
from jointtask_lib.sections import permutations as section

rows = []
for k in ks:
    reductions, expect = section.reductions(records, sw.mixes, target=target, k=k, level=level, n_boot=n_boot,
                                            floor=floors[k])
    fig = plots.plot_reductions(reductions, expect=expect, title=f"Reduction factors for {target} in S_{k}")
    plots.show_figure(fig, f"05_permutation_reductions_S{k}", results, save=save_figures)
    print(f"S_{k}")
    print(tables.reduction_table(reductions, expect))
    rows += section.claims(records, reductions, expect, target=target, k=k, preset=sw.preset, level=level)
scorecard.write_claims(results, section.NOTEBOOK, rows)
for r in rows:
    print(f"{r['verdict']:>15}  {r['claim']}  [{r['magnitude']}]")

# %% [markdown]
# ## Explore (interactive)
#
# With `interactive = True` (in Jupyter, not under papermill) pick a group and a training mix
# and look at its curve alone.

# %%
if interactive:
    from IPython.display import display

    display(plots.curve_explorer({f"S_{k}": (points[k], transitions[k]) for k in ks}, level=level))

# %% [markdown] tags=["exercise"]
# ## Exercises
#
# **Exercise 1 (★, 5 min).** Order the training mixes of each group by the transition of PMUL,
# smallest first. Which helper is the best partner in this run?

# %% tags=["solution"]
from jointtask_lib import course

for k in ks:
    print("\n".join(course.transition_facts(transitions[k], f"S_{k}")))

# %% [markdown] tags=["exercise"]
# **Exercise 2 (★★, 10 min).** Read the verdict of every pairing from the rows this notebook wrote.
# PMAX is the negative control (paper A expects *no* benefit): why can "no benefit" only be
# *reproduced* when the CI of the factor is narrow, and is it here?

# %% tags=["solution"]
print("\n".join(course.claim_lines(rows)))
print("PMAX rows:", [r["verdict"] for r in rows if "PMAX" in r["id"]] or "PMAX is not among this preset's mixes")

# %% [markdown]
# ## What we saw
#
# Read from this run's transitions and from the claims it wrote:

# %%
from jointtask_lib import course  # also imported by the solutions, which students do not have

course.what_we_saw("05_permutations", results, preset=sw.preset, facts=[
    f"{len(records)} runs: groups {', '.join(f'S_{k}' for k in ks)}, {len(sw.mixes)} mixes, "
    f"widths {list(sw.widths)}, seeds {list(sw.seeds)}",
    *[line for k in ks for line in course.transition_facts(transitions[k], f"S_{k}")],
])

# %% [markdown]
# ## Try this
#
# 1. Move to S_5 (`perm_ks: [5]` in the sweep's preset): 120 elements, a much larger vocabulary.
#    Do the same helpers still help?
# 2. Make SGN's share of the data larger (`{ops: [PMUL, SGN], weights: [1, 3]}`).
# 3. Invent a helper: add one registry entry in `jointtask_lib/tasks/permutations.py` (for
#    example the product of the *inverses*) and add it to the sweep.
