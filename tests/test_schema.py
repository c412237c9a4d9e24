"""One configuration source (issue 13, item 3): every bound declared once in
:mod:`jointtask_lib.schema`, validated once by the configuration classes, and used by the CLI, the
notebooks' preset rules and the sweep files' messages; the task families as objects; and the run
keys of ListOps and permutation runs exactly as before the change."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from jointtask_lib import notebook as N
from jointtask_lib import schema
from jointtask_lib.cli import build_parser
from jointtask_lib.cli_train import specs_from_args
from jointtask_lib.model import ModelConfig
from jointtask_lib.sweep import SweepError, load_sweep, parse_sweep
from jointtask_lib.sweep_file import defined_presets
from jointtask_lib.tasks import FAMILIES, TASK_FAMILIES, TaskConfig
from jointtask_lib.train import Arch, RunSpec, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = ROOT / "params" / "sweeps"

# ------------------------------------------------------------------------------------------------
# Run keys frozen on the code before the schema (commit c8adedb): for every sweep file at the smoke
# and quick presets, the number of runs and a SHA-256 of their "key name" lines; and a few keys in
# full.  A cache built before the change must still be found after it.
# ------------------------------------------------------------------------------------------------

FROZEN_SWEEPS: dict[tuple[str, str], tuple[int, str]] = {
    ('controls', 'quick'): (160, '676aae5f37b2a6640da1f568e5c66d45950300c498e45f89da100be69b50c361'),
    ('controls', 'smoke'): (6, 'aa9b082dbd28f71ee1454c4332cc7e2f7c60a9f85903de28a6664237c0b7e0dd'),
    ('joint_training', 'quick'): (500, '6747c71a038fc325818db185823132c7388105c21e0fa287a548edb4a01069f8'),
    ('joint_training', 'smoke'): (18, 'd3e8aa59dd8179e6aa2690950353a7e9406178c53a9a70303e953b05da204f35'),
    ('permutations', 'quick'): (50, '5a6bf09db2a1229a049fda7308c8b57fc3850a04c38e148b5e1f39ccc5bd9c9d'),
    ('permutations', 'smoke'): (6, 'ae6c7be5eec5c8bf90393b95d832663595913b42dd23a2513389882e694dedf1'),
    ('prime_modulus', 'quick'): (160, '10879e8b800f605b67cb7267829951263f1cc5b4c2945e4116d9af578744c64d'),
    ('prime_modulus', 'smoke'): (6, 'c9dc58ecf46ccf332f25b3689cce37126571627995eb12209ea6d6622bd3c6e8'),
    ('single_task', 'quick'): (60, 'd2eac00fc3fe0daa3ae1cc26b209aed000ea262fa0defc8939d23648a5487e94'),
    ('single_task', 'smoke'): (12, 'b0f299d98786384525768b6355dab955d54c4544c0723cb1c07600a51d6bf96b'),
    ('transfer', 'quick'): (10, '920fc9fb1919a3b2ffe5aac08fba38babef5d68eca32239694e1ba6f9bfb4c64'),
    ('transfer', 'smoke'): (3, 'b0195ee777be64ec4b3b7a47375d5e402567fa5b01d63fe335cd096b73251bbe'),
}
FROZEN_KEYS: dict[str, str] = {
    'listops_default': 'a2822dd7f3591de1 ADD_n10_d32_s0_a2822dd7',
    'listops_mix': '5b777c566740fb7f ADD+MAX+MED_n13_d24_s4_5b777c56',
    'perm': 'ba238e3de4247abd PMUL_S4_d16_s1_ba238e3d',
}


def _digest(specs) -> str:
    lines = "\n".join(f"{s.key()} {s.name()} {s.group_key()} {s.n_params()}" for s in specs)
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.mark.parametrize("name, preset", sorted(FROZEN_SWEEPS))
def test_sweep_run_keys_unchanged(name, preset):
    sw = load_sweep(SWEEPS / f"{name}.yaml", preset)
    assert (len(sw.specs), _digest(sw.specs)) == FROZEN_SWEEPS[(name, preset)]


def _frozen_specs() -> dict[str, RunSpec]:
    return {
        "listops_default": RunSpec(task=TaskConfig()),
        "listops_mix": RunSpec(task=TaskConfig(ops=("ADD", "MAX", "MED"), modulus=13, depth=2,
                                               op_args={"MED": 3}),
                               arch=Arch(n_embed=24, n_heads=2), train=TrainConfig(steps=300, data_seed=7),
                               seed=4),
        "perm": RunSpec(task=TaskConfig(family="perm", ops=("PMUL",), perm_k=4), arch=Arch(n_embed=16), seed=1),
    }


@pytest.mark.parametrize("label", sorted(FROZEN_KEYS))
def test_run_keys_unchanged(label):
    spec = _frozen_specs()[label]
    assert f"{spec.key()} {spec.name()}" == FROZEN_KEYS[label]


# ------------------------------------------------------------------------------------------------
# One declaration per field
# ------------------------------------------------------------------------------------------------


def test_schema_declares_every_config_field_and_nothing_else():
    names = lambda cls: [f.name for f in dataclasses.fields(cls)]  # noqa: E731
    assert names(TaskConfig) == list(schema.TASK)
    assert names(Arch) == list(schema.ARCH)
    assert names(TrainConfig) == list(schema.TRAIN)
    assert names(ModelConfig) == [*schema.MODEL_SHAPE, *schema.ARCH]
    assert set(names(RunSpec)) - {"task", "arch", "train", "init"} == set(schema.RUN)
    # one name per quantity: no field name is used by two sections (so a flat path map is exact)
    all_names = [n for sec in (*schema.SECTIONS.values(), schema.MODEL_SHAPE, schema.ICL_PROMPT) for n in sec]
    assert len(all_names) == len(set(all_names))
    for sec in schema.SECTIONS.values():
        for name, p in sec.items():
            assert p.kind in schema.SCALAR_KINDS + schema.REGISTRY_KINDS, name
            assert p.doc, f"{name} has no doc"


def test_one_bound_changed_in_the_schema_changes_library_cli_and_preset_rule(monkeypatch):
    """Notebook 09's preset rule once allowed n_embed = 1 while ModelConfig needed 2; now both
    read the one declaration, so moving it moves both (and the CLI's help)."""
    assert N.rule_for("09_icl_function_classes", "n_embed").lo == schema.ARCH["n_embed"].lo == 2
    with pytest.raises(ValueError, match="parameter 'n_embed' must be an integer >= 2; got 1"):
        N.check_values({"n_embed": 1}, {"n_embed": 32}, "09_icl_function_classes", "preset")

    monkeypatch.setitem(schema.ARCH, "n_embed", dataclasses.replace(schema.ARCH["n_embed"], lo=5))
    assert N.rule_for("09_icl_function_classes", "n_embed").lo == 5
    with pytest.raises(ValueError, match="parameter 'n_embed' must be an integer >= 5; got 4"):
        N.check_values({"n_embed": 4}, {"n_embed": 32}, "09_icl_function_classes", "preset")
    with pytest.raises(ValueError, match="'n_embed' must be an integer >= 5; got 4"):
        ModelConfig(vocab_size=10, block_size=10, n_embed=4)
    with pytest.raises(ValueError, match="'n_embed' must be an integer >= 5; got 4"):
        Arch(n_embed=4)
    a = build_parser().parse_args(["train", "--n-embed", "4"])
    with pytest.raises(ValueError, match="'n_embed' must be an integer >= 5; got 4"):
        specs_from_args(a)
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    assert "an integer >= 5" in train.format_help()


def test_preset_rules_of_task_fields_come_from_the_schema(monkeypatch):
    for key, field, many in [("modulus", "modulus", False), ("moduli", "modulus", True),
                             ("perm_ks", "perm_k", True), ("depth", "depth", False), ("seed", "seed", False)]:
        rule, p = N.rule_for("02_learning_transition", key), schema.param(field)
        assert (rule.kind, rule.lo, rule.hi) == ("ints" if many else "int", p.lo, p.hi)
    monkeypatch.setitem(schema.TASK, "depth", dataclasses.replace(schema.TASK["depth"], hi=3))
    assert N.rule_for("02_learning_transition", "depth").hi == 3
    with pytest.raises(ValueError, match="'depth' must be an integer from 1 to 3; got 4"):
        TaskConfig(depth=4)


# ------------------------------------------------------------------------------------------------
# The command line, generated from the schema
# ------------------------------------------------------------------------------------------------


def test_cli_defaults_are_the_library_defaults():
    (spec,) = specs_from_args(build_parser().parse_args(["train"]))
    assert spec == RunSpec(task=TaskConfig()) and spec.key() == RunSpec(task=TaskConfig()).key()


def test_cli_sets_every_train_and_arch_field():
    a = build_parser().parse_args([
        "train", "--ops", "ADD,MAX", "--weights", "1,3", "--modulus", "7", "--depth", "2",
        "--op-args", "MED=3", "--n-embed", "8,16", "--n-heads", "2", "--mlp-ratio", "2", "--tie-weights",
        "--seeds", "0,1", "--steps", "50", "--beta1", "0.8", "--data-seed", "3", "--step", "reference",
        "--no-early-stop", "--min-lr-frac", "0.5"])
    specs = specs_from_args(a)
    assert [(s.arch.n_embed, s.seed) for s in specs] == [(8, 0), (8, 1), (16, 0), (16, 1)]
    s = specs[0]
    assert s.task == TaskConfig(ops=("ADD", "MAX"), weights=(1.0, 3.0), modulus=7, depth=2, op_args={"MED": 3})
    assert s.arch == Arch(n_embed=8, n_heads=2, mlp_ratio=2, tie_weights=True)
    assert s.train == TrainConfig(steps=50, beta1=0.8, data_seed=3, step="reference", early_stop=False,
                                  min_lr_frac=0.5)


@pytest.mark.parametrize("args, message", [
    (["--beta1", "1.0"], r"'beta1' must be in \[0.0, 1.0\); got 1.0"),
    (["--step", "slow"], "'step' must be one of fast, reference; got 'slow'"),
    (["--n-heads", "3", "--n-embed", "8"], r"'n_heads' must divide 'n_embed' = 8 \(allowed: \[1, 2, 4, 8\]\); got 3"),
    (["--family", "perm", "--modulus", "5"], "'modulus' does not apply to family perm; use --perm-k"),
    (["--family", "nope"], "'family' must be one of listops, perm; got 'nope'"),
])
def test_cli_errors_name_the_field_and_the_allowed_values(args, message):
    with pytest.raises(ValueError, match=message):
        specs_from_args(build_parser().parse_args(["train", *args]))


# ------------------------------------------------------------------------------------------------
# Sweep files: fields named by their YAML path, without rewriting messages
# ------------------------------------------------------------------------------------------------

TINY = {"task": {"depth": 2}, "train": {"steps": 10},
        "grid": {"mixes": [{"ops": ["ADD"], "widths": [6]}, ["MAX"]], "moduli": [5], "widths": [8], "seeds": [0]}}


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["task"].update(family="nope"), "'task.family' must be one of listops, perm; got 'nope'"),
    (lambda d: d.update(arch={"n_heads": 4}),
     r"'arch.n_heads' must divide 'grid.mixes\[0\].widths' = 6 \(allowed: \[1, 2, 3, 6\]\); got 4"),
    (lambda d: d["grid"]["mixes"][0].update(weights=[1, 2]),
     r"'grid.mixes\[0\].weights' must have one entry per op \(1\); got 2"),
    (lambda d: d["task"].update(min_args=3, max_args=2), r"'task.max_args' must be an integer >= 3; got 2"),
    (lambda d: d["task"].update(test_frac=0.5, val_frac=0.5), r"'task.test_frac' \+ 'task.val_frac' must be below 1"),
    (lambda d: d["grid"].update(perm_ks=[3]), "'grid.perm_ks' does not apply to family listops; use 'grid.moduli'"),
])
def test_sweep_messages_name_the_yaml_path(mutate, message):
    import copy

    data = copy.deepcopy(TINY)
    mutate(data)
    with pytest.raises(SweepError, match=message):
        parse_sweep(data, "quick", "tiny.yaml")


