"""``jointtask train``: train (or re-read) stacked models and print their final accuracies.

    jointtask train --ops ADD,MAX,MED --modulus 10 --n-embed 32 --seeds 0,1,2 --steps 2000 --out runs/demo

Every (width, seed) pair is one run (:class:`~jointtask_lib.train.RunSpec`); runs of one width are
trained together as one stack through :func:`jointtask_lib.runs.train_or_load`, so re-running the
same command re-reads the finished records and trains nothing, and an interrupted command resumes
each stack from its group checkpoint.  All arguments are validated (by building every spec)
before any data is generated or any model is trained.

Speed settings (defaults = the fastest measured by ``benchmarks/train_throughput.py`` on a 2-core
CPU; see ``benchmarks/README.md``): ``--threads`` sets ``torch.set_num_threads`` before any work
(default :data:`DEFAULT_THREADS` for one process, cores/workers with ``--workers``);
``--workers N`` trains different stacks in N processes at once; ``--max-stack`` caps the models
per stack (default: by width, :func:`auto_max_stack`).
"""

from __future__ import annotations

import json
import sys
import time

from .cli_args import _ints
from .records import Record, RecordTable

# Fastest measured settings on the 2-core CPU (benchmarks/README.md): one stacked process runs
# fastest with 2 threads (1.15-1.8x its 1-thread speed); several worker processes with one thread
# each (``--workers 2 --threads 1`` beat one 2-thread process by 1.1-1.5x).
DEFAULT_THREADS = 2
# Largest stack trained as one program (``--max-stack 0``, the default, picks it by width): on the
# 2-core CPU, stacks of 8 were 1.2-2.2x faster than training the models one by one at d <= 32,
# but at d >= 64 on long sequences a stack of 8 fell to 0.5-1.2x (cache pressure, and the stack
# is cropped to its longest example), while stacks of 2 stayed at 0.98-1.06x.  M=16 helped only
# at d <= 16 on short sequences.  See benchmarks/README.md.
AUTO_MAX_STACK = ((32, 8), (None, 2))  # (widths up to, max stack); None: any larger width


def auto_max_stack(n_embed: int) -> int:
    for limit, m in AUTO_MAX_STACK:
        if limit is None or n_embed <= limit:
            return m
    return 1


