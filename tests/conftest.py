"""Shared pytest set-up, including nbval's for the reference notebooks in ``tests/notebooks/``.

nbval (``--nbval-lax``) re-executes each reference notebook and compares the outputs of the cells
marked ``# NBVAL_CHECK_OUTPUT`` with the stored ones.  Here we

* widen the MIME types nbval never compares (HTML, SVG, JavaScript, widget state; it already
  skips PNG/JPEG and widget views), so only the designed-stable text outputs are compared;
* let the kernel import ``jointtask_lib`` even when the project is not pip-installed (nbval starts
  the kernel in ``tests/notebooks/``; notebooks themselves never depend on the working directory,
  they use ``jointtask_lib.paths``);
* default ``JOINTTASK_RESULTS`` to a temporary folder, so a test run never writes into
  ``results/`` (the Makefile sets it to ``build/test-results``), and switch tqdm off.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
if str(ROOT) not in _parts:
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *_parts])
_TMP_RESULTS = None
if not os.environ.get("JOINTTASK_RESULTS"):
    _TMP_RESULTS = tempfile.mkdtemp(prefix="jointtask-test-results-")
    os.environ["JOINTTASK_RESULTS"] = _TMP_RESULTS
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.pop("JOINTTASK_LABEL", None)  # library tests write where they say (make lab's shell sets one)
os.environ.setdefault("MPLBACKEND", "Agg")

NBVAL_SKIP_MIMES = (
    "text/html",
    "image/svg+xml",
    "image/png",
    "image/jpeg",
    "application/javascript",
    "application/vnd.jupyter.widget-view+json",
    "application/vnd.jupyter.widget-state+json",
    "application/vnd.plotly.v1+json",
)


def pytest_collectstart(collector):
    if collector.__class__.__name__ == "IPyNbFile" and hasattr(collector, "skip_compare"):
        collector.skip_compare = tuple(collector.skip_compare) + tuple(
            m for m in NBVAL_SKIP_MIMES if m not in collector.skip_compare
        )


def pytest_unconfigure(config):
    if _TMP_RESULTS is not None:
        shutil.rmtree(_TMP_RESULTS, ignore_errors=True)
