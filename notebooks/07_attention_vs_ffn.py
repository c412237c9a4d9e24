# %% [markdown]
# # 07 · Inside the models (2): attention or feed-forward — which sublayer does the work?
#
# Our models apply **one** transformer block four times (four *recurrence steps*). Each step has
# two sublayers that add their output to the running representation (the *residual stream*):
# **attention**, which moves information between positions (e.g. fetches the operands of the
# innermost operation), and the **feed-forward network (FFN)**, which computes on each position
# alone (e.g. looks up a sum in a memorised table).
#
# Paper A (v1) reports that a model trained on ADD alone leans on its FFN — consistent with
# memorising an addition table — while a model trained jointly with MAX and MED uses its
# attention more. The paper's measure, an "attention output/input ratio", is not defined there.
# We define two measures and apply both, per step, to single-task and joint models of equal size.
#
# **What you will learn**
#
# 1. How to *instrument* a forward pass (a probe that records norms and attention patterns)
#    without changing the model.
# 2. The difference between "a sublayer writes a lot" (norm ratio) and "a sublayer is needed"
#    (ablation: zero it and see what breaks).
# 3. How to watch a model write its chain of thought, step by step, and read its attention.

# %% [markdown]
# ## Parameters
#
# * `seed_offset`: added to every seed of the sweeps (e.g. 100: the same experiment on fresh seeds;
#   0: the runs as written).
# * `sweep`, `sweep_preset`: the joint-training sweep whose runs are analysed (nothing new is
#   trained if notebook 03 ran at this preset).
# * `single`, `joint`: the two task mixes compared; the target operation is `single[0]`.
# * `width`, `min_acc`: the width compared (`0`: for each modulus, the smallest width at which
#   both conditions reach `min_acc` on the target, else the largest — and then no verdict), as in
#   notebook 06.
# * `eval_limit`: target-operation test examples per model for the ratios and ablations;
#   `metric`: `gen_acc` (the model writes its own chain of thought) or `tf_acc` (teacher forced).
# * `n_boot`: bootstrap resamples for the (descriptive) CIs over seeds; `alpha`: the level of the
#   permutation test behind the verdicts.
# * `threads`: torch threads in this kernel (1 is fastest on a busy laptop).
# * `workers`, `device`, `results_dir`, `save_figures`, `progress`, `interactive`: as before.

# %% tags=["parameters"]
sweep = "joint_training"
sweep_preset = "quick"
seed_offset = 0
single = ["ADD"]
joint = ["ADD", "MAX", "MED"]
width = 0
min_acc = 0.8
eval_limit = 300
metric = "gen_acc"
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
# ## Checking the parameters

# %%
# NBVAL_CHECK_OUTPUT
import torch

from jointtask_lib import experiments, paths, plots, scorecard, tables
from jointtask_lib.analysis import models as AM
from jointtask_lib.analysis import scores as SC
from jointtask_lib.analysis import sublayers as SL
from jointtask_lib.analysis import viz
from jointtask_lib.analysis.embeddings import score_with_ci
from jointtask_lib.sweep import run_sweep
from jointtask_lib.notebook import check_parameters

check_parameters("07_attention_vs_ffn", globals())  # every parameter, by the rules presets obey
torch.set_num_threads(threads)  # one thread: on a loaded 2-core machine two are many times slower
mixes = {"single": single, "joint": joint}
sw = AM.load_analysis_sweep(sweep, sweep_preset, mixes, width=width, seed_offset=seed_offset)
target = single[0]
results = paths.results_dir(results_dir)
print(f"sweep {sw.name} ({sw.preset}): widths {list(sw.widths)}, seeds {list(sw.seeds)}, moduli {list(sw.sizes)}")
print(f"single = {experiments.fmt_mix(single)}, joint = {experiments.fmt_mix(joint)}; measured on {target} "
      f"examples ({metric}, at most {eval_limit} per model)")

# %% [markdown]
# ## The runs and the compared width
#
# For each modulus of the sweep, the same choice as in notebook 06: the smallest width at which
# both conditions have learned the target. If there is none, the largest width is measured
# anyway — but a model that cannot add has nothing to tell us about *how* it adds, so every
# verdict is then "inconclusive".

# %%
records = run_sweep(sw, results, workers=workers, device=device, progress=progress)
comps = {n: AM.load_conditions(sw, results, mixes, target, size=n, width=width, min_acc=min_acc)
         for n in sw.sizes}
print(f"{len(records)} records")
for comp in comps.values():
    print(comp.describe())

# %% [markdown]
# All runs of one width and modulus share the architecture and the vocabulary, so the
# single-task and joint models are loaded as **one stack** and measured in one pass. Each model
# is measured on *its own* test set (never seen in training), restricted to the target
# operation's examples.

