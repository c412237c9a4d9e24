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
# # 00 · The reproduction scorecard
#
# Every other notebook tests claims of the two papers and writes its verdicts to
# `results/claims/<notebook>.json`. This notebook collects them into one table — the paper's
# value, ours (with its confidence interval and the preset it was measured at) and a verdict —
# and writes it as `results/SCORECARD.md`. `make reproduce` runs it last.
#
# **What you will learn**: how to read a reproduction honestly. *Reproduced* means our
# measurement supports the claim beyond its uncertainty; *not reproduced* means it contradicts
# it beyond its uncertainty; *inconclusive* means our scale or our number of seeds cannot decide.
# A claim that does not reproduce on a laptop is a result, not a failure of the notebook.

# %% [markdown]
# ## Parameters
#
# * `results_dir`: where the other notebooks wrote their claims (empty: `$JOINTTASK_RESULTS`, else
#   `results/`); `write_markdown`: also write `SCORECARD.md`.

# %% tags=["parameters"]
results_dir = ""
write_markdown = True

# %%
# NBVAL_CHECK_OUTPUT
from IPython.display import Markdown, display

from jointtask_lib import paths, scorecard
from jointtask_lib.notebook import check_parameters

check_parameters("00_scorecard", globals())  # every parameter, by the rules presets obey
results = paths.results_dir(results_dir)
print("verdicts:", ", ".join(scorecard.VERDICTS))

# %% [markdown]
# ## The rules behind the verdicts
#
# The verdicts are computed by functions in `jointtask_lib/scorecard.py`, never by hand. Most of
# paper A's claims are about a **reduction factor** (the transition of a task alone ÷ its
# transition when trained jointly). All of them are judged by **one rule**, `classify_factor`:
# take the range the factor is known to lie in — its 95% CI, or, when one of the two transitions
# is only a bound, the range that bound leaves open (`> 4` is everything above 4) — then
#
# * **benefit** if the whole range lies above 1;
# * **no benefit** if not that, and the whole range lies below 1.5 (the data rule out a benefit
#   of 1.5× or more — a wide CI around 1 is *not* evidence of no benefit);
# * **undecided** otherwise.
#
# A claim "joint training helps" is *reproduced* on a benefit, *not reproduced* on no benefit; a
# control "this pairing does not help" the other way round; undecided is *inconclusive* for
# both. One CI can therefore never confirm both kinds of claim, and a CI that only touches a
# threshold decides nothing (the comparisons are strict; ties are inconclusive).
#
# The verdict is about the **direction**. The paper's **number** (≈3.6×, 2–7×, ~7×) is checked
# separately (`magnitude_check`): the column *paper's number vs ours* says whether it lies in our
# CI (or is allowed by our bound), or whether ours is smaller or larger. A benefit can be
# reproduced and still be smaller than the paper's.

# %%
for rule in (scorecard.classify_factor, scorecard.verdict_benefit, scorecard.verdict_no_benefit,
             scorecard.magnitude_check, scorecard.verdict_greater, scorecard.verdict_sublinear):
    print(f"{rule.__name__}:\n    " + " ".join(rule.__doc__.split()) + "\n")

# %% [markdown]
# ## The scorecard-wide rules: level, multiplicity, power, extensions
#
# The factors behind those rules come from the **pooled transition model** (README,
# *Statistics*): all runs of both conditions in one logistic curve of log(parameters), learned =
# accuracy ≥ 0.8, with a lapse rate and a random shift per seed curve; its 95% CI is a
# profile-likelihood interval and its test a one-sided likelihood-ratio test. On top of each
# notebook's rule, the scorecard applies `apply_rules` to all rows together: every test is
# one-sided at α = 0.025; a test whose smallest attainable p exceeds α decides nothing; p-values
# are Holm-corrected within each family of claims; *not reproduced* needs a significant contrary
# test or a stated power of at least 0.8; and claims the papers do not make (`EXTENSIONS`) go to
# a separate table, not counted.

# %%
print(" ".join(scorecard.apply_rules.__doc__.split()))
print("\nextensions:")
for key, why in scorecard.EXTENSIONS.items():
    print(f"  {key}: {why}")

# %% [markdown]
# ## The scorecard

# %%
rows = scorecard.load_claims(results)
md = scorecard.render_markdown(rows)
if write_markdown:
    print("written:", scorecard.write_scorecard(results).name)
display(Markdown(md))

# %% [markdown]
# ## Try this
#
# 1. Run `make reproduce PRESET=paper` on a GPU and compare the two scorecards: which verdicts
#    change from *inconclusive* to *reproduced* or *not reproduced* with more widths and seeds?
# 2. Open one notebook's claims file (`results/claims/03_joint_training.json`) and trace a row back
#    to its runs in `results/runs/`: every number here comes from a run you can name.
# 3. Try the rule on made-up factors: build one with `jointtask_lib.transition.reduction_factor`
#    from two synthetic accuracy curves (see `tests/test_scorecard.py`) and see how
#    `scorecard.verdict_benefit` and `scorecard.magnitude_check` judge it as you move the joint
#    curve left or make it noisier.
