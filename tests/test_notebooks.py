"""The notebook contract: parameters cells, presets, reference copies (drift), the runner, figures.

The notebooks themselves are executed by nbval from ``tests/notebooks/*.ipynb`` (``make test``);
these tests check that those reference copies still match the sources.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml

from jointtask_lib import notebook as N
from jointtask_lib import paths

NOTEBOOKS = N.list_notebooks()
IDS = [p.stem for p in NOTEBOOKS]


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks under {N.NOTEBOOKS_DIR}"


# -- (a) one parameters cell of literals -------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_parameters_cell_is_literals(path):
    params = N.notebook_parameters(path)
    assert params, f"{path.name}: empty parameters cell"
    assert "results_dir" in params, f"{path.name}: every notebook takes a 'results_dir' parameter"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_header_and_checked_cells(path):
    nb = N.read_notebook(path)
    # No jupytext metadata header: with jupytext.toml's filters, saving from JupyterLab then keeps
    # the source byte-identical (tests/test_lab_server.py); the runner pins the python3 kernel.
    assert not path.read_text().startswith("# ---"), f"{path.name}: drop the jupytext header"
    assert N.prepare_notebook(path).metadata["kernelspec"]["name"] == "python3"
    checked = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked, f"{path.name}: no cell starts with '# NBVAL_CHECK_OUTPUT', so nbval compares nothing"


def _write_nb(tmp_path: Path, name: str, body: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(body).lstrip())
    return p


def test_non_literal_parameter_is_rejected(tmp_path):
    p = _write_nb(tmp_path, "99_bad.py", """
        # %% tags=["parameters"]
        a = 1
        b = a + 1

        # %%
        print(b)
        """)
    with pytest.raises(ValueError, match=r"99_bad\.py.*line 2.*b = a \+ 1"):
        N.notebook_parameters(p)


def test_statement_in_parameters_cell_is_rejected(tmp_path):
    p = _write_nb(tmp_path, "99_bad.py", """
        # %% tags=["parameters"]
        import os
        """)
    with pytest.raises(ValueError, match=r"99_bad\.py.*import os"):
        N.notebook_parameters(p)


@pytest.mark.parametrize("n_cells", [0, 2])
def test_exactly_one_parameters_cell(tmp_path, n_cells):
    cells = "\n".join(f'# %% tags=["parameters"]\na{i} = {i}\n' for i in range(n_cells))
    p = _write_nb(tmp_path, "99_cells.py", cells + "\n# %%\nprint(1)\n")
    with pytest.raises(ValueError, match=rf"99_cells\.py.*exactly one.*found {n_cells}"):
        N.notebook_parameters(p)


# -- (b) presets --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
@pytest.mark.parametrize("preset", N.PRESETS)
def test_preset_exists_and_validates(path, preset):
    assert N.preset_path(path.stem, preset).is_file(), f"missing {N.preset_path(path.stem, preset)}"
    N.load_preset(path.stem, preset)


def test_no_orphan_preset_files():
    stems = {p.stem for p in NOTEBOOKS}
    for d in sorted(N.PARAMS_DIR.iterdir()):
        if not d.is_dir() or d.name == "sweeps":
            continue
        assert d.name in stems, f"params/{d.name}/ belongs to no notebook"
        extra = sorted(f.name for f in d.iterdir() if f.suffix in (".yaml", ".yml") and f.stem not in N.PRESETS)
        assert not extra, f"params/{d.name}/ has files that are not presets: {extra}"


# -- (c) reference copies do not drift from the sources ---------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_reference_copy_matches_source(path):
    problems = N.reference_drift(path)
    assert not problems, (
        "the nbval reference copy is out of date:\n  " + "\n  ".join(problems)
        + "\nRegenerate it with `make nbref` (and commit tests/notebooks/)."
    )


def test_drift_is_detected(tmp_path):
    import nbformat

    stem = NOTEBOOKS[0].stem
    ref = nbformat.read(str(N.REFERENCE_DIR / f"{stem}.ipynb"), as_version=4)
    code = [c for c in ref.cells if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
    code[-1].source += "\n# edited"
    nbformat.write(ref, str(tmp_path / f"{stem}.ipynb"))
    assert any("code cells differ" in p for p in N.reference_drift(stem, tmp_path))
    assert N.reference_drift(stem, tmp_path / "nowhere") == [f"{tmp_path / 'nowhere' / (stem + '.ipynb')} is missing"]


def test_checked_cell_without_reference_output_is_drift(tmp_path):
    """nbval --nbval-lax passes a checked cell whose stored output is empty: that is drift too."""
    import nbformat

    stem = NOTEBOOKS[0].stem
    ref = nbformat.read(str(N.REFERENCE_DIR / f"{stem}.ipynb"), as_version=4)
    checked = [c for c in ref.cells if c.cell_type == "code" and c.source.startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked and all(c.outputs for c in checked)
    checked[0].outputs = []
    nbformat.write(ref, str(tmp_path / f"{stem}.ipynb"))
    assert any("no stored output" in p for p in N.reference_drift(stem, tmp_path))


# -- (d) bad presets ------------------------------------------------------------------------------


@pytest.fixture
def tmp_params(tmp_path, monkeypatch):
    monkeypatch.setattr(N, "PARAMS_DIR", tmp_path)
    return tmp_path


def _preset(root: Path, stem: str, data) -> Path:
    (root / stem).mkdir(parents=True, exist_ok=True)
    f = root / stem / "smoke.yaml"
    f.write_text(yaml.safe_dump(data))
    return f


def test_unknown_preset_key(tmp_params):
    stem = NOTEBOOKS[0].stem
    f = _preset(tmp_params, stem, {"no_such_knob": 1})
    with pytest.raises(ValueError) as e:
        N.load_preset(stem, "smoke")
    msg = str(e.value)
    assert str(f) in msg and "no_such_knob" in msg and "allowed:" in msg and "results_dir" in msg


def test_wrong_type_in_preset(tmp_params):
    # the first notebook that has an integer parameter (the scorecard notebook has none)
    stem, key = next((p.stem, k) for p in NOTEBOOKS for k, v in N.notebook_parameters(p).items()
                     if isinstance(v, int) and not isinstance(v, bool))
    f = _preset(tmp_params, stem, {key: "not a number"})
    with pytest.raises(ValueError) as e:
        N.load_preset(stem, "smoke")
    assert str(f) in str(e.value) and repr(key) in str(e.value) and "an integer" in str(e.value)


def test_unknown_preset_name_and_missing_file(tmp_params):
    stem = NOTEBOOKS[0].stem
    with pytest.raises(ValueError, match="'preset' must be one of smoke, quick, paper, lesson"):
        N.load_preset(stem, "huge")
    with pytest.raises(ValueError, match="does not exist"):
        N.load_preset(stem, "paper")


def test_type_rules():
    d = {"lr": 0.1, "n": 3, "flag": True, "opt": None, "xs": [1], "name": "a"}
    N.check_params({"lr": 1, "n": 4, "flag": False, "opt": [1, 2], "xs": [], "name": "b"}, d, "f")
    for key, bad in [("lr", "x"), ("n", 2.5), ("n", True), ("flag", 1), ("xs", 3), ("name", 1)]:
        with pytest.raises(ValueError, match=rf"f: parameter '{key}' must be"):
            N.check_params({key: bad}, d, "f")


def test_empty_preset_file_means_no_overrides(tmp_params):
    stem = NOTEBOOKS[0].stem
    (tmp_params / stem).mkdir()
    (tmp_params / stem / "quick.yaml").write_text("# only a comment\n")
    assert N.load_preset(stem, "quick") == {}


# -- (e) impossible values fail on load, naming the file, the key and what is allowed ----------

REAL_SWEEPS = N.PARAMS_DIR / "sweeps"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_defaults_satisfy_the_value_rules(path):
    """The rule table agrees with every notebook's own defaults."""
    N.check_values(N.notebook_parameters(path), {}, path.stem, path.name)


