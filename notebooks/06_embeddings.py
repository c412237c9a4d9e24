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
# 3. How to decide "joint > single" honestly with two or three seeds: an exact permutation test
#    over seeds (and why two seeds per condition can never give a verdict), a comparison with
#    random embeddings, and no verdict at all about models that never learned ADD.

# %% [markdown]
# ## Parameters
#
# * `seed_offset`: added to every seed of the sweeps (e.g. 100: the same experiment on fresh seeds;
#   0: the runs as written).
# * `sweep`, `sweep_preset`: the joint-training sweep (`params/sweeps/<sweep>.yaml`) whose runs
#   are analysed — the same runs notebook 03 trains, so nothing new is trained here.
# * `prime_sweep`: the sweep with ADD+PROD at a prime modulus (notebook 03 trains it); its runs are
#   scored only if they are in the cache (nothing is trained for them here).
# * `single`, `joint`: the two task mixes compared; `pretrain`: the pretraining mix of the
#   transferred models.
# * `width`: the model width compared; `0` picks, for each modulus, the smallest width at which
#   every condition reaches `min_acc` on ADD (so that we look at models that *can* add), or the
#   largest width if there is none — and then every verdict is "inconclusive".
# * `train_transfer`: train the transferred runs at that width if they are missing (a few
#   minutes at `quick`); otherwise the column is skipped when notebook 04 has not trained them.
# * `null_samples`: random embeddings drawn for the null; `n_boot`: bootstrap resamples for the
#   (descriptive) CIs; `alpha`: the level of the permutation test behind the verdicts.
# * `threads`: torch threads in this kernel (1 is fastest on a busy laptop).
# * `workers`, `device`, `results_dir`, `save_figures`, `progress`, `interactive`: as in
#   notebook 02.

# %% tags=["parameters"]
sweep = "joint_training"
sweep_preset = "quick"
seed_offset = 0
prime_sweep = "prime_modulus"
single = ["ADD"]
joint = ["ADD", "MAX", "MED"]
pretrain = ["MAX", "MED"]
width = 0
min_acc = 0.8
train_transfer = False
null_samples = 200
n_boot = 1000
alpha = 0.05
workers = 1
threads = 1
device = "auto"
results_dir = ""
save_figures = True
progress = True
interactive = False

# %% [markdown]
# ## Checking the parameters and loading the sweep
#
# A sweep can hold several moduli (the paper preset does); every step below is done for each.

# %%
# NBVAL_CHECK_OUTPUT
import torch

from jointtask_lib import experiments, paths, plots, scorecard
from jointtask_lib.analysis import models as AM
from jointtask_lib.analysis import scores as SC
from jointtask_lib.analysis import viz
from jointtask_lib.records import Record
from jointtask_lib.runs import train_or_load
from jointtask_lib.sweep import load_sweep, run_sweep
from jointtask_lib.notebook import check_parameters

check_parameters("06_embeddings", globals())  # every parameter, by the rules presets obey
torch.set_num_threads(threads)  # one thread: on a loaded 2-core machine two are many times slower
mixes = {"single": single, "joint": joint}
sw = AM.load_analysis_sweep(sweep, sweep_preset, mixes, width=width, seed_offset=seed_offset)
target = single[0]
results = paths.results_dir(results_dir)
print(f"sweep {sw.name} ({sw.preset}): widths {list(sw.widths)}, seeds {list(sw.seeds)}, moduli {list(sw.sizes)}")
print(f"conditions: single = {experiments.fmt_mix(single)}, joint = {experiments.fmt_mix(joint)}, "
      f"transferred = {experiments.fmt_mix(pretrain)} then {target}")
for n in sw.sizes:
    print(f"scores at mod {n}:", ", ".join(SC.score_names(n)))

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
# add?" and "how does it store numbers?"). So by default we take, for each modulus, the
# **smallest width at which every condition reaches `min_acc`** on ADD examples. If no width
# does, we still draw the pictures at the largest width — but the models there have *not*
# learned ADD, and every verdict below is then "inconclusive" by rule.

# %%
comps = {n: AM.load_conditions(sw, results, mixes, target, size=n, width=width, min_acc=min_acc)
         for n in sw.sizes}
for comp in comps.values():
    print(comp.describe())
    if not comp.learned:
        print(f"  -> the models at mod {comp.size} have not learned {target}: pictures only, no verdicts")

# %% [markdown]
# ## The transferred models
#
# Pretraining is a run whose weights initialise another (`RunSpec(init=...)`): ADD trained from a
# MAX+MED model of the same width and seed. Notebook 04 trains these; here we use them if they
# exist (or train them when `train_transfer` is true) and otherwise skip that column. When they
# exist we also show the **pretrained** MAX+MED models themselves: the structure the transfer
# starts from, before any ADD training.

