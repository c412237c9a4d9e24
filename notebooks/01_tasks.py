# %% [markdown]
# # 01 · The tasks: nested arithmetic mod n, and products of permutations
#
# Paper A (Both et al. 2025, *Small Models, Smarter Learning: The Power of Joint Task Training*)
# trains small transformers on **nested ListOps expressions** such as `( ADD 3 ( MAX 4 9 1 ) 7 )`,
# evaluated **mod n**, and asks how training several operations *together* changes how much data
# a model needs before it suddenly "gets" an operation. Before any model is trained, this
# notebook looks closely at the data itself. No training happens here; it runs in seconds.
#
# **What you will learn**
#
# 1. Which operations exist (MAX, MIN, MED, ADD, PROD, NADD, SADD, RTAB) and exactly what each
#    one computes. The definitions come from one registry in the library, so what you read here
#    is the code the models are trained on.
# 2. What one training example looks like, including its **chain of thought (CoT)**: the
#    expression is simplified one layer at a time until only the answer is left.
# 3. How **structured** each operation's answers are. Some operations pile probability on a few
#    values (MAX, PROD); others spread it evenly (ADD). We measure this with the **entropy** of the
#    output distribution and see why PROD behaves differently mod a **prime** and mod a
#    **composite**.
# 4. The second testbed, **products of permutations** in the symmetric group S_k, and its helper
#    operations.
# 5. How many distinct expressions exist (far more than any dataset), how the train/test split
#    is made, and how text becomes the token ids a model sees.

# %% [markdown]
# ## Parameters
#
# The next cell holds every knob of this notebook, and nothing else. Change a value there and
# re-run the notebook, or run a preset from the command line
# (`jointtask notebooks --preset smoke|quick|paper --only 01`; the presets live in
# `params/01_tasks/`). The defaults are the `quick` preset.
#
# * `modulus`: the modulus used for examples, the small dataset and the vocabulary.
# * `moduli`: the moduli compared in the output-distribution figure; mixing primes (7, 11) and
#   composites (10, 12) shows the effect on PROD.
# * `ops`: the ListOps operations to look at; `perm_ops` and `perm_ks`: the same for S_k.
# * `depth`, `min_args`, `max_args`: the shape of random expressions (nesting depth, number of
#   arguments of each operation).
# * `n_examples`: examples printed per operation; `demo_train`, `demo_test`: sizes of the small
#   dataset built at the end; `seed`: makes every random draw repeatable.
# * `results_dir`: where figures go (empty: `$JOINTTASK_RESULTS`, else `results/`);
#   `save_figures`: write them as PNG; `interactive`: show a widget to explore (off when run
#   automatically).

# %% tags=["parameters"]
modulus = 10
moduli = [7, 10, 11, 12]
ops = ["MAX", "MIN", "MED", "ADD", "PROD", "NADD", "SADD", "RTAB"]
perm_ops = ["PMUL", "CMUL", "AMUL", "SGN", "PMAX"]
perm_ks = [3, 4]
depth = 3
min_args = 2
max_args = 3
n_examples = 2
demo_train = 200
demo_test = 50
seed = 0
results_dir = ""
save_figures = True
interactive = False

# %% [markdown]
# ## Checking the parameters
#
# Every parameter is checked *before* anything is computed. The task descriptions are built as
# `TaskConfig` objects, which reject unknown operations, impossible moduli, and so on, with a
# message naming the offending field. Try `ops = ["ADD", "SUB"]` to see one.

# %%
from jointtask_lib import paths, plots, tables
from jointtask_lib.tasks import TaskConfig
from jointtask_lib.notebook import check_parameters

check_parameters("01_tasks", globals())  # every parameter, by the rules presets obey

