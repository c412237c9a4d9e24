"""Results folders, ``-p`` pass-through, progress and errors-first of ``jointtask notebooks`` /
``jointtask report`` (issue: "JupyterLab, papermill and results the way users expect")."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from jointtask_lib import notebook as N
from jointtask_lib import paths
from jointtask_lib.cli import main
from jointtask_lib.scorecard import claim, check_one_preset, load_claims, report_folder, write_claims

# -- -p NAME=VALUE ------------------------------------------------------------------------------


def test_param_values_are_read_as_yaml():
    got = N.parse_param_args(["seed_x=100", "level=0.9", "moduli=[7, 11]", "save_figures=false",
                              "device=cpu", "results_dir=''"])
    assert got == {"seed_x": 100, "level": 0.9, "moduli": [7, 11], "save_figures": False,
                   "device": "cpu", "results_dir": ""}
    assert type(got["seed_x"]) is int and type(got["level"]) is float


@pytest.mark.parametrize("bad, expect", [
    ("workers", "must be NAME=VALUE"), ("=3", "must be NAME=VALUE"), ("1x=3", "must be NAME=VALUE"),
    ("ops=[ADD", "is not a YAML value"),
])
def test_malformed_params_are_rejected(bad, expect):
    with pytest.raises(ValueError, match=re.escape(expect)):
        N.parse_param_args([bad])


def test_param_given_twice_is_rejected():
    with pytest.raises(ValueError, match="sets 'workers' twice"):
        N.parse_param_args(["workers=1", "workers=2"])


def test_unknown_name_is_rejected_with_the_known_names():
    book = N.resolve_notebook("03")
    with pytest.raises(ValueError) as e:
        N.check_overrides([book], "quick", {"modulos": 7})
    msg = str(e.value)
    assert "notebook 03_joint_training" in msg and "unknown parameter 'modulos'" in msg
    known = msg.split("allowed: ", 1)[1].split(", ")
    assert known == sorted(N.notebook_parameters(book))


def test_values_go_through_the_preset_rules():
    book = N.resolve_notebook("03")
    with pytest.raises(ValueError, match=r"parameter 'workers' must be an integer >= 1; got 0"):
        N.check_overrides([book], "quick", {"workers": 0})
    with pytest.raises(ValueError, match=r"parameter 'level' must be an? "):
        N.check_overrides([book], "quick", {"level": "high"})
    with pytest.raises(ValueError, match=r"parameter 'target' must be an operation of"):
        N.check_overrides([book], "quick", {"target": "ADDD"})
    N.check_overrides([book], "quick", {"workers": 2, "level": 0.9})  # fine


def test_a_name_must_exist_in_every_selected_notebook():
    books = [N.resolve_notebook("03"), N.resolve_notebook("01")]
    assert "target" in N.notebook_parameters(books[0]) and "target" not in N.notebook_parameters(books[1])
    with pytest.raises(ValueError, match=r"notebook 01_tasks, -p: unknown parameter 'target'"):
        N.check_overrides(books, "quick", {"target": "ADD"})


def test_cli_rejects_unknown_parameter_before_running(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("JOINTTASK_RESULTS", str(tmp_path))
    assert main(["notebooks", "--only", "03", "--preset", "quick", "-p", "modulos=7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown parameter 'modulos'; allowed: control_sweep," in err
    assert not any(tmp_path.iterdir())  # nothing written


def test_cli_rejects_seed_offset_given_twice(capsys, tmp_path, monkeypatch):
    # -p would win inside the notebooks while --seed-offset named the folder: refused, nothing run
    monkeypatch.setenv("JOINTTASK_RESULTS", str(tmp_path))
    assert main(["notebooks", "--only", "03", "--preset", "quick", "--seed-offset", "100",
                 "-p", "seed_offset=200"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'seed_offset': give it once" in err
    assert not any(tmp_path.iterdir())


# -- labels and output folders ------------------------------------------------------------------


def test_default_labels():
    assert N.default_label("quick", {}) == "quick"
    assert N.default_label("quick", {"workers": 2, "level": 0.9}) == "quick+level=0.9+workers=2"
    assert N.default_label("smoke", {"moduli": [7, 11], "target": "ADD"}) == "smoke+moduli=7,11+target=ADD"
    long = N.default_label("paper", {"ops": ["MAX"] * 40})
    assert re.fullmatch(r"paper\+custom-[0-9a-f]{10}", long)
    assert long == N.default_label("paper", {"ops": ["MAX"] * 40})  # stable
    for label in ("quick", "quick+level=0.9+workers=2", "smoke+moduli=7,11+target=ADD", long):
        assert paths.check_label(label) == label


@pytest.mark.parametrize("bad", ["", "runs", "groups", "icl", "claims", "../x", "a/b", ".hidden", "x" * 101, 3])
def test_bad_labels(bad):
    with pytest.raises(ValueError, match="'label' must be a folder name"):
        paths.check_label(bad)


def test_output_dir_follows_the_label(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.ENV_LABEL, raising=False)
    assert paths.output_dir(tmp_path) == tmp_path
    assert paths.figures_dir(tmp_path) == tmp_path / "figures"
    monkeypatch.setenv(paths.ENV_LABEL, "quick")
    assert paths.output_dir(tmp_path) == tmp_path / "quick"
    assert paths.figures_dir(tmp_path) == tmp_path / "quick" / "figures"
    assert paths.output_dir(tmp_path, "") == tmp_path
    row = claim(id="A1", paper="A", claim="c", paper_value="v", ours="o", verdict="reproduced",
                preset="quick", notebook="03")
    assert write_claims(tmp_path, "03", [row]) == tmp_path / "quick" / "claims" / "03.json"
    assert load_claims(tmp_path) == [row] and load_claims(tmp_path, "") == []
    monkeypatch.setenv(paths.ENV_LABEL, "runs")
    with pytest.raises(ValueError, match="'label' must be"):
        paths.output_dir(tmp_path)


def test_manifest_refuses_another_preset_or_parameters(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.ENV_LABEL, raising=False)
    books = [N.resolve_notebook("01")]
    f = tmp_path / "mine"
    N.claim_output_folder(f, "mine", "quick", {"workers": 2}, books)
    N.claim_output_folder(f, "mine", "quick", {"workers": 2}, [N.resolve_notebook("03")])  # same: fine
    assert json.loads((f / "RUN.json").read_text())["notebooks"] == ["01_tasks", "03_joint_training"]
    with pytest.raises(ValueError, match=r"already holds results of preset 'quick'.*--overwrite"):
        N.claim_output_folder(f, "mine", "smoke", {"workers": 2}, books)
    with pytest.raises(ValueError, match="already holds"):
        N.claim_output_folder(f, "mine", "quick", {}, books)
    write_claims(f, "03", [claim(id="A1", paper="A", claim="c", paper_value="v", ours="o",
                                 verdict="reproduced", preset="quick", notebook="03")])
    (f / "figures").mkdir()
    (f / "figures" / "x.png").write_bytes(b"png")
    (f / "notes.txt").write_text("mine")
    N.claim_output_folder(f, "mine", "smoke", {}, books, overwrite=True)
    assert not (f / "claims").exists() and not (f / "figures").exists()  # the other run's outputs went
    assert (f / "notes.txt").read_text() == "mine"  # nothing else is touched
    assert json.loads((f / "RUN.json").read_text()) == {
        "label": "mine", "preset": "smoke", "parameters": {}, "notebooks": ["01_tasks"]}


def test_lab_label_is_reserved_for_jupyterlab(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("JOINTTASK_RESULTS", str(tmp_path))
    assert main(["notebooks", "--only", "01", "--preset", "smoke", "--label", "lab"]) == 2
    assert "folder of JupyterLab sessions" in capsys.readouterr().err


# -- jointtask report ---------------------------------------------------------------------------


def _claims(folder: Path, presets: dict[str, str]) -> None:
    for nb, preset in presets.items():
        write_claims(folder, nb, [claim(id=f"A-{nb}", paper="A", claim="c", paper_value="v", ours="o",
                                        verdict="inconclusive", preset=preset, notebook=nb)])


def test_report_reads_one_folder_and_says_which(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(paths.ENV_LABEL, raising=False)
    root = tmp_path / "results"
    _claims(root / "quick", {"02": "quick", "03": "quick"})
    (root / "quick" / "RUN.json").write_text(json.dumps({"preset": "quick"}))
    _claims(root / "smoke", {"02": "smoke"})
    with pytest.raises(ValueError, match=r"several folders with claims: quick, smoke; pick one with --label"):
        report_folder(root)
    assert main(["report", "--results", str(root)]) == 2
    assert main(["report", "--results", str(root), "--label", "quick"]) == 0
    out = capsys.readouterr().out
    assert f"read {root / 'quick'} (preset quick): 2 claims from 2 notebooks" in out
    assert (root / "quick" / "SCORECARD.md").is_file() and not (root / "smoke" / "SCORECARD.md").exists()
    assert main(["report", "--results", str(root / "smoke")]) == 0  # a folder given directly
    assert "(preset smoke): 1 claims" in capsys.readouterr().out
    assert main(["report", "--results", str(root), "--label", "paper"]) == 2
    assert "holds no claims/" in capsys.readouterr().err


def test_report_refuses_to_mix_presets(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(paths.ENV_LABEL, raising=False)
    _claims(tmp_path, {"02": "smoke", "03": "quick"})
    assert main(["report", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "refusing to mix presets" in err and "quick: 03; smoke: 02" in err
    assert not (tmp_path / "SCORECARD.md").exists()
    rows = load_claims(tmp_path, "")
    with pytest.raises(ValueError, match="RUN.json says preset 'paper'"):
        check_one_preset([r for r in rows if r["preset"] == "quick"], tmp_path, "paper")
    assert check_one_preset([r for r in rows if r["preset"] == "quick"], tmp_path, "quick") == "quick"


# -- papermill's injected names are checked inside the notebook -----------------------------------


def test_injected_unknown_names_fail_check_parameters():
    ns = {"In": ["", "# Parameters\nmodulos = 7\nseed = 1\n", "x = 1"], "seed": 1}
    assert N.injected_names(ns) == ["modulos", "seed"]
    with pytest.raises(ValueError, match=r"notebook 01_tasks: unknown parameter 'modulos' \(injected by papermill\)"):
        N.check_parameters("01_tasks", ns)
    ok = {"In": ["# Parameters\nseed = 1\n"], "seed": 1}
    assert N.check_parameters("01_tasks", ok) == {"seed": 1}


# -- progress ------------------------------------------------------------------------------------


def test_progress_counts_runs_with_eta_as_text(tmp_path):
    import os
    import subprocess
    import sys

    # a fresh process: tqdm reads TQDM_DISABLE (set for the test session) once, on import
    code = textwrap.dedent("""
        from jointtask_lib import sweep
        groups = [[1, 2, 3], [4], [5, 6]]
        assert list(sweep._progress(groups, True, "runs", 6, weight=len)) == groups
        assert list(sweep._progress(groups, False, "runs", 6, weight=len)) == groups
        """)
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    proc = subprocess.run([sys.executable, "-c", code], env={**env, "JOINTTASK_PROGRESS": "text"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    last = proc.stderr.split("\r")[-1]
    assert re.search(r"runs: 100%.*\b6/6 \[\d\d:\d\d<00:00", last), proc.stderr  # done/total, elapsed<ETA
    assert proc.stderr.count("runs:") >= 2 and proc.stdout == ""  # one bar (the off one draws nothing)


def test_progress_is_on_by_default_for_long_presets_only(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    on = {p: N.default_progress(p) for p in N.PRESETS}
    assert on == {"smoke": False, "quick": True, "paper": True, "lesson": True}
    monkeypatch.setenv("CI", "true")
    assert not any(N.default_progress(p) for p in N.PRESETS)


# -- the runner on a tiny project: folders, progress, errors first (real kernels) -----------------

_TINY = """
    # %% tags=["parameters"]
    n = 2
    results_dir = ""
    progress = False

    # %%
    from jointtask_lib import paths
    from jointtask_lib.sweep import _progress

    for _ in _progress(range(3), progress, "runs", 3):
        pass
    out = paths.output_dir(paths.results_dir(results_dir))
    out.mkdir(parents=True, exist_ok=True)
    (out / "n.txt").write_text(str(n))
    print("n is", n, "progress", progress)
    """


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    nb_dir, params = tmp_path / "notebooks", tmp_path / "params"
    nb_dir.mkdir()
    (nb_dir / "01_tiny.py").write_text(textwrap.dedent(_TINY).lstrip())
    (nb_dir / "02_bad.py").write_text(textwrap.dedent(_TINY).lstrip().replace(
        'print("n is", n, "progress", progress)',
        'raise ValueError("notebook 02_bad: parameter \'n\' must be even; got 3\\nmore")'))
    for stem in ("01_tiny", "02_bad"):
        (params / stem).mkdir(parents=True)
        for preset, n in (("smoke", 3), ("quick", 4), ("paper", 8)):
            (params / stem / f"{preset}.yaml").write_text(f"n: {n}\n")
    monkeypatch.setattr(N, "NOTEBOOKS_DIR", nb_dir)
    monkeypatch.setattr(N, "PARAMS_DIR", params)
    monkeypatch.setenv("JOINTTASK_RESULTS", str(tmp_path / "res"))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    return tmp_path / "res"


@pytest.mark.slow
def test_presets_and_parameters_write_to_their_own_folders(tiny, capsys):
    import nbformat

    assert main(["notebooks", "--only", "01", "--preset", "smoke"]) == 0
    smoke = tiny / "smoke"
    assert (smoke / "n.txt").read_text() == "3" and (smoke / "notebooks" / "01_tiny.ipynb").is_file()
    assert json.loads((smoke / "RUN.json").read_text())["preset"] == "smoke"
    before = {p: p.read_bytes() for p in smoke.rglob("*") if p.is_file()}
    err = capsys.readouterr().err
    assert f"outputs in {smoke}" in err and "runs:" not in err  # smoke: no progress bar

    assert main(["notebooks", "--only", "01", "--preset", "quick", "-p", "n=5"]) == 0
    custom = tiny / "quick+n=5"
    assert (custom / "n.txt").read_text() == "5"
    assert {p: p.read_bytes() for p in smoke.rglob("*") if p.is_file()} == before  # untouched
    err = capsys.readouterr().err
    assert "runs: 100%" in err and "3/3" in err  # live text bar on the terminal (quick: on by default)
    nb = nbformat.read(str(custom / "notebooks" / "01_tiny.ipynb"), as_version=4)
    assert N.injected_parameters(nb) == {"n": 5, "progress": True}
    streams = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", [])
                      if o.get("name") == "stderr")
    # the bar's final state, as text: no widget, no stale 0% line, no overwritten states
    assert re.fullmatch(r"runs: 100%[^\n]*\b3/3 [^\n]*\n", streams) and "\r" not in streams, streams
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                   for c in nb.cells for o in c.get("outputs", []))

    # the same label with another preset is refused, nothing is touched
    assert main(["notebooks", "--only", "01", "--preset", "quick", "--label", "smoke"]) == 2
    assert "already holds results of preset 'smoke'" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in smoke.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_failing_notebook_prints_its_error_first(tiny, capsys):
    assert main(["notebooks", "--only", "02", "--preset", "smoke"]) == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert lines[0].startswith("jointtask notebooks: preset smoke: outputs in")
    i = 1  # the error comes first: nothing (kernel start-up noise, tracebacks) before it
    assert re.search(r"FAILED 02_bad \([\d.]+ s\): ValueError: notebook 02_bad: parameter 'n' must be even; got 3$",
                     lines[i])
    assert re.fullmatch(r"\s+full trace: .*02_bad\.ipynb \(cell \d+, execution count \d+\)", lines[i + 1])
    assert lines[i + 2].startswith("jointtask notebooks: 1 of 1 failed: 02_bad")
    assert (tiny / "smoke" / "notebooks" / "02_bad.ipynb").is_file()
