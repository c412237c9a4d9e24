"""``jointtask cache export`` / ``import``: the run cache as one archive, checked on import."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest
import torch

from jointtask_lib import cli
from jointtask_lib.cache_archive import ArchiveError, export_cache, import_cache
from jointtask_lib.model import GPT
from jointtask_lib.runs import load_record, load_weights, record_checksum, run_dir
from jointtask_lib.tasks import TaskConfig
from jointtask_lib.train import Arch, RunSpec, TrainConfig

TASK = TaskConfig(ops=("ADD",), modulus=5, depth=1, min_args=2, max_args=2)


def _spec(seed=0, width=4) -> RunSpec:
    return RunSpec(task=TASK, arch=Arch(n_embed=width), train=TrainConfig(steps=10), seed=seed)


def _signed(rec: dict) -> dict:
    """``rec`` with the other fields a finished run's record has, and the checksum the run cache
    writes (runs.write_record) and verifies on load."""
    rec = {"name": "test", "n_params": 1, "steps_trained": 10, "stop_reason": "budget", **rec}
    return {**rec, "checksum": record_checksum(rec)}


def _write_run(root, spec, *, metrics=None, state=None):
    """A finished run as the cache stores it (written here, not by the trainer)."""
    d = run_dir(root, spec)
    d.mkdir(parents=True)
    torch.manual_seed(spec.seed)
    torch.save(state if state is not None else GPT(spec.model_config(), 1).state_dict(), d / "model.pt")
    rec = {"key": spec.key(), "spec": spec.to_dict(), "metrics": metrics or {"gen_acc": 0.25 + spec.seed / 10}}
    (d / "record.json").write_text(json.dumps(_signed(rec)))
    return d


@pytest.fixture
def cache(tmp_path):
    root = tmp_path / "teacher"
    for seed in (0, 1):
        _write_run(root, _spec(seed))
    (root / "runs" / "0123456789abcdef").mkdir()  # unfinished: no record, no weights
    (root / "figures").mkdir()
    (root / "figures" / "x.png").write_bytes(b"png")
    return root


def test_round_trip_keeps_records_and_weights(cache, tmp_path):
    arc = tmp_path / "class.tar.gz"
    out = export_cache(cache, arc)
    assert out["runs"] == 2 and out["icl_runs"] == 0 and out["bytes"] == arc.stat().st_size
    with tarfile.open(arc) as tar:
        names = sorted(tar.getnames())
    assert names == sorted(f"runs/{_spec(s).key()}/{f}" for s in (0, 1) for f in ("model.pt", "record.json"))
    student = tmp_path / "student"
    assert import_cache(arc, student) == {"imported": 2, "kept": 0}
    for seed in (0, 1):
        spec = _spec(seed)
        assert load_record(student, spec) == load_record(cache, spec)
        a, b = load_weights(student, spec).state_dict(), load_weights(cache, spec).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not any(p.name.startswith(".cache-import-") for p in student.iterdir())  # temp folder removed


def test_import_keeps_existing_runs_unless_overwrite(cache, tmp_path):
    arc = tmp_path / "a.tar.gz"
    export_cache(cache, arc)
    student = tmp_path / "student"
    _write_run(student, _spec(0), metrics={"gen_acc": 0.99})
    assert import_cache(arc, student) == {"imported": 1, "kept": 1}
    assert load_record(student, _spec(0))["metrics"] == {"gen_acc": 0.99}
    assert import_cache(arc, student, overwrite=True) == {"imported": 2, "kept": 0}
    assert load_record(student, _spec(0))["metrics"] == {"gen_acc": 0.25}


def _tar(path, members):
    """members: (TarInfo kwargs or name, bytes or None)."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if isinstance(info, str):
                info = tarfile.TarInfo(info)
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _good_members(spec=None):
    spec = spec or _spec(0)
    buf = io.BytesIO()
    torch.save(GPT(spec.model_config(), 1).state_dict(), buf)
    rec = json.dumps(_signed({"key": spec.key(), "spec": spec.to_dict(), "metrics": {}})).encode()
    return [(f"runs/{spec.key()}/model.pt", buf.getvalue()), (f"runs/{spec.key()}/record.json", rec)]


