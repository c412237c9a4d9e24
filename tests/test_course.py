"""Course material: exercise/solution cells, student notebooks, "What we saw", HTML renders,
the lesson preset (jointtask_lib/course.py, notebooks/README.md)."""

from __future__ import annotations

import json
import re

import nbformat
import pytest
import yaml

from jointtask_lib import course
from jointtask_lib import notebook as N
from jointtask_lib import sweep as SW

COURSE_BOOKS = [p for p in N.list_notebooks() if p.stem[:2] in course.COURSE_NOTEBOOKS]
IDS = [p.stem for p in COURSE_BOOKS]
STARS = re.compile(r"\*\*Exercise (\d+) \((★+)")


def _cells(path, tag):
    return course.tagged_cells(N.read_notebook(path), tag)


def test_every_course_notebook_is_covered():
    assert [p.stem[:2] for p in COURSE_BOOKS] == list(course.COURSE_NOTEBOOKS)


@pytest.mark.parametrize("path", COURSE_BOOKS, ids=IDS)
def test_exercises_are_graded_and_each_has_a_solution(path):
    nb = N.read_notebook(path)
    ex = course.tagged_cells(nb, course.EXERCISE_TAG)
    sol = course.tagged_cells(nb, course.SOLUTION_TAG)
    assert len(ex) >= 2 and len(sol) == len(ex), (path.name, len(ex), len(sol))
    assert all(c.cell_type == "markdown" for c in ex) and all(c.cell_type == "code" for c in sol)
    heads = [STARS.search(c.source) for c in ex]
    assert all(heads), f"{path.name}: every exercise starts with '**Exercise N (★...'"
    assert [int(h.group(1)) for h in heads] == list(range(1, len(ex) + 1))
    stars = [len(h.group(2)) for h in heads]
    assert stars == sorted(stars) and stars[0] < stars[-1], f"{path.name}: not graded in difficulty: {stars}"
    # each exercise is directly followed by its solution
    order = [c for c in nb.cells if set(c.metadata.get("tags", [])) & {course.EXERCISE_TAG, course.SOLUTION_TAG}]
    assert [course.EXERCISE_TAG in c.metadata["tags"] for c in order] == [True, False] * len(ex)


