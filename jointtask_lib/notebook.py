"""Running the notebooks: parameters, presets, papermill, nbval reference copies, the CLI.

Contract every notebook under ``notebooks/NN_name.py`` (jupytext py:percent) follows
-----------------------------------------------------------------------------------------
* Exactly **one** cell tagged ``parameters`` (``# %% tags=["parameters"]``) holding only
  ``name = <literal>`` lines; :func:`notebook_parameters` reads it with :mod:`ast`.
* Presets ``params/<stem>/{smoke,quick,paper}.yaml`` override some of those names; their keys and
  value types are checked against the notebook's defaults by :func:`load_preset`, and their
  values against the rule table :data:`PARAM_RULES` / :data:`NOTEBOOK_RULES` (counts >= 1, a
  sweep that exists, a ``sweep_preset`` that sweep defines, known operations, ...), so a bad
  preset fails on load with a message naming the file, the key and what is allowed, not later
  inside the kernel.  The notebooks still check their parameters themselves (they can be run by
  hand, without a preset).
* ``smoke`` is what nbval re-executes (``tests/notebooks/<stem>.ipynb``, written by
  ``make nbref``); ``quick`` is a laptop run of minutes; ``paper`` reproduces the paper's setting;
  ``lesson`` trains in a few minutes per notebook, for a class (``notebooks/README.md``).

:func:`execute_notebook` converts the text notebook (``jupytext.read``), pins the ``python3``
kernel, and runs it with papermill from the repository root.  ``jointtask notebooks`` runs several,
in separate processes when ``--workers > 1`` (papermill is not thread-safe).

``jointtask notebooks``: ``-p NAME=VALUE`` sets parameters on top of the preset (names checked
against the parameters cell, values by the preset rules, before a kernel starts); every run writes
to its own output folder ``<results>/<label>/`` (the preset, ``<preset>+name=value...`` with ``-p``,
or ``--label``; :func:`claim_output_folder` refuses to mix presets or parameters in one folder)
while the run cache ``<results>/runs`` stays shared; long presets show a live text progress bar
(:mod:`jointtask_lib.progress`); a failing notebook prints its error as one line first, then where
the full traceback is.  Inside a notebook, :func:`check_parameters` also rejects names papermill
injected that the parameters cell does not define (papermill itself only warns).
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .paths import (ENV_LABEL, MANIFEST, MAX_LABEL, atomic_write, check_label, output_dir, repo_root,
                    results_dir)
from . import schema
from .validate import MAX_EXAMPLES, MAX_SEED, PRESETS, check_choice, check_float, check_int

ROOT = repo_root()
NOTEBOOKS_DIR = ROOT / "notebooks"
PARAMS_DIR = ROOT / "params"
REFERENCE_DIR = ROOT / "tests" / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
INJECTED_TAG = "injected-parameters"


#: Presets whose runs are long enough to show a live progress bar by default (``jointtask notebooks``).
PROGRESS_PRESETS = ("quick", "paper", "lesson")
#: The label ``make lab`` gives JupyterLab sessions (``results/lab/``, the paired .ipynb copies).
LAB_LABEL = "lab"


class NotebookError(RuntimeError):
    """A notebook failed to execute; the message names it and the failing cell.

    ``headline``: one line (notebook, exception type and message: for a bad parameter the notebook,
    the parameter and the allowed values); ``trace``: where the executed copy with the full
    traceback is (``""`` when none was written)."""

    def __init__(self, msg: str, headline: str = "", trace: str = ""):
        super().__init__(msg)
        self.headline = headline or msg
        self.trace = trace


# ------------------------------------------------------------------------------------------
# Finding notebooks and reading their parameters
# ------------------------------------------------------------------------------------------


def list_notebooks() -> list[Path]:
    """The notebook sources, ``notebooks/NN_*.py``, sorted."""
    return sorted(p for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py") if p.is_file())


def resolve_notebook(stem_or_path: str | os.PathLike) -> Path:
    """A notebook source from a path, a stem (``01_tasks``) or a unique prefix (``01``)."""
    p = Path(stem_or_path)
    if p.suffix == ".py" and p.is_file():
        return p.resolve()
    name = p.name[:-3] if p.name.endswith(".py") else p.name
    books = list_notebooks()
    exact = [b for b in books if b.stem == name]
    if exact:
        return exact[0]
    pref = [b for b in books if b.stem.startswith(name)] if name else []
    if len(pref) == 1:
        return pref[0]
    allowed = ", ".join(b.stem for b in books) or "(none found)"
    what = "matches several notebooks" if pref else "names no notebook"
    raise ValueError(f"'notebook' {str(stem_or_path)!r} {what}; allowed: {allowed}")


def read_notebook(path: str | os.PathLike):
    """The text notebook as an nbformat notebook (``jupytext.read``)."""
    import jupytext

    return jupytext.read(str(path), fmt="py:percent")


def _tags(cell) -> list:
    tags = cell.get("metadata", {}).get("tags", [])
    return list(tags) if isinstance(tags, (list, tuple)) else []


def parse_parameters_source(source: str, where: str) -> dict:
    """``{name: value}`` from a cell of ``name = <literal>`` lines; ``ValueError`` otherwise."""
    lines = source.splitlines()

    def bad(node, why: str) -> ValueError:
        line = lines[node.lineno - 1].strip() if 0 < node.lineno <= len(lines) else ""
        return ValueError(
            f"{where}: the parameters cell must hold only `name = <literal>` assignments "
            f"({why}); offending line {node.lineno}: {line!r}"
        )

    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"{where}: the parameters cell is not valid Python: {exc}") from None
    out: dict = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        else:
            raise bad(node, "not a single-name assignment")
        try:
            val = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise bad(node, "the value is not a literal") from None
        if name in out:
            raise bad(node, f"{name!r} is assigned twice")
        out[name] = val
    return out


def _parameters_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and "parameters" in _tags(c)]


def notebook_parameters(path: str | os.PathLike) -> dict:
    """The defaults in a notebook's single ``parameters`` cell."""
    path = resolve_notebook(path)
    cells = _parameters_cells(read_notebook(path))
    if len(cells) != 1:
        raise ValueError(
            f"{path.name}: exactly one cell must be tagged 'parameters' "
            f"(`# %% tags=[\"parameters\"]`); found {len(cells)}"
        )
    return parse_parameters_source(cells[0].source, path.name)