def _link(name, target, kind):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize("bad, message", [
    ([("../evil.py", b"x")], "not a run-cache file"),
    ([("/etc/evil", b"x")], "not a run-cache file"),
    ([("runs/0123456789abcdef/../../x/record.json", b"{}")], "not a run-cache file"),
    ([("runs/0123456789abcdef/notes.txt", b"x")], "not a run-cache file"),
    ([("runs/0123456789abcdef/log.pt", b"x")], "does not belong"),
    ([_link("runs/0123456789abcdef/model.pt", "/etc/passwd", tarfile.SYMTYPE)], "symbolic link"),
    ([_link("runs/0123456789abcdef/model.pt", "runs/x", tarfile.LNKTYPE)], "hard link"),
    ([(tarfile.TarInfo("runs/0123456789abcdef"), None)], "directory"),
])
def test_import_refuses_unsafe_members_and_imports_nothing(tmp_path, bad, message):
    if isinstance(bad[0][0], tarfile.TarInfo) and bad[0][0].name == "runs/0123456789abcdef":
        bad[0][0].type = tarfile.DIRTYPE
    arc = _tar(tmp_path / "bad.tar.gz", _good_members() + bad)
    with pytest.raises(ArchiveError, match=message):
        import_cache(arc, tmp_path / "student")
    assert not (tmp_path / "student" / "runs").exists()
    assert not (tmp_path / "evil.py").exists() and not (tmp_path / "x").exists()


def _pickle_bomb() -> bytes:
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch /tmp/jointtask-pwned",))

    buf = io.BytesIO()
    torch.save({"w": Boom()}, buf)
    return buf.getvalue()


def test_import_verifies_every_run_before_moving_any(tmp_path):
    good = _good_members(_spec(1))
    spec = _spec(0)
    edited = dict(spec.to_dict(), seed=5)  # spec edited, key kept
    cases = {
        "hashes to": json.dumps(_signed({"key": spec.key(), "spec": edited, "metrics": {}})).encode(),
        "not its folder": json.dumps(_signed({"key": "ffffffffffffffff", "spec": spec.to_dict(), "metrics": {}})).encode(),
        "missing field": json.dumps(_signed({"key": spec.key(), "spec": spec.to_dict()})).encode(),
        # metrics edited after the record was written: the checksum no longer matches
        "checksum": json.dumps({**_signed({"key": spec.key(), "spec": spec.to_dict(), "metrics": {}}),
                                "metrics": {"gen_acc": 1.0}}).encode(),
        "stale run record": json.dumps({"key": spec.key(), "spec": spec.to_dict(), "metrics": {}}).encode(),
        "not JSON": b"{",
    }
    weights = _good_members(spec)[0]
    for message, record in cases.items():
        arc = _tar(tmp_path / "r.tar.gz", good + [weights, (f"runs/{spec.key()}/record.json", record)])
        with pytest.raises(ArchiveError, match=message):
            import_cache(arc, tmp_path / "student")
        assert not (tmp_path / "student" / "runs").exists(), message  # the good run was not moved either
    record = _good_members(spec)[1]
    wrong_shape = io.BytesIO()
    torch.save(GPT(_spec(0, width=8).model_config(), 1).state_dict(), wrong_shape)
    for message, data in {"weights_only": _pickle_bomb(), "does not fit": wrong_shape.getvalue(),
                          "weights_only=True": b"not a torch file"}.items():
        arc = _tar(tmp_path / "w.tar.gz", good + [(f"runs/{spec.key()}/model.pt", data), record])
        with pytest.raises(ArchiveError, match=message):
            import_cache(arc, tmp_path / "student")
        assert not (tmp_path / "student" / "runs").exists()
    assert not os.path.exists("/tmp/jointtask-pwned")
    arc = _tar(tmp_path / "i.tar.gz", good + [record])
    with pytest.raises(ArchiveError, match="incomplete run, missing model.pt"):
        import_cache(arc, tmp_path / "student")
    arc = _tar(tmp_path / "d.tar.gz", good + good[:1])
    with pytest.raises(ArchiveError, match="appears twice"):
        import_cache(arc, tmp_path / "student")


def test_not_an_archive_and_empty_exports(tmp_path):
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(ArchiveError, match="not a readable tar"):
        import_cache(tmp_path / "junk.tar.gz", tmp_path / "s")
    with pytest.raises(ArchiveError, match="not a file"):
        import_cache(tmp_path / "missing.tar.gz", tmp_path / "s")
    with pytest.raises(ArchiveError, match="nothing to export"):
        export_cache(tmp_path / "empty", tmp_path / "e.tar.gz")
    assert not (tmp_path / "e.tar.gz").exists()


def test_cli_cache_export_import(cache, tmp_path, capsys):
    arc = tmp_path / "c.tar.gz"
    assert cli.main(["cache", "export", str(arc), "--results", str(cache)]) == 0
    assert "exported 2 run(s)" in capsys.readouterr().out
    assert cli.main(["cache", "import", str(arc), "--results", str(tmp_path / "s")]) == 0
    assert "imported 2 run(s)" in capsys.readouterr().out
    bad = _tar(tmp_path / "bad.tar.gz", [("../x", b"x")])
    assert cli.main(["cache", "import", str(bad), "--results", str(tmp_path / "s2")]) == 2
    assert "not a run-cache file" in capsys.readouterr().err