shape = dict(depth=depth, min_args=min_args, max_args=max_args)
task = TaskConfig(ops=tuple(ops), modulus=modulus, **shape)  # the task mix of the examples
tasks_by_modulus = [TaskConfig(ops=tuple(ops), modulus=n, **shape) for n in moduli]
perm_tasks = [TaskConfig(family="perm", ops=tuple(perm_ops), perm_k=k, **shape) for k in perm_ks]
results = paths.results_dir(results_dir)
print(f"{len(task.ops)} ListOps operations, moduli {list(moduli)}; "
      f"{len(perm_ops)} permutation operations, S_k for k in {list(perm_ks)}")

# %% [markdown]
# ## 1. The operations
#
# Each operation takes a list of values `0 .. n-1` and returns one value. The table is printed
# straight from the library's registry (`jointtask_lib/tasks/listops.py`); adding an operation
# there adds it everywhere. In words:
#
# * **MAX**, **MIN**: the largest and the smallest argument.
# * **MED**: the lower median, `sorted(args)[(k-1)//2]` for k arguments (for two arguments this
#   is the smaller one).
# * **ADD**: the sum mod n. **PROD**: the product mod n.
# * **NADD**: the alternating sum `a1 - a2 + a3 - ...` mod n (paper A's "alternating-sign ADD").
# * **SADD**: ADD seen through a fixed random relabelling σ of the values:
#   `SADD(a, b) = σ(σ⁻¹(a) + σ⁻¹(b))`. It has exactly the algebra of ADD, but its labels no longer
#   line up with the order that MAX, MIN and MED use: a control for "is it the arithmetic or the
#   shared order that helps?".
# * **RTAB**: a fixed random commutative table `T`, folded left: `RTAB(a, b, c) = T[T[a, b], c]`.
#   It has no structure at all, and is the hardest case to learn.
#
# "operands: all" means the arguments may be any value.

# %%
# NBVAL_CHECK_OUTPUT
print(tables.op_table("listops", ops))

# %% [markdown]
# ## 2. Examples, with their chain of thought
#
# An example is a line of text. The expression comes first. Then, after each `=`, the same
# expression with **every innermost operation** (one whose arguments are all plain values)
# replaced by its value, until only the answer is left. The end marker is `e`. A model sees the
# expression, and learns to write the steps and the answer itself. This is the chain of thought
# (`cot="reduce"`; with `cot="none"` only the answer follows the `=`).
#
# Random expressions are grown from the top: each argument of an operation is, with probability
# `p_nest` (0.5), itself a nested operation, as long as the depth allows; otherwise it is a random
# value. In a task mix, each example uses **one** operation at every node, so it belongs to
# exactly one task. Below, each example is printed with one CoT step per line (the real text is
# a single line).

# %%
# NBVAL_CHECK_OUTPUT
print(tables.example_lines(task, n_examples, seed))

# %% [markdown]
# Check one by hand: in the ADD example, add up each innermost bracket mod n and compare with
# the next line. The last step always gives the answer.

# %% [markdown]
# ## 3. How structured is each operation? Output distributions
#
# Suppose an operation is applied once to random arguments, each drawn uniformly from
# `0 .. n-1` (two or three arguments, equally often). How often does each result come out?
# This is the operation's **output distribution**. It is computed exactly, by going through every
# possible argument list.
#
# * **MAX** favours large values: the maximum of three uniform draws is rarely 0. **MIN** is its
#   mirror image. **MED** favours the middle.
# * **ADD**, **NADD** and **SADD** are exactly uniform: for any fixed first argument, adding
#   the second one hits every value once.
# * **PROD** has a spike at 0: any zero argument makes the product zero.
# * **RTAB** is roughly uniform, with random bumps.
#
# The figure has one row per operation and one column per modulus. The dashed line is the
# uniform distribution, and `H` is its entropy in bits (next section).

# %%
dists = tables.output_distributions(tasks_by_modulus)
fig = plots.plot_output_distributions(dists)
plots.show_figure(fig, "01_output_distributions", results, save=save_figures)