# ------------------------------------------------------------------------------------------
# Value rules: what each parameter may be, checked on load (before a kernel starts)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """The values a notebook parameter may take.

    ``kind``: ``"int"`` / ``"float"`` (a range: ``lo``/``hi``, open ends with ``lo_open`` /
    ``hi_open``), ``"ints"`` (a non-empty list of such ints), ``"choice"`` (one of ``choices``),
    ``"op"`` / ``"ops"`` (an operation name / a non-empty list of them, from the task registries),
    ``"sweep"`` / ``"sweeps"`` (the name / a list of names of ``params/sweeps/<name>.yaml``
    files that exist), ``"sweep_preset"`` (a preset that every sweep the notebook names defines)
    or ``"choices"`` (a list of items from ``choices``).  Lists need at least ``min_len`` items.
    """

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple = ()
    min_len: int = 1


def _int(lo=None, hi=None) -> Rule:
    return Rule("int", lo=lo, hi=hi)


def _float(lo=None, hi=None, lo_open=False, hi_open=False) -> Rule:
    return Rule("float", lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open)


@dataclass(frozen=True)
class FieldRule:
    """A parameter that *is* a configuration field (``many``: a list of its values): its rule is
    built from the field's declaration in :mod:`jointtask_lib.schema` when it is looked up
    (:func:`rule_for`), so a preset rule and the library cannot disagree.  ``section``: look the
    field up in that schema section only (e.g. ``"icl_train"``, paper B's recipe)."""

    field: str
    many: bool = False
    section: str | None = None  # paper B's recipe repeats paper A's names: "icl_train" picks its own

    def rule(self) -> Rule:
        p = schema.param(self.field, self.section)
        if p.kind in ("int", "float"):
            kind = ("ints" if p.kind == "int" else "floats") if self.many else p.kind
            if kind == "floats":  # pragma: no cover - no list-of-floats field yet
                raise AssertionError(f"no rule kind for a list of {self.field!r}")
            return Rule(kind, lo=p.lo, hi=p.hi, lo_open=p.lo_open, hi_open=p.hi_open)
        if p.kind == "choice" and not self.many:
            return Rule("choice", choices=p.choices)
        raise AssertionError(f"no notebook rule for the {p.kind} field {self.field!r}")  # pragma: no cover

    def __getattr__(self, name: str):  # ``kind``, ``lo``, ...: those of the rule it stands for
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.rule(), name)


def _icl_labels() -> tuple[str, ...]:
    # Literal copy of paper_b.icl_train.MODEL_LABELS (importing it would pull torch into ``jointtask
    # notebooks`` start-up); tests/test_notebooks.py checks that the two agree.
    return ("mixed", "sequential", "random", "single:linear", "single:quadratic", "single:cubic")


# Keyed by parameter name, for every notebook that has the parameter; the bounds are the ones the
# notebooks (and the library configs they build) enforce, so a preset that passes here does not
# fail later inside the kernel.  NOTEBOOK_RULES overrides them for one notebook.
PARAM_RULES: dict[str, Rule | FieldRule] = {
    # counts and sizes
    "workers": _int(1), "threads": _int(1), "n_boot": _int(50), "n_perm": _int(100),
    "null_samples": _int(10), "eval_limit": _int(1), "width": _int(0), "seed": FieldRule("seed"),
    "power_reps": _int(10), "power_seeds": Rule("ints", lo=2), "seed_offset": _int(0, MAX_SEED),
    "n_examples": _int(0, 50), "demo_train": _int(1, MAX_EXAMPLES), "demo_test": _int(1, MAX_EXAMPLES),
    # configuration fields: their rules come from jointtask_lib.schema
    "depth": FieldRule("depth"), "min_args": FieldRule("min_args"), "max_args": FieldRule("max_args"),
    "modulus": FieldRule("modulus"), "perm_k": FieldRule("perm_k"),
    "moduli": FieldRule("modulus", many=True), "perm_ks": FieldRule("perm_k", many=True),
    # fractions
    "level": _float(0.0, 1.0, lo_open=True, hi_open=True), "min_acc": _float(0.0, 1.0),
    "alpha": _float(0.0, 1.0, lo_open=True, hi_open=True),
    # choices
    "metric": Rule("choice", choices=("gen_acc", "tf_acc")),
    "device": Rule("choice", choices=("auto", "cpu", "cuda")),
    # operations
    "ops": Rule("ops"), "perm_ops": Rule("ops"), "single": Rule("ops"), "joint": Rule("ops"),
    "pretrain": Rule("ops"), "target": Rule("op"),
    # sweeps (also: any other parameter named ``*_sweep`` / ``*_sweeps``, see rule_for)
    "sweep": Rule("sweep"), "sweep_preset": Rule("sweep_preset"),
}

