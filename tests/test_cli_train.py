"""``jointtask train``: trains through the run cache, prints accuracies, validates before compute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jointtask_lib.cli import main

TINY = ["--ops", "ADD,MAX", "--modulus", "5", "--depth", "2", "--n-embed", "8", "--seeds", "0,1",
        "--steps", "30", "--batch-size", "8", "--n-train", "200", "--n-test", "40", "--eval-every", "10",
        "--warmup", "5", "--threads", "1", "--no-progress"]


def _records(root: Path) -> list[Path]:
    return sorted((root / "runs").glob("*/record.json"))


def test_train_prints_accuracies_and_reuses_records(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    header = lines[0].split()
    for col in ("gen_acc", "tf_acc", "ADD:gen", "MAX:gen"):
        assert col in header
    assert len(lines) == 1 + 2  # header + one row per seed
    for row in lines[1:]:
        cells = row.split()
        acc = [float(c) for c in cells[header.index("gen_acc"):]]
        assert all(0.0 <= x <= 1.0 for x in acc)
    assert "2 trained, 0 reused" in captured.err

    recs = _records(out)
    assert len(recs) == 2
    mtimes = [p.stat().st_mtime_ns for p in recs]
    assert not list((out / "groups").glob("*/ckpt.pt"))  # checkpoint removed when the group finished

    # Second run: nothing is trained, the records are untouched, the same table is printed.
    assert main(["train", *TINY, "--out", str(out)]) == 0
    again = capsys.readouterr()
    assert again.out == captured.out
    assert "0 trained, 2 reused" in again.err
    assert [p.stat().st_mtime_ns for p in _records(out)] == mtimes

    # --json gives the same metrics, machine-readable.
    assert main(["train", *TINY, "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["seed"] for d in data} == {0, 1}
    assert set(data[0]["metrics"]["per_op"]) == {"ADD", "MAX"}


@pytest.mark.parametrize(
    "extra, field",
    [
        (["--ops", "ADD,FOO"], "FOO"),
        (["--modulus", "1"], "modulus"),
        (["--n-embed", "8", "--n-heads", "3"], "n_heads"),
        (["--lr", "0"], "lr"),
        (["--steps", "0"], "steps"),
        (["--device", "tpu"], "device"),
        (["--threads", "0"], "threads"),
        (["--workers", "0"], "workers"),
        (["--max-stack", "-1"], "max_stack"),
        (["--loss-on", "cot"], "loss_on"),
        (["--n-train", "10000000"], "n_train"),
        (["--sampling", "unique", "--depth", "1", "--n-train", "1000"], "n-train"),
    ],
)
def test_bad_input_exits_nonzero_naming_the_field(tmp_path, capsys, extra, field):
    out = tmp_path / "bad"
    code = main(["train", *TINY, *extra, "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert field in err
    assert not out.exists()  # validated before any work: nothing written


def test_unparsable_number_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--seeds", "a,b", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    assert "seeds" in capsys.readouterr().err


def test_workers_train_widths_in_parallel_and_match_the_cache(tmp_path, capsys):
    out = tmp_path / "par"
    args = [a if a != "8" else "8,12" for a in TINY]  # --n-embed 8,12 (batch size 8 stays 8 below)
    args[args.index("--batch-size") + 1] = "8"
    assert main(["train", *args, "--workers", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "4 trained, 0 reused" in captured.err
    assert len(_records(out)) == 4
    assert main(["train", *args, "--out", str(out)]) == 0  # one process: everything is cached
    assert "0 trained, 4 reused" in capsys.readouterr().err
