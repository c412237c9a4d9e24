# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Inside the models (1): what do the number embeddings look like?
#
# A model's first layer turns every token into a learned vector, its **embedding**. Paper A
# looks at the embeddings of the numbers `0 … n-1` and reports that a model trained on ADD
# *alone* stores them with little visible organisation, while a model trained on ADD *together
# with* easy operations (MAX, MED) stores them in order, with even numbers apart from odd ones
# and multiples of a divisor of n grouped together — and that a model pretrained on MAX+MED and
# then trained on ADD keeps that structure.
#
# This notebook compares the three kinds of model at the **same size**:
#
# * **single** — ADD alone;
# * **joint** — ADD+MAX+MED trained together;
# * **transferred** — MAX+MED first, then ADD alone (the runs of notebook 04, if they exist).
#
# **What you will learn**
#
# 1. How to turn an embedding table into a picture that does not depend on the model's width: the
#    *cosine-similarity matrix* of the number embeddings, and a PCA of its rows.
# 2. How to put numbers on "structure": the *separation scores* for parity, divisibility and
#    order, and why they must be compared with what *random* vectors give.
# 3. How to decide "joint > single" honestly with two or three seeds: confidence intervals over
#    seeds, and a verdict only when they do not overlap.

# %% [markdown]
# ## Parameters
#
# * `sweep`, `sweep_preset`: the joint-training sweep (`params/sweeps/<sweep>.yaml`) whose runs
#   are analysed — the same runs notebook 03 trains, so nothing new is trained here.
# * `single`, `joint`: the two task mixes compared; `pretrain`: the pretraining mix of the
#   transferred models.
# * `width`: the model width compared; `0` picks the smallest width at which every condition
#   reaches `min_acc` on ADD (so that we look at models that *can* add), or the largest width.
# * `train_transfer`: train the transferred runs at that width if they are missing (a few
#   minutes at `quick`); otherwise the column is skipped when notebook 04 has not trained them.
# * `null_samples`: random embeddings drawn for the null; `n_boot`: bootstrap resamples.
# * `threads`: torch threads in this kernel (1 is fastest on a busy laptop).
# * `workers`, `device`, `results_dir`, `save_figures`, `progress`, `interactive`: as in
#   notebook 02.

# %% tags=["parameters"]
sweep = "joint_training"
sweep_preset = "quick"
single = ["ADD"]
joint = ["ADD", "MAX", "MED"]
pretrain = ["MAX", "MED"]
width = 0
min_acc = 0.8
train_transfer = False
null_samples = 200
n_boot = 1000
workers = 1
threads = 1
device = "auto"
results_dir = ""
save_figures = True
progress = False
interactive = False

# %% [markdown]
# ## Checking the parameters and loading the sweep

# %%
# NBVAL_CHECK_OUTPUT
import numpy as np
import torch

from jointtask_lib import experiments, paths, plots, scorecard
from jointtask_lib.analysis import models as AM
from jointtask_lib.analysis import scores as SC
from jointtask_lib.analysis import viz
from jointtask_lib.runs import train_or_load
from jointtask_lib.sweep import load_sweep, run_sweep
from jointtask_lib.validate import check_bool, check_float, check_int

check_int("width", width, lo=0)
check_float("min_acc", min_acc, lo=0.0, hi=1.0)
check_int("null_samples", null_samples, lo=10)
check_int("n_boot", n_boot, lo=50)
check_int("workers", workers, lo=1)
check_int("threads", threads, lo=1)
torch.set_num_threads(threads)  # one thread: on a loaded 2-core machine two are many times slower
for name, flag in [("train_transfer", train_transfer), ("save_figures", save_figures), ("interactive", interactive)]:
    check_bool(name, flag)
sw = load_sweep(paths.repo_root() / "params" / "sweeps" / f"{sweep}.yaml", sweep_preset)
for name, mix in [("single", single), ("joint", joint)]:
    if tuple(mix) not in sw.mixes:
        raise ValueError(f"'{name}' = {mix} must be a mix of sweep {sweep}; its mixes are "
                         f"{[experiments.fmt_mix(m) for m in sw.mixes]}")
if width and width not in sw.widths:
    raise ValueError(f"'width' must be 0 or one of the sweep's widths {list(sw.widths)}; got {width}")
target = single[0]
n = sw.sizes[0]
results = paths.results_dir(results_dir)
print(f"sweep {sw.name} ({sw.preset}): widths {list(sw.widths)}, seeds {list(sw.seeds)}, modulus {n}")
print(f"conditions: single = {experiments.fmt_mix(single)}, joint = {experiments.fmt_mix(joint)}, "
      f"transferred = {experiments.fmt_mix(pretrain)} then {target}")
