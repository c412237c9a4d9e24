"""Plain-text tables used by the notebooks: content, determinism and errors."""

from __future__ import annotations

import math

import pytest

from jointtask_lib import tables
from jointtask_lib.data import Vocab, make_datasets
from jointtask_lib.tasks import TaskConfig, count_expressions
from jointtask_lib.tasks.core import evaluate

OPS = ("MAX", "MIN", "MED", "ADD", "PROD", "NADD", "SADD", "RTAB")


def test_format_table():
    t = tables.format_table(["a", "bb"], [["x", 1], ["yyy", 22]])
    assert t.splitlines() == ["a    bb", "---  --", "x     1", "yyy  22"]
    with pytest.raises(ValueError, match="'rows'"):
        tables.format_table(["a"], [["x", 1]])
    with pytest.raises(ValueError, match="'align'"):
        tables.format_table(["a"], [["x"]], align="^")


def test_sci():
    assert tables.sci(999_999) == "999999"
    assert tables.sci(2_565_000_000) == "2.565e+09"


def test_op_table_lists_registry():
    t = tables.op_table("listops")
    for op in OPS:
        assert f"\n{op} " in t
    assert "subset" in tables.op_table("perm", ["CMUL"])
    with pytest.raises(ValueError, match="'family'"):
        tables.op_table("nope")
    with pytest.raises(ValueError, match="'ops'"):
        tables.op_table("listops", ["SUB"])


def test_examples_are_deterministic_and_correct():
    task = TaskConfig(ops=OPS, modulus=10)
    a = tables.example_lines(task, 2, seed=3)
    assert a == tables.example_lines(task, 2, seed=3)
    assert a != tables.example_lines(task, 2, seed=4)
    assert a.count("[ADD]") == 2 and a.count(" e") == 2 * len(OPS)
    expr = ("ADD", (3, ("MAX", (4, 9, 1)), 7))
    t = TaskConfig(ops=("ADD", "MAX"), modulus=10, mixing="node")
    text = tables.format_example(t, expr)
    assert text.splitlines() == ["( ADD 3 ( MAX 4 9 1 ) 7 )", "  = ( ADD 3 9 7 )", "  = 9 e"]
    assert evaluate(expr, t.domain()) == 9


def test_entropy_table_and_prime_composite():
    tasks = [TaskConfig(ops=("ADD", "PROD"), modulus=n) for n in (7, 10)]
    d = tables.output_distributions(tasks)
    t = tables.entropy_table(d)
    lines = {ln.split()[0]: ln.split()[1:] for ln in t.splitlines()[2:]}
    assert lines["ADD"] == [f"{math.log2(7):.3f}", f"{math.log2(10):.3f}"] == lines["uniform"]
    pc = tables.prime_composite_table(d, tasks).splitlines()
    assert pc[2].split()[:3] == ["mod", "7", "prime"] and pc[3].split()[2] == "composite"
    # mod a prime p, P(product = 0) = 1 - (1 - 1/p)^k, averaged over k = 2, 3
    p0 = ((1 - (6 / 7) ** 2) + (1 - (6 / 7) ** 3)) / 2
    assert f"{p0:.3f}" in pc[2]
    with pytest.raises(ValueError, match="no entry"):
        tables.prime_composite_table({}, tasks)


def test_size_table_counts():
    t = TaskConfig(ops=("ADD", "MAX"), modulus=5, depth=2)
    row = tables.size_table([t]).splitlines()[2].split()
    per_op = count_expressions(t.with_ops(["ADD"]).spec(), t.domain())
    assert row[:4] == ["mod", "5", "2", tables.sci(per_op)]
    assert row[4] == tables.sci(2 * per_op)


def test_perm_elements_table():
    t = TaskConfig(family="perm", ops=("PMUL",), perm_k=4)
    text = tables.perm_elements_table(t)
    assert text.startswith("S_4: 24 elements, |C_4| = 4, |A_4| = 12")
    assert text.count(" even ") == 12 and "identity" in text
    with pytest.raises(ValueError, match="'family'"):
        tables.perm_elements_table(TaskConfig())


def test_vocab_and_dataset_summary():
    task = TaskConfig(ops=("ADD", "MAX"), modulus=5)
    v = Vocab.for_task(task)
    text = tables.vocab_text(v, per_line=4)
    assert text.startswith(f"{len(v)} tokens\n") and "<pad>" in text
    train, test = make_datasets(task, n_train=20, n_test=5, seed=0)
    s = tables.dataset_summary(train, test, n_show=1)
    assert "train and test share 0 expressions" in s and "example 0:" in s and "example 1:" not in s


def test_transition_matrix():
    import numpy as np

    from jointtask_lib.transition import estimate_transition

    sizes = np.repeat(np.logspace(3, 5, 5), 2)
    seeds = np.tile([0, 1], 5)
    flat = estimate_transition(sizes, np.full(sizes.size, 0.1), seeds, chance=0.1, n_boot=20)
    t = tables.transition_matrix({10: {"ADD": flat, "MAX": None}, 20: {"ADD": flat}}, size_name="n")
    lines = t.splitlines()
    assert lines[0].split() == ["op", "n", "=", "10", "n", "=", "20"]
    assert lines[2].startswith("ADD") and lines[2].count("> 1.0e5 (largest tried)") == 2
    assert lines[3].split()[:2] == ["MAX", "n/a"] and lines[3].rstrip().endswith("n/a")