def test_sweep_presets_of_a_notebook_rule_come_from_the_sweep_parser(tmp_path, monkeypatch):
    monkeypatch.setattr(N, "_sweeps_dir", lambda: tmp_path)
    (tmp_path / "a.yaml").write_text(json.dumps({**TINY, "presets": {"smoke": {}, "paper": {}}}))
    (tmp_path / "b.yaml").write_text(json.dumps(TINY))
    (tmp_path / "c.yaml").write_text("presets: [oops")
    assert N._sweep_presets("a") == ("smoke", "paper") == defined_presets({**TINY, "presets": {"smoke": {}, "paper": {}}})
    assert N._sweep_presets("b") == N.PRESETS
    assert N._sweep_presets("c") == N.PRESETS  # unreadable: the sweep's own loader reports it


# ------------------------------------------------------------------------------------------------
# Task families
# ------------------------------------------------------------------------------------------------


def test_every_family_is_registered_once_with_its_size_field_and_grid_list():
    assert set(TASK_FAMILIES) == set(FAMILIES)
    for name, fam in TASK_FAMILIES.items():
        assert fam.size_field in schema.TASK and schema.GRID_FIELDS[fam.grid_key] == fam.size_field
        task = TaskConfig(family=name, ops=(next(iter(fam.ops)),), **{fam.size_field: 5})
        assert task.size == 5 and task.task_family is fam
        assert task.n_values == len(task.domain().value_tokens)
    assert TASK_FAMILIES["listops"].label(10) == "mod 10" and TASK_FAMILIES["perm"].tag(3) == "S3"
    from jointtask_lib.tasks import stored_size

    assert stored_size(TaskConfig(family="perm", ops=("PMUL",), perm_k=4).to_dict()) == 4
    assert stored_size(TaskConfig(modulus=7).to_dict()) == 7


