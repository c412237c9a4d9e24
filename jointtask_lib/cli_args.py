"""Argument helpers shared by the ``jointtask`` sub-commands (:mod:`jointtask_lib.cli` and
:mod:`jointtask_lib.cli_train`): the configuration arguments, generated from
:mod:`jointtask_lib.schema` (:func:`add_params`), and comma-separated lists.

A module of its own so that ``cli`` (which registers every sub-command) and the sub-command
modules both import it, and neither imports the other's helpers: no import cycle.
"""

from __future__ import annotations

import argparse

from .schema import TASK, Param
from .tasks import TaskConfig, check_size_fields


def _csv(s: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in s.split(",") if x.strip())


def _ints(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in _csv(s))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


def _op_args(s: str) -> dict:
    """``MED=3`` or ``MED=3,NADD=2-4`` -> ``{"MED": [3, 3], "NADD": [2, 4]}``."""
    out = {}
    for item in _csv(s):
        op, sep, rng = item.partition("=")
        lo, _, hi = rng.partition("-")
        try:
            out[op.strip()] = [int(lo), int(hi or lo)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected OP=K or OP=MIN-MAX, comma-separated; got {s!r}") from None
        if not sep:
            raise argparse.ArgumentTypeError(f"expected OP=K or OP=MIN-MAX, comma-separated; got {s!r}")
    return out


def _floats(s: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in _csv(s))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


#: How a command-line string becomes a value, by :class:`~jointtask_lib.schema.Param` kind (an
#: out-of-range or unknown value is left to the configuration class: its message names the field
#: and the allowed values, as everywhere else).
_ARG_TYPES = {"int": int, "float": float, "choice": str, "family": str, "ops": _csv, "weights": _floats,
              "op_args": _op_args}


def flag(name: str, p: Param) -> str:
    """The command-line flag of field ``name``."""
    return p.cli or f"--{name.replace('_', '-')}"


def add_params(p, section: dict[str, Param], names=None, *, lists=()) -> None:
    """Add one argument per field of ``section`` (default: every field with a flag), generated from
    its declaration in :mod:`jointtask_lib.schema`: the flag, the type, and a help text with the
    field's meaning and allowed values.  Defaults are ``None`` (not given): the configuration
    class's own default applies (:func:`given`).  A ``bool`` field gets the flag that flips it
    (``--no-early-stop``).  ``lists``: fields given as comma-separated lists (one run per item)."""
    for name in section if names is None else names:
        prm = section[name]
        if prm.cli is None:
            continue
        help_ = f"{prm.doc}; {'comma-separated, each ' if name in lists else ''}{prm.allowed()}"
        if prm.kind == "bool":
            turns_off = flag(name, prm).startswith("--no-")
            p.add_argument(flag(name, prm), dest=name, action="store_const", const=not turns_off, default=None,
                           help=f"{'do not ' if turns_off else ''}{prm.doc}")
        else:
            typ = _ints if name in lists else _ARG_TYPES[prm.kind]
            p.add_argument(flag(name, prm), dest=name, type=typ, default=None, help=help_.replace("%", "%%"))


def given(a, section: dict[str, Param], names=None) -> dict:
    """The fields of ``section`` the command line set (``None``: not given)."""
    return {n: getattr(a, n) for n in (section if names is None else names)
            if getattr(a, n, None) is not None}


def add_task_args(p: argparse.ArgumentParser) -> None:
    """The task arguments: one per field of :data:`jointtask_lib.schema.TASK`."""
    add_params(p, TASK)


def task_from_args(a) -> TaskConfig:
    values = given(a, TASK)
    # A size field of another family is rejected, not silently ignored.
    check_size_fields(values.get("family", TaskConfig.family), values)
    return TaskConfig.from_dict(values)
