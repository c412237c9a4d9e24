"""The ``jointtask`` command line: ``data``, ``train``, ``sweep``, ``notebooks``, ``report``, ``power``, ``cache``.

Every command validates its arguments before doing any work; a bad value prints the library's
message (naming the field and the allowed values) and exits with status 2, leaving nothing
half-written behind.  A corrupt run record (:class:`jointtask_lib.runs.CorruptRecord`) or records a
Dask worker wrote out of this machine's sight (:class:`jointtask_lib.sweep.RecordsMissing`) also
exit with status 2 and a one-line message naming the file.  Ctrl-C kills every worker process,
Dask worker and notebook kernel at once, prints one line saying what was kept, and exits with
status 130 (README, "Reliability").
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .cli_args import _csv, _ints, add_task_args, task_from_args  # noqa: F401  (shared with cli_train)


def cmd_data(a) -> int:
    from .data import example_record, make_datasets
    from .schema import param
    from .validate import MAX_EXAMPLES, check_choice, check_int

    check_choice("split", a.split, ("train", "test"))
    check_choice("format", a.format, ("jsonl", "text"))
    check_int("n", a.n, lo=0, hi=MAX_EXAMPLES)
    if a.seed is not None:
        param("seed").check("seed", a.seed)
    param("n_test").check("n_test", a.n_test)
    if a.sweep:
        task, exprs = _sweep_examples(a)
    else:
        task = task_from_args(a)
        seed = 0 if a.seed is None else a.seed
        if a.split == "train":
            train, _ = make_datasets(task, n_train=a.n, n_test=a.n_test, seed=seed)
            exprs = train.exprs
        else:
            _, test = make_datasets(task, n_train=0, n_test=a.n, seed=seed)
            exprs = test.exprs
    lines = []
    for e in exprs:
        rec = example_record(task, e, a.split)
        lines.append(json.dumps(rec) if a.format == "jsonl" else rec["text"])
    sys.stdout.write("\n".join(lines) + ("\n" if lines else ""))
    return 0


def _sweep_examples(a):
    """``jointtask data --sweep FILE``: the first ``n`` examples of ``--ops`` exactly as the run of
    that sweep trains (``--split train``) or is tested (``--split test``) on them.

    The run is the sweep's first run (at ``--preset``, ``--seed-offset``) whose mix is ``--ops``,
    or else whose mix contains every op of ``--ops`` (then only the examples of those ops are
    printed, in the order the run draws them), at ``--modulus``, ``--width`` and ``--seed``
    (default: the grid's first of each).  Its task, sizes and data seed are the run's own (with
    ``data_seeds: per_run`` the data seed depends on the width).  Draws are sequential, so the first
    ``k`` examples of a split do not depend on its size: these are the run's first examples.
    """
    from .data import make_datasets
    from .sweep import load_sweep
    from .tasks import TaskConfig
    from .validate import check_choice

    sw = load_sweep(a.sweep, a.preset, a.seed_offset)
    ops = TaskConfig.ops if a.ops is None else tuple(a.ops)
    fam = sw.specs[0].task.task_family
    given_size = getattr(a, fam.size_field)  # --modulus or --perm-k, whichever the sweep's family uses
    size = sw.sizes[0] if given_size is None else check_choice(fam.size_field, given_size, sw.sizes)
    width = sw.widths[0] if a.width is None else check_choice("width", a.width, sw.widths)
    seed = sw.seeds[0] if a.seed is None else check_choice("seed", a.seed, sw.seeds)
    cands = [s for s in sw.specs if s.task.size == size and s.arch.n_embed == width
             and s.seed == seed and s.init is None]
    spec = next((s for s in cands if tuple(s.task.ops) == ops), None)
    if spec is None:
        spec = next((s for s in cands if set(ops) <= set(s.task.ops)), None)
    if spec is None:
        raise ValueError(f"'ops' = {','.join(ops)} is in none of the mixes of {a.sweep}; its mixes are "
                         f"{', '.join('+'.join(m) for m in sw.mixes)}")
    task, tr = spec.task, spec.train
    want = set(ops)
    k = a.n
    while True:
        if a.split == "train":
            exprs = make_datasets(task, n_train=max(k, 1), n_test=tr.n_test, seed=spec.data_seed())[0].exprs
        else:
            exprs = make_datasets(task, n_train=0, n_test=max(k, 1), seed=spec.data_seed())[1].exprs
        picked = [e for e in exprs if e[0] in want] if task.mixing == "expression" else list(exprs)
        if len(picked) >= a.n or k >= 64 * max(a.n, 1):
            return task, picked[: a.n]
        k *= 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jointtask",
        description="Multi-task training of small transformers: data, training, sweeps, notebooks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("data", help="print task examples (one per line)")
    add_task_args(p)
    p.add_argument("--n", type=int, default=10, help="number of examples")
    p.add_argument("--n-test", type=int, default=None,
                   help="size of the held-out test set the train split must avoid (default: the library default)")
    p.add_argument("--seed", type=int, default=None,
                   help="data seed (default 0); with --sweep: the run's grid seed (default its first)")
    p.add_argument("--split", default="train", help="train | test")
    p.add_argument("--format", default="text", help="jsonl | text")
    p.add_argument("--sweep", default=None,
                   help="a params/sweeps/*.yaml file: print the examples of --ops exactly as that sweep's "
                        "run trains on them (its task, sizes and data seed; other task flags are ignored)")
    p.add_argument("--preset", default="quick", help="with --sweep: smoke | quick | paper")
    p.add_argument("--seed-offset", type=int, default=0, help="with --sweep: the sweep's seed offset")
    p.add_argument("--width", type=int, default=None, help="with --sweep: the run's width (default: the grid's first)")
    p.set_defaults(func=cmd_data)

    for extend in _EXTENSIONS:
        extend(sub)
    return parser


# Later stages register their sub-commands here (keeps this module importable early in the
# pipeline without importing torch-heavy modules at start-up).
_EXTENSIONS: list = []


def _register_sweep(sub):
    from .sweep import register_cli

    register_cli(sub)


_EXTENSIONS.append(_register_sweep)


def _register_report(sub):
    from .scorecard import register_cli

    register_cli(sub)


_EXTENSIONS.append(_register_report)


def _register_power(sub):
    from .stats.power import register_cli

    register_cli(sub)


_EXTENSIONS.append(_register_power)

from .notebook import register_cli as _register_notebooks  # noqa: E402  (light: heavy imports are lazy)

_EXTENSIONS.append(_register_notebooks)

from .cli_train import register_cli as _register_train  # noqa: E402  (light: heavy imports are lazy)

_EXTENSIONS.append(_register_train)


from .cache_archive import register_cli as _register_cache  # noqa: E402  (light: heavy imports are lazy)

_EXTENSIONS.append(_register_cache)


# Errors that are the user's to fix (a corrupt record, a Dask worker writing where this machine
# cannot see): printed as one line and exit status 2, like a bad argument, not as a traceback.
# Named by module so that this module never imports torch: an exception of a module that was
# never imported cannot have been raised.
_USER_ERRORS = (("jointtask_lib.runs", "CorruptRecord"), ("jointtask_lib.sweep", "RecordsMissing"))


def _is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, ValueError):
        return True
    for module, name in _USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return True
    return False


def _interrupted(args) -> int:
    """Ctrl-C: one line saying what was kept (the command's ``on_interrupt``), exit status 130.

    Worker processes were already stopped where the interrupt was caught (``workers.worker_pool``,
    the Dask client); a second Ctrl-C while this line is written is ignored."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kept = ""
    note = getattr(args, "on_interrupt", None)
    if note is not None:
        try:
            kept = note(args)
        except Exception as exc:  # noqa: BLE001 - the line must be printed whatever went wrong
            kept = f"could not list what was kept ({type(exc).__name__}: {exc})"
    if args is None:
        kept = "before any work started"
    command = f"jointtask {args.command}" if args is not None else "jointtask"
    print(f"{command}: interrupted" + (f"; {kept}" if kept else ""), file=sys.stderr, flush=True)
    return 130


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as the program: Ctrl-C kills workers and kernels at once
        from .workers import install_interrupt_handler

        install_interrupt_handler()
    args = None
    try:
        parser = build_parser()  # imports the sub-commands' modules (torch): Ctrl-C here too
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        code = _interrupted(args)
        if argv is None:  # run as the program: leave now (finalising torch can take seconds)
            from .workers import kill_descendants, run_exit_finalizers

            kill_descendants()
            run_exit_finalizers()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except Exception as exc:
        if args is None or not _is_user_error(exc):
            raise
        print(f"jointtask {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
