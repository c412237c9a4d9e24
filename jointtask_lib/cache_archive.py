"""``jointtask cache export FILE`` / ``jointtask cache import FILE``: the run cache as one archive.

A teacher trains the notebooks once (any preset) and hands out the finished runs as one
``.tar.gz``; students import it and the notebooks read the runs from the cache instead of
training (``notebooks/README.md``).  The archive holds only finished runs::

    runs/<key>/record.json, runs/<key>/model.pt                       paper A (ListOps)
    icl/runs/<key>/record.json, icl/runs/<key>/model.pt, .../log.pt   paper B (in-context)

**Import never trusts the archive.**  Members are read with ``extractfile`` and written by this
module (``tarfile.extract`` is never called); every member must be a regular file whose name
matches the layout above exactly (no absolute path, no ``..``, no link, device or directory
entry, no duplicate), below a size limit.  Everything is unpacked into a temporary folder inside
the results root and **verified before anything is moved into the cache**: each record is JSON,
names its own folder as ``key``, has the fields its kind requires, and its ``spec`` hashes back
to that key (an edited spec is refused); every ``.pt`` file loads with
``torch.load(weights_only=True)`` as a mapping of tensors, and a ListOps model's weights load
into the model its spec describes.  One bad member and nothing is imported.  Runs already in the
cache are kept (the same key is the same configuration) unless ``--overwrite``.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from .paths import atomic_write, results_dir

#: name of a member: <kind root>runs/<16 hex>/<file>
MEMBER = re.compile(r"^(?P<root>(?:icl/)?runs)/(?P<key>[0-9a-f]{16})/(?P<file>record\.json|model\.pt|log\.pt)$")
FILES = {"runs": ("model.pt", "record.json"), "icl/runs": ("log.pt", "model.pt", "record.json")}
MAX_MEMBER_BYTES = 1 << 30  # 1 GiB: far above any model of this project


class ArchiveError(ValueError):
    """The archive is not a valid run-cache archive; the message names the member and why."""


def _finished_runs(results: Path) -> list[tuple[str, Path]]:
    out = []
    for root, files in FILES.items():
        base = results / root
        if not base.is_dir():
            continue
        for d in sorted(base.iterdir()):
            if d.is_dir() and not d.is_symlink() and re.fullmatch(r"[0-9a-f]{16}", d.name) \
                    and all((d / f).is_file() and not (d / f).is_symlink() for f in files):
                out.append((root, d))
    return out


def export_cache(results, dest) -> dict:
    """Write the finished runs under ``results`` to the archive ``dest`` (gzip'd tar, atomically);
    return ``{"runs": n, "icl_runs": m, "bytes": size}``.  Unfinished runs (no record) and
    everything else under ``results`` (figures, claims, checkpoints) are left out."""
    results = Path(results)
    dest = Path(dest)
    if dest.exists() and dest.is_dir():
        raise ArchiveError(f"'FILE' {dest} is a folder; give the archive's file name (e.g. cache.tar.gz)")
    runs = _finished_runs(results)
    if not runs:
        raise ArchiveError(f"no finished runs under {results} (runs/<key>/record.json + model.pt): nothing to export")

    def write(fh):
        with tarfile.open(fileobj=fh, mode="w:gz") as tar:
            for root, d in runs:
                for f in FILES[root]:
                    data = (d / f).read_bytes()
                    info = tarfile.TarInfo(f"{root}/{d.name}/{f}")
                    info.size, info.mode, info.mtime = len(data), 0o644, 0
                    tar.addfile(info, io.BytesIO(data))

    atomic_write(dest, write)
    n_icl = sum(root == "icl/runs" for root, _ in runs)
    return {"runs": len(runs) - n_icl, "icl_runs": n_icl, "bytes": dest.stat().st_size}


def _read_members(archive: Path, into: Path) -> dict[tuple[str, str], set[str]]:
    """Unpack the checked members of ``archive`` under ``into``; ``{(root, key): {files}}``."""
    runs: dict[tuple[str, str], set[str]] = {}
    seen: set[str] = set()
    try:
        tar = tarfile.open(archive, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveError(f"{archive}: not a readable tar archive: {exc}") from None
    with tar:
        for m in tar:
            where = f"{archive}: member {m.name!r}"
            if not m.isreg():
                what = "a symbolic link" if m.issym() else "a hard link" if m.islnk() else \
                    "a directory" if m.isdir() else "not a regular file"
                raise ArchiveError(f"{where} is {what}; only regular files runs/<key>/record.json|model.pt "
                                   "(and icl/runs/<key>/log.pt) are allowed")
            match = MEMBER.fullmatch(m.name)
            if match is None:
                raise ArchiveError(f"{where}: not a run-cache file; allowed: runs/<16 hex>/record.json or "
                                   "model.pt, icl/runs/<16 hex>/record.json, model.pt or log.pt")
            root, key, name = match["root"], match["key"], match["file"]
            if name not in FILES[root]:
                raise ArchiveError(f"{where}: {name} does not belong in {root}/")
            if m.name in seen:
                raise ArchiveError(f"{where} appears twice")
            seen.add(m.name)
            if m.size > MAX_MEMBER_BYTES:
                raise ArchiveError(f"{where} is {m.size} bytes; the limit is {MAX_MEMBER_BYTES}")
            src = tar.extractfile(m)
            dest = into / root / key / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            with src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
            runs.setdefault((root, key), set()).add(name)
    if not runs:
        raise ArchiveError(f"{archive}: no runs in the archive")
    return runs


def _check_tensors(path: Path, where: str) -> dict:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: refuse the file
        raise ArchiveError(f"{where}: does not load with torch.load(weights_only=True): "
                           f"{type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                       for k, v in obj.items()):
        raise ArchiveError(f"{where}: not a mapping of names to tensors")
    return obj


def _verify_run(tmp: Path, root: str, key: str, files: set[str]) -> None:
    from .paper_b.icl_train import ICL_RUNS, ICLRunSpec
    from .runs import LISTOPS, CorruptRecord, load_record
    from .train import RunSpec, load_model

    where = f"{root}/{key}"
    missing = sorted(set(FILES[root]) - files)
    if missing:
        raise ArchiveError(f"{where}: incomplete run, missing {', '.join(missing)}")
    d = tmp / root / key
    try:
        rec = json.loads((d / "record.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArchiveError(f"{where}/record.json: not JSON: {exc}") from None
    if not isinstance(rec, dict) or rec.get("key") != key:
        raise ArchiveError(f"{where}/record.json: its 'key' is {rec.get('key') if isinstance(rec, dict) else None!r}, "
                           f"not its folder's {key!r}")
    kind, spec_cls = (LISTOPS, RunSpec) if root == "runs" else (ICL_RUNS, ICLRunSpec)
    try:  # the run cache's own checks: checksum over the content, required fields, key = hash of the spec
        load_record(tmp if root == "runs" else tmp / "icl", key, kind=kind)
    except CorruptRecord as exc:
        raise ArchiveError(f"{where}/record.json: refused: {exc}") from None
    spec = spec_cls.from_dict(rec["spec"])  # valid: load_record hashed it to the key
    state = _check_tensors(d / "model.pt", f"{where}/model.pt")
    if root == "runs":
        try:
            load_model(spec, state, "cpu")
        except Exception as exc:  # noqa: BLE001 - weights of another shape
            raise ArchiveError(f"{where}/model.pt: does not fit the model its spec describes: {exc}") from None
    if "log.pt" in FILES[root]:
        _check_tensors(d / "log.pt", f"{where}/log.pt")


def import_cache(archive, results, *, overwrite: bool = False) -> dict:
    """Check the archive completely, then move its runs into the cache under ``results``.
    Returns ``{"imported": n, "kept": k}`` (``kept``: runs already in the cache, left as they
    were).  Raises :class:`ArchiveError` (nothing imported) on the first problem."""
    archive, results = Path(archive), Path(results)
    if not archive.is_file():
        raise ArchiveError(f"'FILE' {archive} is not a file")
    results.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".cache-import-", dir=results) as tmp_name:
        tmp = Path(tmp_name)
        runs = _read_members(archive, tmp)
        for (root, key), files in sorted(runs.items()):
            _verify_run(tmp, root, key, files)
        imported = kept = 0
        for root, key in sorted(runs):
            dest = results / root / key
            if (dest / "record.json").exists() and not overwrite:
                kept += 1
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp / root / key, dest)
            imported += 1
    return {"imported": imported, "kept": kept}


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------


def _cmd_export(a) -> int:
    out = export_cache(results_dir(a.results), a.file)
    print(f"exported {out['runs']} run(s) and {out['icl_runs']} in-context run(s) to {a.file} "
          f"({out['bytes'] / 1e6:.1f} MB)")
    return 0


def _cmd_import(a) -> int:
    out = import_cache(a.file, results_dir(a.results), overwrite=a.overwrite)
    print(f"imported {out['imported']} run(s) into {results_dir(a.results)}; "
          f"{out['kept']} already in the cache were kept")
    return 0


def register_cli(sub) -> None:
    """``jointtask cache export FILE`` and ``jointtask cache import FILE``."""
    p = sub.add_parser("cache", help="export / import the run cache as one archive (for a class)")
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    e = csub.add_parser("export", help="write every finished run to FILE (.tar.gz)")
    e.add_argument("file", metavar="FILE")
    e.add_argument("--results", default="", help="results root (default: $JOINTTASK_RESULTS, else results/)")
    e.set_defaults(func=_cmd_export)
    i = csub.add_parser("import", help="check FILE completely, then add its runs to the cache")
    i.add_argument("file", metavar="FILE")
    i.add_argument("--results", default="", help="results root (default: $JOINTTASK_RESULTS, else results/)")
    i.add_argument("--overwrite", action="store_true", help="replace runs already in the cache")
    i.set_defaults(func=_cmd_import)