# %%
for n, comp in comps.items():
    tc = experiments.transfer_conditions(comp.specs["single"], target=tuple(single), pretrain=tuple(pretrain))
    have = AM.cached_records(tc["transfer"], results)
    if all(r is not None for r in have):
        print(f"mod {n}: transferred: {len(have)} runs found in the cache")
    elif train_transfer:
        have = train_or_load(results, tc["transfer"], device=device, progress=progress)
        print(f"mod {n}: transferred: trained {len(have)} runs (and their pretraining)")
    else:
        print(f"mod {n}: transferred: not available (run notebook 04 at this preset, or set train_transfer = True); "
              "that column is skipped")
        continue
    # The pretrained models were never trained on ADD: their "ADD accuracy" is 0 by construction.
    pre_acc = [0.0] * len(tc["pretrain"])
    comp = comp.with_condition("pretrained", tc["pretrain"], pre_acc)
    comps[n] = comp.with_condition("transferred", tc["transfer"],
                                   [Record.from_dict(r).accuracy(target) for r in have])
    print(f"  {'transferred':>12}: {target} accuracy {', '.join(f'{a:.2f}' for a in comps[n].accs['transferred'])}")

# %% [markdown]
# ## Step 1: the embeddings, as cosine similarities and a PCA
#
# For every model we take the embedding rows of the number tokens `0 … n-1` (a matrix `n × d`)
# and compute the cosine similarity of every pair: `1` = same direction, `0` = unrelated. The
# result is `n × n` whatever the width, so models can be compared. Each row is a number's
# "similarity profile"; a PCA of those rows places every number in 2-D. Below: the first seed of
# each condition, each number coloured by its parity and labelled with its value — an ordered
# model puts the labels along a line or an arc. (The explorer at the end colours by value or
# residue.)

# %%
emb = {n: {label: AM.value_embeddings(AM.load_stack(results, specs), specs[0])
           for label, specs in comp.specs.items()} for n, comp in comps.items()}
for n, comp in comps.items():
    fig = viz.plot_embedding_grid({k: v[0] for k, v in emb[n].items()}, n, color_by="parity",
                                  title=f"Number embeddings mod {n} at width {comp.width} "
                                        f"(seed {comp.specs['single'][0].seed})")
    plots.show_figure(fig, f"06_embeddings_parity_mod{n}", results, save=save_figures)

# %% [markdown]
# ## Step 2: separation scores, against random embeddings
#
# * **parity** — do even and odd numbers form two groups? (silhouette of the even/odd split
#   under the cosine distance: 1 = two tight, separate groups; 0 = a number is no closer to its
#   own group than to the other.)
# * **div q** — the same for the residue classes mod `q`, for every divisor `q > 2` of `n`.
# * **order** — does a PCA coordinate run through `0, 1, …, n-1` in order? (|Spearman|, 0..1.)
#
# Random vectors do **not** score 0: order scores well above 0 for small `n`, and the
# divisibility scores of classes with only two or three members come out *negative* (some
# other small class is closer by chance). So every score is shown next to the **null**: the
# mean and the 95th percentile of the same score for random Gaussian embeddings of the same
# shape; read a score against that row, not against 0. The interval after each mean is a
# bootstrap over seeds — with two or three seeds it is about the range of the seeds, a
# description, not a test (the verdicts below use a permutation test).

# %%
# NBVAL_CHECK_OUTPUT
values, summ, null = {}, {}, {}
for n, comp in comps.items():
    values[n] = {label: SC.embedding_scores(E, n) for label, E in emb[n].items()}
    summ[n] = {label: SC.summarise(v, n_boot=n_boot) for label, v in values[n].items()}
    null[n] = SC.null_summary(n, comp.width, n_samples=null_samples)
    print(f"mod {n}, width {comp.width}, {comp.n_seeds['single']} seeds per condition:")
    print(SC.scores_table(summ[n], null[n]))
    fig = viz.plot_scores(summ[n], null[n], title=f"Separation scores mod {n} at width {comp.width} "
                                                  f"(mean over {comp.n_seeds['single']} seeds, bootstrap CI)")
    plots.show_figure(fig, f"06_separation_scores_mod{n}", results, save=save_figures)

# %% [markdown]
# ## Across sizes and training mixes
#
# Parity and order for every mix of the sweep at every width (one dot per seed; grey band:
# random embeddings at the largest width). If joint training *causes* structure, the lines of
# the mixes with MAX/MED should sit above ADD's at every width, not only at the one chosen above.

# %%
by_width, null_by_width = {}, {}
for n in sw.sizes:
    by_mix = by_width[n] = {"parity": {}, "order": {}}
    for w in sw.widths:
        specs_w = [s for s in sw.specs if s.arch.n_embed == w and s.task.modulus == n]
        E_w = AM.value_embeddings(AM.load_stack(results, specs_w), specs_w[0])
        for s, E in zip(specs_w, E_w):
            sc = SC.embedding_scores(E[None], n)
            for key in by_mix:
                by_mix[key].setdefault(experiments.fmt_mix(s.task.ops), {}).setdefault(w, []).append(float(sc[key][0]))
    null_w = null_by_width[n] = SC.null_summary(n, max(sw.widths), 50)
    for key in by_mix:
        fig = viz.plot_scores_vs_width(by_mix[key], score=key, null=null_w[key],
                                       title=f"{key} score mod {n} by width and training mix ({sw.preset})")
        plots.show_figure(fig, f"06_{key}_by_width_mod{n}", results, save=save_figures)

