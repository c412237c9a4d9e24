"""`jointtask sweep` end to end: resumption, LocalCluster, --force, --adaptive, corrupt records.

These call the CLI's ``main`` in this process (the printed table is what a user sees); the training
itself runs in the sweep's worker processes as it would from a shell.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jointtask_lib import cli
from jointtask_lib import sweep as sw
from jointtask_lib.runs import load_records

ROOT = Path(__file__).resolve().parents[1]
SINGLE_TASK = ROOT / "params" / "sweeps" / "single_task.yaml"


def _sweep(capsys, *args) -> tuple[int, str, str]:
    rc = cli.main(["sweep", *map(str, args), "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def _table(out: str) -> list[str]:
    """The printed table (everything after the first line, which names the results root)."""
    return out.splitlines()[1:]


def _stamps(res: Path) -> dict[str, int]:
    return {f.parent.name: f.stat().st_mtime_ns for f in (res / "runs").glob("*/record.json")}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The issue's command, once: ``jointtask sweep params/sweeps/single_task.yaml --preset smoke``."""
    res = tmp_path_factory.mktemp("single") / "res"
    rc = cli.main(["sweep", str(SINGLE_TASK), "--preset", "smoke", "--results", str(res), "--no-progress"])
    assert rc == 0
    return res


def test_second_run_trains_nothing(smoke_run, capsys):
    n = len(sw.load_sweep(SINGLE_TASK, "smoke"))
    before = _stamps(smoke_run)
    assert len(before) == n
    rc, out, _ = _sweep(capsys, SINGLE_TASK, "--preset", "smoke", "--results", smoke_run)
    assert rc == 0
    assert f"{n} runs, 0 to train" in out.splitlines()[0]
    assert _stamps(smoke_run) == before  # no record was rewritten
    assert len(_table(out)) == 1 + 2 * 3  # header + (ADD, MAX) x 3 widths


@pytest.mark.slow
def test_local_cluster_gives_the_same_table(smoke_run, tmp_path, capsys):
    rc, local, _ = _sweep(capsys, SINGLE_TASK, "--preset", "smoke", "--results", smoke_run)
    assert rc == 0
    rc, dask, _ = _sweep(capsys, SINGLE_TASK, "--preset", "smoke", "--results", tmp_path / "dask",
                         "--local-cluster", "--workers", "2")
    assert rc == 0
    assert "12 to train" in dask.splitlines()[0]
    assert _table(dask) == _table(local)
    a = {r["key"]: r for r in load_records(smoke_run)}
    b = {r["key"]: r for r in load_records(tmp_path / "dask")}
    assert a.keys() == b.keys()
    assert all(a[k]["metrics"] == b[k]["metrics"] for k in a)


TINY = {
    "name": "tiny_cli",
    "task": {"depth": 2, "min_args": 2, "max_args": 2},
    "train": {"steps": 20, "eval_every": 10, "n_train": 200, "n_test": 30, "eval_size": 16,
              "batch_size": 8, "warmup": 2},
    "grid": {"mixes": [["MAX"]], "moduli": [5], "widths": [4, 6, 8, 12, 16], "seeds": [0, 1]},
    "presets": {"smoke": {"grid": {"widths": [8, 12]}}, "quick": {}, "paper": {}},
}


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(TINY))
    return p