NOTEBOOK_RULES: dict[str, dict[str, Rule | FieldRule]] = {
    "09_icl_function_classes": {
        "preset": Rule("choice", choices=PRESETS), "n_boot": _int(1), "d": FieldRule("d"),
        # the prompt and the transformer (ICLConfig): bounds of jointtask_lib.schema.ICL_PROMPT and ARCH
        "n_points": FieldRule("n_points"), "n_embed": FieldRule("n_embed"), "n_layers": FieldRule("n_layers"),
        "n_heads": FieldRule("n_heads"),
        # the training recipe (ICLTrainConfig): bounds of jointtask_lib.schema.ICL_TRAIN
        **{k: FieldRule(k, section="icl_train") for k in ("steps", "batch_size", "lr", "warmup", "snapshot_prompts")},
        "seeds": Rule("ints", lo=0, hi=MAX_SEED), "other_seeds": Rule("ints", lo=0, hi=MAX_SEED),
        "n_eval_prompts": _int(2),
        "n_score_prompts": _int(1), "n_mask": _int(0),
        "converge_frac": _float(0.0, 1.0, lo_open=True), "fit_positions": Rule("ints", lo=1, min_len=0),
        "shift_x_scale": _float(0.0, lo_open=True),
        "shift_models": Rule("choices", choices=_icl_labels()),
    },
    "08_output_structure": {"synergy_features": Rule("choices", choices=("res", "blk"))},
}


def rule_for(stem: str, key: str) -> Rule | None:
    """The value rule of parameter ``key`` of notebook ``stem`` (``None``: only its type is checked)."""
    rule = NOTEBOOK_RULES.get(stem, {}).get(key) or PARAM_RULES.get(key)
    if rule is None and key.endswith("_sweep"):
        rule = Rule("sweep")
    if rule is None and key.endswith("_sweeps"):
        rule = Rule("sweeps")
    return rule.rule() if isinstance(rule, FieldRule) else rule


def _sweeps_dir() -> Path:
    return PARAMS_DIR / "sweeps"


def _sweep_names() -> list[str]:
    d = _sweeps_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def _sweep_presets(name: str) -> tuple[str, ...]:
    """The presets a sweep file defines, read by the sweep's own parser (all of them when the file
    is unreadable: the sweep's loader reports that, naming the file)."""
    from .sweep_file import defined_presets, read_sweep_file

    path = _sweeps_dir() / f"{name}.yaml"
    try:
        return defined_presets(read_sweep_file(path), str(path))
    except (OSError, ValueError):
        return PRESETS


def _op_names() -> list[str]:
    from .tasks import FAMILIES

    return [op for registry in FAMILIES.values() for op in registry]


def _sweeps_named(params: dict, stem: str) -> list[str]:
    names = []
    for key, value in params.items():
        rule = rule_for(stem, key)
        if rule is not None and rule.kind == "sweep" and isinstance(value, str):
            names.append(value)
        elif rule is not None and rule.kind == "sweeps" and isinstance(value, (list, tuple)):
            names += [v for v in value if isinstance(v, str)]
    return names


def _library_check(rule: Rule, key: str, value) -> str | None:
    """The range check of :mod:`jointtask_lib.validate` (its message without the field name)."""
    try:
        if rule.kind in ("int", "ints"):
            check_int(key, value, lo=rule.lo, hi=rule.hi)
        else:
            check_float(key, value, lo=rule.lo, hi=rule.hi, lo_open=rule.lo_open, hi_open=rule.hi_open)
    except ValueError as exc:
        return str(exc).split(f"'{key}' ", 1)[-1]
    return None


def _rule_problem(rule: Rule, value, key: str, params: dict, stem: str) -> str | None:
    """Why ``value`` breaks ``rule`` ("must be ...; got ..."), or ``None``."""
    if isinstance(rule, FieldRule):
        rule = rule.rule()
    if rule.kind in ("int", "float"):
        return _library_check(rule, key, value)
    what = "a non-empty list" if rule.min_len == 1 else f"a list of at least {rule.min_len} item(s)"
    if rule.min_len == 0:
        what = "a list"
    if rule.kind in ("ints", "choices") and len(value) < rule.min_len:
        return f"must be {what}; got {value!r}"
    if rule.kind == "ints":
        for i, v in enumerate(value):
            if (why := _library_check(rule, key, v)) is not None:
                return f"must be {what}; item {i} {why}"
    elif rule.kind == "choice":
        if value not in rule.choices:
            return f"must be one of {', '.join(map(str, rule.choices))}; got {value!r}"
    elif rule.kind == "choices":
        if len(set(value)) != len(value):
            return f"must list distinct items from {', '.join(map(str, rule.choices))}; got {value!r}"
        bad = [v for v in value if v not in rule.choices]
        if bad:
            return (f"must be a list of items from {', '.join(map(str, rule.choices))}; got {value!r} "
                    f"({', '.join(map(str, bad))} unknown)")
    elif rule.kind in ("op", "ops"):
        names = _op_names()
        values = [value] if rule.kind == "op" else list(value)
        bad = [v for v in values if v not in names]
        if rule.kind == "ops" and not values:
            return f"must list at least one operation of {', '.join(names)}; got {value!r}"
        if bad:
            what = "an operation" if rule.kind == "op" else "a list of operations"
            return f"must be {what} of {', '.join(names)}; got {value!r} ({', '.join(map(str, bad))} unknown)"
    elif rule.kind in ("sweep", "sweeps"):
        names = _sweep_names()
        values = [value] if rule.kind == "sweep" else list(value)
        bad = [v for v in values if v not in names]
        if bad:
            what = "the name of a sweep file" if rule.kind == "sweep" else "a list of sweep file names"
            return (f"must be {what} in {_sweeps_dir()} ({', '.join(names) or 'none found'}); "
                    f"got {value!r} (no {', '.join(f'{b}.yaml' for b in bad)})")
    elif rule.kind == "sweep_preset":
        if value not in PRESETS:
            return f"must be one of {', '.join(PRESETS)}; got {value!r}"
        known = set(_sweep_names())
        for name in _sweeps_named(params, stem):
            if name in known and value not in (allowed := _sweep_presets(name)):
                return (f"must be a preset that sweep {name!r} defines ({', '.join(allowed) or 'none'}); "
                        f"got {value!r}")
    else:  # pragma: no cover - a typo in the table
        raise AssertionError(f"unknown rule kind {rule.kind!r} for {key!r}")
    return None


