"""Sweeps: validation, resumption after SIGKILL, Dask LocalCluster, adaptive widths."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from jointtask_lib import sweep as sw
from jointtask_lib.runs import load_records, records_table, run_dir

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "name": "tiny",
    "task": {"depth": 2, "min_args": 2, "max_args": 2},
    "train": {"steps": 30, "eval_every": 10, "n_train": 300, "n_test": 40, "eval_size": 20,
              "batch_size": 8, "warmup": 5},
    "grid": {"mixes": [["ADD"], ["ADD", "MAX"]], "moduli": [5], "widths": [8, 12], "seeds": [0, 1]},
    "presets": {"smoke": {"grid": {"widths": [8]}}, "quick": {}, "paper": {"grid": {"moduli": [5, 7]}}},
}


def _write(tmp_path, data, name="s.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def test_every_shipped_sweep_file_validates_at_every_preset():
    files = sorted((ROOT / "params" / "sweeps").glob("*.yaml"))
    assert files
    for f in files:
        for preset in sw.PRESETS:
            s = sw.load_sweep(f, preset)
            assert len(s) == len({x.key() for x in s.specs}) > 0


def test_grid_expansion_and_presets(tmp_path):
    p = _write(tmp_path, TINY)
    q = sw.load_sweep(p, "quick")
    assert len(q) == 2 * 2 * 2  # mixes x widths x seeds
    assert {s.arch.n_embed for s in q.specs} == {8, 12}
    assert len(sw.load_sweep(p, "smoke")) == 4
    paper = sw.load_sweep(p, "paper")
    assert {s.task.modulus for s in paper.specs} == {5, 7} and len(paper) == 16


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(colour=1), r"unknown key 'colour'; allowed: arch, data_seeds, description"),
        (lambda d: d["train"].update(stepz=3), r"unknown key 'train.stepz'; allowed: .*steps"),
        (lambda d: d["train"].update(steps=0), r"'train.steps' must be an integer >= 1; got 0"),
        (lambda d: d["grid"].update(widths=[]), r"'grid.widths' must be a non-empty list"),
        (lambda d: d["grid"].update(widths=8), r"'grid.widths' must be a list; got int"),
        (lambda d: d["grid"].update(mixes=[["FOO"]]), r"'grid.mixes\[0\]' must be one of MAX, MIN"),
        (lambda d: d["task"].update(depth=0), r"'task.depth' must be an integer from 1"),
        (lambda d: d["train"].update(lr=-1.0), r"'train.lr' must be in \(0.0, inf\]; got -1.0"),
        (lambda d: d["grid"].update(moduli=[1]), r"'grid.moduli' must be an integer from 2 to 200; got 1"),
        (lambda d: d["grid"].update(seeds=[-1]), r"'grid.seeds' must be an integer from 0 to 4294967295; got -1"),
        (lambda d: d["presets"].update(quick={"train": {"eval_every": 0}}),
         r"\(preset quick\): 'train.eval_every' must be an integer >= 1; got 0"),
        (lambda d: d["presets"].update(huge={}), r"unknown key 'presets.huge'; allowed: lesson, paper, quick, smoke"),
        (lambda d: d["arch"].update(n_heads=3) if "arch" in d else d.update(arch={"n_heads": 3}),
         r"'arch.n_heads' must divide 'grid.widths' = 8"),
    ],
)
def test_invalid_sweep_files_name_file_and_key(tmp_path, mutate, message):
    import copy

    data = copy.deepcopy(TINY)
    mutate(data)
    p = _write(tmp_path, data)
    with pytest.raises(ValueError, match=message) as exc:
        sw.load_sweep(p, "quick")
    assert str(p) in str(exc.value)


def test_missing_file_and_bad_preset(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        sw.load_sweep(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="'preset' must be one of smoke, quick, paper, lesson"):
        sw.load_sweep(_write(tmp_path, TINY), "huge")


def test_sweep_runs_once_then_reuses(tmp_path):
    s = sw.load_sweep(_write(tmp_path, TINY), "smoke")
    res = tmp_path / "res"
    recs = sw.run_sweep(s, res, progress=False, device="cpu")
    assert len(recs) == 4 and all(r is not None for r in recs)
    stamps = {r["key"]: (run_dir(res, r["key"]) / "record.json").stat().st_mtime_ns for r in recs}
    assert sw.pending(s, res) == []
    again = sw.run_sweep(s, res, progress=False, device="cpu")
    assert again == recs
    assert stamps == {r["key"]: (run_dir(res, r["key"]) / "record.json").stat().st_mtime_ns for r in recs}
    forced = sw.run_sweep(s, res, progress=False, device="cpu", force=True)
    assert [r["key"] for r in forced] == [r["key"] for r in recs]
    assert all((run_dir(res, r["key"]) / "record.json").stat().st_mtime_ns > stamps[r["key"]] for r in recs)
    rows = records_table(load_records(res))
    assert {r["op"] for r in rows} == {"ADD", "MAX"}


def _cli(*args, **kw):
    env = dict(os.environ, TQDM_DISABLE="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "jointtask_lib.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_sweep_killed_with_sigkill_resumes_without_retraining(tmp_path):
    data = {**TINY, "train": {**TINY["train"], "steps": 120}}
    data["grid"] = {**TINY["grid"], "widths": [8, 12, 16]}
    p = _write(tmp_path, data)
    res = tmp_path / "res"
    proc = _cli("sweep", str(p), "--results", str(res), "--no-progress", "--threads", "1")
    deadline = time.time() + 300
    while time.time() < deadline:
        done = list((res / "runs").glob("*/record.json")) if (res / "runs").exists() else []
        if done:
            break
        if proc.poll() is not None:
            pytest.fail(f"sweep ended before it could be killed: {proc.stderr.read()}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {f.parent.name: f.stat().st_mtime_ns for f in (res / "runs").glob("*/record.json")}
    total = len(sw.load_sweep(p, "quick"))
    assert 0 < len(finished) < total
    # every record present is complete and readable
    assert len(load_records(res)) == len(finished)
    out = _cli("sweep", str(p), "--results", str(res), "--no-progress", "--threads", "1")
    stdout, stderr = out.communicate(timeout=600)
    assert out.returncode == 0, stderr
    assert f"{total - len(finished)} to train" in stdout
    after = {f.parent.name: f.stat().st_mtime_ns for f in (res / "runs").glob("*/record.json")}
    assert len(after) == total
    for k, t in finished.items():
        assert after[k] == t, "a finished run was retrained"
    assert not list((res / "runs").glob("*/.*.tmp"))
    assert not list((res / "groups").glob("*/ckpt.pt"))


@pytest.mark.slow
def test_dask_local_cluster_gives_same_records_as_local(tmp_path):
    s = sw.load_sweep(_write(tmp_path, TINY), "smoke")
    local = sw.run_sweep(s, tmp_path / "local", progress=False, device="cpu", threads=1)
    dask = sw.run_sweep(s, tmp_path / "dask", progress=False, device="cpu", local_cluster=True, workers=2)
    assert len(local) == len(dask) == 4
    for a, b in zip(local, dask):
        assert a["key"] == b["key"]
        assert a["metrics"] == b["metrics"]
        assert a["curve"] == b["curve"]


def test_process_pool_executor_gives_same_records(tmp_path):
    s = sw.load_sweep(_write(tmp_path, TINY), "smoke")
    local = sw.run_sweep(s, tmp_path / "local", progress=False, device="cpu", threads=1)
    pool = sw.run_sweep(s, tmp_path / "pool", progress=False, device="cpu", workers=2)
    for a, b in zip(local, pool):
        assert a["metrics"] == b["metrics"] and a["curve"] == b["curve"]


def _fake_training(monkeypatch, acc_of_width):
    """Replace training by a known accuracy per width; returns the widths "trained", in order."""
    trained = []

    def fake_run_specs(specs, root, **kw):
        out = []
        for s in specs:
            trained.append(s.arch.n_embed)
            out.append({"key": s.key(), "spec": s.to_dict(),  # a record as the cache stores it (spec and metrics)
                        "metrics": {"per_op": {op: {"gen_acc": acc_of_width(s.arch.n_embed, s.seed)}
                                               for op in s.task.ops}}})
        return out

    monkeypatch.setattr(sw, "run_specs", fake_run_specs)
    return trained


def _make(ops=("ADD",), modulus=5, seeds=(0, 1)):
    from jointtask_lib.tasks import TaskConfig
    from jointtask_lib.train import Arch, RunSpec, TrainConfig

    def make(w):
        return [RunSpec(task=TaskConfig(ops=ops, modulus=modulus), arch=Arch(n_embed=w),
                        train=TrainConfig(steps=1), seed=s) for s in seeds]
    return make


def test_adaptive_widths_refines_around_the_transition(monkeypatch, tmp_path):
    """With a synthetic accuracy that jumps at width 20, the search brackets it tightly and
    trains far fewer widths than a dense grid would."""
    trained = _fake_training(monkeypatch, lambda w, seed: 0.95 if w >= 20 else 0.1)
    res = sw.adaptive_widths(_make(), tmp_path, op="ADD", lo=8, hi=64, n_initial=3, ratio=1.3)
    assert res.kind == "bracket"
    below, above = res.bracket
    assert below < 20 <= above and above / below <= 1.3
    # the bracket is the tightest the trained widths allow
    assert below == max(w for w in res.widths if w < 20) and above == min(w for w in res.widths if w >= 20)
    # 8, 22, 64 first; then 14, 18 (geometric midpoints, multiples of 2): 5 of the 29 widths
    assert res.widths == (8, 14, 18, 22, 64) and res.rounds == 2
    assert len(res.records) == 2 * len(res.widths) and len(trained) == len(res.records)  # nothing twice
    assert res.threshold == pytest.approx(0.8 * 0.95)
    assert "between width 18 (not) and 22" in res.describe()


def test_adaptive_widths_reports_a_bound_when_nothing_beats_chance(monkeypatch, tmp_path):
    """Everything at chance (mod 5: 0.2, with noise): the old rule (80% of the best mean) called the
    smallest width "learned"; now nothing is learned, the result is a bound and no width beyond
    the first round is trained."""
    noise = {8: 0.21, 14: 0.18, 22: 0.24, 38: 0.19, 64: 0.22}
    trained = _fake_training(monkeypatch, lambda w, seed: noise.get(w, 0.2))
    res = sw.adaptive_widths(_make(), tmp_path, op="ADD", candidates=[8, 14, 22, 38, 64], n_initial=3)
    assert res.kind == "above" and res.bracket is None
    assert res.widths == (8, 22, 64) and sorted(set(trained)) == [8, 22, 64]
    assert res.threshold == pytest.approx(0.8)  # 80% of 1.0: the best mean (0.24) shows no learning
    assert "not learned at any width tried (> 64)" == res.describe()


def test_adaptive_widths_learned_everywhere_is_a_bound_below(monkeypatch, tmp_path):
    _fake_training(monkeypatch, lambda w, seed: 0.97)
    res = sw.adaptive_widths(_make(), tmp_path, op="ADD", candidates=[8, 12, 16, 24, 32])
    assert res.kind == "below" and res.widths == (8, 16, 32) and res.rounds == 0


def test_adaptive_widths_stays_on_the_candidate_grid(monkeypatch, tmp_path):
    grid = [8, 12, 16, 24, 32, 48, 64]
    _fake_training(monkeypatch, lambda w, seed: 0.9 if w >= 24 else 0.15)
    res = sw.adaptive_widths(_make(), tmp_path, op="ADD", candidates=grid, ratio=1.01)
    assert set(res.widths) <= set(grid)
    assert res.bracket == (16, 24)  # adjacent on the grid: nothing left to refine
    assert len(res.widths) < len(grid)


def test_adaptive_widths_tracks_one_op_of_a_joint_mix(monkeypatch, tmp_path):
    def acc(w, seed):
        return 0.9 if w >= 24 else 0.1

    _fake_training(monkeypatch, acc)
    res = sw.adaptive_widths(_make(ops=("ADD", "MAX")), tmp_path, op="MAX", candidates=[8, 16, 24, 32])
    assert res.op == "MAX" and res.bracket == (16, 24)
    with pytest.raises(ValueError, match="'op' must be one of the mix ADD, MAX; got 'MED'"):
        sw.adaptive_widths(_make(ops=("ADD", "MAX")), tmp_path, op="MED", candidates=[8, 16])


@pytest.mark.parametrize(
    "means, kind, bracket",
    [
        ({8: 0.1, 16: 0.1, 32: 0.1}, "above", None),                # all at chance (0.1)
        ({8: 0.1, 16: 0.3, 32: 0.45}, "above", None),               # best 0.45 < 0.55: fallback to 1.0
        ({8: 0.1, 16: 0.5, 32: 0.9}, "bracket", (16, 32)),          # 0.5 < 0.72
        ({8: 0.1, 16: 0.8, 32: 0.9}, "bracket", (8, 16)),
        ({8: 0.1, 16: 0.8, 24: 0.3, 32: 0.9}, "bracket", (8, 16)),  # non-monotone: the first learned
        ({8: 0.9, 16: 0.95}, "below", None),
    ],
)
def test_learned_bracket(means, kind, bracket):
    k, b, thr = sw.learned_bracket(means, chance=0.1)
    assert (k, b) == (kind, bracket)
    best = max(means.values())
    assert thr == pytest.approx(0.8 * (best if best >= 0.55 else 1.0))


def test_learned_bracket_rejects_a_level_at_chance():
    with pytest.raises(ValueError, match="'level' must exceed 'chance'"):
        sw.learned_bracket({8: 0.5}, chance=0.5, level=0.5)


def test_adaptive_sweep_uses_the_sweep_grid_and_shares_the_cache(monkeypatch, tmp_path):
    data = {**TINY, "grid": {**TINY["grid"], "widths": [8, 12, 16, 24, 32]}}
    s = sw.load_sweep(_write(tmp_path, data), "quick")
    trained = _fake_training(monkeypatch, lambda w, seed: 0.9 if w >= 16 else 0.2)
    results = sw.adaptive_sweep(s, tmp_path / "res", op="ADD")
    assert len(results) == 2  # one search per mix
    assert all(r.op == "ADD" for r in results)
    assert all(r.bracket == (12, 16) for r in results)
    keys = {x.key() for x in s.specs}
    assert all(r["key"] in keys for res in results for r in res.records)  # only the grid's own runs
    assert len(trained) < len(s)


def test_force_replaces_records_without_deleting_them_first(monkeypatch, tmp_path):
    """A --force sweep interrupted after its first stack keeps every run: the first stack's records
    are new, the others are the old ones (before, --force deleted all records up front)."""
    data = {**TINY, "grid": {**TINY["grid"], "widths": [8, 12]}}
    s = sw.load_sweep(_write(tmp_path, data), "quick")
    res = tmp_path / "res"
    old = sw.run_sweep(s, res, progress=False, device="cpu", workers=1)
    stamps = {r["key"]: (run_dir(res, r["key"]) / "record.json").stat().st_mtime_ns for r in old}
    real = sw.train_group
    calls = []

    def interrupted(root, specs, **kw):
        if calls:
            raise KeyboardInterrupt  # the sweep is killed while the second stack trains
        calls.append([x.key() for x in specs])
        return real(root, specs, **kw)

    monkeypatch.setattr(sw, "train_group", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sw.run_sweep(s, res, progress=False, device="cpu", workers=1, force=True)
    after = {r["key"]: r for r in load_records(res)}
    assert set(after) == set(stamps)  # no run lost its record
    retrained = set(calls[0])
    assert 0 < len(retrained) < len(stamps)
    for key, t in stamps.items():
        now = (run_dir(res, key) / "record.json").stat().st_mtime_ns
        assert (now > t) if key in retrained else (now == t)
    # same seed, same result: the retrained records equal the old ones but for timings
    for r in old:
        assert after[r["key"]]["metrics"] == r["metrics"]


def test_missing_records_after_the_jobs_are_an_error(monkeypatch, tmp_path):
    """A job that 'finishes' without leaving records where this process looks raises RecordsMissing."""
    s = sw.load_sweep(_write(tmp_path, TINY), "smoke")
    monkeypatch.setattr(sw, "train_group", lambda root, specs, **kw: [])
    with pytest.raises(sw.RecordsMissing, match=r"4 run\(s\) finished but their records are not under .*record\.json"):
        sw.run_sweep(s, tmp_path / "res", progress=False, device="cpu", workers=1)


def test_scheduler_gets_an_absolute_root_and_a_worker_elsewhere_is_reported(monkeypatch, tmp_path):
    s = sw.load_sweep(_write(tmp_path, TINY), "smoke")
    seen = {}

    def fake_dask(jobs, root, *args):
        seen["root"] = root
        return [{"host": "worker-7", "records": ["/elsewhere/record.json"]}]

    monkeypatch.setattr(sw, "_run_dask", fake_dask)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(sw.RecordsMissing) as exc:
        sw.run_sweep(s, "relative/res", progress=False, device="cpu", scheduler="tcp://nowhere:8786")
    assert seen["root"] == str(tmp_path / "relative" / "res")
    msg = str(exc.value)
    assert "worker-7" in msg and "shares with the client" in msg and str(tmp_path / "relative" / "res") in msg


def test_default_workers_one_per_core_capped_by_jobs(monkeypatch):
    monkeypatch.setattr(sw, "available_cores", lambda: 2)
    assert sw.default_workers(5, "cpu") == 2
    assert sw.default_workers(1, "cpu") == 1
    monkeypatch.setattr(sw, "available_cores", lambda: 16)
    assert sw.default_workers(5, "cpu") == 5
    monkeypatch.setattr(sw, "_cuda_available", lambda: True)
    assert sw.default_workers(5, "auto") == 1
    with pytest.raises(ValueError, match="'workers' must be an integer >= 1; got 0"):
        sw.run_specs([], "/tmp/nowhere", workers=0)


def test_run_named_trains_the_union_once_in_one_call(monkeypatch, tmp_path):
    """Several sweeps / condition lists: one run_specs call, shared runs trained once, one stack per
    width, and each name gets its own records in its own order."""
    from dataclasses import replace

    s = sw.load_sweep(_write(tmp_path, TINY), "smoke")  # ADD, ADD+MAX; width 8; seeds 0, 1
    extra = replace(s.specs[0], seed=2)
    other = [s.specs[1], extra, s.specs[0]]  # overlaps the sweep in two runs
    real = sw.train_group
    stacks = []

    def counting(root, specs, **kw):
        stacks.append([x.key() for x in specs])
        return real(root, specs, **kw)

    monkeypatch.setattr(sw, "train_group", counting)
    res = tmp_path / "res"
    out = sw.run_named({"sweep": s, "other": other}, res, progress=False, device="cpu", workers=1)
    assert list(out) == ["sweep", "other"]
    assert [r["key"] for r in out["sweep"]] == [x.key() for x in s.specs]
    assert [r["key"] for r in out["other"]] == [x.key() for x in other]
    assert len(stacks) == 1  # every run has width 8: one stack for both names
    assert sorted(stacks[0]) == sorted({x.key() for x in list(s.specs) + other})  # 5 runs, each once
    # the records are those of the cache: asking again per name trains nothing and agrees
    assert sw.run_sweep(s, res, progress=False, device="cpu") == out["sweep"]
    assert sw.run_specs(other, res, progress=False, device="cpu") == out["other"]
    assert len(stacks) == 1


def test_schedule_order_longest_job_first():
    def job(n, width, steps=100):
        return [{"arch": {"n_embed": width}, "train": {"steps": steps}}] * n

    jobs = [job(2, 32), job(10, 8), job(1, 32), job(2, 32, steps=300)]
    # costs: models x steps x (width + 14) = 9200, 22000, 4600, 27600
    assert [sw.job_cost(j) for j in jobs] == [2 * 100 * 46, 10 * 100 * 22, 1 * 100 * 46, 2 * 300 * 46]
    assert sw.schedule_order(jobs) == [3, 1, 0, 2]
    assert sw.schedule_order([job(3, 8), job(3, 8)]) == [0, 1]  # ties keep the given order
    assert sw.schedule_order([]) == []


def test_pool_submits_in_schedule_order(monkeypatch, tmp_path):
    """The process pool starts the most expensive stack first (not merely the widest)."""
    import concurrent.futures as cf

    submitted = []

    class FakePool:
        def __init__(self, *a, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def shutdown(self, wait=True, cancel_futures=False):  # workers.worker_pool calls it
            pass

        def submit(self, fn, root=None, job=None, *args):
            if job is None:  # workers.worker_pool starts each worker with a no-op job
                fut = cf.Future()
                fut.set_result(None)
                return fut
            submitted.append((len(job), job[0]["arch"]["n_embed"]))
            fut = cf.Future()
            fut.set_result(None)
            return fut

    monkeypatch.setattr(cf, "ProcessPoolExecutor", FakePool)
    jobs = [[{"arch": {"n_embed": 32}, "train": {"steps": 10}}] * 1,
            [{"arch": {"n_embed": 8}, "train": {"steps": 10}}] * 20,
            [{"arch": {"n_embed": 16}, "train": {"steps": 10}}] * 4]
    sw._run_pool(jobs, str(tmp_path), "cpu", 1, None, 2, False, False)
    assert submitted == [(20, 8), (4, 16), (1, 32)]
