"""``make browser-test``: open a notebook source in JupyterLab with headless Chromium.

Starts JupyterLab as ``make lab`` does (tests/lab_server.py: loopback, random port and token,
temporary copy of the sources), loads ``/lab/tree/notebooks/<name>.py`` in Debian's headless
Chromium, saves a screenshot (``<out>/lab.png``) and the rendered DOM (``<out>/lab.html``), and
checks that the file rendered as a notebook: a notebook panel with cells (its parameters cell's
text among them), not a text editor.  Exit status 0 when it did, 1 when not, 2 when Chromium is
missing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab_server import ROOT, copy_project, lab_server  # noqa: E402


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def run_chromium(exe: str, url: str, action: list[str], budget_ms: int, profile: Path) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", "--window-size=1400,900",
           f"--virtual-time-budget={budget_ms}", "--run-all-compositor-stages-before-draw", *action, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "build" / "browser-test"))
    ap.add_argument("--notebook", default="03_joint_training")
    ap.add_argument("--budget-ms", type=int, default=30000, help="virtual time Chromium gives the page")
    a = ap.parse_args(argv)
    exe = chromium()
    if exe is None:
        print("browser-test: chromium not found (make browser-test installs Debian's package)", file=sys.stderr)
        return 2
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jointtask-browser-") as tmp:
        tmp = Path(tmp)
        root = copy_project(tmp / "project")
        with lab_server(root, tmp / "work") as lab:
            url = f"{lab.url}/lab/tree/notebooks/{a.notebook}.py?token={lab.token}&reset"
            shot = run_chromium(exe, url, [f"--screenshot={out / 'lab.png'}"], a.budget_ms, tmp / "p1")
            dom = run_chromium(exe, url, ["--dump-dom"], a.budget_ms, tmp / "p2")
        (out / "lab.html").write_text(dom.stdout)
        (out / "chromium.log").write_text(shot.stderr[-20000:] + "\n----\n" + dom.stderr[-20000:])
    html = dom.stdout
    def elements(css_class: str) -> int:  # elements with that class (not the style sheets' rules)
        return len(re.findall(r'class="[^"]*\b' + css_class + r'\b(?!-)', html))

    cells = elements("jp-Cell")
    checks = {
        "a notebook panel (jp-NotebookPanel)": elements("jp-NotebookPanel") > 0,
        "notebook cells (jp-Cell)": cells > 0,
        "the parameters cell's text (joint_sweep)": "joint_sweep" in html,
        "no text editor for the .py (jp-FileEditor)": elements("jp-FileEditor") == 0,
        "a screenshot": (out / "lab.png").is_file() and (out / "lab.png").stat().st_size > 0,
    }
    for what, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
    print(f"{cells} cell element(s) rendered; screenshot {out / 'lab.png'}, DOM {out / 'lab.html'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
