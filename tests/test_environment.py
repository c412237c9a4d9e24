"""environment.yml must describe the same pinned packages as pyproject.toml."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> str:
    name, _, ver = req.partition("==")
    return re.sub(r"[-_.]+", "-", name.strip().lower()) + "==" + ver.strip()


def test_environment_yml_matches_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {_norm(r) for r in py["dependencies"] + py["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    env_pins = {_norm(r) for r in pip_section if not r.startswith("-e")}
    assert env_pins == pins, f"only in pyproject: {pins - env_pins}; only in environment.yml: {env_pins - pins}"


def test_every_dependency_is_pinned_and_torch_is_2_13():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for r in py["dependencies"] + py["optional-dependencies"]["dev"]:
        assert "==" in r, f"{r} is not pinned"
    assert "torch==2.13.0" in py["dependencies"]
