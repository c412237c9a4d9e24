# %% [markdown]
# # 04 · Transfer: pretrain on easy tasks, then learn ADD with a smaller model
#
# Paper A's strongest result: a model **pretrained on MAX+MED** and then trained on pure ADD
# learns ADD at a size about **7× smaller** than a model trained on ADD from scratch (the paper
# shows it at n_embed 48, a width at which ADD alone fails). The paper's reviewers asked for two
# controls, which this notebook runs too:
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
#    points: transitions with CIs over all widths, and accuracies with CIs over seeds at one
#    width chosen *below* ADD's own transition.
# 3. Whether skills survive: after fine-tuning on ADD, can the model still do MAX and MED
#    (catastrophic forgetting)?

# %% [markdown]
# ## Parameters
#
# * `seed_offset`: added to every seed of the sweeps (e.g. 100: the same experiment on fresh seeds;
#   0: the runs as written).
# * `sweep`, `sweep_preset`: the sweep file whose ADD runs define the widths, moduli and seeds.
# * `target`, `pretrain`: the hard task and the pretraining mix (paper A: ADD after MAX+MED).
# * `width`: the width (n_embed) for the one-width comparisons; `0` chooses it from the data:
#   the **largest width at which ADD from scratch fails** (its mean accuracy over seeds stays
#   below the transition's threshold, 80% of the asymptote), i.e. the widest model still below
#   ADD's own transition — the situation of paper A's n_embed 48. Any other value must be a width
#   of the sweep.
# * `level`, `n_boot`: transition threshold and bootstrap resamples.
# * `workers`, `device`, `results_dir`, `save_figures`, `progress`: as before; `interactive`: a
#   widget at the end to look at one condition's curve at a time.

# %% tags=["parameters"]
sweep = "transfer"
sweep_preset = "quick"
seed_offset = 0
target = "ADD"
pretrain = ["MAX", "MED"]
width = 0
level = 0.8
n_boot = 500
workers = 1
device = "auto"
results_dir = ""
save_figures = True
progress = True
interactive = False

# %% [markdown]
# ## Checking the parameters and building the conditions
#
# Every condition uses the same widths, seeds and training recipe; only the data and the
# starting weights differ.

# %%
# NBVAL_CHECK_OUTPUT
from jointtask_lib import experiments, paths, plots, scorecard, tables
from jointtask_lib.sweep import load_sweep, run_named
from jointtask_lib.tasks import TaskConfig
from jointtask_lib.notebook import check_parameters
from jointtask_lib.validate import check_choice

check_parameters("04_transfer", globals())  # every parameter, by the rules presets obey
sw = load_sweep(paths.repo_root() / "params" / "sweeps" / f"{sweep}.yaml", sweep_preset, seed_offset)
if width:
    check_choice("width", width, sw.widths)
TaskConfig(ops=tuple(pretrain) + (target,))  # validates the op names
conditions = experiments.transfer_conditions(sw.specs, target=(target,), pretrain=tuple(pretrain))
if not conditions["scratch"]:
    raise ValueError(f"'target' = {target!r} must be a single-op mix of sweep {sweep}")
results = paths.results_dir(results_dir)
moduli = list(sw.sizes)
for name, specs in conditions.items():
    print(f"{name:>18}: {len(specs)} runs, widths {sorted({s.arch.n_embed for s in specs})}")
print("moduli:", moduli, " comparison width:", width or "chosen from the data")

# %% [markdown]
# ## Training
#
# The pretraining runs are trained first (the cache sees that the transfer runs need them); then
# every other condition's runs that are not in the cache yet, together (`run_named`).

# %%
trained = run_named(conditions, results, workers=workers, device=device, progress=progress)
records = {name: experiments.unique_records(recs) for name, recs in trained.items()}
print(sum(len(v) for v in records.values()), "records ready")

# %% [markdown]
# ## ADD accuracy against size, per condition
#
# `joint` is evaluated on its ADD examples. All other conditions end with ADD-only training.
# ADD's answers are uniform, so the fit's floor is fixed at chance, 1/n (notebook 02).

# %%
joint_mix = experiments.joint_mix((target,), tuple(pretrain))
mix_of = {"scratch": (target,), "scratch_matched": (target,), "transfer": (target,), "joint": joint_mix,
          "joint_then_target": (target,)}
labels = {"scratch": f"{target} from scratch", "scratch_matched": f"{target} from scratch, compute-matched",
          "transfer": f"{'+'.join(pretrain)} → {target}",
          "joint": f"{'+'.join(pretrain)}+{target} jointly", "joint_then_target": f"joint → {target} only"}
