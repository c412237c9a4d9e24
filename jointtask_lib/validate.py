"""Parameter validation shared by every stage.

Every public entry point checks its parameters *before* any data is generated or any model is
trained, and a bad value raises :class:`ValueError` whose message names the field and says what is
allowed.  These helpers keep those messages uniform.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

#: The presets every notebook and sweep file has (params/<notebook>/<preset>.yaml and the
#: ``presets:`` block of params/sweeps/*.yaml): smoke for CI, quick for a 2-core laptop, paper for
#: a GPU, lesson for a class (notebooks/README.md).  Declared once; notebook.py and sweep.py use it.
PRESETS = ("smoke", "quick", "paper", "lesson")

#: Largest integer any parameter may take when no smaller bound is given: a value that does not fit
#: in 64 bits would fail deep inside torch or numpy ("Overflow when unpacking long long") without
#: naming the field.
MAX_INT = 2**63 - 1
#: Largest seed (numpy and torch generators take 32-bit seeds; the trainer derives batch-stream
#: seeds from it, which must still fit in 64 bits).
MAX_SEED = 2**32 - 1
#: Largest number of examples in one split: the tensors of a larger one would not fit a laptop's
#: memory, and generating it would take hours.
MAX_EXAMPLES = 5_000_000


#: How the fields being validated are named to the user (``{"steps": "train.steps", "n_embed":
#: "grid.widths"}`` while a sweep file is read); empty: by their own names.  Set with
#: :func:`field_names`; :func:`shown` applies it.  Every message of this module, and every
#: hand-written message of the configuration classes, names a field through :func:`shown`, so an
#: error names the key the user wrote without rewriting any message afterwards.
_NAMES: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("field_names", default={})


@contextlib.contextmanager
def field_names(names: Mapping[str, str]) -> Iterator[None]:
    """Within the block, fields are named by ``names`` (e.g. the YAML path of each field,
    :func:`jointtask_lib.schema.sweep_paths`) in every validation message."""
    token = _NAMES.set({**_NAMES.get(), **names})
    try:
        yield
    finally:
        _NAMES.reset(token)


def shown(field: str) -> str:
    """The name of ``field`` as the user wrote it (see :func:`field_names`)."""
    return _NAMES.get().get(field, field)


def _where(field: str, where: str | None) -> str:
    return f"{where}: " if where else ""


def check_choice(field: str, value: Any, allowed: Iterable[Any], *, where: str | None = None) -> Any:
    """Return ``value`` if it is one of ``allowed``; otherwise raise naming ``field``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(
            f"{_where(field, where)}'{shown(field)}' must be one of {', '.join(map(str, allowed))}; got {value!r}"
        )
    return value


def check_int(
    field: str,
    value: Any,
    *,
    lo: int | None = None,
    hi: int | None = None,
    where: str | None = None,
) -> int:
    """Return ``value`` if it is an int in ``[lo, hi]`` (bools are rejected).  Without ``hi`` the
    bound is :data:`MAX_INT` (a 64-bit integer), so an overflow is reported naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{_where(field, where)}'{shown(field)}' must be an integer; got {value!r}")
    if hi is None and value > MAX_INT:
        hi = MAX_INT
    if lo is None and value < -MAX_INT:
        lo = -MAX_INT
    if lo is not None and value < lo or hi is not None and value > hi:
        raise ValueError(f"{_where(field, where)}'{shown(field)}' must be {int_range(lo, hi)}; got {value}")
    return value


def check_float(
    field: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    where: str | None = None,
) -> float:
    """Return ``float(value)`` if it is a finite real number in the given range (NaN and
    infinities are always rejected: an infinite learning rate or weight trains NaN weights)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{_where(field, where)}'{shown(field)}' must be a number; got {value!r}")
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v):
        raise ValueError(f"{_where(field, where)}'{shown(field)}' must be a finite number; got {value!r}")
    bad = (
        v != v
        or (lo is not None and (v <= lo if lo_open else v < lo))
        or (hi is not None and (v >= hi if hi_open else v > hi))
    )
    if bad:
        rng = float_range(lo, hi, lo_open, hi_open)
        raise ValueError(f"{_where(field, where)}'{shown(field)}' must be {rng}; got {value!r}")
    return v


def float_range(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    """``in (0.0, 1.0]`` and the like: the range :func:`check_float` allows, in words."""
    lb = "(" if lo_open else "["
    rb = ")" if hi_open else "]"
    return f"in {lb}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{rb}"


def check_bool(field: str, value: Any, *, where: str | None = None) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{_where(field, where)}'{shown(field)}' must be true or false; got {value!r}")
    return value


def int_range(lo: int | None, hi: int | None) -> str:
    """``an integer from 1 to 8`` and the like: the range :func:`check_int` allows, in words."""
    if lo is not None and hi is not None:
        return f"an integer from {lo} to {hi}"
    if lo is not None:
        return f"an integer >= {lo}"
    if hi is not None:
        return f"an integer <= {hi}"
    return "an integer"