@pytest.mark.parametrize("path", COURSE_BOOKS, ids=IDS)
def test_solutions_are_short_library_calls_that_nbval_runs(path):
    for c in _cells(path, course.SOLUTION_TAG):
        lines = [ln for ln in c.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        assert len(lines) <= 8, f"{path.name}: a solution longer than 8 lines belongs in the library:\n{c.source}"
        assert not re.search(r"^\s*(def|class) ", c.source, re.M), f"{path.name}: no definitions in solutions"
        # nbval executes every code cell of the smoke reference unless it is skipped
        assert "NBVAL_SKIP" not in c.source and "NBVAL_RAISES_EXCEPTION" not in c.source
        assert not {"nbval-skip", "raises-exception"} & set(c.metadata.get("tags", []))
    assert any("course." in c.source for c in N.read_notebook(path).cells if c.cell_type == "code")


@pytest.mark.parametrize("path", COURSE_BOOKS, ids=IDS)
def test_what_we_saw_is_generated(path):
    """A '## What we saw' section whose numbers come from a code cell (not typed in prose)."""
    nb = N.read_notebook(path)
    heads = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## What we saw" in c.source]
    assert heads, f"{path.name}: no '## What we saw' section"
    after = [c for c in nb.cells[heads[0]:] if c.cell_type == "code"]
    assert any("what_we_saw(" in c.source or "claims_summary(" in c.source for c in after), path.name


def test_student_notebooks_keep_exercises_and_drop_solutions(tmp_path):
    written = course.write_student(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{p.stem}.ipynb" for p in N.list_notebooks())
    for path in COURSE_BOOKS:
        src = N.read_notebook(path)
        nb = nbformat.read(str(tmp_path / f"{path.stem}.ipynb"), as_version=4)
        nbformat.validate(nb)
        assert course.tagged_cells(nb, course.SOLUTION_TAG) == []
        assert [c.source for c in course.tagged_cells(nb, course.EXERCISE_TAG)] == \
            [c.source for c in course.tagged_cells(src, course.EXERCISE_TAG)]
        kept = [c.source for c in src.cells if course.SOLUTION_TAG not in c.metadata.get("tags", [])]
        assert [c.source for c in nb.cells] == kept  # nothing else removed or reordered
        assert nb.metadata["kernelspec"]["name"] == "python3"
        assert len([c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]) == 1


def test_course_main_writes_students(tmp_path, capsys):
    assert course.main(["student", "--out", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "03_joint_training.ipynb").is_file()
    assert course.main(["html", "--src", str(tmp_path / "none"), "--out", str(tmp_path / "h")]) == 2
    assert "no executed notebooks" in capsys.readouterr().err


# -- What we saw -----------------------------------------------------------------------------------


def _claim(id, verdict, ours):
    """A claim row as scorecard.claim writes it (the fields every claims file is checked for)."""
    return {"id": id, "paper": "A", "claim": f"claim {id}", "verdict": verdict, "ours": ours,
            "paper_value": "v", "preset": "lesson", "notebook": "03_x"}


def test_what_we_saw_reads_the_claims_file(tmp_path):
    rows = [_claim("a", "reproduced", "1.52 [1.09, 6.88]"), _claim("b", "inconclusive", "0.9 [0.2, 3.1]"),
            _claim("c", "inconclusive", "n/a")]
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "03_x.json").write_text(json.dumps(rows))
    s = course.what_we_saw("03_x", tmp_path, facts=["fact one"], preset="lesson")
    assert s.lines[0] == "fact one"
    assert s.lines[1] == "3 claim(s) written to claims/03_x.json: reproduced 1, inconclusive 2"
    assert "*reproduced*: claim a — ours: 1.52 [1.09, 6.88]" in s.lines
    assert "preset lesson" in s.title and "1.52 [1.09, 6.88]" in s._repr_markdown_()
    assert str(s).startswith(s.title)
    # another notebook's file is not read; no file: only the facts
    assert course.what_we_saw("04_y", tmp_path, facts=["f"]).lines == ["f"]


def test_what_we_saw_rejects_a_malformed_claims_file(tmp_path):
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "02_x.json").write_text(json.dumps({"verdict": "reproduced"}))
    with pytest.raises(ValueError, match="02_x.json"):
        course.what_we_saw("02_x", tmp_path)


def test_transition_and_reduction_facts_use_the_objects():
    from jointtask_lib.transition import estimate_transition, reduction_factor

    sizes = [1e3, 2e3, 4e3, 8e3, 16e3] * 2
    easy = [0.1, 0.95, 1.0, 1.0, 1.0, 0.1, 0.9, 1.0, 1.0, 1.0]
    hard = [0.1, 0.1, 0.1, 0.95, 1.0, 0.1, 0.1, 0.2, 0.9, 1.0]
    seeds = [0] * 5 + [1] * 5
    te = estimate_transition(sizes, easy, seeds, n_boot=50, rng=0)
    th = estimate_transition(sizes, hard, seeds, n_boot=50, rng=0)
    lines = course.transition_facts({"EASY": te, "HARD": th, "NONE": None}, "mod 7")
    assert lines[0] == "mod 7: easiest to hardest: EASY < HARD"
    assert f"EASY {te.describe()}" in lines[1] and "NONE no fit" in lines[1]
    red = reduction_factor((sizes, hard, seeds), (sizes, easy, seeds), n_boot=50, rng=0)
    out = course.reduction_facts({"x": red, "y": None})
    assert red.describe() in out[-1] and "y no estimate" in out[-1]
    if red.kind == "estimate":
        assert out[0] == f"largest estimated factor: x {red.describe()}"


def test_entropy_facts_and_normalised_entropies():
    from jointtask_lib import tables
    from jointtask_lib.tasks import TaskConfig

    d = tables.output_distributions([TaskConfig(ops=("MAX", "ADD", "PROD"), modulus=7, depth=2)])
    h = course.normalised_entropies(d)["mod 7"]
    assert h["ADD"] == pytest.approx(1.0) and h["MAX"] < 1 and h["PROD"] < 1
    (line,) = course.entropy_facts(d)
    low = min(h, key=h.get)
    assert line.startswith(f"mod 7: most peaked {low} ") and line.endswith("uniform: ADD")


def test_learned_counts_counts_seeds_per_width():
    def rec(ops, w, seed, acc):
        return {"spec": {"task": {"ops": list(ops), "family": "listops", "modulus": 5}, "arch": {"n_embed": w},
                         "seed": seed}, "n_params": w * 100, "metrics": {"per_op": {ops[0]: {"gen_acc": acc}}}}

    recs = [rec(["ADD"], 8, 0, 0.9), rec(["ADD"], 8, 1, 0.3), rec(["ADD"], 16, 0, 1.0), rec(["ADD"], 16, 1, 0.8),
            rec(["MAX"], 8, 0, 0.1)]
    assert course.learned_counts(recs, mixes=[("ADD",), ("MAX",)], threshold=0.8, size=5) == \
        {"ADD": {8: "1/2", 16: "2/2"}, "MAX": {8: "0/1"}}


def test_min_permutation_p():
    assert course.min_permutation_p(2, 2) == pytest.approx(1 / 6)
    assert course.min_permutation_p(3, 3) == pytest.approx(1 / 20)


# -- HTML ------------------------------------------------------------------------------------------

PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _executed(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(N.KERNELSPEC)
    code = nbformat.v4.new_code_cell("plot()", execution_count=1)
    code.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": PNG_1PX, "text/plain": "<Figure>"}),
        nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
            "text/plain": "interactive(...)"}),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title $x^2$"), code]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(nb, str(src / "01_demo.ipynb"))
    (src / "notes.ipynb").write_text("not a course notebook")  # ignored: not NN_*.ipynb
    return src