def test_every_field_rule_names_a_declared_field_and_matches_the_library():
    from jointtask_lib.paper_b.icl_model import ICLConfig

    tables = [N.PARAM_RULES, *N.NOTEBOOK_RULES.values()]
    field_rules = [r for t in tables for r in t.values() if isinstance(r, N.FieldRule)]
    assert {r.field for r in field_rules} >= {"n_embed", "n_heads", "n_layers", "d", "n_points", "modulus"}
    for r in field_rules:
        assert r.rule().kind in ("int", "ints", "float", "choice")
    # paper B's notebook: the rule and ICLConfig refuse the same values
    for key, bad in [("n_embed", 1), ("d", 0), ("n_points", 0), ("n_layers", 0)]:
        assert N._rule_problem(N.rule_for("09_icl_function_classes", key), bad, key, {}, "09_icl_function_classes")
        with pytest.raises(ValueError, match=f"'{key}' must be an integer >= "):
            ICLConfig(**{key: bad})


# ------------------------------------------------------------------------------------------------
# Paper B's training recipe on the schema (ICL_TRAIN)
# ------------------------------------------------------------------------------------------------

# ICLRunSpec keys computed on the integration branch before paper B's recipe moved to the schema
# (the keys hash the resolved configuration, which this move must not change).
FROZEN_ICL_KEYS = {
    "default": "7cb7a38f52fdb1d6",
    "smoke_mixed": "30a0e11aa380869f",
    "single_ref": "468809c66349237d",
}


