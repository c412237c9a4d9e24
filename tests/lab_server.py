"""A real JupyterLab server on a loopback port, configured as ``make lab`` configures it.

Used by ``tests/test_lab_server.py`` (contents API) and ``tests/browser_check.py``
(``make browser-test``).  The server serves a *copy* of the notebook sources (``notebooks/``,
``jupytext.toml``) so that saving through it never touches the checkout; it listens on 127.0.0.1
on a free port with a random token, reads no user configuration (its config, data, runtime and
settings folders are temporary), gets the project's shipped setting through
``JUPYTER_CONFIG_PATH=<repo>/jupyter-config`` like ``make lab``, and is always shut down.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_project(dest: Path) -> Path:
    """The files JupyterLab needs to open the notebooks as the project ships them."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "notebooks", dest / "notebooks")
    shutil.copy2(ROOT / "jupytext.toml", dest / "jupytext.toml")
    return dest


class LabServer:
    def __init__(self, root_dir: Path, work: Path):
        self.root_dir, self.work = Path(root_dir), Path(work)
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = self.work / "lab-server.log"

    def env(self) -> dict:
        env = dict(os.environ)
        for name in ("config", "data", "runtime", "settings", "workspaces"):
            (self.work / name).mkdir(parents=True, exist_ok=True)
        extra = env.get("JUPYTER_CONFIG_PATH", "")
        env.update({
            "JUPYTER_CONFIG_PATH": os.pathsep.join(p for p in [str(ROOT / "jupyter-config"), extra] if p),
            "JUPYTER_CONFIG_DIR": str(self.work / "config"),
            "JUPYTER_RUNTIME_DIR": str(self.work / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(self.work / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.work / "workspaces"),
            "JOINTTASK_LABEL": "lab",
        })
        return env

    def start(self, timeout: float = 120.0) -> "LabServer":
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
               "--ServerApp.open_browser=False", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
               "jupyterlab.NeverCheckForUpdate"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # containers; the server is still on loopback with a token
        self.work.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._fh, stderr=subprocess.STDOUT, env=self.env(),
                                     cwd=str(self.root_dir))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Jupyter server exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                self.request("GET", "/api/status")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise RuntimeError(f"the Jupyter server did not answer within {timeout:.0f} s:\n{self.log_text()}")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def request(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read().decode()
        return json.loads(text) if text else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        if getattr(self, "_fh", None):
            self._fh.close()


@contextlib.contextmanager
def lab_server(root_dir: Path, work: Path):
    server = LabServer(root_dir, work)
    try:
        yield server.start()
    finally:
        server.stop()