# %%
stacks = {}
for n, comp in comps.items():
    model, labels, specs = AM.condition_stack(results, comp)
    datas = [AM.select_op(s.data()[1], target) for s in specs]
    stacks[n] = (model, labels, specs, datas)
    print(f"mod {n}: {model.n_models} models stacked; recurrence {model.cfg.recurrence}; "
          f"{min(len(d) for d in datas)}+ {target} test examples each")

# %% [markdown]
# ## Measure 1: how much does each sublayer write?
#
# For each step and sublayer: `||output|| / ||input||`, the size of what the sublayer adds to the
# residual stream relative to the stream entering it, averaged over the positions where the
# model writes its chain of thought and answer (from the first `=` on; padding excluded). The
# exact definition is in `jointtask_lib/analysis/sublayers.py`. The table gives the mean over
# seeds.

# %%
# NBVAL_CHECK_OUTPUT
ratios = {}
for n, (model, labels, specs, datas) in stacks.items():
    ratios[n] = SL.sublayer_ratios(model, datas, limit=eval_limit)
    rat = AM.split_by_label(ratios[n], labels)
    fig = viz.plot_sublayer_ratios(rat, title=f"Sublayer norm ratios per step (mod {n}, width {comps[n].width})")
    plots.show_figure(fig, f"07_sublayer_ratios_mod{n}", results, save=save_figures)
    rows = [[c, s + 1, f"{r[:, s, 0, 0].mean():.3f}", f"{r[:, s, 0, 1].mean():.3f}"]
            for c, r in rat.items() for s in range(r.shape[1])]
    print(f"mod {n}, width {comps[n].width}:")
    print(tables.format_table(["condition", "step", "attention", "FFN"], rows))

# %% [markdown]
# ## Measure 2: what breaks without it?
#
# We zero one sublayer at one step (every other computation unchanged) and measure the accuracy
# on the target operation again. The **drop** (baseline minus ablated accuracy) says how much the
# model needs that sublayer at that step. With `metric = "gen_acc"` the ablated model writes its
# own chain of thought, so a broken step can derail the whole answer.

# %%
accs = {}
for n, (model, labels, specs, datas) in stacks.items():
    vocab, max_len = specs[0].vocab(), specs[0].model_config().block_size
    accs[n] = SL.ablation_accuracies(model, datas, vocab, max_len, op=target, metric=metric, limit=eval_limit)
    drops = AM.split_by_label(SL.drops_by_step(accs[n], model.cfg.recurrence), labels)
    fig = viz.plot_ablation_drops(drops, metric=metric,
                                  title=f"Accuracy drop when one sublayer is zeroed (mod {n}, width {comps[n].width})")
    plots.show_figure(fig, f"07_ablation_drops_mod{n}", results, save=save_figures)
    for c, base in AM.split_by_label(accs[n]["baseline"], labels).items():
        print(f"mod {n} {c:>7}: baseline {metric} {', '.join(f'{a:.2f}' for a in base)}")

# %% [markdown]
# ## Summaries
#
# Two numbers per model:
#
# * **attention share** of the norm ratios: attention ÷ (attention + FFN), averaged over steps;
#   above 0.5 the attention writes more than the FFN (the closest we can get to paper A's
#   "attention output/input ratio");
# * **attention − FFN ablation drop**, averaged over steps: positive when the model needs its
#   attention more than its FFN.
#
# Each is shown as the mean over seeds with a bootstrap interval — with two or three seeds that
# interval is about the range of the seeds: a description, not a test.

# %%
# NBVAL_CHECK_OUTPUT
measures = [("attn_share", "attention share (norm ratios)", "norm ratios"),
            ("attn_minus_mlp_drop", "attention - FFN ablation drop", "ablations")]
per_seed, stats_ = {}, {}
for n, (model, labels, specs, datas) in stacks.items():
    summ = AM.split_by_label(SL.reliance_summary(ratios[n], accs[n]), labels)
    per_seed[n] = {key: {c: summ[c][key] for c in summ} for key, _, _ in measures}
    stats_[n] = {key: {c: score_with_ci(v, n_boot=n_boot) for c, v in per_seed[n][key].items()}
                 for key, _, _ in measures}
    rows = [[name] + [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in stats_[n][key].values()]
            for key, name, _ in measures]
    print(f"mod {n}, width {comps[n].width}:")
    print(tables.format_table(["measure"] + list(summ), rows))

# %% [markdown]
# ## The scorecard
#
# The claim "the joint model leans on attention where the single-task model leans on its FFN",
# for each measure and modulus, gets its verdict from an **exact one-sided permutation test over
# seeds** (`SC.verdict_seeds`, explained in notebook 06): *reproduced* when the share of all
# splits of the pooled seeds into two groups whose difference (joint − single) is at least the
# observed one is at most `alpha`; *not reproduced* when the same holds in the other direction;
# otherwise *inconclusive*. With two seeds per condition the smallest possible p-value is 1/6,
# so no verdict can be reached — and identical values (all drops 0, as in a model that never
# learned the task) are always inconclusive. When no width reached `min_acc`, every row is
# *inconclusive* with a note: a model that cannot add has little to lose, so drops near 0 say
# nothing about how it adds.

