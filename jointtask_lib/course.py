"""Course material: "What we saw" summaries, exercise/solution cells, student notebooks, HTML.

The notebooks are also teaching material (``notebooks/README.md`` is the lesson plan).  This
module holds what the course needs beyond the notebooks themselves:

* :func:`what_we_saw` builds each notebook's closing summary from **that run's** results: the
  claim rows the notebook wrote to ``<results>/claims/<stem>.json`` (read back from the file) and
  facts formatted from the objects the notebook computed (:func:`transition_facts`,
  :func:`reduction_facts`, :func:`entropy_facts`, ...).  No number in it is typed by hand, so it is
  right for whatever preset ran.
* Exercise cells are markdown cells tagged ``exercise``; their solutions are code cells tagged
  ``solution`` (jupytext: ``# %% tags=["solution"]``).  :func:`student_notebook` drops the
  solution cells with nbconvert's ``TagRemovePreprocessor``; ``python -m jointtask_lib.course
  student`` (``make student``) writes every student notebook.
* :func:`render_html` turns executed notebooks into HTML files that open offline (images are
  embedded as data URIs; no script or style sheet is loaded from the network); ``python -m
  jointtask_lib.course html`` (``make html``).

Heavy imports (nbconvert, torch through the library) are lazy: importing this module is cheap.
"""

from __future__ import annotations

import argparse
import html as _html
import math
import re
import sys
from pathlib import Path

from .paths import atomic_write, output_dir, repo_root

EXERCISE_TAG = "exercise"
SOLUTION_TAG = "solution"
COURSE_NOTEBOOKS = tuple(f"{i:02d}" for i in range(1, 10))  # 01..09 carry exercises


# ------------------------------------------------------------------------------------------
# "What we saw"
# ------------------------------------------------------------------------------------------


class Summary:
    """A closing summary: a title and bullet lines.  Renders as Markdown in Jupyter and in HTML
    renders (``_repr_markdown_``), as plain text elsewhere (``str``)."""

    def __init__(self, title: str, lines: list[str]):
        self.title = title
        self.lines = list(lines)

    def markdown(self) -> str:
        return f"**{self.title}**\n\n" + "\n".join(f"* {line}" for line in self.lines)

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __str__(self) -> str:
        return self.title + "\n" + "\n".join(f"* {line}" for line in self.lines)

    __repr__ = __str__


def read_claims(results, notebook: str) -> list[dict]:
    """The claim rows ``notebook`` wrote to ``<output folder>/claims/<notebook>.json`` ([] if none);
    the output folder is the one :func:`jointtask_lib.scorecard.write_claims` writes to
    (:func:`jointtask_lib.paths.output_dir`: ``<results>/<label>`` under a preset or label)."""
    from .scorecard import read_claims_file

    path = output_dir(results) / "claims" / f"{notebook}.json"
    return read_claims_file(path) if path.is_file() else []


def verdict_counts(rows: list[dict]) -> dict[str, int]:
    """``{verdict: count}`` in the order the verdicts first appear."""
    out: dict[str, int] = {}
    for r in rows:
        out[r["verdict"]] = out.get(r["verdict"], 0) + 1
    return out


def claim_lines(rows: list[dict]) -> list[str]:
    """One line per claim: ``*verdict*: claim — ours: ...``."""
    return [f"*{r['verdict']}*: {r['claim']} — ours: {r.get('ours', '')}" for r in rows]


def what_we_saw(notebook: str, results, facts=(), *, preset: str | None = None) -> Summary:
    """The closing summary of ``notebook``: the run's facts, then its claims read back from
    ``<results>/claims/<notebook>.json`` (verdict counts and one line per claim)."""
    lines = [str(f) for f in facts]
    rows = read_claims(results, notebook)
    if rows:
        counts = ", ".join(f"{k} {v}" for k, v in verdict_counts(rows).items())
        lines.append(f"{len(rows)} claim(s) written to claims/{notebook}.json: {counts}")
        lines += claim_lines(rows)
    title = f"What this run showed ({notebook}" + (f", preset {preset})" if preset else ")")
    return Summary(title, lines)


def transition_facts(transitions: dict, where: str = "") -> list[str]:
    """Lines from ``{label: Transition | None}``: the order from easiest to hardest and each
    transition (an estimate with its CI, or a bound)."""
    from .experiments import hardness_order

    pre = f"{where}: " if where else ""
    lines = []
    known = {k: t for k, t in transitions.items() if t is not None}
    if known:
        lines.append(pre + "easiest to hardest: " + " < ".join(hardness_order(known)))
    parts = [f"{k} {t.describe() if t is not None else 'no fit (too few sizes)'}" for k, t in transitions.items()]
    lines.append(pre + "transitions (parameters): " + "; ".join(parts))
    return lines