@pytest.fixture
def params_with_sweeps(tmp_params):
    import shutil

    shutil.copytree(REAL_SWEEPS, tmp_params / "sweeps")
    return tmp_params


@pytest.mark.parametrize(
    "stem, values, expect",
    [
        ("02_learning_transition", {"workers": 0}, "parameter 'workers' must be an integer >= 1; got 0"),
        ("02_learning_transition", {"n_boot": 10}, "parameter 'n_boot' must be an integer >= 50; got 10"),
        ("02_learning_transition", {"sweep_preset": "huge"},
         "parameter 'sweep_preset' must be one of smoke, quick, paper, lesson; got 'huge'"),
        ("02_learning_transition", {"sweep": "nope"},
         "parameter 'sweep' must be the name of a sweep file in {sweeps} (controls, joint_training, "
         "permutations, prime_modulus, single_task, transfer); got 'nope' (no nope.yaml)"),
        ("02_learning_transition", {"ops": ["MAX", "FOO"]}, "parameter 'ops' must be a list of operations of MAX, MIN"),
        ("02_learning_transition", {"ops": []}, "parameter 'ops' must list at least one operation of MAX"),
        ("02_learning_transition", {"level": 1.0}, "parameter 'level' must be in (0.0, 1.0); got 1.0"),
        ("02_learning_transition", {"device": "gpu"}, "parameter 'device' must be one of auto, cpu, cuda; got 'gpu'"),
        ("03_joint_training", {"prime_sweep": "nope"}, "parameter 'prime_sweep' must be the name of a sweep file"),
        ("03_joint_training", {"target": "add"}, "parameter 'target' must be an operation of MAX, MIN"),
        ("06_embeddings", {"threads": 0}, "parameter 'threads' must be an integer >= 1; got 0"),
        ("06_embeddings", {"min_acc": 1.5}, "parameter 'min_acc' must be in [0.0, 1.0]; got 1.5"),
        ("07_attention_vs_ffn", {"metric": "loss"}, "parameter 'metric' must be one of gen_acc, tf_acc; got 'loss'"),
        ("08_output_structure", {"extra_sweeps": ["controls", "nope"]},
         "parameter 'extra_sweeps' must be a list of sweep file names"),
        ("08_output_structure", {"moduli": [1, 10]},
         "parameter 'moduli' must be a non-empty list; item 0 must be an integer from 2 to 200; got 1"),
        ("01_tasks", {"n_examples": 51}, "parameter 'n_examples' must be an integer from 0 to 50; got 51"),
        ("09_icl_function_classes", {"steps": 2}, "parameter 'steps' must be an integer >= 3; got 2"),
        ("09_icl_function_classes", {"preset": "huge"}, "parameter 'preset' must be one of smoke, quick, paper, lesson"),
        ("09_icl_function_classes", {"seeds": []}, "parameter 'seeds' must be a non-empty list; got []"),
        ("09_icl_function_classes", {"other_seeds": [0, -2]},
         "parameter 'other_seeds' must be a non-empty list; item 1 must be an integer from 0 to 4294967295; got -2"),
        ("09_icl_function_classes", {"lr": 0.0}, "parameter 'lr' must be in (0.0, inf]; got 0.0"),
    ],
)
def test_impossible_values_fail_on_load(params_with_sweeps, stem, values, expect):
    f = _preset(params_with_sweeps, stem, values)
    with pytest.raises(ValueError) as e:
        N.load_preset(stem, "smoke")
    msg = str(e.value)
    assert msg.startswith(f"{f}: "), msg
    assert expect.format(sweeps=params_with_sweeps / "sweeps") in msg