def test_render_html_is_offline_with_embedded_figures(tmp_path):
    src = _executed(tmp_path)
    out = tmp_path / "html"
    written = course.render_html(src, out, title="Lesson run")
    assert [p.name for p in written] == ["01_demo.html"]
    text = written[0].read_text()
    assert f"data:image/png;base64,{PNG_1PX}" in text
    assert course.remote_references(text) == []
    assert "application/vnd.jupyter.widget-view+json" not in text and '"abc"' not in text
    assert "cdnjs" not in text and "require.min.js" not in text
    index = (out / "index.html").read_text()
    assert 'href="01_demo.html"' in index and "Lesson run" in index


def test_remote_references_finds_network_loads():
    html = ('<script src="https://cdn.example/x.js"></script><link href="//cdn.example/s.css">'
            '<img src="data:image/png;base64,AAAA//BB"><a href="https://example.org">a link is fine</a>'
            '<script type="module">const m = (await import("https://cdn.example/m.mjs")).default;</script>')
    assert course.remote_references(html) == ["https://cdn.example/x.js", "//cdn.example/s.css",
                                              "https://cdn.example/m.mjs"]
    assert course.remote_references(course._REMOTE.sub("", html)) == []


# -- the lesson preset -----------------------------------------------------------------------------


def _cost(sw) -> float:
    """The sweep's relative training cost: steps x (width + offset), the model of sweep.job_cost
    (measured: time per step is about proportional to width + 14, benchmarks/README.md)."""
    return sum(s.train.steps * (s.arch.n_embed + SW.JOB_COST_OFFSET) for s in sw.specs)