points, transitions, floors = {}, {}, {}
for n in moduli:
    floors[n] = experiments.known_floor(records["scratch"], ops=(target,), op=target, size=n)
    points[n] = {labels[c]: experiments.accuracy_points(records[c], ops=m, op=target, size=n)
                 for c, m in mix_of.items()}
    transitions[n] = {labels[c]: experiments.transition_of(records[c], ops=m, op=target, size=n, level=level,
                                                           n_boot=n_boot, chance=floors[n])
                      for c, m in mix_of.items()}
    fig = plots.plot_transition_curves(points[n], transitions[n], level=level, ncols=2,
                                       ticks=experiments.width_ticks(records["scratch"]),
                                       title=f"{target} accuracy after different training histories (mod {n})")
    plots.show_figure(fig, f"04_transfer_curves_mod{n}", results, save=save_figures)
    print(f"mod {n}")
    print(tables.transition_table(transitions[n], label="condition"))

# %%
# NBVAL_CHECK_OUTPUT
# The run's accuracies on the target, rounded (same seeds, same numbers: a change here means training changed).
for size, by_label in points.items():
    for label, (xs, ys, _) in by_label.items():
        print(f"mod {size} {label}: mean {target} accuracy by size",
              " ".join(f"{ys[xs == x].mean():.1f}" for x in sorted(set(xs.tolist()))))

# %% [markdown]
# ## Reduction factors against training ADD from scratch, and continual vs joint
#
# Each factor is the transition of ADD from scratch ÷ its transition after another history
# (above 1: that history lets a smaller model learn ADD). The last row compares the two
# presentations the reviewers asked about *directly*: the transition of the joint model ÷ that
# of the continual one (MAX+MED, then ADD): above 1 means presenting the tasks one after the other
# beats presenting them together. "transfer vs compute-matched" divides by ADD from scratch trained
# for as many steps as pretraining plus ADD training (the pretrained model's whole budget), not
# only as many as its ADD stage.

# %%
reductions = {}
for n in moduli:
    reductions[n] = {
        labels[c]: experiments.reduction_of(records["scratch"], single=(target,), joint=mix_of[c], op=target,
                                            size=n, joint_records=records[c], level=level, n_boot=n_boot,
                                            chance=floors[n])
        for c in ("transfer", "joint", "joint_then_target")
    }
    reductions[n]["transfer vs compute-matched"] = experiments.reduction_of(
        records["scratch_matched"], single=(target,), joint=(target,), op=target, size=n,
        joint_records=records["transfer"], level=level, n_boot=n_boot, chance=floors[n])
    reductions[n]["continual vs joint"] = experiments.reduction_of(
        records["joint"], single=joint_mix, joint=(target,), op=target, size=n, joint_records=records["transfer"],
        level=level, n_boot=n_boot, chance=floors[n])
    fig = plots.plot_reductions(reductions[n], expect={labels["transfer"]: "benefit"},
                                title=f"Transition ratios of {target} (mod {n})")
    plots.show_figure(fig, f"04_transfer_reductions_mod{n}", results, save=save_figures)
    print(f"mod {n}")
    print(tables.reduction_table(reductions[n]))

# %% [markdown]
# ## One width below ADD's own transition
#
# Paper A's demonstration is at one width: n_embed 48, where ADD from scratch fails and the
# pretrained model succeeds. We choose our width from the data (unless `width` is set): the
# largest width at which ADD from scratch stays below the transition's threshold. There we
# compare the accuracy on ADD of every condition, as a mean over seeds with a Student-t 95% CI
# (`experiments.seed_mean_ci`; with 2 seeds that interval is wide, and with 1 seed there is
# none — honest about how little a few seeds say). Fine-tuning after joint training is compared
# with the joint model it started from *seed by seed* (the same seed is the same model before
# and after), so its CI is that of the per-seed change.

# %%
chosen, at_width = {}, {}
for n in moduli:
    t_scratch = transitions[n][labels["scratch"]]
    threshold = t_scratch.threshold if t_scratch is not None else level
    w = width or experiments.largest_failing_width(records["scratch"], ops=(target,), op=target, size=n,
                                                   threshold=threshold)
    chosen[n] = w
    if w is None:
        print(f"mod {n}: {target} from scratch reaches {threshold:.2f} at every width: no width below its transition")
        continue
    why = "given" if width else f"largest width where {target} from scratch stays below {threshold:.2f}"
    at_width[n] = {c: experiments.accuracy_by_seed(records[c], ops=m, op=target, size=n, width=w)
                   for c, m in mix_of.items()}
    rows = [[labels[c], len(acc), experiments.fmt_mean_ci(experiments.seed_mean_ci(list(acc.values()), clip=(0, 1)))]
            for c, acc in at_width[n].items()]
    print(f"mod {n}, width {w} ({why}): {target} accuracy, mean over seeds [95% CI]")
    print(tables.format_table(["condition", "seeds", f"{target} accuracy"], rows))

# %% [markdown]
# ## Forgetting: can the continual model still do MAX and MED?
#
# After pretraining on MAX+MED and then training on ADD only, we evaluate the model on the
# MAX+MED test set again, next to the pretrained model itself.