print("scores:", ", ".join(SC.score_names(n)))

# %% [markdown]
# ## The runs (through the run cache)
#
# These are the runs of the joint-training sweep; if notebook 03 ran before with the same preset,
# they are read back from `results/runs/` and nothing is trained.

# %%
records = run_sweep(sw, results, workers=workers, device=device, progress=progress)
print(f"{len(records)} records ready")

# %% [markdown]
# ## Which size do we compare?
#
# Comparing a model that has learned ADD with one that has not would mix two questions ("does it
# add?" and "how does it store numbers?"). So by default we take the **smallest width at which
# every condition reaches `min_acc`** on ADD examples; if no width does, the largest one.

# %%
if width == 0:
    width, why = AM.matched_width(records, [tuple(single), tuple(joint)], target, sw.widths, size=n,
                                 min_acc=min_acc)
else:
    why = "given by the 'width' parameter"
conditions = {"single": AM.specs_for(sw, ops=single, width=width, size=n),
              "joint": AM.specs_for(sw, ops=joint, width=width, size=n)}
print(f"width {width} ({why})")
for label, specs in conditions.items():
    accs = [r["metrics"]["per_op"][target]["gen_acc"] for r in AM.cached_records(specs, results)]
    print(f"  {label:>12}: {experiments.fmt_mix(specs[0].task.ops)}, {len(specs)} seeds, "
          f"{target} accuracy {', '.join(f'{a:.2f}' for a in accs)}")

# %% [markdown]
# ## The transferred models
#
# Pretraining is a run whose weights initialise another (`RunSpec(init=...)`): ADD trained from a
# MAX+MED model of the same width and seed. Notebook 04 trains these; here we use them if they
# exist (or train them when `train_transfer` is true) and otherwise skip that column. When they
# exist we also show the **pretrained** MAX+MED models themselves: the structure the transfer
# starts from, before any ADD training.

# %%
base = AM.specs_for(sw, ops=single, width=width, size=n)
tc = experiments.transfer_conditions(base, target=tuple(single), pretrain=tuple(pretrain))
transfer_specs = tc["transfer"]
have = AM.cached_records(transfer_specs, results)
if all(r is not None for r in have):
    print(f"transferred: {len(transfer_specs)} runs found in the cache")
elif train_transfer:
    have = train_or_load(results, transfer_specs, device=device, progress=progress)
    print(f"transferred: trained {len(transfer_specs)} runs (and their pretraining)")
else:
    have = None
    print("transferred: not available (run notebook 04 at this preset, or set train_transfer = True); "
          "that column is skipped")
if have is not None:
    # The pretrained models themselves (before any ADD training) show what the transfer starts from.
    conditions["pretrained"] = tc["pretrain"]
    conditions["transferred"] = transfer_specs
    accs = [r["metrics"]["per_op"][target]["gen_acc"] for r in have]
    print(f"  {'transferred':>12}: {target} accuracy {', '.join(f'{a:.2f}' for a in accs)}")

# %% [markdown]
# ## Step 1: the embeddings, as cosine similarities and a PCA
#
# For every model we take the embedding rows of the number tokens `0 … n-1` (a matrix `n × d`)
# and compute the cosine similarity of every pair: `1` = same direction, `0` = unrelated. The
# result is `n × n` whatever the width, so models can be compared. Each row is a number's
# "similarity profile"; a PCA of those rows places every number in 2-D. Below: seed 0 of each
# condition, each number coloured by its parity and labelled with its value — an ordered model
# puts the labels along a line or an arc. (The explorer at the end colours by value or residue.)

# %%
emb = {label: AM.value_embeddings(AM.load_stack(results, specs), specs[0]) for label, specs in conditions.items()}
d = width
fig = viz.plot_embedding_grid({k: v[0] for k, v in emb.items()}, n, color_by="parity",
                              title=f"Number embeddings at width {width} (seed {conditions['single'][0].seed})")
plots.show_figure(fig, "06_embeddings_parity", results, save=save_figures)

# %% [markdown]
# ## Step 2: separation scores, against random embeddings
#
# * **parity** — do even and odd numbers form two groups? (silhouette of the even/odd split
#   under the cosine distance: 1 = two tight, separate groups; 0 = no grouping.)
# * **div q** — the same for the residue classes mod `q`, for every divisor `q` of `n`.
# * **order** — does a PCA coordinate run through `0, 1, …, n-1` in order? (|Spearman|, 0..1.)
#
# Random vectors do not score exactly 0 (order in particular scores well above 0 for small `n`),
# so every score is shown next to the **null**: the mean and the 95th percentile of the same
# score for random Gaussian embeddings of the same shape. The CI is a bootstrap over seeds —
# with two or three seeds it is coarse, and we say so.