def check_values(values: dict, defaults: dict, stem: str, where: str) -> None:
    """Check the *values* of ``values`` (already type-checked) against the rule table.

    ``defaults`` fill in what ``values`` does not set, for rules that look at other parameters
    (``sweep_preset`` is checked whenever it or a sweep name is set).  The message names
    ``where`` (the preset file), the parameter and what is allowed.
    """
    merged = {**defaults, **values}
    keys = list(values)
    if "sweep_preset" in merged and "sweep_preset" not in values and any(
            (r := rule_for(stem, k)) is not None and r.kind in ("sweep", "sweeps") for k in values):
        keys.append("sweep_preset")  # a new sweep must define the default preset too
    for key in keys:
        rule = rule_for(stem, key)
        if rule is None:
            continue
        why = _rule_problem(rule, merged[key], key, merged, stem)
        if why is not None:
            origin = "" if key in values else " (the notebook default)"
            raise ValueError(f"{where}: parameter {key!r}{origin} {why}")


# ------------------------------------------------------------------------------------------
# Presets
# ------------------------------------------------------------------------------------------

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
               list: "a list", tuple: "a list", dict: "a mapping"}


def _type_ok(default, value) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def check_parameters(stem: str, namespace: dict) -> dict:
    """Inside a notebook: check the values of *all* its parameters (preset, papermill or hand
    edited) by the same rules as a preset file, before anything is computed.

    ``namespace`` is the notebook's ``globals()``; the parameter names and their default types
    come from the notebook's source (``notebooks/<stem>.py``).  Returns ``{name: value}``.  The
    message names the notebook, the parameter and what is allowed.  Checks that relate several
    parameters (e.g. a width that the chosen sweep trains) stay in the notebook.
    """
    path = resolve_notebook(stem)
    defaults = notebook_parameters(path)
    unknown = [k for k in injected_names(namespace) if k not in defaults]
    if unknown:  # papermill only warns about a misspelled name and runs on the defaults
        raise ValueError(f"notebook {path.stem}: unknown parameter {unknown[0]!r} (injected by papermill); "
                         f"allowed: {', '.join(sorted(defaults))}")
    values = {k: namespace[k] for k in defaults if k in namespace}
    check_params(values, defaults, where=f"notebook {path.stem}", stem=path.stem)
    return values


#: The first line of the cell papermill injects (``papermill.translators``: ``# Parameters``).
PAPERMILL_HEADER = "# Parameters"


def injected_names(namespace: dict) -> list[str]:
    """The names papermill injected into this kernel: assignments in executed cells (IPython's
    ``In`` history in ``namespace``) that start with papermill's ``# Parameters`` line."""
    names: list[str] = []
    for src in namespace.get("In", []) or []:
        if not isinstance(src, str) or not src.lstrip().startswith(PAPERMILL_HEADER + "\n"):
            continue
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        names += [t.id for node in tree.body if isinstance(node, ast.Assign)
                  for t in node.targets if isinstance(t, ast.Name)]
    return names


def check_params(values: dict, defaults: dict, where: str, stem: str = "") -> dict:
    """Check that ``values`` only names known parameters, each with the default's type, and a
    value its rule allows (:func:`rule_for`; ``stem`` selects a notebook's own rules)."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: must be a mapping of parameter names to values; got {values!r}")
    for key, value in values.items():
        if key not in defaults:
            raise ValueError(
                f"{where}: unknown parameter {key!r}; allowed: {', '.join(sorted(defaults))}"
            )
        d = defaults[key]
        if not _type_ok(d, value):
            expected = _TYPE_NAMES.get(type(d), type(d).__name__)
            raise ValueError(
                f"{where}: parameter {key!r} must be {expected} (the notebook default is {d!r}); "
                f"got {value!r}"
            )
    check_values(values, defaults, stem, where)
    return dict(values)


def preset_path(notebook_stem: str, preset: str) -> Path:
    check_choice("preset", preset, PRESETS)
    return PARAMS_DIR / notebook_stem / f"{preset}.yaml"


def load_preset(notebook_stem: str, preset: str) -> dict:
    """The validated overrides in ``params/<stem>/<preset>.yaml`` (an empty file means none)."""
    import yaml

    stem = resolve_notebook(notebook_stem).stem
    path = preset_path(stem, preset)
    if not path.is_file():
        raise ValueError(f"'preset' {preset!r}: {path} does not exist (every notebook needs "
                         f"{', '.join(PRESETS)})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    return check_params(data, notebook_parameters(stem), where=str(path), stem=stem)


# ------------------------------------------------------------------------------------------
# Execution
# ------------------------------------------------------------------------------------------


def prepare_notebook(path: str | os.PathLike):
    """The unexecuted notebook: jupytext source, ``python3`` kernelspec, stable cell ids."""
    path = resolve_notebook(path)
    nb = read_notebook(path)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
    return nb


@contextlib.contextmanager
def _kernel_env(label: str | None = None):
    """The kernel's environment: it can import ``jointtask_lib`` even when the project is not
    installed, writes its outputs under the label's folder (``$JOINTTASK_LABEL``; ``None`` keeps
    the caller's), and draws progress bars as text (``$JOINTTASK_PROGRESS=text``: live on the
    terminal, and an executed notebook keeps the bar's last state rather than a widget at 0%)."""
    from .sweep import ENV_PROGRESS

    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", ENV_LABEL, ENV_PROGRESS)}
    parts = [p for p in (saved["PYTHONPATH"] or "").split(os.pathsep) if p]
    if str(ROOT) not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *parts])
    if label is not None:
        os.environ[ENV_LABEL] = label
    os.environ[ENV_PROGRESS] = "text"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_OVERWRITTEN = re.compile(r"[^\n]*\r(?=[^\n])")