# %% [markdown]
# ### Entropy: one number for "how spread out"
#
# The entropy `H = -Σ p(v) log2 p(v)` is largest, `log2 n` bits, for the uniform distribution.
# The more probability is piled on a few values, the smaller it gets. The table gives `H` for
# every operation and modulus. The last row is the maximum, `log2 n`. Paper A links the
# difficulty of an operation to how unstructured its outputs are: ADD-like operations sit at the
# maximum, while MAX and MIN sit well below it.

# %%
# NBVAL_CHECK_OUTPUT
print(tables.entropy_table(dists))

# %% [markdown]
# Dividing by `log2 n` puts all moduli on one scale: 1 means uniform, lower means more
# structured. Some lines lie on top of each other: MAX and MIN have the same shape, and ADD,
# NADD and SADD are all exactly 1.

# %%
fig = plots.plot_normalised_entropy(dists)
plots.show_figure(fig, "01_normalised_entropy", results, save=save_figures)

# %% [markdown]
# ### Prime versus composite moduli: PROD
#
# PROD is the one operation whose shape depends on the *arithmetic* of n, not just its size.
# Mod a **prime**, every non-zero value has an inverse (it is a "unit"), so a product is 0 only
# when one argument is 0, and the other values come out equally often. Mod a **composite**, non-zero
# values can multiply to 0 (2 · 5 = 10 = 0 mod 10). Such zero divisors pile extra probability on 0
# and on the values that share a factor with n. So PROD is *more structured* (lower entropy) mod
# 10 or 12 than mod 7 or 11. `units` counts the invertible values (Euler's φ(n)).

# %%
# NBVAL_CHECK_OUTPUT
print(tables.prime_composite_table(dists, tasks_by_modulus) if "PROD" in task.ops
      else "PROD is not among the chosen ops")

# %% [markdown]
# ## 4. The second testbed: products of permutations in S_k
#
# Paper A repeats its experiments with a harder algebra: the **symmetric group S_k**, all
# k! ways to reorder `0 .. k-1`. Each permutation is one token, in one-line notation: `p120`
# maps 0→1, 1→2, 2→0. The main task, **PMUL**, is the product (composition) of permutations,
# applying the *rightmost* first: `( PMUL p q )` is `i ↦ p(q(i))`. Composition is not commutative,
# so the order of arguments matters, unlike in ADD.
#
# The helper operations make it possible to test which partner task helps PMUL most:
#
# * **CMUL**: the same product, but the arguments are drawn only from the **cyclic subgroup**
#   C_k, the rotations `i ↦ i + r mod k`. These commute, and C_k behaves just like ADD mod k.
# * **AMUL**: the same product, restricted to the **alternating group** A_k (the even
#   permutations).
# * **SGN**: only the sign (parity) of the product, written as a permutation: the identity if
#   the product is even, the swap `(0 1)` if it is odd. This is the simplest "summary" of PMUL.
# * **PMAX**: the lexicographically largest argument. It shares nothing with the product, like
#   MAX next to ADD.

# %%
# NBVAL_CHECK_OUTPUT
print(tables.op_table("perm", perm_ops))
print()
print(tables.perm_elements_table(perm_tasks[0]))

# %% [markdown]
# In S_3, the cyclic and the alternating subgroups coincide (both are the three even
# permutations); from S_4 on they differ (|C_4| = 4, |A_4| = 12). Examples look just like the
# ListOps ones:

# %%
# NBVAL_CHECK_OUTPUT
print(tables.example_lines(perm_tasks[0], n_examples, seed))

# %% [markdown]
# The output distributions of the permutation operations show the same kind of structure. PMUL
# is uniform over all k! values. CMUL and AMUL are uniform, but only over their subgroup. SGN has
# only two possible answers. PMAX is heavily skewed toward the last permutations.

# %%
perm_dists = tables.output_distributions(perm_tasks)
fig = plots.plot_output_distributions(perm_dists, title="Permutation operations: output distributions")
plots.show_figure(fig, "01_perm_output_distributions", results, save=save_figures)

# %%
# NBVAL_CHECK_OUTPUT
print(tables.entropy_table(perm_dists))

