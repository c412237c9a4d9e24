"""Where things live: the repository root, the results directory, and saved figures.

Notebooks never build paths from the current directory (papermill runs them from the repository
root, nbval from ``tests/notebooks``): they call :func:`results_dir` and :func:`save_figure`.

``results_dir("")`` is ``$JOINTTASK_RESULTS`` when set, else ``<repo>/results``; a relative path
(explicit or from the environment) is taken relative to the repository root, so the answer does
not depend on the working directory.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
from pathlib import Path

PROJECT_NAME = "jointtask"
ENV_RESULTS = "JOINTTASK_RESULTS"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PROJECT_RE = re.compile(r'^\s*name\s*=\s*["\']' + PROJECT_NAME + r'["\']', re.M)


def _is_root(d: Path) -> bool:
    f = d / "pyproject.toml"
    try:
        return f.is_file() and bool(_PROJECT_RE.search(f.read_text(encoding="utf-8")))
    except OSError:
        return False


def repo_root() -> Path:
    """The directory holding this project's ``pyproject.toml``.

    Searched upwards from this file (an editable install or a checkout), then from the current
    directory (an installed copy run inside a checkout).  Falls back to the current directory.
    """
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for d in (start, *start.parents):
            if _is_root(d):
                return d
    return Path.cwd().resolve()


def _anchor(p: str | os.PathLike) -> Path:
    path = Path(p).expanduser()
    return path if path.is_absolute() else repo_root() / path


def results_dir(explicit: str | os.PathLike = "") -> Path:
    """``explicit`` if non-empty, else ``$JOINTTASK_RESULTS``, else ``<repo>/results``."""
    if explicit is None:
        explicit = ""
    if not isinstance(explicit, (str, os.PathLike)):
        raise ValueError(f"'results_dir' must be a path (a string); got {explicit!r}")
    if str(explicit):
        return _anchor(explicit)
    env = os.environ.get(ENV_RESULTS, "")
    if env:
        return _anchor(env)
    return repo_root() / "results"


# ------------------------------------------------------------------------------------------
# Results layout: one output folder per preset / label, one shared run cache
# ------------------------------------------------------------------------------------------
#
#   results/                  the results root (``results_dir()``)
#     runs/ groups/ icl/      the run cache: records and weights, shared by every label
#     quick/ smoke/ paper/    one output folder per label (``jointtask notebooks`` uses the preset,
#     <label>/                or ``--label``; ``make lab`` uses "lab"):
#       notebooks/ figures/ claims/ SCORECARD.md RUN.json
#
# A notebook learns its label from ``$JOINTTASK_LABEL`` (set by ``jointtask notebooks`` and
# ``make lab`` for the kernels they start).  Without a label, outputs go to the results root itself.

ENV_LABEL = "JOINTTASK_LABEL"
#: Names inside the results root that belong to the run cache or to an output folder: never labels.
RESERVED_LABELS = ("runs", "groups", "icl", "figures", "claims", "notebooks")
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.,=+-]*$")
MAX_LABEL = 100
MANIFEST = "RUN.json"


def check_label(label) -> str:
    """``label`` if it can name an output folder under the results root; ``ValueError`` otherwise."""
    if (not isinstance(label, str) or not _LABEL_RE.match(label) or len(label) > MAX_LABEL
            or label in RESERVED_LABELS):
        raise ValueError(
            f"'label' must be a folder name of at most {MAX_LABEL} characters (letters, digits and "
            f"_ . , = + -, starting with a letter or digit), not one of {', '.join(RESERVED_LABELS)}; "
            f"got {label!r}")
    return label


def current_label() -> str:
    """``$JOINTTASK_LABEL`` (checked), or ``""`` when unset."""
    label = os.environ.get(ENV_LABEL, "")
    return check_label(label) if label else ""


def output_dir(results: str | os.PathLike, label: str | None = None) -> Path:
    """The folder one run writes its outputs to: ``<results>/<label>`` (``label=None``: the
    current label, :func:`current_label`; ``""``: ``<results>`` itself).  The run cache stays in
    ``<results>``, shared by every label."""
    label = current_label() if label is None else label
    base = _anchor(results)
    return base / check_label(label) if label else base


def figures_dir(results: str | os.PathLike) -> Path:
    """``<output_dir(results)>/figures`` (not created)."""
    return output_dir(results) / "figures"


PNG_METADATA = {"Software": None}
def atomic_write(path: str | os.PathLike, write, *, text: bool = False) -> Path:
    """Write ``path`` atomically: ``write(fh)`` fills a temporary file in the same directory,
    which is flushed, fsynced, made readable (0644; ``mkstemp`` creates 0600) and moved into place
    with :func:`os.replace`.  A reader sees the old file or the new one, never half of one; on any
    error the temporary file is removed and ``path`` is untouched.  Every writer of results in the
    library (records, weights, checkpoints, figures, notebooks) goes through here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_owner()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda fh: fh.write(data))