# %% [markdown]
# ## Scorecard rows
#
# Paper A: joint training induces parity, divisor and order structure that ADD alone lacks. One
# row per score (parity, every divisibility score, order), per modulus and per comparison
# (joint, and transferred when available). The rule:
#
# 1. **The test.** An exact one-sided permutation test over seeds (`SC.verdict_seeds`): pool the
#    seeds of both conditions and ask, over *every* way of splitting them into two groups of the
#    same sizes, how often the difference of means is at least the one observed. *Reproduced*
#    when that share (the p-value) is at most `alpha` for joint > single; *not reproduced* when it
#    is at most `alpha` for joint < single; otherwise *inconclusive*. With two seeds per
#    condition there are only 6 splits, so the smallest possible p-value is 1/6 and **no verdict
#    can be reached** — the test says so instead of reading luck as evidence.
# 2. **Above random.** "More structure" must also be *structure*: a *reproduced* needs the
#    joint (or transferred) mean above the 95th percentile of random embeddings.
# 3. **Learned.** When no width reached `min_acc` on ADD, every row is *inconclusive*, with a
#    note saying so.

# %%
from jointtask_lib.sections import embeddings as section

rows = section.claims(comps, values, summ, null, joint=joint, pretrain=pretrain, target=target, alpha=alpha,
                      preset=sw.preset)
prime_sw = load_sweep(paths.repo_root() / "params" / "sweeps" / f"{prime_sweep}.yaml", sweep_preset, seed_offset)
rows += section.structure_claims(by_width, null_by_width, sizes=sw.sizes, prime_sw=prime_sw, results=results,
                                 preset=sw.preset)
scorecard.write_claims(results, section.NOTEBOOK, rows)
for r in rows:
    print(f"{r['verdict']:>15}  {r['claim']}  [{r['ours']}]")

# %% [markdown]
# ## Explore (interactive)
#
# With `interactive = True` (in Jupyter, not under papermill) pick any run of the chosen width
# (first modulus) and colour the PCA by value, parity or residue mod q.

# %%
if interactive:
    from IPython.display import display

    n0 = sw.sizes[0]
    display(viz.embedding_explorer({f"{label} seed {s.seed}": E for label, specs in comps[n0].specs.items()
                                    for s, E in zip(specs, emb[n0][label])}, n0))

# %% [markdown] tags=["exercise"]
# ## Exercises
#
# **Exercise 1 (★, 5 min).** At the compared width, is each condition's mean **parity** score above
# the 95th percentile of random embeddings? Which condition has the most parity structure?

# %% tags=["solution"]
from jointtask_lib import course

for n in summ:
    print(f"mod {n}: random 95th percentile {null[n]['parity'][1]:.3f}; "
          + ", ".join(f"{c} {s['parity'][0]:.3f}" for c, s in summ[n].items()))

# %% [markdown] tags=["exercise"]
# **Exercise 2 (★★, 10 min).** The verdicts use an exact permutation test over seeds. With the
# number of seeds in this run, what is the smallest p-value it can give? Can any verdict be
# reached at `alpha`? How many seeds per condition would be needed?

# %% tags=["solution"]
for n, comp in comps.items():
    m = comp.n_seeds["single"]
    print(f"mod {n}: {m} vs {m} seeds -> smallest p = {course.min_permutation_p(m, m):.3f} (alpha {alpha}); "
          f"with {m + 2} vs {m + 2}: {course.min_permutation_p(m + 2, m + 2):.4f}")

# %% [markdown]
# ## What we saw
#
# Read from this run's compared models and from the claims it wrote:

# %%
from jointtask_lib import course  # also imported by the solutions, which students do not have

course.what_we_saw("06_embeddings", results, preset=sw.preset,
                   facts=[comp.describe() for comp in comps.values()])

# %% [markdown]
# ## Try this
#
# 1. Set `width` to the smallest width of the sweep. Do the joint model's embeddings already
#    show structure *before* the model can add? (Structure first, skill later would support
#    paper A's "scaffold" story.) The verdicts turn inconclusive there — why is that the right
#    call?
# 2. Compare `joint = ["ADD", "NADD"]`: does pairing with NADD — no benefit in paper A — also
#    leave the embeddings unstructured?
# 3. In the explorer, colour by residue mod 5. Does any model group `0, 5`, `1, 6`, …? What
#    would such a grouping be good for when adding mod 10?
# 4. A high order score is not proof of a line: a circle scores well too (see
#    `jointtask_lib/analysis/embeddings.py`). Find a run where the picture and the score disagree.
# 5. How many seeds per condition would the permutation test need before a verdict is even
#    possible at `alpha = 0.05`? (Count the splits: `math.comb(m + k, m)`.)