def test_possible_values_pass(params_with_sweeps):
    ok = {"02_learning_transition": {"workers": 2, "n_boot": 50, "sweep": "joint_training", "ops": ["ADD"]},
          "05_permutations": {"target": "SGN"},
          "08_output_structure": {"extra_sweeps": [], "moduli": [7]},
          "09_icl_function_classes": {"n_boot": 10, "n_mask": 0}}
    for stem, values in ok.items():
        _preset(params_with_sweeps, stem, values)
        assert N.load_preset(stem, "smoke") == values


def test_sweep_preset_must_be_one_the_sweep_defines(params_with_sweeps):
    (params_with_sweeps / "sweeps" / "only_smoke.yaml").write_text(yaml.safe_dump(
        {"name": "only_smoke", "grid": {"mixes": [["ADD"]], "widths": [8], "seeds": [0]},
         "presets": {"smoke": {}}}))
    stem = "02_learning_transition"
    f = _preset(params_with_sweeps, stem, {"sweep": "only_smoke", "sweep_preset": "paper"})
    with pytest.raises(ValueError, match=r"parameter 'sweep_preset' must be a preset that sweep 'only_smoke' "
                                         r"defines \(smoke\); got 'paper'") as e:
        N.load_preset(stem, "smoke")
    assert str(f) in str(e.value)
    # the notebook's default sweep_preset ('quick') is checked against a new sweep too
    _preset(params_with_sweeps, stem, {"sweep": "only_smoke"})
    with pytest.raises(ValueError, match=r"parameter 'sweep_preset' \(the notebook default\) must be a preset"):
        N.load_preset(stem, "smoke")
    _preset(params_with_sweeps, stem, {"sweep": "only_smoke", "sweep_preset": "smoke"})
    assert N.load_preset(stem, "smoke")["sweep_preset"] == "smoke"


