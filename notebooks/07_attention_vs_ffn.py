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
# * `sweep`, `sweep_preset`: the joint-training sweep whose runs are analysed (nothing new is
#   trained if notebook 03 ran at this preset).
# * `single`, `joint`: the two task mixes compared; the target operation is `single[0]`.
# * `width`, `min_acc`: the width compared (`0`: the smallest width at which both conditions
#   reach `min_acc` on the target, else the largest), as in notebook 06.
# * `eval_limit`: target-operation test examples per model for the ratios and ablations;
#   `metric`: `gen_acc` (the model writes its own chain of thought) or `tf_acc` (teacher forced).
# * `n_boot`: bootstrap resamples for the CIs over seeds.
# * `threads`: torch threads in this kernel (1 is fastest on a busy laptop).
# * `workers`, `device`, `results_dir`, `save_figures`, `progress`, `interactive`: as before.

# %% tags=["parameters"]
sweep = "joint_training"
sweep_preset = "quick"
single = ["ADD"]
joint = ["ADD", "MAX", "MED"]
width = 0
min_acc = 0.8
eval_limit = 300
metric = "gen_acc"
n_boot = 1000
workers = 1
threads = 1
device = "auto"
results_dir = ""
save_figures = True
progress = False
interactive = False

# %% [markdown]
# ## Checking the parameters

# %%
# NBVAL_CHECK_OUTPUT
import numpy as np
import torch

from jointtask_lib import experiments, paths, plots, scorecard, tables
from jointtask_lib.analysis import models as AM
from jointtask_lib.analysis import sublayers as SL
from jointtask_lib.analysis import viz
from jointtask_lib.analysis.embeddings import score_with_ci
from jointtask_lib.sweep import load_sweep, run_sweep
from jointtask_lib.validate import check_bool, check_choice, check_float, check_int

check_int("width", width, lo=0)
check_float("min_acc", min_acc, lo=0.0, hi=1.0)
check_int("eval_limit", eval_limit, lo=1)
check_choice("metric", metric, ("gen_acc", "tf_acc"))
check_int("n_boot", n_boot, lo=50)
check_int("workers", workers, lo=1)
check_int("threads", threads, lo=1)
torch.set_num_threads(threads)  # one thread: on a loaded 2-core machine two are many times slower
check_bool("save_figures", save_figures)
check_bool("interactive", interactive)
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
print(f"single = {experiments.fmt_mix(single)}, joint = {experiments.fmt_mix(joint)}; measured on {target} "
      f"examples ({metric}, at most {eval_limit} per model)")

# %% [markdown]
# ## The runs and the compared width

# %%
records = run_sweep(sw, results, workers=workers, device=device, progress=progress)
if width == 0:
    width, why = AM.matched_width(records, [tuple(single), tuple(joint)], target, sw.widths, size=n,
                                  min_acc=min_acc)
else:
    why = "given by the 'width' parameter"
cond_specs = {"single": AM.specs_for(sw, ops=single, width=width, size=n),
              "joint": AM.specs_for(sw, ops=joint, width=width, size=n)}
print(f"{len(records)} records; compared at width {width} ({why})")

# %% [markdown]
# All runs of one width share the architecture and the vocabulary, so the single-task and joint
# models are loaded as **one stack** and measured in one pass. Each model is measured on *its own*
# test set (never seen in training), restricted to the target operation's examples.

# %%
specs = cond_specs["single"] + cond_specs["joint"]
labels = ["single"] * len(cond_specs["single"]) + ["joint"] * len(cond_specs["joint"])
model = AM.load_stack(results, specs)
vocab, max_len = specs[0].vocab(), specs[0].model_config().block_size
datas = [AM.select_op(s.data()[1], target) for s in specs]
print(f"{model.n_models} models stacked; recurrence {model.cfg.recurrence}; "
      f"{min(len(d) for d in datas)}+ {target} test examples each")


def by_condition(values):
    """Split a per-model array into {condition: values of its seeds}."""
    arr = np.asarray(values)
    return {c: arr[[i for i, lb in enumerate(labels) if lb == c]] for c in cond_specs}


# %% [markdown]
# ## Measure 1: how much does each sublayer write?
#
# For each step and sublayer: `||output|| / ||input||`, the size of what the sublayer adds to the
# residual stream relative to the stream entering it, averaged over the positions where the
# model writes its chain of thought and answer (from the first `=` on; padding excluded). The
# exact definition is in `jointtask_lib/analysis/sublayers.py`.

# %%
ratios = SL.sublayer_ratios(model, datas, limit=eval_limit)
rat = by_condition(ratios)
fig = viz.plot_sublayer_ratios(rat, title=f"Sublayer norm ratios per step (width {width})")
plots.show_figure(fig, "07_sublayer_ratios", results, save=save_figures)
rows = []
for c, r in rat.items():
    for s in range(r.shape[1]):
        rows.append([c, s + 1, f"{r[:, s, 0, 0].mean():.3f}", f"{r[:, s, 0, 1].mean():.3f}"])
print(tables.format_table(["condition", "step", "attention", "FFN"], rows))

# %% [markdown]
# ## Measure 2: what breaks without it?
#
# We zero one sublayer at one step (every other computation unchanged) and measure the accuracy
# on the target operation again. The **drop** (baseline minus ablated accuracy) says how much the
# model needs that sublayer at that step. With `metric = "gen_acc"` the ablated model writes its
# own chain of thought, so a broken step can derail the whole answer.

