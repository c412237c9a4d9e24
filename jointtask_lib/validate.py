"""Parameter validation shared by every stage.

Every public entry point checks its parameters *before* any data is generated or any model is
trained, and a bad value raises :class:`ValueError` whose message names the field and says what is
allowed.  These helpers keep those messages uniform.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _where(field: str, where: str | None) -> str:
    return f"{where}: " if where else ""


def check_choice(field: str, value: Any, allowed: Iterable[Any], *, where: str | None = None) -> Any:
    """Return ``value`` if it is one of ``allowed``; otherwise raise naming ``field``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(
            f"{_where(field, where)}'{field}' must be one of {', '.join(map(str, allowed))}; got {value!r}"
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
    """Return ``value`` if it is an int in ``[lo, hi]`` (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{_where(field, where)}'{field}' must be an integer; got {value!r}")
    if lo is not None and value < lo or hi is not None and value > hi:
        raise ValueError(f"{_where(field, where)}'{field}' must be {_range(lo, hi)}; got {value}")
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
    """Return ``float(value)`` if it is a real number in the given range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{_where(field, where)}'{field}' must be a number; got {value!r}")
    v = float(value)
    bad = (
        v != v
        or (lo is not None and (v <= lo if lo_open else v < lo))
        or (hi is not None and (v >= hi if hi_open else v > hi))
    )
    if bad:
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        rng = f"in {lb}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{rb}"
        raise ValueError(f"{_where(field, where)}'{field}' must be {rng}; got {value!r}")
    return v


def check_bool(field: str, value: Any, *, where: str | None = None) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{_where(field, where)}'{field}' must be true or false; got {value!r}")
    return value


def _range(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"an integer from {lo} to {hi}"
    if lo is not None:
        return f"an integer >= {lo}"
    if hi is not None:
        return f"an integer <= {hi}"
    return "an integer"