# %%
values = {label: SC.embedding_scores(E, n) for label, E in emb.items()}
summ = {label: SC.summarise(v, n_boot=n_boot) for label, v in values.items()}
null = SC.null_summary(n, d, n_samples=null_samples)
print(SC.scores_table(summ, null))
fig = viz.plot_scores(summ, null, title=f"Separation scores at width {width} (mean over {len(base)} seeds, 95% CI)")
plots.show_figure(fig, "06_separation_scores", results, save=save_figures)

# %% [markdown]
# ## Across sizes and training mixes
#
# The same two scores for every mix of the sweep at every width (one dot per seed; grey band:
# random embeddings at the largest width). If joint training *causes* structure, the lines of
# the mixes with MAX/MED should sit above ADD's at every width, not only at the one chosen above.

# %%
by_mix = {"parity": {}, "order": {}}
for w in sw.widths:
    specs_w = [s for s in sw.specs if s.arch.n_embed == w and s.task.modulus == n]
    E_w = AM.value_embeddings(AM.load_stack(results, specs_w), specs_w[0])
    for s, E in zip(specs_w, E_w):
        sc = SC.embedding_scores(E[None], n)
        for key in by_mix:
            by_mix[key].setdefault(experiments.fmt_mix(s.task.ops), {}).setdefault(w, []).append(float(sc[key][0]))
for key in by_mix:
    fig = viz.plot_scores_vs_width(by_mix[key], score=key, null=SC.null_summary(n, max(sw.widths), 50)[key],
                                   title=f"{key} score by width and training mix ({sw.preset})")
    plots.show_figure(fig, f"06_{key}_by_width", results, save=save_figures)

# %% [markdown]
# ## Scorecard rows
#
# Paper A: joint training induces parity and order structure that ADD alone lacks. The rule
# (`scorecard.verdict_greater`): *reproduced* when the joint model's CI lies wholly above the
# single-task model's, *not reproduced* when wholly below, otherwise *inconclusive*. The
# transferred models get the same comparison when they are available.

# %%
rows = []
paper_value = {"parity": "strong parity separation after joint training; weak clustering for ADD alone",
               "order": "numbers ordered in the PCA after joint training; weak for ADD alone"}
for key in ("parity", "order"):
    comparisons = [("joint", experiments.fmt_mix(joint))]
    if "transferred" in summ:
        comparisons.append(("transferred", f"{experiments.fmt_mix(pretrain)} then {target}"))
    for cond, what in comparisons:
        a, b = summ[cond][key], summ["single"][key]
        verdict = scorecard.verdict_greater(a[0], a[1:], b[0], b[1:])
        rows.append(scorecard.claim(
            id=f"A-emb-{key}-{cond}", paper="A",
            claim=f"{what} gives number embeddings more {key} structure than {target} alone",
            paper_value=paper_value[key],
            ours=(f"{key} {cond} {a[0]:.2f} [{a[1]:.2f}, {a[2]:.2f}] vs single {b[0]:.2f} [{b[1]:.2f}, {b[2]:.2f}]"
                  f"; random {null[key][0]:.2f} (95%: {null[key][1]:.2f}); width {width}, {len(base)} seeds"),
            verdict=verdict, preset=sw.preset, notebook="06_embeddings",
            note="CI: bootstrap over seeds (coarse with 2-3 seeds)"))
scorecard.write_claims(results, "06_embeddings", rows)
for r in rows:
    print(f"{r['verdict']:>15}  {r['claim']}  [{r['ours']}]")

# %% [markdown]
# ## Explore (interactive)
#
# With `interactive = True` (in Jupyter, not under papermill) pick any run of the chosen width
# and colour the PCA by value, parity or residue mod q.

# %%
if interactive:
    from IPython.display import display

    display(viz.embedding_explorer({f"{label} seed {s.seed}": E for label, specs in conditions.items()
                                    for s, E in zip(specs, emb[label])}, n))

# %% [markdown]
# ## Try this
#
# 1. Set `width` to the smallest width of the sweep. Do the joint model's embeddings already
#    show structure *before* the model can add? (Structure first, skill later would support
#    paper A's "scaffold" story.)
# 2. Compare `joint = ["ADD", "NADD"]`: does pairing with NADD — no benefit in paper A — also
#    leave the embeddings unstructured?
# 3. In the explorer, colour by residue mod 5. Does any model group `0, 5`, `1, 6`, …? What
#    would such a grouping be good for when adding mod 10?
# 4. A high order score is not proof of a line: a circle scores well too (see
#    `jointtask_lib/analysis/embeddings.py`). Find a run where the picture and the score disagree.