def collapse_streams(cell) -> None:
    """Merge a cell's consecutive stream outputs of one name and drop text that a carriage return
    overwrote, so a progress bar is stored as the last state the terminal showed (what
    ``nbconvert``'s ``coalesce_streams`` does), not as every intermediate state."""
    outs = []
    for out in cell.get("outputs", []):
        if (outs and out.get("output_type") == "stream" and outs[-1].get("output_type") == "stream"
                and outs[-1].get("name") == out.get("name")):
            outs[-1]["text"] += out["text"]
        else:
            outs.append(out)
    for out in outs:
        if out.get("output_type") == "stream" and "\r" in out["text"]:
            out["text"] = _OVERWRITTEN.sub("", out["text"])
    if "outputs" in cell:
        cell["outputs"] = outs


def _normalise(nb, reference: bool) -> None:
    for cell in nb.cells:
        if INJECTED_TAG in _tags(cell):
            cell["id"] = INJECTED_TAG
    if not reference:
        for cell in nb.cells:
            collapse_streams(cell)
        return
    # Reference copies are committed: drop everything that changes from run to run.
    for key in ("papermill", "widgets", "jupytext"):
        nb.metadata.pop(key, None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    li = nb.metadata.get("language_info", {})
    li.pop("version", None)
    for cell in nb.cells:
        for key in ("papermill", "execution"):
            cell.metadata.pop(key, None)
        for out in cell.get("outputs", []):
            # PNG payloads are never compared by nbval and would bloat the repository.
            data = out.get("data")
            if data:
                for mime in ("image/png", "image/jpeg", "image/svg+xml"):
                    data.pop(mime, None)


def _atomic_write_nb(nb, dest: Path) -> None:
    import nbformat

    atomic_write(dest, lambda fh: nbformat.write(nb, fh), text=True)


def execute_notebook(
    stem_or_path: str | os.PathLike,
    preset: str,
    out_dir: str | os.PathLike,
    *,
    extra_params: dict | None = None,
    reference: bool = False,
    progress: bool = False,
    kernel_name: str = "python3",
    timeout: int | None = None,
    label: str | None = None,
) -> Path:
    """Execute one notebook with a preset; return the executed ``<out_dir>/<stem>.ipynb``.

    ``extra_params`` override the preset (checked the same way).  ``label``: the output folder the
    kernel writes figures and claims to (``<results>/<label>``, see :func:`paths.output_dir`;
    ``None``: the caller's ``$JOINTTASK_LABEL``).  ``progress``: stream the kernel's stderr (its
    text progress bars) to this process's stderr as it runs.  ``reference=True`` writes the
    nbval reference copy: papermill's timings and other volatile metadata are stripped (outputs
    are kept, image payloads dropped) so regenerating it changes only what really changed.  A
    failure raises :class:`NotebookError` naming the notebook and the cell; the executed copy with
    the traceback is kept (next to the output, or in the temp folder for a reference run, so that
    a good reference is never overwritten by a broken one).
    """
    import nbformat
    import papermill as pm

    path = resolve_notebook(stem_or_path)
    stem = path.stem
    params = load_preset(stem, preset) if preset else {}
    if extra_params:
        defaults = {**notebook_parameters(path), **params}
        params.update(check_params(extra_params, defaults, where=f"notebook {stem}, -p", stem=stem))
    if timeout is not None:
        check_int("timeout", timeout, lo=1)
    out_dir = Path(out_dir)
    dest = out_dir / f"{stem}.ipynb"
    nb = prepare_notebook(path)
    with tempfile.TemporaryDirectory(prefix=f"jointtask-{stem}-") as tmp:
        src, run_out = Path(tmp) / f"{stem}.input.ipynb", Path(tmp) / f"{stem}.ipynb"
        nbformat.write(nb, str(src))
        try:
            with _kernel_env(label):
                pm.execute_notebook(
                    str(src), str(run_out), parameters=params, kernel_name=kernel_name,
                    cwd=str(ROOT), progress_bar=False, log_output=False,
                    stderr_file=sys.stderr if progress else None, execution_timeout=timeout,
                    # the kernel's own start-up warnings would come before a failing notebook's
                    # one-line error (errors first); cell output, warnings included, is unaffected
                    extra_arguments=["--IPKernelApp.log_level=ERROR"],
                )
        except Exception as exc:
            failed = (Path(tempfile.gettempdir()) / f"jointtask-{stem}.failed.ipynb") if reference else dest
            trace = ""
            if run_out.exists():
                failed.parent.mkdir(parents=True, exist_ok=True)
                _atomic_write_nb(nbformat.read(str(run_out), as_version=4), failed)
                trace = str(failed)
            where = f"; executed copy with the traceback: {trace}" if trace else ""
            if isinstance(exc, pm.PapermillExecutionError):
                first = (str(exc.evalue).strip().splitlines() or [""])[0]
                headline = f"{exc.ename}: {first}"
                trace += f" (cell {exc.cell_index}, execution count {exc.exec_count})" if trace else ""
                msg = (f"notebook {stem} (preset {preset!r}) failed in cell {exc.cell_index} "
                       f"(execution count {exc.exec_count}): {exc.ename}: {exc.evalue}{where}")
            else:
                headline = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
                msg = f"notebook {stem} (preset {preset!r}) failed: {type(exc).__name__}: {exc}{where}"
            raise NotebookError(msg, headline, trace) from exc
        executed = nbformat.read(str(run_out), as_version=4)
    _normalise(executed, reference)
    _atomic_write_nb(executed, dest)
    return dest


# ------------------------------------------------------------------------------------------
# Reference copies (nbval) and drift
# ------------------------------------------------------------------------------------------


def code_sources(nb, *, skip_injected: bool = True) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"
            and not (skip_injected and INJECTED_TAG in _tags(c))]


