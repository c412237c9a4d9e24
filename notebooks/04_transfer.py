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
# # 04 · Transfer: pretrain on easy tasks, then learn ADD with a smaller model
#
# Paper A's strongest result: a model **pretrained on MAX+MED** and then trained on pure ADD
# learns ADD at a size about **7× smaller** than a model trained on ADD from scratch. The paper's
# reviewers asked for two controls, which this notebook runs too:
#
# * **continual vs joint presentation** — MAX+MED *then* ADD, against MAX+MED+ADD *together*;
# * **fine-tuning on ADD alone after joint training** — does the joint model keep (or improve)
#   its ADD skill when the easy tasks are taken away?
#
# **What you will learn**
#
# 1. How to build a run that starts from another run's weights (`RunSpec(init=...)`), and why the
#    pretraining run is part of the fine-tuned run's identity (its cache key).
# 2. How to compare conditions that train the *same* task mix (ADD) from different starting
#    points, with transitions and CIs.
# 3. Whether skills survive: after fine-tuning on ADD, can the model still do MAX and MED
#    (catastrophic forgetting)?

# %% [markdown]
# ## Parameters
#
# * `sweep`, `sweep_preset`: the sweep file whose ADD runs define the widths and seeds.
# * `target`, `pretrain`: the hard task and the pretraining mix (paper A: ADD after MAX+MED).
# * `level`, `n_boot`: transition threshold and bootstrap resamples.
# * `workers`, `device`, `results_dir`, `save_figures`, `progress`, `interactive`: as before.

# %% tags=["parameters"]
sweep = "transfer"
sweep_preset = "quick"
target = "ADD"
pretrain = ["MAX", "MED"]
level = 0.8
n_boot = 500
workers = 1
device = "auto"
results_dir = ""
save_figures = True
progress = False
interactive = False

# %% [markdown]
# ## Checking the parameters and building the conditions
#
# Every condition uses the same widths, seeds and training recipe; only the data and the
# starting weights differ.

# %%
# NBVAL_CHECK_OUTPUT
from jointtask_lib import experiments, paths, plots, scorecard, tables
from jointtask_lib.sweep import load_sweep, run_specs
from jointtask_lib.tasks import TaskConfig
from jointtask_lib.validate import check_bool, check_float, check_int

check_float("level", level, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
check_int("n_boot", n_boot, lo=50)
check_int("workers", workers, lo=1)
check_bool("save_figures", save_figures)
sw = load_sweep(paths.repo_root() / "params" / "sweeps" / f"{sweep}.yaml", sweep_preset)
TaskConfig(ops=tuple(pretrain) + (target,))  # validates the op names
conditions = experiments.transfer_conditions(sw.specs, target=(target,), pretrain=tuple(pretrain))
if not conditions["scratch"]:
    raise ValueError(f"'target' = {target!r} must be a single-op mix of sweep {sweep}")
results = paths.results_dir(results_dir)
modulus = sw.sizes[0]
for name, specs in conditions.items():
    print(f"{name:>18}: {len(specs)} runs, widths {sorted({s.arch.n_embed for s in specs})}")

# %% [markdown]
# ## Training
#
# The pretraining runs are trained first (the cache sees that the transfer runs need them).

# %%
records = {name: run_specs(specs, results, workers=workers, device=device, progress=progress)
           for name, specs in conditions.items()}
print(sum(len(v) for v in records.values()), "records ready")

# %% [markdown]
# ## ADD accuracy against size, per condition
#
# `joint` is evaluated on its ADD examples. All other conditions end with ADD-only training.

# %%
mix_of = {"scratch": (target,), "transfer": (target,), "joint": tuple(pretrain) + (target,),
          "joint_then_target": (target,)}
labels = {"scratch": f"{target} from scratch", "transfer": f"{'+'.join(pretrain)} → {target}",
          "joint": f"{'+'.join(pretrain)}+{target} jointly", "joint_then_target": f"joint → {target} only"}
points = {labels[c]: experiments.accuracy_points(records[c], ops=m, op=target, size=modulus)
          for c, m in mix_of.items()}
transitions = {labels[c]: experiments.transition_of(records[c], ops=m, op=target, size=modulus,
                                                    level=level, n_boot=n_boot)
               for c, m in mix_of.items()}
fig = plots.plot_transition_curves(points, transitions, level=level, ncols=2,
                                   title=f"{target} accuracy after different training histories (mod {modulus})")
plots.show_figure(fig, "04_transfer_curves", results, save=save_figures)
print(tables.transition_table(transitions, label="condition"))

# %% [markdown]
# ## Reduction factors against training ADD from scratch

# %%
reductions = {
    labels[c]: experiments.reduction_of(records["scratch"], single=(target,), joint=mix_of[c], op=target,
                                        size=modulus, joint_records=records[c], level=level, n_boot=n_boot)
    for c in ("transfer", "joint", "joint_then_target")
}
fig = plots.plot_reductions(reductions, expect={labels["transfer"]: "benefit"},
                            title="Transition of ADD from scratch ÷ transition after each history")
plots.show_figure(fig, "04_transfer_reductions", results, save=save_figures)
print(tables.reduction_table(reductions))

# %% [markdown]
# ## Forgetting: can the continual model still do MAX and MED?
#
# After pretraining on MAX+MED and then training on ADD only, we evaluate the model on the
# MAX+MED test set again, next to the pretrained model itself.

# %%
pre_task = conditions["pretrain"][0].task
rows = []
for w in sorted({s.arch.n_embed for s in conditions["transfer"]}):
    pre = [s for s in conditions["pretrain"] if s.arch.n_embed == w]
    tra = [s for s in conditions["transfer"] if s.arch.n_embed == w]
    before = experiments.evaluate_on(results, pre, pre_task)
    after = experiments.evaluate_on(results, tra, pre_task)
    mean = lambda rs: sum(r["gen_acc"] for r in rs) / len(rs)  # noqa: E731
    rows.append([w, f"{mean(before):.3f}", f"{mean(after):.3f}"])
print(f"accuracy on {'+'.join(pretrain)} (mean over seeds)")
print(tables.format_table(["width", "after pretraining", f"after then training {target}"], rows))

# %% [markdown]
# ## Scorecard row

# %%
r = reductions[labels["transfer"]]
scorecard.write_claims(results, "04_transfer", [scorecard.claim(
    id="A-transfer", paper="A",
    claim=f"Pretraining on {'+'.join(pretrain)} lets {target} be learned by a smaller model",
    paper_value="~7x smaller (n_embed 48, mod 20)", ours=r.describe() if r is not None else "no estimate",
    verdict=scorecard.verdict_benefit(r), preset=sw.preset, notebook="04_transfer")])
print("transfer:", scorecard.verdict_benefit(r))

# %% [markdown]
# ## Try this
#
# 1. Pretrain on `["MAX"]` only, or on `["PROD"]`. Which pretraining transfers best to ADD?
# 2. Use `target = "NADD"`: does MAX+MED pretraining help the alternating sum too?
# 3. Train the pretraining runs longer than the ADD phase (edit the sweep's `train.steps`) and
#    look at how the forgetting table changes.
