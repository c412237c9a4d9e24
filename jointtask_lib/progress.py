"""Live progress of long work: one bar of *runs* done / total, with tqdm's rate and ETA.

Training reports progress from the run layer (:mod:`jointtask_lib.runs`, :mod:`jointtask_lib.sweep`),
one step per finished stack (weighted by the runs it held).  How the bar is drawn depends on
where the code runs:

* ``$JOINTTASK_PROGRESS=text`` (``jointtask notebooks`` sets it for the kernels it starts): plain
  text on stderr.  The runner streams the kernel's stderr to the terminal, so the bar is live there,
  and the executed notebook keeps the bar's last state as text (not a widget frozen at 0%).
  Per-step bars inside a stack are off in this mode (they would fill the notebook with updates).
* otherwise ``tqdm.auto``: a live widget in JupyterLab, text in a terminal.

``TQDM_DISABLE=1`` (CI, ``make test``) switches every bar off.
"""

from __future__ import annotations

import os
import sys

ENV_PROGRESS = "JOINTTASK_PROGRESS"


def text_mode() -> bool:
    """Whether bars are drawn as plain text for a non-interactive reader (see the module doc)."""
    return os.environ.get(ENV_PROGRESS) == "text"


def progress_bar(total: int | None, desc: str = "runs"):
    """A live bar of runs done / ``total`` with tqdm's rate and ETA."""
    if text_mode():
        from tqdm.std import tqdm

        return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, mininterval=1.0, ncols=90)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="run")


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