def injected_parameters(nb, where: str = "notebook") -> dict:
    cells = [c for c in nb.cells if c.cell_type == "code" and INJECTED_TAG in _tags(c)]
    if len(cells) > 1:
        raise ValueError(f"{where}: more than one injected-parameters cell")
    return parse_parameters_source(cells[0].source, where) if cells else {}


def reference_drift(stem_or_path: str | os.PathLike, ref_dir: str | os.PathLike = REFERENCE_DIR) -> list[str]:
    """Why ``tests/notebooks/<stem>.ipynb`` no longer matches the source (empty when it does)."""
    import nbformat

    path = resolve_notebook(stem_or_path)
    ref = Path(ref_dir) / f"{path.stem}.ipynb"
    if not ref.is_file():
        return [f"{ref} is missing"]
    ref_nb = nbformat.read(str(ref), as_version=4)
    problems = []
    src, got = code_sources(read_notebook(path)), code_sources(ref_nb)
    if src != got:
        first = next((i for i, (a, b) in enumerate(zip(src, got)) if a != b), min(len(src), len(got)))
        problems.append(f"{ref.name}: code cells differ from {path.name} "
                        f"(first difference at code cell {first}; {len(src)} vs {len(got)} cells)")
    # A checked cell whose reference has no output checks nothing (nbval --nbval-lax passes it).
    empty = [i for i, c in enumerate(c for c in ref_nb.cells if c.cell_type == "code")
             if c.source.startswith("# NBVAL_CHECK_OUTPUT") and not c.get("outputs")]
    if empty:
        problems.append(f"{ref.name}: the checked code cell(s) {empty} have no stored output, so nbval "
                        "would compare nothing; regenerate with `make nbref`")
    smoke = load_preset(path.stem, "smoke")
    injected = injected_parameters(ref_nb, ref.name)
    if injected != smoke:
        problems.append(f"{ref.name}: injected parameters {injected!r} != smoke preset {smoke!r}")
    return problems


# ------------------------------------------------------------------------------------------
# Command line: jointtask notebooks
# ------------------------------------------------------------------------------------------


def select_notebooks(only: str = "") -> list[Path]:
    books = list_notebooks()
    if not only:
        if not books:
            raise ValueError(f"no notebooks found under {NOTEBOOKS_DIR}")
        # The scorecard (00) reads the claims every other notebook writes: it runs last.
        return [b for b in books if not b.stem.startswith("00")] + [b for b in books if b.stem.startswith("00")]
    picked: list[Path] = []
    for x in only.split(","):
        if x.strip() and (b := resolve_notebook(x.strip())) not in picked:
            picked.append(b)
    if not picked:
        raise ValueError(f"'only' names no notebook; got {only!r}")
    return picked


def _run_one(job: dict) -> tuple[str, bool, str, float]:
    """Worker (top level, so a process pool can pickle it): never raises.

    The job carries the notebook and preset folders, so a worker process sees the same ones as
    the parent even when they were redirected (tests do that).  A failure's message is the
    one-line error first, then where the full trace is.
    """
    global NOTEBOOKS_DIR, PARAMS_DIR
    NOTEBOOKS_DIR, PARAMS_DIR = Path(job["nb_dir"]), Path(job["params_dir"])
    t0 = time.perf_counter()
    try:
        dest = execute_notebook(job["stem"], job["preset"], job["out_dir"], extra_params=job["params"],
                                reference=job["reference"], progress=job["progress"],
                                timeout=job["timeout"], label=job["label"])
        return job["stem"], True, str(dest), time.perf_counter() - t0
    except NotebookError as exc:  # reported by the parent
        msg = exc.headline + (f"\n       full trace: {exc.trace}" if exc.trace else "")
        return job["stem"], False, msg, time.perf_counter() - t0
    except Exception as exc:  # reported by the parent
        return job["stem"], False, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0