def reduction_facts(reductions: dict, where: str = "") -> list[str]:
    """Lines from ``{label: Reduction | None}``: the factors, largest estimate first."""
    pre = f"{where}: " if where else ""
    est = sorted(((k, r) for k, r in reductions.items() if r is not None and r.kind == "estimate"),
                 key=lambda kr: -kr[1].value)
    lines = []
    if est:
        k, r = est[0]
        lines.append(pre + f"largest estimated factor: {k} {r.describe()}")
    lines.append(pre + "factors: " + "; ".join(
        f"{k} {r.describe() if r is not None else 'no estimate'}" for k, r in reductions.items()))
    return lines


def normalised_entropies(dists: dict) -> dict[str, dict[str, float]]:
    """``{label: {op: H / log2(size)}}`` from :func:`jointtask_lib.tables.output_distributions`."""
    from .tasks import entropy_bits

    out: dict[str, dict[str, float]] = {}
    for (op, label), p in dists.items():
        out.setdefault(label, {})[op] = entropy_bits(p) / math.log2(len(p))
    return out


def entropy_facts(dists: dict) -> list[str]:
    """Per modulus (or group): the most peaked operation and the operations with uniform outputs."""
    lines = []
    for label, h in normalised_entropies(dists).items():
        low = min(h, key=h.get)
        uniform = [op for op, v in h.items() if v > 1 - 1e-9]
        lines.append(f"{label}: most peaked {low} (H/log2 = {h[low]:.3f}); uniform: {', '.join(uniform) or 'none'}")
    return lines


def learned_counts(records, *, mixes, threshold: float, op: str | None = None,
                   size=None) -> dict[str, dict[int, str]]:
    """``{mix: {width: "k/m"}}``: how many of the m seeds of each mix reached ``threshold`` on
    ``op`` (default: the mix's first operation) at each width
    (:func:`jointtask_lib.experiments.accuracy_by_seed`)."""
    from .experiments import accuracy_points, accuracy_by_seed, fmt_mix
    from .records import is_learned

    out: dict[str, dict[int, str]] = {}
    for mix in mixes:
        mix = tuple(mix)
        on = op or mix[0]
        widths = sorted({int(x) for x in accuracy_points(records, ops=mix, op=on, size=size, x="n_embed")[0]})
        row = {}
        for w in widths:
            acc = accuracy_by_seed(records, ops=mix, op=on, size=size, width=w)
            row[w] = f"{sum(is_learned(a, threshold) for a in acc.values())}/{len(acc)}"
        out[fmt_mix(mix)] = row
    return out


def min_permutation_p(n_a: int, n_b: int) -> float:
    """The smallest p-value an exact two-group permutation test of ``n_a`` vs ``n_b`` seeds can
    give: one split out of ``C(n_a + n_b, n_a)``."""
    return 1.0 / math.comb(n_a + n_b, n_a)


# ------------------------------------------------------------------------------------------
# Exercise / solution cells and student notebooks
# ------------------------------------------------------------------------------------------


def _tags(cell) -> list:
    tags = cell.get("metadata", {}).get("tags", [])
    return list(tags) if isinstance(tags, (list, tuple)) else []


def tagged_cells(nb, tag: str) -> list:
    return [c for c in nb.cells if tag in _tags(c)]


def student_notebook(path):
    """The student version of a notebook source: the solution cells removed (nbconvert's
    ``TagRemovePreprocessor``), the ``python3`` kernel set, cell ids stable."""
    from nbconvert.preprocessors import TagRemovePreprocessor

    from .notebook import prepare_notebook

    nb = prepare_notebook(path)
    pre = TagRemovePreprocessor(remove_cell_tags={SOLUTION_TAG}, enabled=True)
    nb, _ = pre.preprocess(nb, {})
    return nb