# %%
accs = SL.ablation_accuracies(model, datas, vocab, max_len, op=target, metric=metric, limit=eval_limit)
drops = {c: {k: v[[i for i, lb in enumerate(labels) if lb == c]] for k, v in SL.drops_by_step(accs, model.cfg.recurrence).items()}
         for c in cond_specs}
fig = viz.plot_ablation_drops(drops, metric=metric, title=f"Accuracy drop when one sublayer is zeroed (width {width})")
plots.show_figure(fig, "07_ablation_drops", results, save=save_figures)
base = by_condition(accs["baseline"])
for c in cond_specs:
    print(f"{c:>7}: baseline {metric} {', '.join(f'{a:.2f}' for a in base[c])}")

# %% [markdown]
# ## Summaries and the scorecard
#
# Two numbers per model:
#
# * **attention share** of the norm ratios: attention ÷ (attention + FFN), averaged over steps;
#   above 0.5 the attention writes more than the FFN (the closest we can get to paper A's
#   "attention output/input ratio");
# * **attention − FFN ablation drop**, averaged over steps: positive when the model needs its
#   attention more than its FFN.
#
# The claim "the joint model leans on attention where the single-task model leans on its FFN" is
# *reproduced* for a measure when the joint models' CI lies wholly above the single-task models'
# (`scorecard.verdict_greater`), *not reproduced* when wholly below, otherwise *inconclusive*.
# A model that has not learned the task has little to lose, so ablation drops near 0 at small
# widths say little.

# %%
summ = SL.reliance_summary(ratios, accs)
stats_ = {}
rows = []
for key, name in [("attn_share", "attention share (norm ratios)"),
                  ("attn_minus_mlp_drop", "attention - FFN ablation drop")]:
    per = by_condition(summ[key])
    stats_[key] = {c: score_with_ci(v, n_boot=n_boot) for c, v in per.items()}
    rows.append([name] + [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in (stats_[key][c] for c in cond_specs)])
print(tables.format_table(["measure"] + list(cond_specs), rows))

claims = []
for key, what in [("attn_share", "norm ratios"), ("attn_minus_mlp_drop", "ablations")]:
    a, b = stats_[key]["joint"], stats_[key]["single"]
    claims.append(scorecard.claim(
        id=f"A-sublayer-{key}", paper="A",
        claim=f"the joint model ({experiments.fmt_mix(joint)}) leans on attention more than the {target}-only "
              f"model ({what})",
        paper_value="ADD-only relies on the FFN; joint uses attention more (v1, 'attention output/input ratio')",
        ours=f"joint {a[0]:.3f} [{a[1]:.3f}, {a[2]:.3f}] vs single {b[0]:.3f} [{b[1]:.3f}, {b[2]:.3f}]; "
             f"width {width}, {len(cond_specs['single'])} seeds",
        verdict=scorecard.verdict_greater(a[0], a[1:], b[0], b[1:]), preset=sw.preset,
        notebook="07_attention_vs_ffn",
        note=f"{key}: see jointtask_lib/analysis/sublayers.py; CI: bootstrap over seeds (coarse with 2-3 seeds)"))
scorecard.write_claims(results, "07_attention_vs_ffn", claims)
for r in claims:
    print(f"{r['verdict']:>15}  {r['claim']}  [{r['ours']}]")

# %% [markdown]
# ## One expression, step by step
#
# Seed 0 of each condition writes its own chain of thought for one test expression; the
# heatmaps show, for every recurrence step, where each position (row) looks (columns). The
# dashed line marks the first `=`: rows below it are the positions writing the chain of thought.

# %%
prompt_ids = datas[0].tokens[0, : int(datas[0].prompt_len[0])].tolist()
for c in cond_specs:
    idx = labels.index(c)
    tr = viz.trace_expression(model, vocab, prompt_ids, max_len, index=idx)
    fig = viz.plot_attention_trace(tr, title=f"{c} (seed {specs[idx].seed}): {tr['text']}")
    plots.show_figure(fig, f"07_attention_{c}", results, save=save_figures)

# %% [markdown]
# ## Explore (interactive)
#
# With `interactive = True`: pick a model, type or choose an expression (ending with `=`), and
# step through the recurrence.

# %%
if interactive:
    from IPython.display import display

    prompts = [" ".join(vocab.tokens[t] for t in d.tokens[i, : int(d.prompt_len[i])].tolist())
               for d in datas[:1] for i in range(min(20, len(d)))]
    display(viz.cot_explorer({f"{lb} seed {s.seed}": (model, i) for i, (lb, s) in enumerate(zip(labels, specs))},
                             vocab, prompts, max_len))

# %% [markdown]
# ## Try this
#
# 1. Set `metric = "tf_acc"` (teacher forcing). Do the ablation drops change? Which steps matter
#    when the model does not have to write its own chain of thought?
# 2. Compare `joint = ["ADD", "NADD"]`. If FFN reliance means "memorising a table", does pairing
#    with another table-like task change it?
# 3. Set `width` to the smallest width of the sweep, where ADD alone fails. What does a model that
#    cannot add use its sublayers for?
# 4. In the explorer, find a step where the positions after `=` attend to the innermost
#    operation's operands. Is it the same step for the single-task and the joint model?