def _icl_specs():
    from jointtask_lib.paper_b.icl_model import ICLConfig
    from jointtask_lib.paper_b.icl_train import ICLRunSpec, ICLTrainConfig

    return {
        "default": ICLRunSpec(),
        "smoke_mixed": ICLRunSpec(model=ICLConfig(n_points=10, n_embed=16, n_layers=2, n_heads=2),
                                  train=ICLTrainConfig(steps=150, batch_size=16, lr=0.003, snapshot_prompts=32)),
        "single_ref": ICLRunSpec(curriculum="single", tasks=("cubic",), seed=3,
                                 train=ICLTrainConfig(steps=3, warmup=2, grad_clip=1.0, step="reference",
                                                      log_every=1)),
    }


@pytest.mark.parametrize("label", sorted(FROZEN_ICL_KEYS))
def test_icl_run_keys_unchanged(label):
    assert _icl_specs()[label].key() == FROZEN_ICL_KEYS[label]


def test_icl_train_fields_are_declared_once_sharing_paper_a_declarations():
    from jointtask_lib.paper_b.icl_train import ICLTrainConfig

    assert [f.name for f in dataclasses.fields(ICLTrainConfig)] == list(schema.ICL_TRAIN)
    # a field paper B's recipe shares with paper A's is TRAIN's declaration itself, except steps
    shared = set(schema.ICL_TRAIN) & set(schema.TRAIN)
    assert shared == {"steps", "batch_size", "lr", "warmup", "beta1", "beta2", "weight_decay", "grad_clip", "step"}
    assert {n for n in shared if schema.ICL_TRAIN[n] is not schema.TRAIN[n]} == {"steps"}
    assert schema.ICL_TRAIN["steps"].lo == 3 and schema.param("steps", "icl_train").lo == 3
    assert schema.param("steps") is schema.TRAIN["steps"]  # without a section: paper A's
    for p in schema.ICL_TRAIN.values():
        assert p.kind in schema.SCALAR_KINDS and p.doc