# ------------------------------------------------------------------------------------------
# Parameters from the command line (-p NAME=VALUE) and output folders (labels)
# ------------------------------------------------------------------------------------------


def parse_param_args(items) -> dict:
    """``["seed=1", "moduli=[7, 11]"]`` -> ``{"seed": 1, "moduli": [7, 11]}``: each value is read
    as YAML, like a value in a preset file (``yaml.safe_load``)."""
    import yaml

    out: dict = {}
    for item in items or ():
        name, sep, raw = str(item).partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"'-p' must be NAME=VALUE (e.g. -p seed=1 or -p moduli=[7,11]); got {item!r}")
        if name in out:
            raise ValueError(f"'-p' sets {name!r} twice")
        try:
            out[name] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ValueError(f"'-p' {name}: {raw!r} is not a YAML value ({exc.problem})") from None
    return out


def check_overrides(books: list[Path], preset: str, params: dict) -> None:
    """Check ``-p`` parameters against every selected notebook, before anything runs: each name
    must be in the notebook's parameters cell (else the known names are listed) and each value
    must pass the same type and value rules as a preset file (on top of that preset)."""
    for b in books:
        defaults = notebook_parameters(b)
        base = {**defaults, **load_preset(b.stem, preset)}
        check_params(params, base, where=f"notebook {b.stem}, -p", stem=b.stem)


def default_label(preset: str, params: dict) -> str:
    """The output folder's name: the preset alone, or ``<preset>+name=value+...`` with custom
    parameters (``<preset>+custom-<hash>`` when that is too long for a folder name)."""
    import hashlib
    import json

    if not params:
        return preset
    parts = []
    for k in sorted(params):
        v = json.dumps(params[k], separators=(",", ":"), sort_keys=True)
        parts.append(f"{k}={re.sub(r'[^A-Za-z0-9_.,=+-]', '', v)}")
    label = "+".join([preset, *parts])
    if len(label) > MAX_LABEL:
        digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
        label = f"{preset}+custom-{digest}"
    return label


def claim_output_folder(folder: Path, label: str, preset: str, params: dict, books: list[Path], *,
                        overwrite: bool = False) -> Path:
    """Write (or extend) ``<folder>/RUN.json``, the record of what the folder holds (label, preset,
    ``-p`` parameters, notebooks).  A folder that already holds another preset or other parameters
    raises ``ValueError`` (results never overwrite each other silently); with ``overwrite`` its
    outputs (notebooks/, figures/, claims/, SCORECARD.md) are deleted first."""
    import json

    path = folder / MANIFEST
    old: dict = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            old = {"preset": "?", "parameters": "unreadable"}
        same = old.get("preset") == preset and old.get("parameters") == params
        if not same and not overwrite:
            raise ValueError(
                f"'label' {label!r}: {folder} already holds results of preset {old.get('preset')!r} with "
                f"parameters {old.get('parameters')!r}, not preset {preset!r} with {params!r}; choose "
                "another --label, or pass --overwrite to replace them")
        if not same:  # --overwrite: the other run's outputs go, so the folder never mixes two runs
            import shutil

            for name in ("notebooks", "figures", "claims", "SCORECARD.md"):
                p = folder / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
            old = {}
    notebooks = sorted(set(old.get("notebooks", [])) | {b.stem for b in books})
    manifest = {"label": label, "preset": preset, "parameters": params, "notebooks": notebooks}
    atomic_write(path, lambda fh: json.dump(manifest, fh, indent=1, sort_keys=True), text=True)
    return path


def run_notebooks(books: list[Path], preset: str, out_dir: Path, *, reference: bool = False,
                  workers: int = 1, progress: bool = False, timeout: int | None = None,
                  params: dict | None = None, label: str | None = None, seed_offset: int = 0,
                  log=print) -> list[tuple[str, bool, str, float]]:
    """Execute notebooks (sequentially, or in a process pool); return one result per notebook.

    ``params``: ``-p`` overrides for every notebook (checked first, see :func:`check_overrides`).
    ``progress``: the value of the ``progress`` parameter where a notebook has one and ``-p`` does
    not set it (injected only when it differs from the notebook's default and preset), and whether
    the kernels' text progress bars are streamed to stderr.  ``seed_offset`` (not 0) is passed to
    every notebook that has that parameter (02-08) and does not get it from ``-p``.
    """
    check_int("seed_offset", seed_offset, lo=0, hi=MAX_SEED)
    params = dict(params or {})
    for b in books:  # every preset (and override) is validated before anything runs
        load_preset(b.stem, preset)
    check_overrides(books, preset, params)
    jobs = []
    for b in books:
        extra = dict(params)
        defaults = notebook_parameters(b)
        if "progress" in defaults and "progress" not in extra:
            # the runner's choice, injected only where the notebook and its preset say otherwise
            if {**defaults, **load_preset(b.stem, preset)}["progress"] != progress:
                extra["progress"] = progress
        if seed_offset and "seed_offset" in defaults and "seed_offset" not in extra:
            extra["seed_offset"] = seed_offset
        jobs.append({"stem": b.stem, "preset": preset, "out_dir": str(out_dir), "reference": reference,
                     "progress": progress, "timeout": timeout, "params": extra, "label": label,
                     "nb_dir": str(NOTEBOOKS_DIR), "params_dir": str(PARAMS_DIR)})
    results = []
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            results.append(_run_one(job))
            _log_result(results[-1], log)
    else:
        from concurrent.futures import as_completed

        from .workers import worker_pool

        with worker_pool(min(workers, len(jobs))) as pool:  # killed at once on Ctrl-C, die with us
            futs = [pool.submit(_run_one, job) for job in jobs]
            for fut in as_completed(futs):
                results.append(fut.result())
                _log_result(results[-1], log)
        order = {b.stem: i for i, b in enumerate(books)}
        results.sort(key=lambda r: order[r[0]])
    return results