# %% [markdown]
# ## 5. How many expressions are there, and how big are the datasets?
#
# The generator can produce an astronomically large number of distinct expressions: this is
# its **support**, counted exactly by the library (`count_expressions`). With two or three
# arguments and depth 3, each argument of the root can itself be any of about a billion
# sub-expressions (mod 10). The datasets are tiny next to that: by default the training set
# grows linearly with the number of values (2000 examples per value), as in paper A, and the
# test set has 100 per value (at least 1000). `used` is the number of examples in the two
# splits divided by the support. So a model cannot memorise its way to a good test score; it has
# to learn the operation.

# %%
# NBVAL_CHECK_OUTPUT
print(tables.size_table(tasks_by_modulus + perm_tasks))

# %% [markdown]
# ### A real (small) dataset
#
# `make_datasets` first splits the *expressions* themselves: a seeded hash of each expression
# decides whether it is a test expression (a fraction `test_frac`, 20% by default), a validation
# expression (`val_frac`, 5%: what early stopping looks at) or a training expression. Then each
# split is filled with independent draws from the generator, keeping only the expressions of its
# part. Two consequences, both on purpose:
#
# * The splits never share an expression, by construction, and an expression's split does not
#   depend on the task mix: a held-out ADD expression is held out from an ADD-only model *and*
#   from an ADD+MAX+MED model with the same seed.
# * Every split follows the generator's distribution. When the support is small (2 arguments,
#   depth 2: only 12,100 ADD expressions mod 10), short expressions are rare among the distinct
#   expressions but frequent in the generator, so a split may repeat them — the model is trained
#   and tested on the same mix of easy and hard expressions. (Drawing *distinct* expressions,
#   `sampling="unique"`, would instead be uniform over the support: almost every training example
#   would be doubly nested, and a test set drawn another way would not match it.)
#
# Each example becomes a row of token ids, padded to a common length with `<pad>`. It also
# records:
#
# * `prompt_len`: the number of tokens up to the first `=`, which is what the model is given.
# * `answer`: the final value.
# * `task_id`: which operation of the mix the example uses.

# %%
# NBVAL_CHECK_OUTPUT
from jointtask_lib.data import Vocab, make_datasets

train, test = make_datasets(task, n_train=demo_train, n_test=demo_test, seed=seed)
print(tables.dataset_summary(train, test, n_show=2))

# %% [markdown]
# ## 6. The vocabulary
#
# A model reads token ids, not text. Each task family and size has **one** vocabulary: the
# special tokens `<pad> ( ) = e`, then the values, then *every* operation of the family, even
# those not in the current mix. So models trained on different mixes of the same modulus share
# token ids, and can be compared or transferred directly. Encoding and decoding are exact
# inverses:

# %%
# NBVAL_CHECK_OUTPUT
vocab = Vocab.for_task(task)
print(tables.vocab_text(vocab))
text = train.texts([0])[0]
assert vocab.decode(vocab.encode(text)) == text
print(f"\nround trip ok for: {text[:60]}{'...' if len(text) > 60 else ''}")
print()
print(tables.vocab_text(Vocab.for_task(perm_tasks[0])))

# %% [markdown]
# ## 7. Explore (interactive only)
#
# With `interactive = True`, this cell shows a small widget: pick an operation and a modulus and
# watch the output distribution change. It is skipped when the notebook runs automatically.

# %%
if interactive:
    import ipywidgets as widgets

    def _explore(op="PROD", n=modulus):
        d = tables.output_distributions([TaskConfig(ops=(op,), modulus=n, **shape)])
        plots.show_figure(plots.plot_output_distributions(d, title=f"{op} mod {n}"), "explore",
                          results, save=False)
        print(tables.entropy_table(d))

    widgets.interact(_explore, op=list(task.ops), n=widgets.IntSlider(value=modulus, min=2, max=60))