def default_threads(workers: int) -> int:
    """Threads per process: :data:`DEFAULT_THREADS` for one process, else cores / workers."""
    import os

    if workers <= 1:
        return DEFAULT_THREADS
    return max(1, (os.cpu_count() or 1) // workers)


def register_cli(sub) -> None:
    """Add ``jointtask train`` to the CLI's sub-parsers (see ``cli._EXTENSIONS``)."""
    from .cli_args import add_params, add_task_args
    from .schema import ARCH, RUN, TRAIN

    p = sub.add_parser("train", help="train stacked models (cached) and print their accuracies",
                       description=__doc__.split("\n\n")[0])
    add_task_args(p)
    # The model and training arguments are generated from jointtask_lib.schema (flags, types,
    # allowed values); --n-embed and --seeds take lists (one run per width and seed).
    g = p.add_argument_group("model")
    add_params(g, ARCH, lists=("n_embed",))
    g = p.add_argument_group("training")
    add_params(g, RUN, lists=("seed",))
    add_params(g, TRAIN)
    g = p.add_argument_group("execution")
    g.add_argument("--out", default="runs", help="results root (run records and checkpoints)")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda")
    g.add_argument("--threads", type=int, default=None,
                   help=f"torch threads per process (default: {DEFAULT_THREADS} for one process, "
                        "cores/workers with --workers; the fastest measured)")
    g.add_argument("--workers", type=int, default=1, help="processes training different widths at once")
    g.add_argument("--max-stack", type=int, default=0,
                   help="most models trained as one stack; larger groups are split "
                        "(default 0 = by width: 8 up to d=32, 2 above; the fastest measured on CPU)")
    g.add_argument("--force", action="store_true", help="retrain even if records exist")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--json", action="store_true", help="print the records' metrics as JSON")
    p.set_defaults(func=cmd_train, on_interrupt=interrupt_note)


def interrupt_note(a) -> str:
    """What an interrupted ``train`` kept (the one line :func:`jointtask_lib.cli.main` prints)."""
    from pathlib import Path

    runs = Path(a.out) / "runs"
    n = len(list(runs.glob("*/record.json"))) if runs.is_dir() else 0
    ck = Path(a.out) / "groups"
    m = len(list(ck.glob("*/ckpt.pt"))) if ck.is_dir() else 0
    return (f"kept {n} finished run record(s) in {a.out} and {m} stack checkpoint(s); "
            "re-run the same command to resume")


def specs_from_args(a) -> list:
    """Every run the command asks for; raises ``ValueError`` (naming the field) on bad input."""
    from .cli_args import given, task_from_args
    from .schema import ARCH, TRAIN
    from .train import Arch, RunSpec, TrainConfig

    task = task_from_args(a)
    widths = (Arch.n_embed,) if a.n_embed is None else a.n_embed
    seeds = (RunSpec.seed,) if a.seed is None else a.seed
    if not widths:
        raise ValueError("'n_embed' must list at least one width; got nothing")
    if not seeds:
        raise ValueError("'seeds' must list at least one seed; got nothing")
    tc = TrainConfig(**given(a, TRAIN))
    arch_args = given(a, ARCH, [n for n in ARCH if n != "n_embed"])
    specs = []
    for width in widths:
        arch = Arch(n_embed=width, **arch_args)
        for seed in seeds:
            specs.append(RunSpec(task=task, arch=arch, train=tc, seed=seed))
    try:  # the data sizes are checked against the support here (memoised: training reuses it)
        specs[0].data()
    except ValueError as exc:
        raise ValueError(f"--n-train/--n-test: {exc}") from None
    return specs


def _train_chunk(job):
    root, spec_dicts, device, threads, progress, force, max_stack = job
    import torch

    torch.set_num_threads(threads)
    from .runs import train_or_load
    from .train import RunSpec

    specs = [RunSpec.from_dict(d) for d in spec_dicts]
    return train_or_load(root, specs, device=device, progress=progress, force=force, max_stack=max_stack)


def format_table(records: list[dict]) -> str:
    table = RecordTable.from_dicts(records)
    ops = table.ops()
    head = ["run", "d", "seed", "params", "steps", "stop", "gen_acc", "tf_acc"] + [f"{op}:gen" for op in ops]
    rows = []
    for r in table:
        rows.append([r.name, str(r.width), str(r.seed), str(r.n_params), str(r.steps_trained), r.stop_reason,
                     f"{r.accuracy(None, 'gen_acc'):.3f}", f"{r.accuracy(None, 'tf_acc'):.3f}"]
                    + [f"{r.accuracy(op):.3f}" if op in r.per_op else "-" for op in ops])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def cmd_train(a) -> int:
    from .paths import check_output_dir
    from .validate import check_int

    check_output_dir("out", a.out)  # a file or a read-only folder fails here, not after training
    check_int("workers", a.workers, lo=1)
    if a.threads is not None:
        check_int("threads", a.threads, lo=1)
    check_int("max_stack", a.max_stack, lo=0)
    from .train import resolve_device

    device = str(resolve_device(a.device))  # rejects 'cuda' without a GPU before any work
    specs = specs_from_args(a)

    from .runs import group_specs, load_record, train_or_load

    unique = list({s.key(): s for s in specs}.values())
    todo = unique if a.force else [s for s in unique if load_record(a.out, s) is None]
    done_before = len(unique) - len(todo)
    # One job per stack that will be trained (a group split into chunks of at most the max stack).
    groups = group_specs(todo)
    chunks = []
    for g in groups:
        ms = a.max_stack or auto_max_stack(g[0].arch.n_embed)
        chunks += [g[i:i + ms] for i in range(0, len(g), ms)]
    workers = min(a.workers, max(1, len(chunks)))
    threads = default_threads(workers) if a.threads is None else a.threads

    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    if workers > 1:
        from .workers import worker_pool

        jobs = [(a.out, [s.to_dict() for s in c], device, threads, False, a.force, None)
                for c in sorted(chunks, key=lambda c: -c[0].arch.n_embed * len(c))]
        # Workers die with this process (even SIGKILL) and are killed at once on Ctrl-C.
        with worker_pool(workers) as ex:
            list(ex.map(_train_chunk, jobs))
    else:
        for c in chunks:
            train_or_load(a.out, c, device=device, progress=not a.no_progress, force=a.force)
    records = train_or_load(a.out, specs, device=device)  # all finished now: reads only
    wall = time.perf_counter() - t0
    if a.json:
        print(json.dumps([{"key": r["key"], "name": r["name"], "n_embed": rec.width, "seed": rec.seed,
                           "metrics": r["metrics"], "steps_trained": rec.steps_trained,
                           "stop_reason": rec.stop_reason}
                          for r, rec in ((r, Record.from_dict(r)) for r in records)], indent=1))
    else:
        print(format_table(records))
        trained = len(unique) - done_before
        print(f"\n{len(records)} runs in {a.out}: {trained} trained, {done_before} reused "
              f"({wall:.1f} s, device {device}, {threads} thread(s))", file=sys.stderr)
    diverged = [r.name for r in RecordTable.from_dicts(records) if r.diverged]
    if diverged:
        print(f"{len(diverged)} run(s) diverged (training loss became NaN or infinite; recorded with "
              f"stop_reason 'diverged', their accuracies are those of the broken model): "
              f"{', '.join(diverged)}; try a smaller --lr", file=sys.stderr)
    return 0