def write_student(out_dir, notebooks=None) -> list[Path]:
    """Write ``<out_dir>/<stem>.ipynb`` for every notebook source (or those given); return them."""
    import nbformat

    from .notebook import list_notebooks, resolve_notebook

    out = Path(out_dir)
    books = [resolve_notebook(n) for n in notebooks] if notebooks else list_notebooks()
    written = []
    for book in books:
        nb = student_notebook(book)
        if tagged_cells(nb, SOLUTION_TAG):  # pragma: no cover - the preprocessor's job
            raise AssertionError(f"{book.name}: solution cells left in the student notebook")
        dest = out / f"{book.stem}.ipynb"
        atomic_write(dest, lambda fh, nb=nb: nbformat.write(nb, fh), text=True)
        written.append(dest)
    return written


# ------------------------------------------------------------------------------------------
# HTML renders that open offline
# ------------------------------------------------------------------------------------------

# A <script src=...> or <link href=...> that points to the network, or an inline script that
# imports a module from it (the lab template's Mermaid loader): stripped from the renders.
_REMOTE = re.compile(
    r"<script\b[^>]*\bsrc=[\"']?(?:https?:)?//[^>]*>\s*</script>|<link\b[^>]*\bhref=[\"']?(?:https?:)?//[^>]*>"
    r"|<script\b[^>]*>(?:(?!</script>).)*?\bimport\(\s*[\"'](?:https?:)?//(?:(?!</script>).)*</script>",
    re.IGNORECASE | re.DOTALL)


def remote_references(text: str) -> list[str]:
    """Every ``src=``/``href=`` attribute of a script, link, img or iframe element, and every
    dynamic ``import("...")``, that points to the network (``http://``, ``https://`` or ``//``); an
    offline render has none."""
    out = []
    for m in re.finditer(r"<(script|link|img|iframe)\b[^>]*>", text, re.IGNORECASE):
        for a in re.finditer(r"\b(?:src|href)=[\"']?((?:https?:)?//[^\"' >]+)", m.group(0), re.IGNORECASE):
            out.append(a.group(1))
    out += re.findall(r"\bimport\(\s*[\"']((?:https?:)?//[^\"']+)", text)
    return out


def render_html(src_dir, out_dir, *, title: str = "") -> list[Path]:
    """Render every executed ``<src_dir>/NN_*.ipynb`` to ``<out_dir>/NN_*.html`` and write an
    ``index.html`` linking them.  Images stay embedded (data URIs); scripts and style sheets that
    would be fetched from the network (require.js, MathJax) are removed, so the files open offline.
    Widget outputs are dropped: the notebooks draw every figure statically as well (their widgets
    only run with ``interactive = True``)."""
    import nbformat
    from nbconvert import HTMLExporter

    src, out = Path(src_dir), Path(out_dir)
    books = sorted(p for p in src.glob("[0-9][0-9]_*.ipynb") if p.is_file())
    if not books:
        raise ValueError(f"'src' {src}: no executed notebooks (NN_*.ipynb) found")
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    written = []
    for book in books:
        nb = nbformat.read(str(book), as_version=4)
        nb.metadata.pop("widgets", None)
        for cell in nb.cells:
            for o in cell.get("outputs", []):
                o.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
        body, _ = exporter.from_notebook_node(nb)
        body = _REMOTE.sub("", body)
        left = remote_references(body)
        if left:
            raise ValueError(f"{book.name}: the render still loads {left[:3]} from the network")
        dest = out / f"{book.stem}.html"
        atomic_write(dest, lambda fh, b=body: fh.write(b), text=True)
        written.append(dest)
    items = "\n".join(f'<li><a href="{p.name}">{_html.escape(p.stem)}</a></li>' for p in written)
    heading = _html.escape(title or f"jointtask notebooks ({src})")
    index = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{heading}</title></head>\n"
             f"<body><h1>{heading}</h1>\n<ul>\n{items}\n</ul></body></html>\n")
    atomic_write(out / "index.html", lambda fh: fh.write(index), text=True)
    return written


# ------------------------------------------------------------------------------------------
# python -m jointtask_lib.course {student,html}
# ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jointtask_lib.course",
                                description="Student notebooks and offline HTML renders.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("student", help="write the notebooks without their solution cells")
    s.add_argument("--out", default=str(repo_root() / "build" / "student"))
    h = sub.add_parser("html", help="render executed notebooks as offline HTML")
    h.add_argument("--src", required=True, help="folder of executed notebooks (NN_*.ipynb)")
    h.add_argument("--out", required=True, help="folder for the HTML files")
    h.add_argument("--title", default="")
    a = p.parse_args(argv)
    try:
        if a.command == "student":
            paths = write_student(a.out)
        else:
            paths = render_html(a.src, a.out, title=a.title)
    except ValueError as exc:
        print(f"course {a.command}: error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
