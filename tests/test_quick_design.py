"""The quick design of issue 15: MED a true median (an arity per operation), per-run data seeds,
seed offsets, the data CLI on a sweep, compute-matched transfer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jointtask_lib import cli, experiments
from jointtask_lib.data import make_datasets, max_example_length
from jointtask_lib.sweep import SweepError, load_sweep, parse_sweep, per_run_data_seed
from jointtask_lib.tasks import TaskConfig, count_expressions
from jointtask_lib.tasks.core import enumerate_expressions
from jointtask_lib.train import RunSpec

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "params" / "sweeps"
LISTOPS_SWEEPS = ("single_task", "joint_training", "transfer", "controls", "prime_modulus")


# -- an arity per operation ---------------------------------------------------------------------


def _nodes(text_tokens):
    """(op, [argument tokens]) of every innermost node of one expression, parsed from the text."""
    out, stack = [], []
    for t in text_tokens:
        if t == "(":
            stack.append([])
        elif t == ")":
            node = stack.pop()
            out.append((node[0], node[1:]))
            if stack:
                stack[-1].append("#")  # a nested node stands in its parent's argument list
        elif stack:
            stack[-1].append(t)
    return out


def test_med_with_two_arguments_is_rejected_naming_the_field():
    with pytest.raises(ValueError, match="'min_args'/'max_args' = 2..2 for MED.*MIN"):
        TaskConfig(ops=("ADD", "MED"), min_args=2, max_args=2, depth=2)
    with pytest.raises(ValueError, match="'op_args' = 2..2 for MED"):
        TaskConfig(ops=("MED",), min_args=2, max_args=3, depth=2, op_args={"MED": 2})
    with pytest.raises(ValueError, match="'op_args' = 1..2 for MED"):
        TaskConfig(ops=("MED",), min_args=3, max_args=3, depth=2, op_args={"MED": [1, 2]})
    # 2..3 arguments: MED is the median on its 3-argument nodes (paper A's v1 shape): allowed.
    TaskConfig(ops=("MED",), min_args=2, max_args=3, depth=2)
    # MED outside the mix with 2 arguments says nothing about the mix.
    TaskConfig(ops=("ADD",), min_args=2, max_args=2, depth=2)


@pytest.mark.parametrize("bad, msg", [
    ({"NOPE": 3}, "'op_args' must be one of"),
    ({"MED": [3]}, "'op_args' values must be k or"),
    ({"MED": 0}, "'op_args' must be"),
    ({"MED": [4, 3]}, "'op_args' must be"),
    ({"MED": 9}, "out of range for MED"),
    ("MED=3", "'op_args' must be a mapping"),
])
def test_op_args_bad_values_are_rejected(bad, msg):
    with pytest.raises(ValueError, match=msg):
        TaskConfig(ops=("MED",), min_args=3, max_args=3, depth=2, op_args=bad)


def test_op_args_keys_and_round_trip():
    plain = TaskConfig(ops=("ADD",), min_args=2, max_args=2, depth=2)
    assert "op_args" not in plain.to_dict()  # run keys of tasks without it are unchanged
    # an entry equal to min_args..max_args says nothing and is dropped (same key as without it)
    same = TaskConfig(ops=("ADD",), min_args=2, max_args=2, depth=2, op_args={"ADD": 2})
    assert same == plain and RunSpec(task=same).key() == RunSpec(task=plain).key()
    t = TaskConfig(ops=("ADD", "MED"), min_args=2, max_args=2, depth=2, op_args={"MED": 3})
    assert t.to_dict()["op_args"] == {"MED": [3, 3]}
    assert TaskConfig.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    assert t.arity("MED") == (3, 3) and t.arity("ADD") == (2, 2)
    assert RunSpec(task=t).key() != RunSpec(task=t.with_ops(("ADD", "MAX"))).key()


def test_examples_follow_each_ops_arity_and_med_is_a_median():
    t = TaskConfig(ops=("ADD", "MAX", "MED"), min_args=2, max_args=2, depth=2, op_args={"MED": 3})
    train, test = make_datasets(t, 600, 200, seed=3)
    seen = set()
    for text in train.texts() + test.texts():
        toks = text.split(" ")
        expr_toks = toks[: toks.index("=")]
        for op, args in _nodes(expr_toks):
            seen.add(op)
            assert len(args) == (3 if op == "MED" else 2), text
    assert seen == {"ADD", "MAX", "MED"}
    # every example's length fits the context, which every mix with these settings shares
    assert int(train.lengths.max()) <= max_example_length(t)
    assert max_example_length(t.with_ops(("ADD",))) == max_example_length(t)


def test_counting_matches_enumeration_with_op_args():
    t = TaskConfig(ops=("ADD", "MED"), modulus=3, min_args=2, max_args=2, depth=2, op_args={"MED": [2, 3]})
    spec, dom = t.spec(), t.domain()
    exprs = list(enumerate_expressions(spec, dom))
    assert len(exprs) == len(set(exprs)) == count_expressions(spec, dom)
    assert {len(e[1]) for e in exprs if e[0] == "MED"} == {2, 3}
    assert {len(e[1]) for e in exprs if e[0] == "ADD"} == {2}


@pytest.mark.parametrize("name", LISTOPS_SWEEPS)
@pytest.mark.parametrize("preset", ["smoke", "quick"])
def test_listops_sweeps_give_med_three_arguments(name, preset):
    sw = load_sweep(SWEEPS / f"{name}.yaml", preset)
    for s in sw.specs:
        assert s.task.arity("MED") == (3, 3)
    # one context length for every mix of a sweep (transfer and stacking need one model shape)
    assert len({s.model_config().block_size for s in sw.specs}) == 1


def test_quick_med_differs_from_min_on_at_least_a_third(capsys):
    """At the quick preset, computed from the printed text alone (Python's sorted, not the
    library's MED): the answer of a MED example differs from MIN of its (evaluated) arguments."""
    assert cli.main(["data", "--sweep", str(SWEEPS / "joint_training.yaml"), "--preset", "quick",
                     "--ops", "MED", "--n", "300", "--format", "jsonl"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 300 and all(r["ops"] == ["MED"] for r in lines)
    differs = 0
    for r in lines:
        steps = r["text"].split(" = ")
        last = steps[-2].split(" ")  # the last step before the answer: ( MED a b c ) with values
        assert last[0] == "(" and last[1] == "MED" and last[-1] == ")", r["text"]
        vals = sorted(int(v) for v in last[2:-1])
        median = vals[(len(vals) - 1) // 2]
        assert int(r["answer"]) == median  # the answer is the true (lower) median
        differs += median != vals[0]
    assert differs / len(lines) >= 1 / 3


def test_data_cli_on_a_sweep_prints_the_runs_own_examples(capsys):
    sw = load_sweep(SWEEPS / "joint_training.yaml", "smoke")
    w, seed = sw.widths[1], sw.seeds[1]
    spec = next(s for s in sw.specs if s.task.ops == ("ADD", "MAX", "MED") and s.arch.n_embed == w
                and s.seed == seed)
    train, test = spec.data()
    argv = ["data", "--sweep", str(SWEEPS / "joint_training.yaml"), "--preset", "smoke", "--width", str(w),
            "--seed", str(seed), "--n", "5"]
    assert cli.main(argv + ["--ops", "ADD,MAX,MED"]) == 0
    assert capsys.readouterr().out.splitlines() == train.texts(range(5))
    assert cli.main(argv + ["--ops", "MED", "--split", "test"]) == 0
    med = [t for t, e in zip(test.texts(), test.exprs) if e[0] == "MED"][:5]
    assert capsys.readouterr().out.splitlines() == med
    assert cli.main(argv + ["--ops", "PMUL"]) == 2
    assert "in none of the mixes" in capsys.readouterr().err
    assert cli.main(["data", "--sweep", str(SWEEPS / "joint_training.yaml"), "--width", "7", "--ops", "ADD"]) == 2
    assert "'width' must be one of" in capsys.readouterr().err


def test_data_cli_op_args_flag(capsys):
    assert cli.main(["data", "--ops", "MED", "--depth", "1", "--min-args", "2", "--max-args", "2",
                     "--op-args", "MED=3", "--n", "4"]) == 0
    for line in capsys.readouterr().out.splitlines():
        assert len(line.split(" = ")[0].split(" ")) == 6  # ( MED a b c )
    assert cli.main(["data", "--ops", "MED", "--max-args", "2", "--n", "1"]) == 2
    assert "MED is MIN" in capsys.readouterr().err


# -- seeds ---------------------------------------------------------------------------------------

BASE = {"name": "t", "task": {"family": "listops", "depth": 2, "min_args": 2, "max_args": 2},
        "train": {"steps": 10}, "grid": {"mixes": [["ADD"], ["ADD", "MAX"]], "widths": [8, 12], "seeds": [0, 1]}}


def test_seed_offset_zero_is_the_sweep_as_written_and_100_gives_fresh_seeds():
    sw0 = parse_sweep(BASE)
    assert [s.key() for s in parse_sweep(BASE, seed_offset=0).specs] == [s.key() for s in sw0.specs]
    sw100 = parse_sweep(BASE, seed_offset=100)
    assert sw100.seeds == (100, 101) and {s.seed for s in sw100.specs} == {100, 101}
    assert not {s.key() for s in sw0.specs} & {s.key() for s in sw100.specs}
    with pytest.raises(SweepError, match="'seed_offset' must be"):
        parse_sweep(BASE, seed_offset=-1)
    # a real sweep file: offset 0 keeps every run key
    assert [s.key() for s in load_sweep(SWEEPS / "permutations.yaml", "smoke", 0).specs] == \
        [s.key() for s in load_sweep(SWEEPS / "permutations.yaml", "smoke").specs]


def test_per_run_data_seeds_are_independent_per_mix_seed_and_width():
    shared = parse_sweep(BASE)
    assert all(s.data_seed() == s.seed for s in shared.specs)
    per = parse_sweep(dict(BASE, data_seeds="per_run"))
    seeds = [s.data_seed() for s in per.specs]
    assert len(set(seeds)) == len(seeds) == 8
    for s in per.specs:
        assert s.train.data_seed == per_run_data_seed(s.task, s.seed, s.arch.n_embed)
    # the same mix, seed and width in another sweep file gets the same data seed (shared cache)
    other = parse_sweep(dict(BASE, name="u", data_seeds="per_run",
                             grid=dict(BASE["grid"], mixes=[["ADD"]], widths=[12])))
    by = {(s.task.ops, s.seed, s.arch.n_embed): s.key() for s in per.specs}
    assert all(by[(s.task.ops, s.seed, s.arch.n_embed)] == s.key() for s in other.specs)
    # training data really differ between widths of one seed
    a, b = (s for s in per.specs if s.task.ops == ("ADD",) and s.seed == 0)
    assert a.data()[0].texts(range(20)) != b.data()[0].texts(range(20))
    with pytest.raises(SweepError, match="'data_seeds' must be one of shared, per_run"):
        parse_sweep(dict(BASE, data_seeds="yes"))
    with pytest.raises(SweepError, match="'train.data_seed' must not be set"):
        parse_sweep(dict(BASE, data_seeds="per_run", train={"steps": 10, "data_seed": 3}))
    # also allowed inside a preset
    pre = parse_sweep(dict(BASE, presets={"quick": {"data_seeds": "per_run"}}), "quick")
    assert pre.data_seeds == "per_run"


def test_seed_offset_reaches_the_cli_and_the_notebook_rules(tmp_path, capsys):
    from jointtask_lib.notebook import rule_for

    assert rule_for("03_joint_training", "seed_offset") is not None
    nb_dir = ROOT / "notebooks"
    for stem in ("02_learning_transition", "03_joint_training", "04_transfer", "05_permutations",
                 "06_embeddings", "07_attention_vs_ffn", "08_output_structure"):
        src = (nb_dir / f"{stem}.py").read_text()
        assert "\nseed_offset = 0\n" in src, stem
        assert "seed_offset)" in src or "seed_offset=seed_offset" in src, stem


# -- transfer ------------------------------------------------------------------------------------


@pytest.mark.parametrize("per_run", [False, True])
def test_transfer_conditions_compute_matched_and_data_seeds(per_run):
    data = dict(BASE, grid=dict(BASE["grid"], mixes=[["ADD"]]),
                task=dict(BASE["task"], op_args={"MED": 3}), **({"data_seeds": "per_run"} if per_run else {}))
    sw = parse_sweep(data)
    c = experiments.transfer_conditions(sw.specs)
    assert len(c["scratch_matched"]) == len(c["scratch"]) == 4
    for sc, m, pre, tr, jo, jt in zip(c["scratch"], c["scratch_matched"], c["pretrain"], c["transfer"],
                                      c["joint"], c["joint_then_target"]):
        assert m.train.steps == pre.train.steps + sc.train.steps == 20
        assert m.task == sc.task and m.init is None and m.data_seed() == sc.data_seed()
        assert tr.data_seed() == pre.data_seed() and jt.data_seed() == jo.data_seed()
        if per_run:
            assert pre.data_seed() == per_run_data_seed(pre.task, pre.seed, pre.arch.n_embed)
            assert jo.data_seed() == per_run_data_seed(jo.task, jo.seed, jo.arch.n_embed)
            assert len({sc.data_seed(), pre.data_seed(), jo.data_seed()}) == 3
        else:
            assert sc.data_seed() == pre.data_seed() == jo.data_seed() == sc.seed


def test_budget_sensitivity_script_trains_both_budgets(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("budget_sensitivity", ROOT / "benchmarks" / "budget_sensitivity.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "b.json"
    assert mod.main(["--preset", "smoke", "--steps", "4", "--widths", "8", "--seeds", "0,1,2", "--n-boot", "50",
                     "--results", str(tmp_path / "r"), "--workers", "1", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["budgets_steps"] == {"base": 4, "x2": 8}
    runs = d["runs"]
    assert len(runs) == 2 * 2 * 3  # budgets x mixes x seeds
    assert {r["steps_trained"] for r in runs if r["budget"] == "x2"} <= set(range(1, 9))
    assert max(r["steps_trained"] for r in runs if r["budget"] == "x2") > 4
    # learned counts and the exact test of the move, recomputed from the runs (bar 0.8; the
    # one-sided Fisher p as a hypergeometric tail)
    from scipy.stats import hypergeom

    for mix in ("ADD", "ADD+MAX+MED"):
        k = {b: sum(r["add_gen_acc"] >= 0.8 for r in runs if r["budget"] == b and r["mix"] == mix)
             for b in ("base", "x2")}
        assert d["learned"]["base"][mix] == {"8": [k["base"], 3]} and d["learned"]["x2"][mix] == {"8": [k["x2"], 3]}
        m = d["learned_moves"][mix]
        assert m["learned_base"] == f"{k['base']}/3" and m["learned_x2"] == f"{k['x2']}/3"
        # rows: x2, base; P(X >= k_x2) with X ~ Hypergeom(total 6, learned k_x2 + k_base, draws 3)
        assert m["fisher_p_one_sided"] == pytest.approx(hypergeom.sf(k["x2"] - 1, 6, k["x2"] + k["base"], 3))
    with pytest.raises(SystemExit):
        mod.main(["--seeds", "0,1"])


def test_a_mix_may_have_its_own_seeds_and_widths():
    data = dict(BASE, grid={"mixes": [{"ops": ["ADD"], "seeds": [0, 1, 2], "widths": [8, 9, 10]}, ["ADD", "MAX"]],
                            "widths": [8, 12], "seeds": [0, 1]})
    sw = parse_sweep(data, seed_offset=100)
    got = {(s.task.ops, s.arch.n_embed, s.seed) for s in sw.specs}
    assert got == ({(("ADD",), w, 100 + s) for w in (8, 9, 10) for s in (0, 1, 2)}
                   | {(("ADD", "MAX"), w, 100 + s) for w in (8, 12) for s in (0, 1)})
    assert sw.widths == (8, 9, 10, 12) and sw.seeds == (100, 101, 102)
    bad = dict(BASE, grid={"mixes": [{"ops": ["ADD"], "seeds": []}], "widths": [8], "seeds": [0]})
    with pytest.raises(SweepError, match=r"'grid.mixes\[0\].seeds' must be a non-empty list"):
        parse_sweep(bad)
    bad = dict(BASE, grid={"mixes": [{"ops": ["ADD"], "widths": [1]}], "widths": [8], "seeds": [0]})
    with pytest.raises(SweepError, match=r"'grid.mixes\[0\].widths' must be"):
        parse_sweep(bad)


def test_notebooks_cli_passes_seed_offset_to_notebooks_that_have_it(monkeypatch, tmp_path):
    from jointtask_lib import notebook

    seen = {}
    def run_one(job):
        seen[job["stem"]] = {k: v for k, v in job["params"].items() if k == "seed_offset"}
        return job["stem"], True, "", 0.0

    monkeypatch.setattr(notebook, "_run_one", run_one)
    books = notebook.select_notebooks("01,03,06")
    notebook.run_notebooks(books, "smoke", tmp_path, seed_offset=100, log=lambda s: None)
    assert seen == {"01_tasks": {}, "03_joint_training": {"seed_offset": 100}, "06_embeddings": {"seed_offset": 100}}
    seen.clear()
    notebook.run_notebooks(books, "smoke", tmp_path, log=lambda s: None)
    assert all(v == {} for v in seen.values())
    with pytest.raises(ValueError, match="'seed_offset' must be"):
        notebook.run_notebooks(books, "smoke", tmp_path, seed_offset=-1, log=lambda s: None)
    # and a preset value is checked by the same rule
    with pytest.raises(ValueError, match="seed_offset"):
        notebook.check_params({"seed_offset": -3}, notebook.notebook_parameters(books[1]), where="t",
                              stem="03_joint_training")


def test_per_run_data_seeds_still_share_stacks():
    from jointtask_lib.runs import group_specs

    per = parse_sweep(dict(BASE, data_seeds="per_run"))
    assert len({s.data_seed() for s in per.specs}) == len(per.specs)
    # one stack per width, as with shared data seeds
    assert len(group_specs(list(per.specs))) == len(group_specs(list(parse_sweep(BASE).specs))) == 2


def test_structure_profiles_use_each_ops_own_arity():
    from jointtask_lib.analysis import synergy as SY
    from jointtask_lib.tasks import listops_domain

    dom = listops_domain(6)
    prof = lambda op, ar: {k: round(v["closure"], 9) for k, v in SY.structure_profile(dom, op, ar, n_null=2).items()}  # noqa: E731
    # MED at 2 arguments is MIN (the old quick task's flaw); at its own 3 it is not
    assert prof("MED", {"MED": (2,)}) == prof("MIN", {"MIN": (2,)})
    assert prof("MED", {"MED": (3,), "MIN": (2,)}) != prof("MIN", {"MED": (3,), "MIN": (2,)})
    assert prof("MED", {"MED": (3,)}) == prof("MED", (3,))
    with pytest.raises(ValueError, match="'arities' has no entry for MAX"):
        SY.structure_profile(dom, "MAX", {"MED": (3,)})
    # output MI over both ops' argument counts
    assert 0.0 <= SY.output_mi(dom, "ADD", "MED", {"ADD": (2,), "MED": (3,)}) <= 1.0


def test_scores_by_width_figure_has_seed_cis_width_ticks_and_outside_legend():
    from scipy import stats

    from jointtask_lib.analysis import viz

    vals = {"ADD": {8: [0.1, 0.2, 0.3], 12: [0.3, 0.5]}, "ADD+PROD": {8: [0.4], 16: [0.5, 0.6]}}
    fig = viz.plot_scores_vs_width(vals, null=(0.0, 0.1))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["8", "12", "16"]
    assert ax.get_legend() is None and len(fig.legends) == 1
    segs = [c.get_segments() for c in ax.collections if hasattr(c, "get_segments") and c.get_segments()]
    v = np.array([0.1, 0.2, 0.3])
    h = stats.t.ppf(0.975, 2) * v.std(ddof=1) / np.sqrt(3)
    tops = sorted(float(s[1][1]) for seg in segs for s in seg)
    assert any(abs(t - (v.mean() + h)) < 1e-9 for t in tops)


def test_quick_design_shares_runs_between_sweeps_and_meets_the_preregistered_grid():
    joint = load_sweep(SWEEPS / "joint_training.yaml", "quick")
    keys = {s.key() for s in joint.specs}
    by_mix = {}
    for s in joint.specs:
        by_mix.setdefault(s.task.ops, set()).add((s.seed, s.arch.n_embed))
    head = {(s, w) for s in range(10) for w in (*range(8, 19), 20, 24, 28, 32)}
    assert by_mix[("ADD",)] == by_mix[("ADD", "MAX", "MED")] == head  # 10 seeds x 15 widths
    assert by_mix[("ADD", "NADD")] == {(s, w) for s in range(4) for w in (8, 10, 11, 12, 13, 14, 16, 18, 24, 32)}
    assert joint.data_seeds == "per_run"
    c = experiments.transfer_conditions(load_sweep(SWEEPS / "transfer.yaml", "quick").specs)
    assert all(s.key() in keys for s in c["scratch"] + c["joint"])  # notebook 04 reuses notebook 03's runs
    prime = load_sweep(SWEEPS / "prime_modulus.yaml", "quick")
    assert all(s.key() in keys for s in prime.specs if s.task.modulus == 10)
