"""JupyterLab as ``make lab`` starts it: a real server on a loopback port (contents API).

* the project's shipped setting makes JupyterLab open ``.py`` files with the Jupytext notebook
  viewer (``jupyter-config/labconfig/default_setting_overrides.json``);
* every ``notebooks/*.py`` opens through the contents API as a notebook with its one
  ``parameters`` cell (the same names and values the runner reads);
* saving it back (with the metadata JupyterLab adds: kernelspec, outputs) keeps the ``.py``
  byte-identical, and the outputs land in the paired ``results/lab/notebooks/<name>.ipynb``;
  changing one cell changes exactly that line of the source.

The server serves a temporary copy of the sources and is always shut down (tests/lab_server.py).
"""

from __future__ import annotations

import copy
import difflib
import urllib.parse

import pytest

from jointtask_lib import notebook as N

from lab_server import copy_project, lab_server  # tests/lab_server.py (pytest puts tests/ on sys.path)

pytestmark = pytest.mark.slow

STEMS = [p.stem for p in N.list_notebooks()]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("lab")
    root = copy_project(base / "project")
    with lab_server(root, base / "work") as server:
        server.root = root
        yield server


def _get(lab, rel: str) -> dict:
    return lab.request("GET", f"/api/contents/{urllib.parse.quote(rel)}?type=notebook&content=1")


def _put(lab, rel: str, nb: dict) -> dict:
    return lab.request("PUT", f"/api/contents/{urllib.parse.quote(rel)}",
                       {"type": "notebook", "format": "json", "content": nb})


def test_py_files_open_with_the_notebook_viewer_by_default(lab):
    st = lab.request("GET", "/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    viewers = st["schema"]["properties"]["defaultViewers"]["default"]
    assert viewers.get("python") == "Jupytext Notebook", viewers


@pytest.mark.parametrize("stem", STEMS)
def test_source_opens_as_a_notebook_with_its_parameters_cell(lab, stem):
    model = _get(lab, f"notebooks/{stem}.py")
    assert model["type"] == "notebook" and model["format"] == "json"
    cells = model["content"]["cells"]
    tagged = [c for c in cells if c["cell_type"] == "code" and "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    source = tagged[0]["source"]
    source = "".join(source) if isinstance(source, list) else source
    assert N.parse_parameters_source(source, stem) == N.notebook_parameters(N.NOTEBOOKS_DIR / f"{stem}.py")
    assert sum(c["cell_type"] == "markdown" for c in cells) >= 1


@pytest.mark.parametrize("stem", STEMS)
def test_save_round_trip_keeps_the_source_byte_identical(lab, stem):
    path = lab.root / "notebooks" / f"{stem}.py"
    before = path.read_bytes()
    nb = _get(lab, f"notebooks/{stem}.py")["content"]
    # what JupyterLab adds when a user runs and saves: a kernelspec with this project's display
    # name, language_info, execution counts and outputs
    nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3 (jointtask)",
                                    "language": "python"}
    nb["metadata"]["language_info"] = {"name": "python", "version": "3.11"}
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    code[-1]["execution_count"] = 7
    code[-1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": f"output of {stem}\n"}]
    _put(lab, f"notebooks/{stem}.py", nb)
    assert path.read_bytes() == before, "".join(difflib.unified_diff(
        before.decode().splitlines(True), path.read_text().splitlines(True), "before", "after"))
    paired = lab.root / "results" / "lab" / "notebooks" / f"{stem}.ipynb"
    assert paired.is_file() and f"output of {stem}" in paired.read_text()
    # reopening shows the outputs again (read from the paired copy), inputs from the .py
    again = _get(lab, f"notebooks/{stem}.py")["content"]
    outs = [o for c in again["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any(f"output of {stem}" in "".join(o.get("text", "")) for o in outs)


def test_editing_one_cell_changes_only_that_line(lab):
    stem = "03_joint_training"
    path = lab.root / "notebooks" / f"{stem}.py"
    before = path.read_text()
    nb = _get(lab, f"notebooks/{stem}.py")["content"]
    (cell,) = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    assert "\nlevel = 0.8\n" in src
    cell["source"] = src.replace("\nlevel = 0.8\n", "\nlevel = 0.7\n")
    _put(lab, f"notebooks/{stem}.py", copy.deepcopy(nb))
    after = path.read_text()
    changed = [ln for ln in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
               if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert changed == ["-level = 0.8", "+level = 0.7"]