def _log_result(r, log) -> None:
    stem, ok, msg, secs = r
    if ok:
        log(f"ok     {stem} ({secs:.1f} s): {msg}")
    else:  # the one-line error first, then where the full trace is
        log(f"FAILED {stem} ({secs:.1f} s): {msg}")


def default_progress(preset: str) -> bool:
    """Live progress by default: on for the long presets (:data:`PROGRESS_PRESETS`), off for smoke
    and in CI (``$CI`` set, as CI services do)."""
    return preset in PROGRESS_PRESETS and not os.environ.get("CI")


def cmd_notebooks(a) -> int:
    check_choice("preset", a.preset, PRESETS)
    check_int("workers", a.workers, lo=1)
    if a.reference and a.preset != "smoke":
        raise ValueError("'preset' must be smoke with --reference (nbval re-executes the smoke "
                         f"preset); got {a.preset!r}")
    books = select_notebooks(a.only)
    params = parse_param_args(a.param)
    check_overrides(books, a.preset, params)
    if a.reference and params:
        raise ValueError("'-p' cannot be used with --reference (references are the smoke preset as is)")
    if a.seed_offset and "seed_offset" in params:
        raise ValueError("'seed_offset': give it once, with --seed-offset or with -p seed_offset=..., not both")
    # --seed-offset is a run parameter like -p: it names the output folder and is in RUN.json
    run_params = {**params, **({"seed_offset": a.seed_offset} if a.seed_offset else {})}
    label = check_label(a.label) if a.label else default_label(a.preset, run_params)
    if label == LAB_LABEL:
        raise ValueError(f"'label' {LAB_LABEL!r} is the folder of JupyterLab sessions (make lab: the "
                         "notebooks' paired .ipynb copies); choose another --label")
    progress = default_progress(a.preset) if a.progress is None else a.progress
    root = results_dir()
    folder = output_dir(root, label)
    if a.out:
        out = Path(a.out).expanduser().resolve()
    else:
        out = REFERENCE_DIR if a.reference else folder / "notebooks"
    from .paths import check_output_dir

    check_output_dir("out", out)  # before any notebook runs or any folder is written
    check_output_dir("results", root)  # where the notebooks write their runs and figures
    claim_output_folder(folder, label, a.preset, run_params, books, overwrite=a.overwrite)
    a.out_resolved = out
    a.finished = []

    def log(s: str) -> None:
        a.finished.append(s)
        print(s, file=sys.stderr, flush=True)

    print(f"jointtask notebooks: preset {a.preset}{' with ' + repr(params) if params else ''}: outputs in "
          f"{folder} (executed notebooks: {out}); run cache in {root}", file=sys.stderr, flush=True)
    results = run_notebooks(books, a.preset, out, reference=a.reference, workers=a.workers,
                            progress=progress, timeout=a.timeout, params=params, label=label,
                            seed_offset=a.seed_offset, log=log)
    failed = [r[0] for r in results if not r[1]]
    if failed:
        print(f"jointtask notebooks: {len(failed)} of {len(results)} failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


def register_cli(sub) -> None:
    """Add ``jointtask notebooks`` to the CLI's sub-parsers (see ``cli._EXTENSIONS``)."""
    p = sub.add_parser("notebooks", help="execute the notebooks with a preset (papermill)")
    p.add_argument("--preset", default="quick", help=" | ".join(PRESETS))
    p.add_argument("--only", default="",
                   help="comma-separated notebooks by number or name, e.g. 02 or 01,03_training")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set a notebook parameter on top of the preset (repeatable; the value is read "
                        "as YAML and checked like a preset value), e.g. -p workers=2")
    p.add_argument("--label", default="",
                   help="name of the output folder <results>/<label> (default: the preset, or "
                        "<preset>+name=value... with -p); the run cache <results>/runs is shared")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a label folder that holds another preset or other parameters")
    p.add_argument("--out", default="",
                   help="folder for the executed notebooks (default: <results>/<label>/notebooks; "
                        "tests/notebooks with --reference)")
    p.add_argument("--reference", action="store_true",
                   help="write nbval reference copies (volatile metadata stripped; smoke preset)")
    p.add_argument("--workers", type=int, default=1, help="notebooks run in parallel (processes)")
    p.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="live progress bars (runs done / total, ETA) on stderr; default: on for "
                        f"{' and '.join(PROGRESS_PRESETS)}, off for smoke and when $CI is set")
    g.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--seed-offset", type=int, default=0,
                   help="add this to every seed of the sweeps of notebooks 02-08 (e.g. 100: the same "
                        "experiment on fresh seeds; 0: as written; the same as -p seed_offset=100)")
    p.set_defaults(func=cmd_notebooks, on_interrupt=interrupt_note)


def interrupt_note(a) -> str:
    """What an interrupted ``notebooks`` kept (the one line :func:`jointtask_lib.cli.main` prints)."""
    out = getattr(a, "out_resolved", None)
    done = len(getattr(a, "finished", []))
    return (f"kernels and workers stopped; {done} notebook(s) had finished (in {out}) and every finished "
            f"run record under {results_dir()} is kept; re-run to resume (finished runs are not retrained)")
