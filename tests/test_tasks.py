"""Task generators: every op against an independent definition, CoT traces, splits, vocabulary, CLI."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jointtask_lib.cli import main as cli_main
from jointtask_lib.data import Vocab, default_sizes, make_datasets
from jointtask_lib.tasks import TaskConfig, count_expressions, output_distribution, entropy_bits
from jointtask_lib.tasks.core import enumerate_expressions, random_tree
from jointtask_lib.tasks.permutations import perm_tables

# ----------------------------------------------------------------------------------------------
# Independent reference definitions (written from the spec, not from the library)
# ----------------------------------------------------------------------------------------------


def ref_listops(op, args, n, sigma=None, table=None):
    if op == "MAX":
        return max(args)
    if op == "MIN":
        return min(args)
    if op == "MED":
        return sorted(args)[(len(args) - 1) // 2]
    if op == "ADD":
        return sum(args) % n
    if op == "PROD":
        return int(np.prod([int(a) for a in args], dtype=object)) % n
    if op == "NADD":
        return (sum(args[0::2]) - sum(args[1::2])) % n
    if op == "SADD":
        inv = {s: i for i, s in enumerate(sigma)}
        return sigma[sum(inv[a] for a in args) % n]
    if op == "RTAB":
        v = args[0]
        for a in args[1:]:
            v = table[v][a]
        return v
    raise KeyError(op)


def compose(p, q):
    """(p ∘ q)(i) = p(q(i)), one-line notation tuples."""
    return tuple(p[q[i]] for i in range(len(p)))


def check_text(text: str, n: int, tables=None, cot: str = "reduce") -> int:
    """An independent checker of the text format: returns the answer, asserts every step.

    ``cot="reduce"``: every step must be the previous one with every innermost operation replaced
    by its value; ``cot="none"``: exactly the expression and the answer.
    """
    toks = text.split(" ")
    assert toks[-1] == "e" and toks.count("e") == 1
    steps = " ".join(toks[:-1]).split(" = ")
    assert len(steps) >= 2

    def parse(ts, i):
        if ts[i] != "(":
            v = int(ts[i])
            assert 0 <= v < n
            return v, i + 1
        op, i = ts[i + 1], i + 2
        args = []
        while ts[i] != ")":
            a, i = parse(ts, i)
            args.append(a)
        return (op, args), i + 1

    def ev(e):
        if isinstance(e, int):
            return e
        return ref_listops(e[0], [ev(a) for a in e[1]], n, **(tables or {}))

    def reduce(e):
        if isinstance(e, int):
            return e
        if all(isinstance(a, int) for a in e[1]):
            return ev(e)
        return (e[0], [reduce(a) for a in e[1]])

    parsed = []
    for s in steps:
        ts = s.split(" ")
        e, end = parse(ts, 0)
        assert end == len(ts)
        parsed.append(e)
    if cot == "reduce":
        for prev, nxt in zip(parsed, parsed[1:]):
            assert reduce(prev) == nxt, f"{prev} does not reduce to {nxt}"
    else:
        assert len(parsed) == 2, f"cot='none' must be 'expression = answer e'; got {len(parsed)} steps"
    assert isinstance(parsed[-1], int)
    assert ev(parsed[0]) == parsed[-1]
    return parsed[-1]


# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["MAX", "MIN", "MED", "ADD", "PROD", "NADD", "SADD", "RTAB"])
@pytest.mark.parametrize("n", [2, 7, 10, 12])
def test_each_op_matches_reference_exhaustively(op, n):
    task = TaskConfig(ops=(op,), modulus=n, depth=1, min_args=2, max_args=3, relabel_seed=3)
    d = task.domain()
    sigma = [int(x) for x in d.tables["sigma"]]
    table = d.tables["rtab"].tolist()
    for k in (1, 2, 3) if op != "RTAB" else (2, 3):
        for args in itertools.product(range(n), repeat=k):
            assert d.apply(op, args) == ref_listops(op, list(args), n, sigma, table), (op, args)


def test_sadd_is_isomorphic_to_add_and_rtab_is_commutative():
    d = TaskConfig(ops=("SADD",), modulus=10, relabel_seed=5).domain()
    sigma = d.tables["sigma"]
    assert sorted(sigma.tolist()) == list(range(10))
    assert sigma.tolist() != list(range(10))
    for a, b in itertools.product(range(10), repeat=2):
        assert d.apply("SADD", (sigma[a], sigma[b])) == sigma[(a + b) % 10]
        assert d.apply("RTAB", (a, b)) == d.apply("RTAB", (b, a))
    # a different relabel_seed gives a different relabelling
    d2 = TaskConfig(ops=("SADD",), modulus=10, relabel_seed=6).domain()
    assert d2.tables["sigma"].tolist() != sigma.tolist()


def test_example_from_issue_text():
    d = TaskConfig(ops=("ADD", "MAX"), modulus=10).domain()
    from jointtask_lib.tasks import example_tokens

    e = ("ADD", (3, ("MAX", (4, 9, 1)), 7))
    assert " ".join(example_tokens(e, d, "reduce")) == "( ADD 3 ( MAX 4 9 1 ) 7 ) = ( ADD 3 9 7 ) = 9 e"
    assert " ".join(example_tokens(e, d, "none")) == "( ADD 3 ( MAX 4 9 1 ) 7 ) = 9 e"


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 30),
    seed=st.integers(0, 10_000),
    depth=st.integers(1, 4),
    ops=st.lists(st.sampled_from(["MAX", "MIN", "MED", "ADD", "PROD", "NADD", "SADD", "RTAB"]),
                 min_size=1, max_size=4, unique=True),
    mixing=st.sampled_from(["expression", "node"]),
)
def test_random_examples_pass_independent_checker(n, seed, depth, ops, mixing):
    task = TaskConfig(ops=tuple(ops), modulus=n, depth=depth, mixing=mixing, relabel_seed=seed % 7)
    d = task.domain()
    tables = {"sigma": d.tables["sigma"].tolist(), "table": d.tables["rtab"].tolist()}
    rng = np.random.default_rng(seed)
    from jointtask_lib.tasks import example_tokens, evaluate

    for _ in range(5):
        e = random_tree(task.spec(), d, rng)
        text = " ".join(example_tokens(e, d, "reduce"))
        assert check_text(text, n, tables) == evaluate(e, d)
        if mixing == "expression":
            assert len(set(t for t in text.split() if t.isupper() and t != "e")) == 1


def test_cli_2000_examples_accepted_by_independent_evaluator(capsys):
    rc = cli_main(["data", "--ops", "ADD,MAX,MED,PROD,NADD,MIN", "--modulus", "10", "--n", "2000",
                   "--format", "jsonl"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().split("\n")
    assert len(lines) == 2000
    seen_ops = set()
    for line in lines:
        rec = json.loads(line)
        assert rec["modulus"] == 10
        assert check_text(rec["text"], 10) == int(rec["answer"])
        assert rec["text"].split(" = ")[-1] == f"{rec['answer']} e"
        seen_ops.update(rec["ops"])
    assert seen_ops == {"ADD", "MAX", "MED", "PROD", "NADD", "MIN"}


def test_splits_disjoint_deterministic_and_sized():
    for sampling in ("iid", "unique"):
        task = TaskConfig(ops=("ADD", "MAX"), modulus=7, depth=2, sampling=sampling)
        tr, te = make_datasets(task, n_train=3000, n_test=500, seed=4)
        assert len(tr) == 3000 and len(te) == 500
        assert not set(tr.exprs) & set(te.exprs)
        if sampling == "unique":
            assert len(set(tr.exprs)) == 3000 and len(set(te.exprs)) == 500
        tr2, te2 = make_datasets(task, n_train=3000, n_test=500, seed=4)
        assert tr2.texts() == tr.texts() and te2.texts() == te.texts()
        tr3, _ = make_datasets(task, n_train=3000, n_test=500, seed=5)
        assert tr3.texts() != tr.texts()
        # The test split does not depend on the train size (the CLI's --split test relies on it).
        _, te4 = make_datasets(task, n_train=10, n_test=500, seed=4)
        assert te4.texts() == te.texts()


def _flat_share(exprs) -> float:
    return float(np.mean([all(isinstance(a, int) for a in e[1]) for e in exprs]))


def test_iid_splits_follow_the_generator_on_a_small_support():
    # 2-argument, depth-2 ADD mod 10: 12,100 distinct expressions, 100 of them flat; the generator
    # (p_nest = 0.5) makes a flat one with probability (1 - 0.5)^2 = 0.25.  Every split must show
    # that share, although training takes almost as many draws as there are expressions.
    task = TaskConfig(ops=("ADD",), modulus=10, depth=2, min_args=2, max_args=2)
    assert count_expressions(task.spec(), task.domain()) == 110 ** 2
    tr, te = make_datasets(task, n_train=12_000, n_test=2_000, seed=0)
    from jointtask_lib.data import make_validation

    va = make_validation(task, 2_000, seed=0)
    for split, tol in ((tr, 0.02), (te, 0.04), (va, 0.04)):
        assert abs(_flat_share(split.exprs) - 0.25) < tol
    # ... while distinct sampling of a small support is uniform over it (100 / 12,100 flat).
    tr_u, te_u = make_datasets(TaskConfig(ops=("ADD",), modulus=10, depth=2, min_args=2, max_args=2,
                                          sampling="unique"), seed=0)
    assert _flat_share(tr_u.exprs) < 0.02 and _flat_share(te_u.exprs) < 0.02
    # train / validation / test are disjoint at the expression level
    s_tr, s_te, s_va = set(tr.exprs), set(te.exprs), set(va.exprs)
    assert not (s_tr & s_te) and not (s_tr & s_va) and not (s_te & s_va)


def test_held_out_expressions_are_the_same_for_every_mix_and_size():
    """An expression's split depends only on the expression and the seed: an ADD expression held
    out from an ADD model is held out from an ADD+MAX+MED model too (no leakage in transfer)."""
    from jointtask_lib.tasks import split_u

    add = TaskConfig(ops=("ADD",), modulus=10, depth=2, min_args=2, max_args=2, op_args={"MED": 3})
    mix = add.with_ops(("ADD", "MAX", "MED"))
    tr_a, te_a = make_datasets(add, n_train=3000, n_test=500, seed=3)
    tr_m, te_m = make_datasets(mix, n_train=6000, n_test=900, seed=3)
    test_add = {e for e in te_a.exprs} | {e for e in te_m.exprs if e[0] == "ADD"}
    train_add = {e for e in tr_a.exprs} | {e for e in tr_m.exprs if e[0] == "ADD"}
    assert test_add and train_add and not (test_add & train_add)
    assert all(split_u(e, 3) < add.test_frac for e in test_add)
    assert all(split_u(e, 3) >= add.test_frac + add.val_frac for e in train_add)
    # the rule is a fixed hash: the same expression and seed always land in the same place
    e = ("ADD", (("ADD", (7, 4)), 1))
    assert split_u(e, 3) == split_u(("ADD", (("ADD", (7, 4)), 1)), 3) and split_u(e, 3) != split_u(e, 4)


def test_iid_split_with_almost_nothing_held_out_is_rejected():
    task = TaskConfig(ops=("ADD",), modulus=2, depth=1, min_args=2, max_args=2, test_frac=1e-9)
    with pytest.raises(ValueError, match="'n_test'.*test_frac"):
        make_datasets(task, n_train=10, n_test=5, seed=0)
    with pytest.raises(ValueError, match="'test_frac' \\+ 'val_frac' must be below 1"):
        TaskConfig(test_frac=0.9, val_frac=0.2)
    with pytest.raises(ValueError, match="'sampling' must be one of iid, unique"):
        TaskConfig(sampling="random")


def test_tensors_are_consistent_with_texts():
    task = TaskConfig(ops=("PROD", "MIN"), modulus=9, depth=2)
    tr, _ = make_datasets(task, n_train=200, n_test=50, seed=1)
    v = tr.vocab
    for i in range(len(tr)):
        toks = tr.texts([i])[0].split(" ")
        assert int(tr.lengths[i]) == len(toks)
        assert toks[int(tr.prompt_len[i]) - 1] == "=" and "=" not in toks[: int(tr.prompt_len[i]) - 1]
        assert v.tokens[int(tr.answer[i])] == toks[-2]
        assert task.ops[int(tr.task_id[i])] in toks
        assert (tr.tokens[i, int(tr.lengths[i]):] == v.pad_id).all()


def test_whole_support_enumerated_for_tiny_tasks():
    task = TaskConfig(ops=("ADD",), modulus=3, depth=1, min_args=2, max_args=2, sampling="unique")
    assert count_expressions(task.spec(), task.domain()) == 9
    tr, te = make_datasets(task, n_train=7, n_test=2, seed=0)
    assert sorted(tr.exprs + te.exprs) == sorted(enumerate_expressions(task.spec(), task.domain()))
    with pytest.raises(ValueError, match="'n' = 8 .* only 7 exist"):
        make_datasets(task, n_train=8, n_test=2, seed=0)


def test_count_matches_enumeration():
    for depth, p_nest in [(1, 0.5), (2, 0.5), (2, 1.0), (2, 0.0)]:
        task = TaskConfig(ops=("ADD", "MAX"), modulus=2, depth=depth, min_args=2, max_args=2, p_nest=p_nest)
        exprs = list(enumerate_expressions(task.spec(), task.domain()))
        assert len(exprs) == len(set(exprs)) == count_expressions(task.spec(), task.domain())


def test_default_sizes_linear_in_modulus():
    a = default_sizes(TaskConfig(ops=("ADD",), modulus=10))
    b = default_sizes(TaskConfig(ops=("ADD",), modulus=20))
    assert b[0] == 2 * a[0] and b[1] == 2 * a[1]


def test_vocab_shared_round_trip_and_padding():
    v1 = Vocab.for_task(TaskConfig(ops=("ADD",), modulus=10))
    v2 = Vocab.for_task(TaskConfig(ops=("MAX", "MED"), modulus=10))
    assert v1 == v2
    text = "( ADD 3 ( MAX 4 9 1 ) 7 ) = ( ADD 3 9 7 ) = 9 e"
    assert v1.decode(v1.encode(text)) == text
    batch = v1.pad_batch([v1.encode("( ADD 1 2 ) = 3 e"), v1.encode("1")])
    assert batch.shape == (2, 8) and int(batch[1, 1]) == v1.pad_id
    assert v1.decode(batch[1]) == "1"
    with pytest.raises(ValueError, match="'text' contains the token 'FOO'"):
        v1.encode("( FOO 1 2 )")
    assert Vocab.for_task(TaskConfig(ops=("ADD",), modulus=11)) != v1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ops=("FOO",)), r"'ops' must be one of MAX, MIN, MED, ADD"),
        (dict(ops=()), r"'ops' must name at least one operation"),
        (dict(modulus=1), r"'modulus' must be an integer from 2"),
        (dict(depth=0), r"'depth' must be an integer from 1"),
        (dict(min_args=1, max_args=3, ops=("RTAB",)), r"out of range for RTAB, which takes 2..8"),
        (dict(max_args=9), r"out of range for ADD"),
        (dict(max_args=1), r"'max_args' must be an integer >= 2"),
        (dict(cot="full"), r"'cot' must be one of reduce, none"),
        (dict(p_nest=1.5), r"'p_nest' must be in \[0.0, 1.0\]"),
        (dict(family="group"), r"'family' must be one of listops, perm"),
        (dict(ops=("ADD", "MAX"), weights=(1.0,)), r"'weights' must have one entry per op"),
        (dict(family="perm", ops=("CMUL",), mixing="node"), r"'mixing' must be 'expression'"),
    ],
)
def test_bad_task_config_names_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TaskConfig(**kwargs)


def test_cli_bad_input_exits_nonzero_and_lists_ops():
    r = subprocess.run([sys.executable, "-m", "jointtask_lib.cli", "data", "--ops", "FOO"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "MAX, MIN, MED, ADD, PROD, NADD, SADD, RTAB" in r.stderr and r.stdout == ""
    r = subprocess.run([sys.executable, "-m", "jointtask_lib.cli", "data", "--modulus", "1"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "'modulus'" in r.stderr
    r = subprocess.run([sys.executable, "-m", "jointtask_lib.cli", "data", "--depth", "2", "--sampling", "unique",
                        "--modulus", "2", "--max-args", "2", "--n", "100000"], capture_output=True, text=True)
    assert r.returncode != 0 and "distinct expressions" in r.stderr and r.stdout == ""
    r = subprocess.run([sys.executable, "-m", "jointtask_lib.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "data" in r.stdout


# ----------------------------------------------------------------------------------------------
# Permutations
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [3, 4])
def test_permutation_ops_against_reference(k):
    task = TaskConfig(family="perm", ops=("PMUL",), perm_k=k)
    d = task.domain()
    perms = list(itertools.permutations(range(k)))
    assert d.value_tokens[1] == "p" + "".join(map(str, perms[1]))
    rng = np.random.default_rng(0)
    ident = tuple(range(k))
    for _ in range(200):
        idx = tuple(int(i) for i in rng.integers(len(perms), size=3))
        ps = [perms[i] for i in idx]
        prod = compose(compose(ps[0], ps[1]), ps[2])
        assert perms[d.apply("PMUL", idx)] == prod
        # sign: parity via inversion count (independent of the library's cycle method)
        inv = sum(1 for i in range(k) for j in range(i + 1, k) if prod[i] > prod[j])
        expect = ident if inv % 2 == 0 else tuple([1, 0] + list(range(2, k)))
        assert perms[d.apply("SGN", idx)] == expect
        assert d.apply("PMAX", idx) == max(idx)


def test_subgroups_are_closed_and_right_size():
    for k in (3, 4, 5):
        t = perm_tables(k)
        import math

        assert len(t["cyclic"]) == k
        assert len(t["alternating"]) == math.factorial(k) // 2
        for sub in ("cyclic", "alternating"):
            s = set(t[sub])
            assert all(int(t["mul"][a, b]) in s for a in s for b in s)
    task = TaskConfig(family="perm", ops=("CMUL", "AMUL"), perm_k=4)
    tr, _ = make_datasets(task, n_train=300, n_test=50)
    t = perm_tables(4)
    for e in tr.exprs:
        leaves = [a for a in e[1] if isinstance(a, int)]
        allowed = set(t["cyclic"] if e[0] == "CMUL" else t["alternating"])
        assert set(leaves) <= allowed


def test_output_distribution_and_entropy():
    d10 = TaskConfig(ops=("ADD",), modulus=10).domain()
    p_add = output_distribution(d10, "ADD", arities=(2,))
    assert np.allclose(p_add, 0.1)
    assert entropy_bits(p_add) == pytest.approx(np.log2(10))
    p_max = output_distribution(d10, "MAX", arities=(2,))
    assert np.allclose(p_max, [(2 * v + 1) / 100 for v in range(10)])
    # PROD mod a prime: 0 has mass 1 - (1 - 1/p)^2; mod a composite it has more
    d7 = TaskConfig(ops=("PROD",), modulus=7).domain()
    assert output_distribution(d7, "PROD", arities=(2,))[0] == pytest.approx(13 / 49)
    d8 = TaskConfig(ops=("PROD",), modulus=8).domain()
    brute = np.zeros(8)
    for a, b in itertools.product(range(8), repeat=2):
        brute[(a * b) % 8] += 1
    assert np.allclose(output_distribution(d8, "PROD", arities=(2,)), brute / 64)