def emit_json(obj, path: str | os.PathLike | None = None) -> str:
    """Print ``obj`` as indented JSON on stdout (a benchmark's report) and, when ``path`` is given,
    write the same text there atomically.  Returns the text."""
    text = json.dumps(obj, indent=1)
    print(text)
    if path:
        atomic_write(path, lambda fh: fh.write(text + "\n"), text=True)
    return text


def atomic_write_json(obj, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically (:func:`atomic_write`)."""
    return atomic_write_bytes((json.dumps(obj, indent=1, sort_keys=True) + "\n").encode(), path)


def _owner() -> str:
    """``<host>~<pid>``: who writes a temporary file (part of its name, see :func:`temp_writer_gone`)."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
    return f"{host}~{os.getpid()}"


_TEMP_OWNER = re.compile(r"\.([A-Za-z0-9-]+)~(\d+)\.[^.]*\.tmp$")


def temp_writer_gone(path: str | os.PathLike) -> bool:
    """Whether the process that wrote the temporary file ``path`` is gone (so the file may be removed).

    :func:`atomic_write` names its temporary files ``.<name>.<host>~<pid>.<random>.tmp``.  A file
    of this host whose pid is not running is a killed writer's; a live pid, or a file another
    host wrote (a shared results folder), is left alone.  Files without an owner in their name
    (written before owners were recorded) count as gone.
    """
    m = _TEMP_OWNER.search(Path(path).name)
    if m is None:
        return True
    host, pid = m[1], int(m[2])
    if host != _owner().split("~")[0]:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class PathError(ValueError):
    """An input or output path that cannot be used (the message names the option and the path)."""


def check_output_dir(option: str, path: str | os.PathLike) -> Path:
    """Check, before any compute, that ``path`` can hold outputs: an existing writable folder, or
    one that can be created (its nearest existing ancestor is a writable folder).  Nothing is
    created.  Returns the absolute path; raises :class:`PathError` naming ``option``."""
    if path is None or not str(path):
        raise PathError(f"'{option}' must be a folder; got an empty path")
    p = Path(path).expanduser().absolute()
    if p.exists():
        if not p.is_dir():
            raise PathError(f"'{option}' must be a folder; {p} is a file")
        if not os.access(p, os.W_OK | os.X_OK):
            raise PathError(f"'{option}': folder {p} is not writable")
        return p
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise PathError(f"'{option}': cannot create folder {p}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PathError(f"'{option}': cannot create folder {p}: {parent} is not writable")
    return p


def check_input_file(option: str, path: str | os.PathLike, *, what: str = "a file") -> Path:
    """Check that ``path`` is an existing, readable file; raises :class:`PathError` naming ``option``."""
    p = Path(path).expanduser()
    if not p.exists():
        raise PathError(f"'{option}': {p} does not exist")
    if p.is_dir():
        raise PathError(f"'{option}' must be {what}; {p} is a folder")
    if not os.access(p, os.R_OK):
        raise PathError(f"'{option}': {p} is not readable")
    return p


PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}


def save_figure(fig, name: str, results_dir: str | os.PathLike, *, pdf: bool = False, dpi: int = 110) -> Path:
    """Write ``fig`` to ``<results_dir>/figures/<name>.png`` (and ``.pdf`` if ``pdf``).

    Metadata that would make the file differ between runs (software version, creation date) is
    stripped, and each file is written to a temporary name in the same directory and then moved
    into place with :func:`os.replace`, so a reader never sees a half-written figure.  Returns the
    PNG path.
    """
    name = str(name)
    if name.endswith(".png"):
        name = name[:-4]
    if not _NAME_RE.match(name):
        raise ValueError(
            f"'name' must be a plain file name (letters, digits, '_', '-', '.'); got {name!r}"
        )
    out = figures_dir(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    formats = [("png", PNG_METADATA)] + ([("pdf", PDF_METADATA)] if pdf else [])
    paths = []
    for fmt, meta in formats:
        final = atomic_write(out / f"{name}.{fmt}", lambda fh, fmt=fmt, meta=meta: fig.savefig(
            fh, format=fmt, metadata=meta, dpi=dpi, bbox_inches="tight"))
        paths.append(final)
    return paths[0]