def test_rules_for_sweep_like_names():
    assert N.rule_for("03_joint_training", "joint_sweep").kind == "sweep"
    assert N.rule_for("08_output_structure", "extra_sweeps").kind == "sweeps"
    assert N.rule_for("09_icl_function_classes", "n_boot").lo == 1
    assert N.rule_for("02_learning_transition", "n_boot").lo == 50
    assert N.rule_for("02_learning_transition", "results_dir") is None


def test_extra_params_are_value_checked(tiny_project, monkeypatch):
    monkeypatch.setitem(N.PARAM_RULES, "n", N.Rule("int", lo=1))
    with pytest.raises(ValueError, match=r"notebook 01_good, -p: parameter 'n' must be an integer >= 1; got 0"):
        N.execute_notebook("01_good", "smoke", tiny_project / "out", extra_params={"n": 0})
    assert not (tiny_project / "out").exists()  # rejected before a kernel started


# -- the runner (a real kernel; a few seconds) ---------------------------------------------------

_GOOD = """
    # ---
    # jupyter:
    #   kernelspec:
    #     display_name: Python 3
    #     language: python
    #     name: python3
    # ---

    # %% tags=["parameters"]
    n = 2
    results_dir = ""

    # %%
    # NBVAL_CHECK_OUTPUT
    print("n squared is", n * n)
    """


@pytest.fixture
def tiny_project(tmp_path, monkeypatch):
    nb_dir, params = tmp_path / "notebooks", tmp_path / "params"
    nb_dir.mkdir()
    _write_nb(nb_dir, "01_good.py", _GOOD)
    _write_nb(nb_dir, "02_bad.py", _GOOD.replace("n * n)", "n * n)\n    raise RuntimeError('boom')"))
    for stem in ("01_good", "02_bad"):
        (params / stem).mkdir(parents=True)
        for preset in N.PRESETS:
            (params / stem / f"{preset}.yaml").write_text("n: 3\n")
    monkeypatch.setattr(N, "NOTEBOOKS_DIR", nb_dir)
    monkeypatch.setattr(N, "PARAMS_DIR", params)
    return tmp_path


@pytest.mark.slow
def test_execute_reference_copy_is_stable(tiny_project):
    import nbformat

    out = tiny_project / "out"
    p = N.execute_notebook("01", "smoke", out, reference=True)
    text = p.read_text()
    nb = nbformat.reads(text, as_version=4)
    assert "papermill" not in nb.metadata and "papermill" not in text
    assert '"execution"' not in text and "duration" not in text
    assert N.injected_parameters(nb) == {"n": 3}
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert any("n squared is 9" in o.get("text", "") for o in outputs)
    # the source's code cells survive unchanged, so the drift check passes on this copy
    assert N.reference_drift("01_good", out) == []
    # regenerating gives the same bytes
    assert N.execute_notebook("01", "smoke", out, reference=True).read_text() == text


