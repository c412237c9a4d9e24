"""Worker processes that never outlive their parent and stop at once on Ctrl-C.

Every process pool of the library (runs, sweeps, ``jointtask train --workers``, notebooks) is a
:class:`worker_pool`: its workers ignore SIGINT (the terminal sends Ctrl-C to the whole process
group; the parent alone decides) and, on Linux, are killed by the kernel when their parent dies
(``prctl(PR_SET_PDEATHSIG)``), SIGKILL included; leaving the ``with`` block by an exception
(``KeyboardInterrupt`` included) kills the workers instead of waiting for their jobs.  A killed
worker loses only the stack it was training, which resumes from its last checkpoint.
Light (no torch), so the notebook runner can use it.
"""

from __future__ import annotations

import os


def worker_initializer(parent: int) -> None:
    """Initialiser of every worker process the library starts (run pools, sweep pools, notebook
    pools).  The worker ignores Ctrl-C (SIGINT reaches the whole terminal process group; the
    parent alone decides, and stops the workers itself, see :func:`worker_pool`), and on Linux
    it is killed when its parent dies (``PR_SET_PDEATHSIG``), so a parent killed even with
    SIGKILL leaves no orphan still training and writing records."""
    import ctypes
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def stop_pool(ex) -> None:
    """Stop a :class:`~concurrent.futures.ProcessPoolExecutor` now: cancel what has not started
    and kill its worker processes (their finished records are on disk; a stack in training keeps
    its last checkpoint)."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    for p in procs:
        try:
            p.kill()
        except (OSError, ValueError, AttributeError):
            pass
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        try:
            p.join(timeout=2)
        except (OSError, ValueError, AttributeError, AssertionError):
            pass


class worker_pool:
    """``with worker_pool(n) as ex:`` a spawn-context process pool whose workers run
    :func:`worker_initializer`; leaving the block by an exception (Ctrl-C included) kills the
    workers at once (:func:`stop_pool`) instead of waiting for their jobs to finish."""

    def __init__(self, workers: int):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        self.ex = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                      initializer=worker_initializer, initargs=(os.getpid(),))

    def __enter__(self):
        # Start every worker now, with SIGINT blocked in this thread: a blocked signal stays
        # blocked in the spawned children from their first instruction, so a Ctrl-C while a worker
        # is still importing cannot make it print a traceback (the initialiser then ignores
        # SIGINT for good).  Spawning does not wait for the workers to start; a Ctrl-C meanwhile
        # is delivered here as soon as the mask is restored.
        import signal
        import threading

        main = threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask")
        if main:
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for _ in range(self.workers):  # each submit spawns one worker while none is idle
                self.ex.submit(os.getpid)
        except BaseException:
            stop_pool(self.ex)
            raise
        finally:
            if main:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return self.ex

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.ex.shutdown(wait=True)
        else:
            stop_pool(self.ex)
        return False


def descendants(pid: int | None = None) -> list[int]:
    """Process ids of every descendant of ``pid`` (default: this process), children first.

    Read from ``/proc`` (Linux); elsewhere the :mod:`multiprocessing` children only."""
    pid = os.getpid() if pid is None else pid
    if not os.path.isdir("/proc"):
        import multiprocessing as mp

        return [p.pid for p in mp.active_children()] if pid == os.getpid() else []
    parent_of: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                stat = fh.read()
            parent_of[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    out, frontier = [], [pid]
    while frontier:
        kids = [c for c, p in parent_of.items() if p in frontier and c not in out]
        out += kids
        frontier = kids
    return out


def _resource_tracker_pid() -> int | None:
    try:
        from multiprocessing import resource_tracker

        return getattr(resource_tracker._resource_tracker, "_pid", None)
    except (ImportError, AttributeError):
        return None


def kill_descendants() -> int:
    """SIGKILL every descendant of this process (pool workers, Dask workers, notebook kernels);
    returns how many were signalled.  Used by the command line on Ctrl-C.  Multiprocessing's
    resource tracker is spared: it removes the pools' semaphores once this process has gone."""
    import signal

    pid = _resource_tracker_pid()
    keep = {pid, *descendants(pid)} if pid else set()
    n = 0
    for pid in descendants():
        if pid in keep:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            n += 1
        except (ProcessLookupError, PermissionError):
            pass
    return n


def run_exit_finalizers() -> None:
    """What :mod:`multiprocessing` does at a normal exit (release the pools' semaphores and
    queues), for a program about to leave with ``os._exit`` after Ctrl-C: without it the resource
    tracker would warn about "leaked" semaphores after the one-line message."""
    import contextlib
    import multiprocessing.util as mp_util

    with contextlib.suppress(Exception):
        mp_util._exit_function()


def install_interrupt_handler() -> None:
    """Ctrl-C in a program: kill every descendant at once, then raise ``KeyboardInterrupt`` in the
    main thread (so nothing waits for a worker, a Dask nanny or a notebook kernel to notice)."""
    import signal

    def on_sigint(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C changes nothing
        kill_descendants()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
