"""The README's recipe for running a notebook source with papermill (through jupytext), run as
the README writes it (its ``bash`` and ``python`` blocks under "Running a notebook with
papermill"), with the results folder moved to a temporary one: the Python API runs a notebook
with a parameter into the label's folder; the CLI pipe, given a misspelled parameter, fails
naming it and the known ones (papermill itself only warns and runs on the defaults)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jointtask_lib import notebook as N

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _recipe(lang: str, tmp_path: Path) -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running a notebook with papermill", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(rf"```{lang}\n(.*?)```", section, re.S)
    return block.replace("results/mine", str(tmp_path / "results" / "mine")).replace(".venv/bin/", f"{BIN}/")


def test_cli_recipe_rejects_a_misspelled_parameter(tmp_path):
    script = _recipe("bash", tmp_path)
    assert "-p modulus 7" in script and "jupytext --to ipynb --output - notebooks/01_tasks.py" in script
    env = {**os.environ, "JOINTTASK_RESULTS": str(tmp_path / "results")}
    env.pop("JOINTTASK_LABEL", None)
    proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script.replace("-p modulus 7", "-p modulos 7")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "unknown parameter 'modulos' (injected by papermill); allowed:" in out
    assert "modulus" in out.split("unknown parameter 'modulos'", 1)[1]


def test_python_api_recipe_runs_with_a_parameter(tmp_path, monkeypatch):
    monkeypatch.setenv("JOINTTASK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("JOINTTASK_LABEL", "mine")
    monkeypatch.chdir(ROOT)
    out_dir = tmp_path / "results" / "mine" / "notebooks"
    out_dir.mkdir(parents=True)
    exec(compile(_recipe("python", tmp_path), "README.md", "exec"), {})
    import nbformat

    done = nbformat.read(str(out_dir / "00_scorecard.ipynb"), as_version=4)
    assert N.injected_parameters(done) == {"write_markdown": True}
    assert (tmp_path / "results" / "mine" / "SCORECARD.md").is_file()  # under the label
    assert not (tmp_path / "results" / "SCORECARD.md").exists()