@pytest.fixture(scope="module")
def _tiny_trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    (d / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    assert cli.main(["sweep", str(d / "tiny.yaml"), "--preset", "smoke", "--results", str(d / "res"),
                     "--no-progress"]) == 0
    return d


@pytest.fixture
def trained(_tiny_trained, tmp_path):
    """(sweep file, a private copy of its trained smoke results)."""
    import shutil

    shutil.copytree(_tiny_trained / "res", tmp_path / "res")
    return _tiny_trained / "tiny.yaml", tmp_path / "res"


def test_force_through_the_cli_retrains_every_run(tiny, tmp_path, capsys):
    res = tmp_path / "res"
    rc, first, _ = _sweep(capsys, tiny, "--preset", "smoke", "--results", res)
    assert rc == 0 and "4 runs, 4 to train" in first
    before = _stamps(res)
    rc, forced, _ = _sweep(capsys, tiny, "--preset", "smoke", "--results", res, "--force")
    assert rc == 0 and "4 runs, 4 to train" in forced
    after = _stamps(res)
    assert after.keys() == before.keys() and all(after[k] > before[k] for k in before)
    assert _table(forced) == _table(first)  # same seed, same result


@pytest.mark.parametrize("content", ['{"key": "half a rec', "[1, 2]", '{"key": "another run", "metrics": {}}'],
                         ids=["truncated", "not-a-mapping", "wrong-key"])
def test_corrupt_record_is_a_clean_error_naming_the_file(trained, capsys, content):
    tiny, res = trained
    victim = sorted((res / "runs").glob("*/record.json"))[0]
    victim.write_text(content)
    rc, out, err = _sweep(capsys, tiny, "--preset", "smoke", "--results", res)
    assert rc == 2
    assert str(victim) in err and "corrupt run record" in err
    assert "Traceback" not in err


def test_corrupt_record_from_a_shell_exits_2_without_traceback(trained):
    tiny, res = trained
    victim = sorted((res / "runs").glob("*/record.json"))[-1]
    victim.write_text("not json")
    env = dict(os.environ, TQDM_DISABLE="1", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "jointtask_lib.cli", "sweep", str(tiny), "--preset", "smoke",
                        "--results", str(res), "--no-progress"], env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("jointtask sweep: error: corrupt run record")
    assert str(victim) in p.stderr and "Traceback" not in p.stderr


def test_adaptive_trains_part_of_the_grid_and_reports_a_bound(tiny, tmp_path, capsys):
    """20 steps learn nothing: the search must say so ("not learned", a bound) after its first
    round (widths 4, 8, 16 of 4..16), not report a transition at the smallest width."""
    res = tmp_path / "res"
    rc, out, _ = _sweep(capsys, tiny, "--preset", "quick", "--results", res, "--adaptive")
    assert rc == 0
    assert "adaptive: 6 of the grid's 10 runs needed" in out
    assert "4,8,16" in out and "not learned at any width tried (> 16)" in out
    widths = sorted({r["spec"]["arch"]["n_embed"] for r in load_records(res)})
    assert widths == [4, 8, 16]
    # a later full sweep reuses them through the cache
    rc, full, _ = _sweep(capsys, tiny, "--preset", "quick", "--results", res)
    assert rc == 0 and "10 runs, 4 to train" in full


def test_bad_arguments_are_clean_errors(tiny, tmp_path, capsys):
    rc, _, err = _sweep(capsys, tiny, "--preset", "smoke", "--results", tmp_path / "r", "--workers", "0")
    assert rc == 2 and "'workers' must be an integer >= 1; got 0" in err
    rc, _, err = _sweep(capsys, tiny, "--preset", "smoke", "--results", tmp_path / "r", "--adaptive",
                        "--adaptive-op", "ADD")
    assert rc == 2 and "'adaptive_op' must be an operation of one of the sweep's mixes (MAX); got 'ADD'" in err
    assert not (tmp_path / "r").exists()  # nothing was trained or written


def test_help_documents_defaults_and_shared_filesystem(capsys):
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "one per CPU core" in out and "one thread" in out
    assert "filesystem every worker shares" in out
    assert "nothing is deleted first" in out


def test_records_json_is_what_the_table_shows(trained, capsys):
    tiny, res = trained
    rc, out, _ = _sweep(capsys, tiny, "--preset", "smoke", "--results", res)
    assert rc == 0 and "4 runs, 0 to train" in out
    recs = [json.loads(f.read_text()) for f in (res / "runs").glob("*/record.json")]
    for w in (8, 12):
        accs = [r["metrics"]["per_op"]["MAX"]["gen_acc"] for r in recs if r["spec"]["arch"]["n_embed"] == w]
        row = next(line for line in _table(out) if line.split()[:3] == ["MAX", "5", str(w)])
        assert f"MAX={sum(accs) / len(accs):.3f}" in row
