"""Argument helpers shared by the ``jointtask`` sub-commands (:mod:`jointtask_lib.cli` and
:mod:`jointtask_lib.cli_train`): the task arguments and comma-separated lists.

A module of its own so that ``cli`` (which registers every sub-command) and the sub-command
modules both import it, and neither imports the other's helpers: no import cycle.
"""

from __future__ import annotations

import argparse

from .tasks import TaskConfig


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


def add_task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ops", type=_csv, default=("ADD",), help="comma-separated ops, e.g. ADD,MAX")
    p.add_argument("--family", default="listops", help="listops (mod n) or perm (S_k)")
    p.add_argument("--modulus", type=int, default=None, help="modulus n for listops (default 10)")
    p.add_argument("--perm-k", type=int, default=None, help="k for products in S_k (default 3)")
    p.add_argument("--depth", type=int, default=3, help="maximum nesting depth")
    p.add_argument("--min-args", type=int, default=2)
    p.add_argument("--max-args", type=int, default=3)
    p.add_argument("--op-args", type=_op_args, default=None,
                   help="an arity per operation, e.g. MED=3 (MED nodes get 3 arguments, the others keep "
                        "--min-args..--max-args) or MED=2-4")
    p.add_argument("--p-nest", type=float, default=0.5, help="probability an argument is nested")
    p.add_argument("--cot", default="reduce", help="reduce | none")
    p.add_argument("--mixing", default="expression", help="expression | node")
    p.add_argument("--relabel-seed", type=int, default=0)
    p.add_argument("--sampling", default="iid",
                   help="iid (default: every split follows the generator) | unique (distinct expressions)")
    p.add_argument("--test-frac", type=float, default=0.2, help="share of expressions held out for testing (iid)")
    p.add_argument("--val-frac", type=float, default=0.05, help="share held out for validation (iid)")


def task_from_args(a) -> TaskConfig:
    # A key of the other family is rejected, not silently ignored.
    if a.family == "perm" and a.modulus is not None:
        raise ValueError("'modulus' does not apply to family perm (products in S_k); use --perm-k")
    if a.family == "listops" and a.perm_k is not None:
        raise ValueError("'perm_k' does not apply to family listops (arithmetic mod n); use --modulus")
    defaults = TaskConfig.__dataclass_fields__
    modulus = defaults["modulus"].default if a.modulus is None else a.modulus
    perm_k = defaults["perm_k"].default if a.perm_k is None else a.perm_k
    return TaskConfig(
        ops=a.ops, family=a.family, modulus=modulus, perm_k=perm_k, depth=a.depth,
        min_args=a.min_args, max_args=a.max_args, p_nest=a.p_nest, cot=a.cot, mixing=a.mixing,
        relabel_seed=a.relabel_seed, sampling=a.sampling, test_frac=a.test_frac, val_frac=a.val_frac,
        op_args=getattr(a, "op_args", None) or (),
    )
