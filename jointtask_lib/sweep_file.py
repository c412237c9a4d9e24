"""A sweep file's own layer, without torch: reading ``params/sweeps/<name>.yaml``, its top-level
keys and its ``presets:`` block.  :func:`jointtask_lib.sweep.parse_sweep` builds the runs on top of
it; :mod:`jointtask_lib.notebook` asks it which presets a sweep defines (one parser of the file;
``jointtask notebooks`` starts without importing torch).
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from .validate import PRESETS, check_choice

TOP_KEYS = {"name": str, "description": str, "task": dict, "arch": dict, "train": dict, "grid": dict,
            "presets": dict, "data_seeds": str}

class SweepError(ValueError):
    """A sweep file is invalid (the message names the file and the key)."""


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _check_keys(where: str, section: str, d: dict, allowed) -> None:
    for k in d:
        if k not in allowed:
            raise SweepError(f"{where}: unknown key '{section}{k}'; allowed: {', '.join(sorted(allowed))}")


def _check_types(where: str, section: str, d: dict, types: dict) -> None:
    for k, t in types.items():
        if k in d and not isinstance(d[k], t):
            raise SweepError(f"{where}: '{section}{k}' must be a {t.__name__}; got {type(d[k]).__name__}")


def read_sweep_file(path) -> dict:
    """The YAML of sweep file ``path`` (``yaml.safe_load``); :class:`SweepError` naming the file if
    it is missing or not valid YAML."""
    path = Path(path)
    if not path.exists():
        raise SweepError(f"sweep file {path} does not exist")
    with open(path) as f:
        try:
            return yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise SweepError(f"{path}: not valid YAML: {exc}") from None


def _preset_block(data, where: str) -> dict:
    if not isinstance(data, dict):
        raise SweepError(f"{where}: a sweep file must be a mapping with keys {', '.join(TOP_KEYS)}")
    _check_keys(where, "", data, TOP_KEYS)
    _check_types(where, "", data, TOP_KEYS)
    presets = data.get("presets", {})
    _check_keys(where, "presets.", presets, PRESETS)
    return presets


def defined_presets(data, where: str = "<sweep>") -> tuple[str, ...]:
    """The presets a sweep file names in its ``presets`` block (all of them when it has none: every
    preset then runs the file as written)."""
    presets = _preset_block(data, where)
    return tuple(p for p in PRESETS if p in presets) if "presets" in data else PRESETS


def apply_preset(data, preset: str, where: str = "<sweep>") -> dict:
    """The sweep file ``data`` with preset ``preset``'s overrides merged in (``presets`` dropped)."""
    check_choice("preset", preset, PRESETS, where=where)
    presets = _preset_block(data, where)
    over = presets.get(preset) or {}
    if not isinstance(over, dict):
        raise SweepError(f"{where}: 'presets.{preset}' must be a mapping")
    _check_keys(where, f"presets.{preset}.", over, set(TOP_KEYS) - {"presets", "name"})
    return _merge({k: v for k, v in data.items() if k != "presets"}, over)
