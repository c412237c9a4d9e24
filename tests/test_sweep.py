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
        (lambda d: d.update(colour=1), r"unknown key 'colour'; allowed: arch, description"),
        (lambda d: d["train"].update(stepz=3), r"unknown key 'train.stepz'; allowed: .*steps"),
        (lambda d: d["train"].update(steps=0), r"'steps' must be an integer >= 1"),
        (lambda d: d["grid"].update(widths=[]), r"'grid.widths' must be a non-empty list"),
        (lambda d: d["grid"].update(widths=8), r"'grid.widths' must be a list; got int"),
        (lambda d: d["grid"].update(mixes=[["FOO"]]), r"'ops' must be one of MAX, MIN"),
        (lambda d: d["task"].update(depth=0), r"'depth' must be an integer from 1"),
        (lambda d: d["presets"].update(huge={}), r"unknown key 'presets.huge'; allowed: paper, quick, smoke"),
        (lambda d: d["arch"].update(n_heads=3) if "arch" in d else d.update(arch={"n_heads": 3}),
         r"'n_heads' must divide 'n_embed' = 8"),
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
    with pytest.raises(ValueError, match="'preset' must be one of smoke, quick, paper"):
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


def test_adaptive_widths_refines_around_the_transition(monkeypatch, tmp_path):
    """With a synthetic accuracy that jumps at width 20, the search brackets it tightly and
    trains far fewer widths than a dense grid would."""
    from jointtask_lib.tasks import TaskConfig
    from jointtask_lib.train import Arch, RunSpec, TrainConfig

    trained = []

    def fake_run_specs(specs, root, **kw):
        out = []
        for s in specs:
            trained.append(s.arch.n_embed)
            acc = 0.95 if s.arch.n_embed >= 20 else 0.1
            out.append({"key": s.key(), "metrics": {"per_op": {"ADD": {"gen_acc": acc}}}})
        return out

    monkeypatch.setattr(sw, "run_specs", fake_run_specs)

    def make(w):
        return [RunSpec(task=TaskConfig(ops=("ADD",), modulus=5), arch=Arch(n_embed=w),
                        train=TrainConfig(steps=1), seed=s) for s in (0, 1)]

    widths, recs = sw.adaptive_widths(make, tmp_path, op="ADD", lo=8, hi=64, n_initial=3, ratio=1.3)
    below = max(w for w in widths if w < 20)
    above = min(w for w in widths if w >= 20)
    assert above / below <= 1.3
    assert len(widths) <= 7
    assert len(recs) == 2 * len(widths) and len(trained) == len(recs)  # nothing trained twice