@pytest.mark.parametrize("field, bad, message", [
    ("steps", 2, "'steps' must be an integer >= 3; got 2"),
    ("batch_size", 0, "'batch_size' must be an integer >= 1; got 0"),
    ("lr", 0.0, r"'lr' must be in \(0.0, inf\]; got 0.0"),
    ("warmup", -1, "'warmup' must be an integer >= 0; got -1"),
    ("beta2", 1.0, r"'beta2' must be in \[0.0, 1.0\); got 1.0"),
    ("grad_clip", -0.5, r"'grad_clip' must be in \[0.0, inf\]; got -0.5"),
    ("snapshot_prompts", -1, "'snapshot_prompts' must be an integer >= 0; got -1"),
    ("log_every", 0, "'log_every' must be an integer >= 1; got 0"),
    ("step", "slow", "'step' must be one of"),
])
def test_icl_train_config_refuses_what_the_schema_refuses(field, bad, message):
    from jointtask_lib.paper_b.icl_train import ICLTrainConfig

    with pytest.raises(ValueError, match=message):
        ICLTrainConfig(**{field: bad})


def test_notebook_09_recipe_rules_come_from_the_schema(monkeypatch):
    """Notebook 09's steps / batch_size / lr / warmup / snapshot_prompts rules are ICL_TRAIN's:
    the rule and ICLTrainConfig refuse the same values, and moving a bound moves both."""
    from jointtask_lib.paper_b.icl_train import ICLTrainConfig

    stem = "09_icl_function_classes"
    for key in ("steps", "batch_size", "lr", "warmup", "snapshot_prompts"):
        rule, p = N.rule_for(stem, key), schema.ICL_TRAIN[key]
        assert (rule.kind, rule.lo, rule.hi, rule.lo_open, rule.hi_open) == (p.kind, p.lo, p.hi, p.lo_open, p.hi_open)
    for key, bad in [("steps", 2), ("batch_size", 0), ("lr", 0.0), ("warmup", -1), ("snapshot_prompts", -1)]:
        assert N._rule_problem(N.rule_for(stem, key), bad, key, {}, stem)
        with pytest.raises(ValueError, match=f"'{key}' must be"):
            ICLTrainConfig(**{key: bad})
    assert N._rule_problem(N.rule_for(stem, "steps"), 3, "steps", {}, stem) is None

    monkeypatch.setitem(schema.ICL_TRAIN, "steps", dataclasses.replace(schema.ICL_TRAIN["steps"], lo=10))
    assert N.rule_for(stem, "steps").lo == 10
    with pytest.raises(ValueError, match="parameter 'steps' must be an integer >= 10; got 9"):
        N.check_values({"steps": 9}, {"steps": 6000}, stem, "preset")
    with pytest.raises(ValueError, match="'steps' must be an integer >= 10; got 9"):
        ICLTrainConfig(steps=9)
    ICLTrainConfig(steps=10)
    assert N.rule_for("02_learning_transition", "steps") is None  # paper A's notebooks: no such rule