# %% [markdown]
# ## What we saw
#
# * Eight ListOps operations and five permutation operations, each defined once in a registry.
# * Every example carries a chain of thought that reduces the innermost brackets one step at a
#   time.
# * The operations differ sharply in how structured their outputs are: MAX, MIN and PROD are
#   peaked, ADD-like operations are uniform. For PROD the shape depends on whether n is prime.
# * The space of expressions is astronomically larger than any dataset, and the train and test
#   splits are disjoint by construction.
#
# The figures were written to `<results>/figures/` (when `save_figures` is on):

# %%
if save_figures:
    print(sorted(p.name for p in paths.figures_dir(results).glob("01_*.png")))

# %% [markdown]
# What *this* run showed, read from the distributions and datasets computed above (so it is right
# for whatever preset ran):

# %%
from jointtask_lib import course
from jointtask_lib.tasks import count_expressions

course.what_we_saw("01_tasks", results, facts=[
    *course.entropy_facts(dists), *course.entropy_facts(perm_dists),
    f"support of the {tables.task_label(task)} mix: {tables.sci(count_expressions(task.spec(), task.domain()))} "
    f"expressions; the demo dataset uses {len(train)} + {len(test)} of them",
])

# %% [markdown] tags=["exercise"]
# ## Exercises
#
# **Exercise 1 (★, 5 min).** From the entropy table: which operation has the most peaked output
# distribution at each modulus, and which operations are exactly uniform? Order the operations of
# the smallest modulus from most peaked to uniform.

# %% tags=["solution"]
for label, h in course.normalised_entropies(dists).items():
    print(label, " < ".join(f"{op} {v:.3f}" for op, v in sorted(h.items(), key=lambda kv: kv[1])))

# %% [markdown] tags=["exercise"]
# **Exercise 2 (★★, 10 min).** How often does PROD output 0 at each modulus? For a **prime** n a
# product is 0 only when one argument is 0, so with k uniform arguments P(0) = 1 − ((n−1)/n)^k
# (averaged over the argument counts `min_args..max_args`). Compare that formula with the
# distributions above. Which moduli have *more* zeros than the formula, and why?

# %% tags=["solution"]
if "PROD" in task.ops:
    ks = range(min_args, max_args + 1)
    for t in tasks_by_modulus:
        p0 = dists[("PROD", tables.task_label(t))][0]
        prime_rule = sum(1 - ((t.modulus - 1) / t.modulus) ** k for k in ks) / len(ks)
        print(f"{tables.task_label(t)}: P(PROD = 0) = {p0:.3f}; if only 0 gave 0: {prime_rule:.3f}")

# %% [markdown] tags=["exercise"]
# **Exercise 3 (★★★, 15 min).** How many times larger is the support (the number of distinct
# expressions) when `depth` grows by one? Use `count_expressions` on `task` and on a copy with a
# larger depth (`TaskConfig.from_dict`), and explain the growth from the way trees are built.

# %% tags=["solution"]
deeper = TaskConfig.from_dict({**task.to_dict(), "depth": depth + 1})
small, big = (count_expressions(t.spec(), t.domain()) for t in (task, deeper))
print(f"depth {depth}: {tables.sci(small)}; depth {depth + 1}: {tables.sci(big)}; ratio {big / small:.3g}")

# %% [markdown]
# ## Try this
#
# 1. Add `13`, `16` and `30` to `moduli`. Which modulus gives PROD its lowest entropy? Can you
#    predict it from the number of units φ(n)?
# 2. Set `max_args = 5`. How do the distributions of MAX and MED change? Why does ADD stay uniform?
# 3. Replace `ops` with `["ADD", "SUB"]` and read the error message. Then look up how an
#    operation is added in `jointtask_lib/tasks/listops.py`.
# 4. Set `perm_ks = [4]` and compare the entropies of CMUL and AMUL. Which subgroup is larger?
# 5. Raise `depth` to 5 and look at the `support` column. Roughly how many times bigger does the
#    support get?
# 6. In the `[SADD]` example, use the relabelling to check one step by hand. Hint: in a notebook
#    cell, `task.domain().tables["sigma"]` is σ.