@pytest.mark.slow
def test_cli_reports_failing_notebook(tiny_project, capsys):
    from jointtask_lib.cli import main

    out = tiny_project / "out"
    rc = main(["notebooks", "--preset", "quick", "--out", str(out), "--workers", "2"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "ok     01_good" in err
    assert "FAILED 02_bad" in err and "RuntimeError: boom" in err
    assert "1 of 2 failed: 02_bad" in err
    assert (out / "01_good.ipynb").is_file()
    assert (out / "02_bad.ipynb").is_file()  # the failed copy, with its traceback


def test_cli_rejects_bad_arguments(tiny_project, capsys):
    from jointtask_lib.cli import main

    assert main(["notebooks", "--preset", "huge"]) == 2
    assert "'preset' must be one of" in capsys.readouterr().err
    assert main(["notebooks", "--only", "07"]) == 2
    assert "'notebook' '07' names no notebook" in capsys.readouterr().err
    assert main(["notebooks", "--preset", "quick", "--reference"]) == 2


# -- (e) figures are written atomically and without volatile metadata ------------------------


def _fig():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    return fig


def test_save_figure_strips_metadata_and_is_reproducible(tmp_path):
    p = paths.save_figure(_fig(), "fig_a", tmp_path, pdf=True)
    assert p == tmp_path / "figures" / "fig_a.png"
    data = p.read_bytes()
    assert data.startswith(b"\x89PNG") and b"Software" not in data and b"matplotlib" not in data.lower()
    pdf = (tmp_path / "figures" / "fig_a.pdf").read_bytes()
    assert b"CreationDate" not in pdf and b"matplotlib" not in pdf.lower()
    assert paths.save_figure(_fig(), "fig_a", tmp_path).read_bytes() == data
    assert sorted(x.name for x in (tmp_path / "figures").iterdir()) == ["fig_a.pdf", "fig_a.png"]


def test_save_figure_is_atomic(tmp_path, monkeypatch):
    p = paths.save_figure(_fig(), "fig_b", tmp_path)
    before = p.read_bytes()
    calls = []
    real_replace = os.replace

    def spy(src, dst):
        calls.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(paths.os, "replace", spy)
    paths.save_figure(_fig(), "fig_b", tmp_path)
    (src, dst), = calls
    assert dst == p and src.parent == p.parent and src != p  # written beside, then moved in place

    class Broken:
        def savefig(self, fh, **kw):
            fh.write(b"half a figure")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        paths.save_figure(Broken(), "fig_b", tmp_path)
    assert p.read_bytes() == before  # the old figure is intact
    assert [x.name for x in p.parent.iterdir()] == ["fig_b.png"]  # no temporary left behind


def test_save_figure_rejects_paths(tmp_path):
    with pytest.raises(ValueError, match="'name' must be a plain file name"):
        paths.save_figure(_fig(), "../escape", tmp_path)


def test_results_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.ENV_RESULTS, raising=False)
    root = paths.repo_root()
    assert (root / "pyproject.toml").is_file()
    assert paths.results_dir() == root / "results"
    monkeypatch.setenv(paths.ENV_RESULTS, str(tmp_path / "env"))
    assert paths.results_dir("") == tmp_path / "env"
    assert paths.results_dir(str(tmp_path / "x")) == tmp_path / "x"
    assert paths.results_dir("rel/dir") == root / "rel" / "dir"  # never relative to the cwd
    monkeypatch.chdir(tmp_path)
    assert paths.repo_root() == root
    assert paths.figures_dir(tmp_path) == tmp_path / "figures"


def test_rule_table_choices_agree_with_the_library():
    from jointtask_lib.paper_b import icl_train
    from jointtask_lib.analysis import synergy

    assert N.NOTEBOOK_RULES["09_icl_function_classes"]["shift_models"].choices == icl_train.MODEL_LABELS
    assert N.NOTEBOOK_RULES["08_output_structure"]["synergy_features"].choices == synergy.FEATURE_KINDS


@pytest.mark.parametrize("key, value, expect", [
    ("shift_models", ["mixed", "cubic-only"], "cubic-only unknown"),
    ("fit_positions", [0], "item 0"),
    ("shift_x_scale", 0.0, "shift_x_scale"),
])
def test_icl_preset_values_are_checked(tmp_params, key, value, expect):
    stem = "09_icl_function_classes"
    f = _preset(tmp_params, stem, {key: value})
    with pytest.raises(ValueError) as e:
        N.load_preset(stem, "smoke")
    assert str(f) in str(e.value) and repr(key) in str(e.value) and expect in str(e.value)


def test_check_parameters_uses_the_preset_rules_inside_a_notebook():
    stem = "02_learning_transition"
    ns = dict(N.notebook_parameters(N.resolve_notebook(stem)))
    assert N.check_parameters(stem, ns) == ns
    for key, bad, expect in [("n_boot", 10, ">= 50"), ("save_figures", "yes", "a boolean"),
                             ("sweep_preset", "huge", "smoke, quick, paper, lesson"), ("level", 1.0, "'level'")]:
        with pytest.raises(ValueError) as e:
            N.check_parameters(stem, {**ns, key: bad})
        assert f"notebook {stem}" in str(e.value) and repr(key) in str(e.value) and expect in str(e.value)