@pytest.mark.parametrize("name", sorted(p.stem for p in (N.PARAMS_DIR / "sweeps").glob("*.yaml")))
def test_every_sweep_has_a_lesson_preset_far_cheaper_than_quick(name):
    path = N.PARAMS_DIR / "sweeps" / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    assert "lesson" in data["presets"], f"{name}.yaml has no lesson preset"
    lesson, quick = SW.load_sweep(path, "lesson"), SW.load_sweep(path, "quick")
    assert _cost(lesson) * 4 <= _cost(quick), (name, _cost(lesson), _cost(quick))
    assert len(lesson.widths) >= 3, "a transition needs at least three widths"


def test_lesson_is_a_preset_of_every_notebook():
    assert "lesson" in N.PRESETS and "lesson" in SW.PRESETS
    for path in N.list_notebooks():
        N.load_preset(path.stem, "lesson")


@pytest.mark.parametrize("path", COURSE_BOOKS, ids=IDS)
def test_reference_notebook_ran_every_solution_at_smoke(path):
    """The nbval reference (``make nbref``: the smoke preset) holds every solution cell, executed
    without an error.  Until the references are regenerated after a notebook change this fails
    together with ``test_reference_copy_matches_source``."""
    ref = N.REFERENCE_DIR / f"{path.stem}.ipynb"
    nb = nbformat.read(str(ref), as_version=4)
    sols = course.tagged_cells(nb, course.SOLUTION_TAG)
    assert [c.source for c in sols] == [c.source for c in _cells(path, course.SOLUTION_TAG)], \
        f"{ref.name} is stale: regenerate with `make nbref`"
    for c in sols:
        assert c.get("execution_count"), f"{ref.name}: a solution cell was not executed:\n{c.source}"
        assert not [o for o in c.outputs if o.get("output_type") == "error"], c.source
        assert c.outputs, f"{ref.name}: a solution cell printed nothing:\n{c.source}"


def _defined_and_used(source: str) -> tuple[set, set]:
    import ast

    tree = ast.parse(source)
    defined, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, (ast.Store, ast.Del)) else used).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
    return defined, used


@pytest.mark.parametrize("path", COURSE_BOOKS, ids=IDS)
def test_student_notebook_does_not_need_the_solutions(path):
    """No cell a student keeps reads a name that only a (removed) solution cell defines."""
    only_in_solutions: set = set()
    defined: set = set()
    for c in N.read_notebook(path).cells:
        if c.cell_type != "code":
            continue
        d, u = _defined_and_used(c.source)
        if course.SOLUTION_TAG in c.metadata.get("tags", []):
            only_in_solutions |= d - defined
            continue
        missing = (u - d) & only_in_solutions
        assert not missing, f"{path.name}: a cell students keep uses {sorted(missing)}, defined only in a solution"
        defined |= d
        only_in_solutions -= d


def test_presets_are_declared_once():
    from jointtask_lib import validate

    assert N.PRESETS is validate.PRESETS and SW.PRESETS is validate.PRESETS


def test_committed_renders_open_offline_and_their_links_resolve():
    """Every HTML render kept in reports/<preset>/html/ loads nothing from the network, its
    index links only to renders that exist, and the README links to the quick and lesson indexes."""
    from jointtask_lib.paths import repo_root

    root = repo_root()
    indexes = sorted((root / "reports").glob("*/html/index.html"))
    assert {p.parent.parent.name for p in indexes} >= {"lesson", "quick"}
    for index in indexes:
        links = re.findall(r'href="([^"]+)"', index.read_text())
        assert links, index
        for link in links:
            assert (index.parent / link).is_file(), f"{index}: {link}"
        for page in index.parent.glob("*.html"):
            assert course.remote_references(page.read_text()) == [], page
    readme = (root / "README.md").read_text()
    for preset in ("lesson", "quick"):
        assert f"(reports/{preset}/html/index.html)" in readme