# %%
for n in moduli:
    pre_n = [s for s in conditions["pretrain"] if s.task.modulus == n]
    tra_n = [s for s in conditions["transfer"] if s.task.modulus == n]
    pre_task = pre_n[0].task
    rows = []
    for w in sorted({s.arch.n_embed for s in tra_n}):
        before = experiments.evaluate_on(results, [s for s in pre_n if s.arch.n_embed == w], pre_task)
        after = experiments.evaluate_on(results, [s for s in tra_n if s.arch.n_embed == w], pre_task)
        mean = lambda rs: sum(r["gen_acc"] for r in rs) / len(rs)  # noqa: E731
        rows.append([w, f"{mean(before):.3f}", f"{mean(after):.3f}"])
    print(f"mod {n}: accuracy on {'+'.join(pretrain)} (mean over seeds)")
    print(tables.format_table(["width", "after pretraining", f"after then training {target}"], rows))

# %% [markdown]
# ## Scorecard rows
#
# * **Transfer** (paper A: ~7× smaller): the reduction factor from scratch ÷ after pretraining,
#   judged by the rule of notebook 03 (`scorecard.verdict_benefit`), and whether paper A's 7×
#   lies in our CI (`scorecard.magnitude_check`).
# * **Transfer at one width**: the pretrained model's ADD accuracy lies above the from-scratch
#   model's, CI against CI (`scorecard.verdict_greater`; overlapping CIs are inconclusive).
# * **Extensions** (`jointtask_lib/sections/extra.py`, scored apart): transfer against a
#   *compute-matched* from-scratch model, and transfer at the smallest trained width.
# * **Continual vs joint** (reviewers' request; the paper gives no number for it): the continual
#   presentation lowers ADD's transition below the joint one's.
# * **Fine-tuning on ADD after joint training** (reviewers' request; no paper number): it
#   *improves* the joint model's ADD accuracy at the chosen width when the CI of the per-seed
#   change lies above 0; *not reproduced* (ADD accuracy lost) when below 0; otherwise
#   inconclusive ("no detectable change": with few seeds that is not proof the skill was kept).

# %%
from jointtask_lib.sections import transfer as section

rows = section.claims(moduli=moduli, reductions=reductions, chosen=chosen, at_width=at_width, labels=labels,
                      pretrain=pretrain, target=target, joint_mix=joint_mix, width_given=bool(width), preset=sw.preset,
                      records=records, mix_of=mix_of, level=level)
scorecard.write_claims(results, section.NOTEBOOK, rows)
for r in rows:
    print(f"{r['verdict']:>15}  {r['id']}: {r['ours']}")

# %% [markdown]
# ## Explore (interactive)
#
# With `interactive = True` (in Jupyter, not under papermill) pick a modulus and a training
# history and look at its curve alone.

# %%
if interactive:
    from IPython.display import display

    display(plots.curve_explorer({f"mod {n}": (points[n], transitions[n]) for n in moduli}, level=level))

# %% [markdown] tags=["exercise"]
# ## Exercises
#
# **Exercise 1 (★, 5 min).** Which width was compared "below ADD's own transition", and how
# accurate was ADD there after each training history (mean over seeds with its CI)?

# %% tags=["solution"]
from jointtask_lib import course

for n, acc in at_width.items():
    print(f"mod {n}, width {chosen[n]}:")
    for c, by_seed in acc.items():
        print(f"  {labels[c]:>24}: {experiments.fmt_mean_ci(experiments.seed_mean_ci(list(by_seed.values()), clip=(0, 1)))}")

# %% [markdown] tags=["exercise"]
# **Exercise 2 (★★, 10 min).** Paper A reports that pretraining on MAX+MED lets ADD be learned at
# a much smaller size. Is the paper's factor inside the CI of our transfer factor
# (`scorecard.magnitude_check`)? What is the verdict, and what would a wider width grid change?

# %% tags=["solution"]
paper_value, paper_factor = experiments.PAPER_A["transfer"]
for n in moduli:
    red = reductions[n][labels["transfer"]]
    print(f"mod {n}: ours {red.describe() if red is not None else 'no estimate'}; paper {paper_value}; "
          f"{scorecard.magnitude_check(red, paper_factor)[1]}; verdict {scorecard.verdict_benefit(red)}")

# %% [markdown]
# ## What we saw
#
# Read from this run's reduction factors, the compared width and the claims it wrote:

# %%
from jointtask_lib import course  # also imported by the solutions, which students do not have

course.what_we_saw("04_transfer", results, preset=sw.preset, facts=[
    *[line for n in moduli for line in course.reduction_facts(reductions[n], f"mod {n}")],
    *[f"mod {n}: compared width {w}" if w is not None else f"mod {n}: no width below {target}'s transition"
      for n, w in chosen.items()],
])

# %% [markdown]
# ## Try this
#
# 1. Set `width = 48` (paper A's width, in the `paper` preset's sweep). Is ADD from scratch
#    below its transition there in our runs, as it was in the paper's?
# 2. Pretrain on `["MAX"]` only, or on `["PROD"]`. Which pretraining transfers best to ADD?
# 3. Use `target = "NADD"`: does MAX+MED pretraining help the alternating sum too?
# 4. Train the pretraining runs longer than the ADD phase (edit the sweep's `train.steps`) and
#    look at how the forgetting table changes.