# %%
from jointtask_lib.sections import sublayers as section

claims = section.claims(comps, per_seed, stats_, joint=joint, target=target, alpha=alpha, preset=sw.preset,
                        measures=measures)
scorecard.write_claims(results, section.NOTEBOOK, claims)
for r in claims:
    print(f"{r['verdict']:>15}  {r['claim']}  [{r['ours']}]")

# %% [markdown]
# ## One expression, step by step
#
# The first seed of each condition writes its own chain of thought for one test expression; the
# heatmaps show, for every recurrence step, where each position (row) looks (columns). The
# dashed line marks the first `=`: rows below it are the positions writing the chain of thought.
# We look for an expression in the test set of **both** models, so that neither has seen it in
# training and the two pictures are comparable; if there is none, each model gets the first
# expression of its own test set.

# %%
for n, (model, labels, specs, datas) in stacks.items():
    vocab, max_len = specs[0].vocab(), specs[0].model_config().block_size
    first = {c: labels.index(c) for c in comps[n].specs}
    shared = AM.shared_examples([datas[i] for i in first.values()], limit=1)
    print(f"mod {n}: " + ("one expression from both test sets" if shared else
                          "no expression is in both test sets: each model gets its own first test expression"))
    for j, (c, idx) in enumerate(first.items()):
        k = shared[0][j] if shared else 0
        prompt_ids = datas[idx].tokens[k, : int(datas[idx].prompt_len[k])].tolist()
        tr = viz.trace_expression(model, vocab, prompt_ids, max_len, index=idx)
        fig = viz.plot_attention_trace(tr, title=f"{c} (mod {n}, seed {specs[idx].seed}): {tr['text']}")
        plots.show_figure(fig, f"07_attention_{c}_mod{n}", results, save=save_figures)

# %% [markdown]
# ## Explore (interactive)
#
# With `interactive = True`: pick a model (first modulus), type or choose an expression (ending
# with `=`), and step through the recurrence. The expressions offered are in the test set of
# *every* model of the stack (so none of them has trained on it); an expression you type may
# not be.

# %%
if interactive:
    from IPython.display import display

    model, labels, specs, datas = stacks[sw.sizes[0]]
    vocab = specs[0].vocab()
    common = AM.shared_examples(datas, limit=20) or [[0] * len(datas)]
    prompts = [" ".join(vocab.tokens[t] for t in datas[0].tokens[ix[0], : int(datas[0].prompt_len[ix[0]])].tolist())
               for ix in common]
    display(viz.cot_explorer({f"{lb} seed {s.seed}": (model, i) for i, (lb, s) in enumerate(zip(labels, specs))},
                             vocab, prompts, specs[0].model_config().block_size))

# %% [markdown] tags=["exercise"]
# ## Exercises
#
# **Exercise 1 (★, 5 min).** Does the joint model's attention write more than its FFN (attention
# share above 0.5)? Compare its share with the ADD-only model's, with their CIs.

# %% tags=["solution"]
from jointtask_lib import course

for n in stats_:
    print(f"mod {n}: attention share " + ", ".join(f"{c} {experiments.fmt_mean_ci(v)}"
                                                   for c, v in stats_[n]["attn_share"].items()))

# %% [markdown] tags=["exercise"]
# **Exercise 2 (★★, 10 min).** Why are the verdicts what they are? Find, for each modulus, whether
# both conditions learned ADD at the compared width, and the smallest p-value the seed
# permutation test can reach with this many seeds.

# %% tags=["solution"]
for n, comp in comps.items():
    m = comp.n_seeds["single"]
    print(f"mod {n}: learned by both: {comp.learned}; smallest possible p = {course.min_permutation_p(m, m):.3f}")

# %% [markdown]
# ## What we saw
#
# Read from this run's measures and from the claims it wrote:

# %%
from jointtask_lib import course  # also imported by the solutions, which students do not have

course.what_we_saw("07_attention_vs_ffn", results, preset=sw.preset, facts=[
    f"mod {n}, width {comps[n].width}: {name}: "
    + ", ".join(f"{c} {experiments.fmt_mean_ci(v)}" for c, v in stats_[n][key].items())
    for n in stats_ for key, name, _ in measures
])

# %% [markdown]
# ## Try this
#
# 1. Set `metric = "tf_acc"` (teacher forcing). Do the ablation drops change? Which steps matter
#    when the model does not have to write its own chain of thought?
# 2. Compare `joint = ["ADD", "NADD"]`. If FFN reliance means "memorising a table", does pairing
#    with another table-like task change it?
# 3. Set `width` to the smallest width of the sweep, where ADD alone fails. What does a model that
#    cannot add use its sublayers for? Why do the verdicts turn inconclusive?
# 4. In the explorer, find a step where the positions after `=` attend to the innermost
#    operation's operands. Is it the same step for the single-task and the joint model?
