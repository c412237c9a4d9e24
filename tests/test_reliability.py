"""Reliability (issue 18): fail before compute, keep records honest, stop cleanly, share safely.

Each test is one fault a hostile user tried; the README's "Reliability" table lists them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from jointtask_lib import runs
from jointtask_lib.cli import main
from jointtask_lib.paths import atomic_write, check_output_dir, temp_writer_gone
from jointtask_lib.runs import (
    CorruptRecord, RunLock, StaleRecord, load_record, record_checksum, records_table, run_dir, train_group,
    train_or_load, write_record,
)
from jointtask_lib.tasks import TaskConfig
from jointtask_lib.train import Arch, RunSpec, TrainConfig, train_stack
from jointtask_lib.validate import MAX_EXAMPLES, MAX_SEED, check_float, check_int

REPO = Path(__file__).resolve().parents[1]
TINY = ["--ops", "ADD", "--modulus", "5", "--depth", "2", "--n-embed", "8", "--seeds", "0",
        "--steps", "6", "--batch-size", "4", "--n-train", "50", "--n-test", "20", "--eval-every", "3",
        "--warmup", "1", "--threads", "1", "--no-progress"]
TC = TrainConfig(steps=6, batch_size=4, eval_every=3, n_train=50, n_test=20, warmup=1)  # = TINY


def _spec(seed: int = 0, **train) -> RunSpec:
    tc = TrainConfig(**{**TC.__dict__, **train})
    return RunSpec(task=TaskConfig(ops=("ADD",), modulus=5, depth=2), arch=Arch(n_embed=8), train=tc, seed=seed)


def _one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------------------------
# 1. Paths checked before any compute; an unreachable Dask scheduler fails within its timeout
# ------------------------------------------------------------------------------------------------


def test_train_out_that_is_a_file_fails_before_training(tmp_path, capsys, monkeypatch):
    f = tmp_path / "afile"
    f.write_text("x")
    monkeypatch.setattr(runs, "train_stack", lambda *a, **k: pytest.fail("trained before the path check"))
    assert main(["train", *TINY, "--out", str(f)]) == 2
    _one_line_error(capsys, "'out' must be a folder", "is a file")


def test_train_out_below_a_file_fails(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["train", *TINY, "--out", str(f / "sub" / "dir")]) == 2
    _one_line_error(capsys, "cannot create folder", "is a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: a read-only folder is not an error")
def test_read_only_results_folder_fails(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["train", *TINY, "--out", str(ro)]) == 2
        _one_line_error(capsys, "not writable")
    finally:
        ro.chmod(0o700)


def test_check_output_dir_creates_nothing(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_output_dir("out", target) == target
    assert not (tmp_path / "a").exists()


def test_sweep_results_file_and_sweep_folder_fail_before_training(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["sweep", str(REPO / "params/sweeps/single_task.yaml"), "--preset", "smoke",
                 "--results", str(f)]) == 2
    _one_line_error(capsys, "'results' must be a folder")
    assert main(["sweep", str(REPO / "params/sweeps"), "--results", str(tmp_path / "r")]) == 2
    _one_line_error(capsys, "'sweep' must be a sweep file", "is a folder")
    assert not (tmp_path / "r").exists()


def test_notebooks_out_file_fails_before_any_notebook_runs(tmp_path, capsys, monkeypatch):
    from jointtask_lib import notebook

    f = tmp_path / "afile"
    f.write_text("x")
    monkeypatch.setattr(notebook, "run_notebooks", lambda *a, **k: pytest.fail("ran a notebook"))
    assert main(["notebooks", "--only", "01", "--preset", "smoke", "--out", str(f)]) == 2
    _one_line_error(capsys, "'out' must be a folder")


def test_unreachable_dask_scheduler_fails_within_the_timeout(tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    t0 = time.monotonic()
    assert main(["sweep", str(REPO / "params/sweeps/single_task.yaml"), "--preset", "smoke",
                 "--results", str(tmp_path / "r"), "--scheduler", "tcp://127.0.0.1:1",
                 "--connect-timeout", "1"]) == 2
    assert time.monotonic() - t0 < 60  # a generous "finishes" bound, not a timing claim
    _one_line_error(capsys, "did not answer within 1 s", "--connect-timeout")
    assert not (tmp_path / "r" / "runs").exists()


def test_connect_timeout_is_validated_and_configurable(monkeypatch):
    from jointtask_lib.sweep import CONNECT_TIMEOUT, connect_timeout

    assert connect_timeout() == CONNECT_TIMEOUT
    monkeypatch.setenv("JOINTTASK_CONNECT_TIMEOUT", "2.5")
    assert connect_timeout() == 2.5
    assert connect_timeout(4) == 4.0
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="connect_timeout"):
            connect_timeout(bad)
    monkeypatch.setenv("JOINTTASK_CONNECT_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="JOINTTASK_CONNECT_TIMEOUT"):
        connect_timeout()


# ------------------------------------------------------------------------------------------------
# 2. Records verified on load
# ------------------------------------------------------------------------------------------------


def test_checksum_does_not_change_the_cache_key():
    # The key of this run as the spec alone gives it (RUN_FORMAT 4: the key holds the vocabulary,
    # issue 13; TrainConfig holds the training step, issue 14): checksums on records must not move it.
    spec = RunSpec(task=TaskConfig(ops=("ADD", "MAX")), arch=Arch(n_embed=16), train=TrainConfig(steps=40), seed=3)
    assert spec.key() == "3a4e66a2d9011a32"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    spec = _spec()
    rec = train_or_load(root, [spec], device="cpu")[0]
    return root, spec, rec


def _edit(root, spec, rec, tmp_path, change, *, rechecksum=False):
    """A copy of the trained results root with the record edited by ``change``."""
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    p = run_dir(dst, spec) / "record.json"
    r = json.loads(p.read_text())
    change(r)
    if rechecksum:
        r["checksum"] = record_checksum(r)
    p.write_text(json.dumps(r))
    return dst, p


def test_a_fresh_record_verifies_and_carries_its_checksum(trained):
    root, spec, rec = trained
    assert load_record(root, spec) == rec
    assert rec["checksum"] == record_checksum(rec)
    body = {k: v for k, v in rec.items() if k != "checksum"}
    assert rec["checksum"] == hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("what,change,rechecksum,message", [
    ("edited width, key kept", lambda r: r["spec"]["arch"].update(n_embed=64), False, "checksum"),
    ("edited width, checksum recomputed", lambda r: r["spec"]["arch"].update(n_embed=64), True,
     "stored spec hashes to"),
    ("edited seed, checksum recomputed", lambda r: r["spec"].update(seed=7), True, "stored spec hashes to"),
    ("edited metrics", lambda r: r["metrics"].update(gen_acc=1.0), False, "checksum"),
    ("no stop_reason", lambda r: r.pop("stop_reason"), True, "missing field(s) stop_reason"),
    ("no spec", lambda r: r.pop("spec"), True, "missing field(s) spec"),
    ("metrics null", lambda r: r.update(metrics=None), True, "missing field(s) metrics"),
    ("spec not a mapping", lambda r: r.update(spec=[1, 2]), True, "'spec' is not a mapping"),
    ("spec with an unknown field", lambda r: r["spec"].update(colour=1), True, "invalid spec"),
])
def test_tampered_records_are_reported_as_corrupt_by_path(trained, tmp_path, capsys, what, change, rechecksum,
                                                         message):
    root, spec, rec = trained
    dst, p = _edit(root, spec, rec, tmp_path, change, rechecksum=rechecksum)
    with pytest.raises(CorruptRecord, match=re.escape(message)) as e:
        load_record(dst, spec)
    assert str(p) in str(e.value) and "--force" in str(e.value)
    # The command line: one line naming the file, exit 2, never the tampered numbers.
    assert main(["train", *TINY, "--out", str(dst)]) == 2
    _one_line_error(capsys, "corrupt run record", str(p), "--force")


def test_a_record_without_checksum_is_stale_and_force_retrains_it(trained, tmp_path, capsys):
    root, spec, rec = trained
    dst, p = _edit(root, spec, rec, tmp_path, lambda r: r.pop("checksum"))
    with pytest.raises(StaleRecord, match="stale run record .*checksum.*--force"):
        load_record(dst, spec)
    assert main(["train", *TINY, "--out", str(dst)]) == 2
    _one_line_error(capsys, "stale run record", str(p))
    assert main(["train", *TINY, "--out", str(dst), "--force"]) == 0
    again = load_record(dst, spec)
    assert again["checksum"] == record_checksum(again)
    assert again["metrics"] == rec["metrics"]  # same seed, same result


def test_non_json_and_non_object_records_are_corrupt(trained, tmp_path):
    root, spec, rec = trained
    dst, p = _edit(root, spec, rec, tmp_path, lambda r: None)
    for text in ("{not json", "[1, 2]", "\xff\xfe"):
        p.write_bytes(text.encode("latin-1"))
        with pytest.raises(CorruptRecord, match=str(p)):
            load_record(dst, spec)


# ------------------------------------------------------------------------------------------------
# 3. Non-finite values rejected; a diverging run stops and says so
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("v", [float("inf"), float("-inf"), float("nan"), 10**400])
def test_check_float_rejects_non_finite_values(v):
    with pytest.raises(ValueError, match="'lr' must be a finite number"):
        check_float("lr", v, lo=0.0, lo_open=True)


def test_infinite_lr_and_weights_fail_before_compute(tmp_path, capsys):
    assert main(["train", *TINY, "--lr", "inf", "--out", str(tmp_path / "r")]) == 2
    _one_line_error(capsys, "'lr' must be a finite number")
    assert main(["train", *TINY, "--weights", "inf", "--out", str(tmp_path / "r")]) == 2
    _one_line_error(capsys, "'weights' must be a finite number")
    assert not (tmp_path / "r" / "runs").exists()


def test_a_diverging_run_stops_as_diverged_and_is_shown_so(tmp_path):
    spec = _spec(lr=1e30, warmup=0, steps=20, eval_every=5)
    rec = train_or_load(tmp_path, [spec], device="cpu")[0]
    assert rec["stop_reason"] == "diverged"
    assert rec["steps_trained"] < 20
    assert load_record(tmp_path, spec)["stop_reason"] == "diverged"  # a valid, verified record
    rows = records_table([rec])
    assert rows and all(r["diverged"] and r["stop_reason"] == "diverged" for r in rows)
    from jointtask_lib.cli_train import format_table
    from jointtask_lib.sweep import summary_rows

    assert "diverged" in format_table([rec])
    assert "1 diverged" in summary_rows([rec])[0][-1]


def test_divergence_stops_only_the_diverged_models_of_a_stack():
    specs = [_spec(seed=0, steps=8, eval_every=4, warmup=0), _spec(seed=1, steps=8, eval_every=4, warmup=0)]
    base = train_stack(specs, device="cpu", progress=False, final_eval=False)
    # Poison run 1's initial weights: its loss is NaN from the first step; run 0 is unaffected.
    state = {k: v.clone() for k, v in base[1].state.items()}
    name = next(iter(state))
    state[name][:] = float("nan")
    res = train_stack(specs, device="cpu", progress=False, final_eval=False, init_states=[None, state])
    assert res[1].stop_reason == "diverged" and res[1].steps_trained == 1
    assert res[0].stop_reason == base[0].stop_reason and res[0].steps_trained == base[0].steps_trained
    # Run 0 trains on in a stack of one after step 1: equal to float rounding (README, Reliability).
    assert all(torch.allclose(res[0].state[k], base[0].state[k], atol=1e-5) for k in base[0].state)


# ------------------------------------------------------------------------------------------------
# 4. Keys of another family, sizes that would run for hours, integers that overflow
# ------------------------------------------------------------------------------------------------


def test_sweep_key_of_the_other_family_is_rejected():
    from jointtask_lib.sweep import SweepError, parse_sweep

    base = {"task": {"family": "perm"}, "grid": {"mixes": [["PMUL"]], "widths": [8], "seeds": [0]}}
    with pytest.raises(SweepError, match="'grid.moduli' does not apply to family perm; use 'grid.perm_ks'"):
        parse_sweep({**base, "grid": {**base["grid"], "moduli": [1]}})
    with pytest.raises(SweepError, match="'grid.perm_ks' does not apply to family listops"):
        parse_sweep({"grid": {"mixes": [["ADD"]], "widths": [8], "seeds": [0], "perm_ks": [3]}})


def test_cli_key_of_the_other_family_is_rejected(capsys):
    assert main(["data", "--family", "perm", "--ops", "PMUL", "--modulus", "5"]) == 2
    _one_line_error(capsys, "'modulus' does not apply to family perm")
    assert main(["data", "--family", "listops", "--perm-k", "4"]) == 2
    _one_line_error(capsys, "'perm_k' does not apply to family listops")
    assert main(["data", "--family", "perm", "--ops", "PMUL", "--perm-k", "3", "--n", "2"]) == 0


@pytest.mark.parametrize("args,field", [(["--n", "2000000000"], "'n'"), (["--n-test", "2000000000"], "'n_test'")])
def test_data_sizes_have_an_upper_bound(capsys, args, field):
    assert main(["data", *args]) == 2
    _one_line_error(capsys, field, f"from 0 to {MAX_EXAMPLES}")


def test_integer_overflow_names_the_field(tmp_path, capsys):
    assert main(["train", *TINY, "--seeds", "99999999999999999999", "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "'seed'", f"from 0 to {MAX_SEED}")
    assert main(["train", *TINY, "--steps", "99999999999999999999", "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "'steps'", "9223372036854775807")
    with pytest.raises(ValueError, match="'n_boot' must be an integer from 50 to"):
        check_int("n_boot", 2**70, lo=50)


def test_notebook_preset_rules_bound_seeds():
    from jointtask_lib.notebook import PARAM_RULES, _rule_problem

    why = _rule_problem(PARAM_RULES["seed"], 2**40, "seed", {}, "02_learning_transition")
    assert why is not None and str(MAX_SEED) in why


# ------------------------------------------------------------------------------------------------
# 5. report: no claims -> refused; malformed claims files named
# ------------------------------------------------------------------------------------------------


def test_report_refuses_a_missing_or_empty_results_folder(tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    assert main(["report", "--results", str(missing)]) == 2
    _one_line_error(capsys, "is not a results folder")
    assert not missing.exists()
    (tmp_path / "empty").mkdir()
    assert main(["report", "--results", str(tmp_path / "empty")]) == 2
    _one_line_error(capsys, "holds no folder with claims")
    assert not (tmp_path / "empty" / "SCORECARD.md").exists()


def _row(**kw):
    from jointtask_lib.scorecard import claim

    base = dict(id="A1", paper="A", claim="c", paper_value="1", ours="2", verdict="reproduced", preset="smoke",
                notebook="02_x")
    return claim(**{**base, **kw})


@pytest.mark.parametrize("content,message", [
    ("{not json", "not readable JSON"),
    ('{"id": "A1"}', "must hold a list of claim rows"),
    ('[1]', "row 0 is not a mapping"),
    ('[{"id": "A1", "paper": "A"}]', "row 0 lacks field(s) claim"),
    (None, "'verdict' must be one of"),
])
def test_report_names_a_malformed_claims_file(tmp_path, capsys, content, message):
    claims = tmp_path / "claims"
    claims.mkdir()
    (claims / "01_good.json").write_text(json.dumps([_row(id="G1")]))
    bad = claims / "02_bad.json"
    bad.write_text(content if content is not None else json.dumps([{**_row(), "verdict": "probably"}]))
    assert main(["report", "--results", str(tmp_path)]) == 2
    _one_line_error(capsys, str(bad), message)
    assert not (tmp_path / "SCORECARD.md").exists()


def test_report_writes_the_scorecard_from_valid_claims(tmp_path, capsys):
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "02_x.json").write_text(json.dumps([_row()]))
    assert main(["report", "--results", str(tmp_path)]) == 0
    assert "1 claims" in capsys.readouterr().out
    row = [ln for ln in (tmp_path / "SCORECARD.md").read_text().splitlines() if ln.startswith("| c | 1 | 2 |")]
    assert len(row) == 1 and "✅ reproduced" in row[0]


# ------------------------------------------------------------------------------------------------
# 6. Ctrl-C within bounds, one line, no worker left; no worker outlives its parent
# ------------------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _wait_for(cond, limit: float = 240.0, what: str = "") -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > limit:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.2)


def _program(args, tmp_path, **env):
    return subprocess.Popen(
        [sys.executable, "-m", "jointtask_lib.cli", *args], cwd=REPO, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TQDM_DISABLE": "1", "JOINTTASK_RESULTS": str(tmp_path / "nbres"), **env})


def _interrupt_and_check(p, command: str, kept: str) -> None:
    from jointtask_lib.workers import descendants

    kids = descendants(p.pid)
    os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    try:
        _, err = p.communicate(timeout=60)  # generous "finishes" bound
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        pytest.fail("did not stop on Ctrl-C")
    assert p.returncode == 130, err
    lines = [x for x in err.strip().splitlines() if "Port 8787" not in x and "dashboard" not in x.lower()]
    assert "Traceback" not in err, err
    assert lines[-1].startswith(f"jointtask {command}: interrupted; ") and kept in lines[-1], err
    _wait_for(lambda: not any(_alive(k) for k in kids), 10, "the workers to go")


def _locks(root: Path) -> int:
    return len(list((root / "runs").glob("*/.lock"))) if (root / "runs").exists() else 0


LONG = ["--ops", "ADD", "--modulus", "5", "--depth", "2", "--steps", "100000", "--batch-size", "4",
        "--n-train", "50", "--n-test", "20", "--eval-every", "50", "--no-early-stop", "--no-progress"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc")
def test_ctrl_c_stops_train_with_workers(tmp_path):
    out = tmp_path / "r"
    p = _program(["train", *LONG, "--n-embed", "8,12", "--seeds", "0", "--workers", "2", "--out", str(out)], tmp_path)
    _wait_for(lambda: _locks(out) >= 2 or p.poll() is not None, what="both workers to start training")
    _interrupt_and_check(p, "train", f"kept 0 finished run record(s) in {out}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc")
def test_ctrl_c_stops_a_single_process_train(tmp_path):
    out = tmp_path / "r"
    p = _program(["train", *LONG, "--n-embed", "8", "--seeds", "0", "--out", str(out)], tmp_path)
    _wait_for(lambda: _locks(out) >= 1 or p.poll() is not None, what="training to start")
    _interrupt_and_check(p, "train", "re-run the same command to resume")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc")
@pytest.mark.parametrize("mode", ["pool", "local-cluster"])
def test_ctrl_c_stops_a_sweep(tmp_path, mode):
    if mode == "local-cluster":
        pytest.importorskip("dask.distributed")
    out = tmp_path / "r"
    extra = ["--local-cluster"] if mode == "local-cluster" else []
    p = _program(["sweep", "params/sweeps/single_task.yaml", "--preset", "quick", "--results", str(out),
                  "--workers", "2", "--no-progress", *extra], tmp_path)
    _wait_for(lambda: _locks(out) >= 1 or p.poll() is not None, what="a worker to start training")
    _interrupt_and_check(p, "sweep", "workers stopped; kept")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc")
def test_ctrl_c_stops_notebooks_and_their_kernel(tmp_path):
    from jointtask_lib.workers import descendants

    def kernel_started() -> bool:
        for k in descendants(p.pid):
            try:
                if b"ipykernel" in Path(f"/proc/{k}/cmdline").read_bytes():
                    return True
            except OSError:
                pass
        return False

    p = _program(["notebooks", "--only", "02", "--preset", "smoke", "--out", str(tmp_path / "nb")], tmp_path)
    _wait_for(lambda: kernel_started() or p.poll() is not None, what="the kernel to start")
    time.sleep(2)  # let it run a cell
    _interrupt_and_check(p, "notebooks", "kernels and workers stopped")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_no_worker_outlives_a_killed_parent(tmp_path):
    from jointtask_lib.workers import descendants

    out = tmp_path / "r"
    p = _program(["train", *LONG, "--n-embed", "8,12", "--seeds", "0", "--workers", "2", "--out", str(out)], tmp_path)
    _wait_for(lambda: _locks(out) >= 2 or p.poll() is not None, what="both workers to start training")
    kids = descendants(p.pid)
    assert kids
    p.kill()  # SIGKILL: no handler runs in the parent
    p.communicate(timeout=60)
    _wait_for(lambda: not any(_alive(k) for k in kids), 30, "the orphaned workers to die")


# ------------------------------------------------------------------------------------------------
# 7. Sharing a results folder: temporary files and run locks
# ------------------------------------------------------------------------------------------------


def test_temporary_files_carry_their_writer_and_only_dead_writers_lose_them(tmp_path):
    from jointtask_lib.sweep import _clean_stale_temporaries

    seen = []
    atomic_write(tmp_path / "x.json", lambda fh: seen.extend(p.name for p in tmp_path.iterdir()))
    assert len(seen) == 1 and f"~{os.getpid()}." in seen[0]
    d = tmp_path / "runs" / "k"
    d.mkdir(parents=True)
    live = d / seen[0]  # this (live) process's temporary file
    live.write_text("x")
    dead_proc = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_proc.wait()
    from jointtask_lib.paths import _owner

    host = _owner().split("~")[0]
    dead = d / f".record.json.{host}~{dead_proc.pid}.abc.tmp"
    dead.write_text("x")
    other_host = d / f".record.json.elsewhere~{dead_proc.pid}.abc.tmp"
    other_host.write_text("x")
    legacy = d / ".record.json.abc123.tmp"
    legacy.write_text("x")
    finished = d / "record.json"
    finished.write_text("{}")
    assert not temp_writer_gone(live) and temp_writer_gone(dead)
    _clean_stale_temporaries(tmp_path)
    assert live.exists() and other_host.exists() and finished.exists()
    assert not dead.exists() and not legacy.exists()


class _Toy:
    def __init__(self, name):
        self.name = name

    def key(self):
        return f"toy-{self.name}"

    def group_key(self):
        return "g"


TRAINED: list[str] = []


def _toy_stack(root, specs, *, device, progress, checkpoint_path, checkpoint_every):
    TRAINED.extend(s.name for s in specs)
    return [(s, runs.environment_info(device)) for s in specs]


def _toy_save(root, res, device):
    spec, env = res
    return write_record({"key": spec.key(), "result": spec.name, "env": env}, run_dir(root, spec) / "record.json")


TOY = runs.RunKind(name="toy", train_stack=_toy_stack, save_result=_toy_save, required=("result",),
                   order=lambda s: 0, dependencies=lambda s: [])


def test_a_run_locked_by_another_process_is_waited_for_not_trained_twice(tmp_path):
    TRAINED.clear()
    a, b = _Toy("a"), _Toy("b")
    other = RunLock(tmp_path, a.key())  # "another process" (a separate open file: flock conflicts)
    assert other.acquire()
    assert f"{os.getpid()}" in other.holder()
    result = {}
    t = threading.Thread(target=lambda: result.update(recs=train_group(tmp_path, [a, b], device="cpu", kind=TOY)))
    t.start()
    _wait_for(lambda: "b" in TRAINED, 30, "the unlocked run to be trained")
    assert TRAINED == ["b"]  # a is left to its owner
    assert t.is_alive()  # waiting for a
    _toy_save(tmp_path, (a, {}), "cpu")  # the owner finishes a ...
    other.release()  # ... and exits
    t.join(30)
    assert not t.is_alive()
    assert TRAINED == ["b"]  # a was never trained here
    assert sorted(r["result"] for r in result["recs"]) == ["a", "b"]


def test_a_run_whose_owner_died_unfinished_is_trained(tmp_path):
    TRAINED.clear()
    a = _Toy("a")
    other = RunLock(tmp_path, a.key())
    assert other.acquire()
    t = threading.Thread(target=lambda: train_group(tmp_path, [a], device="cpu", kind=TOY))
    t.start()
    time.sleep(0.5)
    assert TRAINED == []
    other.release()  # the owner dies without a record
    t.join(30)
    assert TRAINED == ["a"]


def test_two_identical_sweeps_into_one_folder_train_each_run_once(tmp_path):
    """Two processes run the same list of runs into one folder at once: every run is trained by
    exactly one of them (the other waits and reads its record)."""
    script = (
        "import sys, json\n"
        "from jointtask_lib.runs import train_or_load\n"
        "from jointtask_lib.train import RunSpec\n"
        "specs = [RunSpec.from_dict(d) for d in json.loads(sys.argv[2])]\n"
        "recs = train_or_load(sys.argv[1], specs, device='cpu')\n"
        "print(json.dumps([r['checksum'] for r in recs]))\n")
    specs = [_spec(seed=s) for s in range(3)]
    arg = json.dumps([s.to_dict() for s in specs])
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), arg], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    a, b = (json.loads(o[0]) for o in outs)
    # Both return the very same records (their checksums cover the training time): each run was
    # trained by one process and read by the other.
    assert a == b


# ------------------------------------------------------------------------------------------------
# 8. Provenance
# ------------------------------------------------------------------------------------------------


def test_records_keep_their_provenance(trained):
    import platform

    _, spec, rec = trained
    env = rec["env"]
    assert env["torch"] == torch.__version__ and env["machine"] == platform.machine()
    assert env["threads"] >= 1 and env["host"] == platform.node()
    assert env["stack"] == {"size": 1, "keys": [spec.key()]}


def test_stack_composition_is_recorded_per_stack(tmp_path):
    TRAINED.clear()
    recs = train_or_load(tmp_path, [_Toy("a"), _Toy("b"), _Toy("c")], device="cpu", kind=TOY, max_stack=2)
    stacks = {r["result"]: r["env"]["stack"] for r in recs}
    assert stacks["a"] == stacks["b"] == {"size": 2, "keys": ["toy-a", "toy-b"]}
    assert stacks["c"] == {"size": 1, "keys": ["toy-c"]}


def test_paper_b_records_say_when_a_run_diverged(tmp_path):
    from jointtask_lib.paper_b import icl_train
    from jointtask_lib.paper_b.icl_model import ICLConfig
    from jointtask_lib.paper_b.icl_train import ICLRunSpec, ICLTrainConfig

    model = ICLConfig(d=3, n_points=8, n_embed=16, n_layers=2, n_heads=2)

    def spec(lr):
        tc = ICLTrainConfig(steps=6, batch_size=4, lr=lr, snapshot_prompts=0, log_every=2)
        return ICLRunSpec(curriculum="single", tasks=("linear",), model=model, train=tc, seed=0)

    with pytest.raises(ValueError, match="'lr' must be a finite number"):
        spec(float("inf"))
    ok, bad = icl_train.train_or_load(tmp_path, [spec(3e-3), spec(1e30)], device="cpu")
    assert ok["stop_reason"] == "budget" and bad["stop_reason"] == "diverged"
    assert icl_train.load_icl_record(tmp_path, spec(1e30))["stop_reason"] == "diverged"  # verified on load


def test_two_writers_locking_each_others_runs_do_not_deadlock(tmp_path, monkeypatch):
    """Writer 1 holds a and wants b; writer 2 holds b and wants a: each trains its own, releases
    it, then reads the other's record (a writer never waits while holding a lock)."""
    TRAINED.clear()
    a, b = _Toy("a"), _Toy("b")
    barrier = threading.Barrier(2)
    acquire = RunLock.acquire

    def crossed(self, block=False):
        if not block and threading.current_thread().name in ("w1", "w2") and self.path.parent.name in (
                {"w1": "toy-b", "w2": "toy-a"}[threading.current_thread().name],):
            barrier.wait(timeout=30)  # both hold their first run now
        return acquire(self, block)

    monkeypatch.setattr(RunLock, "acquire", crossed)
    results = {}
    threads = [threading.Thread(name=n, target=lambda n=n, order=order: results.update(
        {n: train_group(tmp_path, order, device="cpu", kind=TOY)})) for n, order in (("w1", [a, b]), ("w2", [b, a]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert sorted(TRAINED) == ["a", "b"]  # each run trained once
    for n in ("w1", "w2"):
        assert sorted(r["result"] for r in results[n]) == ["a", "b"]
