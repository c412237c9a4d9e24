"""Live progress of long work: one bar of *runs* done / total, with tqdm's rate and ETA.

Training reports progress from the run layer (:mod:`jointtask_lib.runs`, :mod:`jointtask_lib.sweep`),
one step per finished stack (weighted by the runs it held).  The bar is plain text on stderr
(``tqdm.std``) everywhere:

* in a terminal (``jointtask sweep``) as usual, with the per-step bars of each stack;
* in a notebook kernel (JupyterLab, or papermill under ``jointtask notebooks``, which sets
  ``$JOINTTASK_PROGRESS=text`` and streams the kernel's stderr to the terminal): JupyterLab and the
  terminal redraw it in place, and a saved or executed notebook keeps the bar's last state as text.
  A widget bar would be saved as its first state (0%) wherever the widget state is not stored.
  The per-step bars inside a stack are off there (they would fill the notebook with updates).

``TQDM_DISABLE=1`` (CI, ``make test``) switches every bar off.
"""

from __future__ import annotations

import os
import sys

ENV_PROGRESS = "JOINTTASK_PROGRESS"


def text_mode() -> bool:
    """Whether the reader is a notebook (a kernel, or ``$JOINTTASK_PROGRESS=text``): one runs bar,
    updated at most once a second, no per-step bars."""
    return os.environ.get(ENV_PROGRESS) == "text" or "ipykernel" in sys.modules


def progress_bar(total: int | None, desc: str = "runs"):
    """A live text bar of runs done / ``total`` with tqdm's rate and ETA, on stderr."""
    from tqdm.std import tqdm

    if text_mode():
        return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, mininterval=1.0, ncols=90)
    return tqdm(total=total, desc=desc, unit="run", file=sys.stderr)


def progress_iter(it, on: bool, desc: str = "runs", total: int | None = None, weight=None):
    """Iterate ``it``; when ``on``, advance a :func:`progress_bar` by ``weight(item)`` (runs; 1 by
    default) once the caller has finished with each item."""
    if not on:
        yield from it
        return
    bar = progress_bar(total, desc)
    try:
        for x in it:
            yield x
            bar.update(weight(x) if weight else 1)
    finally:
        bar.close()
