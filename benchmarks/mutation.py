"""Mutation testing of the core modules with mutmut; prints (and writes) killed / survived per module.

    python benchmarks/mutation.py [--modules train,model] [--out benchmarks/measured/mutation_score.json]

Configuration: ``benchmarks/mutation.yaml`` (which file, which functions, which tests, per module).
Each module runs in its own scratch copy ``build/mutation/<module>/`` (the library, the listed
tests, ``conftest.py``, ``pyproject.toml`` and a ``setup.cfg`` holding that module's mutmut
configuration), so modules never see one another's mutants and a run can be resumed: mutmut keeps
its results in the copy and re-runs only what changed.  A module that fails or is interrupted is
recorded as such; the JSON is rewritten after every module, so a partial run keeps what finished.

Score: ``killed / (killed + survived + no_tests)``, a mutant that timed out counting as killed
(the tests noticed it: it made them hang) and one mutmut marks "suspicious" as not killed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks" / "mutation.yaml"


def _mutmut() -> list[str]:
    exe = Path(sys.executable).with_name("mutmut")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mutmut"]


def mutant_glob(file: str, function: str) -> str:
    """mutmut's name pattern for the mutants of one function (``Class.method`` for a method)."""
    mod = file[:-3].replace("/", ".")
    if "." in function:
        cls, meth = function.split(".")
        return f"{mod}.x\u01c1{cls}\u01c1{meth}__mutmut_*"
    return f"{mod}.x_{function}__mutmut_*"


def load_config(path: Path = CONFIG) -> dict:
    cfg = yaml.safe_load(path.read_text())
    for name, m in cfg["modules"].items():
        for key in ("file", "functions", "tests"):
            if key not in m:
                raise ValueError(f"{path}: module '{name}' has no '{key}'")
        if not (ROOT / m["file"]).is_file():
            raise ValueError(f"{path}: module '{name}': no file {m['file']}")
        for t in m["tests"]:
            if not (ROOT / t.split("::")[0]).is_file():
                raise ValueError(f"{path}: module '{name}': no test file {t}")
    return cfg


def prepare(name: str, m: dict, work: Path) -> None:
    """A scratch copy with this module's mutmut configuration (reused if it exists)."""
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("jointtask_lib", "tests"):
        dst = work / sub
        if dst.exists():
            shutil.rmtree(dst)
    shutil.copytree(ROOT / "jointtask_lib", work / "jointtask_lib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (work / "tests").mkdir()
    shutil.copy2(ROOT / "tests" / "conftest.py", work / "tests" / "conftest.py")
    for t in {t.split("::")[0] for t in m["tests"]}:
        shutil.copy2(ROOT / t, work / t)
    shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")  # pytest's options; no [tool.mutmut]
    selection = list(m["tests"]) + [f"--deselect={d}" for d in m.get("deselect", [])]
    lines = ["[mutmut]", "source_paths=jointtask_lib", f"only_mutate={m['file']}",
             "pytest_add_cli_args_test_selection=", *[f"    {s}" for s in selection],
             "pytest_add_cli_args=", "    -p", "    no:cacheprovider",
             # Fork each mutant's worker from a server that has only collected the tests, not from
             # mutmut's main process, which has run them: there the in-process memo of
             # data.make_datasets is already full, and a mutant of the data pipeline would never run.
             "process_isolation=forkserver"]
    (work / "setup.cfg").write_text("\n".join(lines) + "\n")


STATUS_LINE = re.compile(r"^\s+(\S+__mutmut_\d+): (.+)$")


def results(work: Path) -> dict[str, str]:
    out = subprocess.run(_mutmut() + ["results", "--all", "true"], cwd=work, capture_output=True, text=True)
    return {m.group(1): m.group(2).strip() for line in out.stdout.splitlines() if (m := STATUS_LINE.match(line))}


_DIFFS = """
import json, sys
from pathlib import Path
from mutmut.mutation.diff_apply import get_diff_for_mutant
path, names = Path(sys.argv[1]), json.loads(sys.stdin.read())
print(json.dumps({n: get_diff_for_mutant(n, path=path) for n in names}))
"""


def diffs_of(work: Path, file: str, mutants: list[str]) -> dict[str, str]:
    """The changed lines of each mutant (one process for all of them; ``mutmut show`` is one per mutant)."""
    if not mutants:
        return {}
    out = subprocess.run([sys.executable, "-c", _DIFFS, file], cwd=work, input=json.dumps(mutants),
                         capture_output=True, text=True)
    if out.returncode != 0:
        return {k: "(diff unavailable: " + out.stderr.strip().splitlines()[-1] + ")" for k in mutants}
    diffs = json.loads(out.stdout)
    return {k: "\n".join(ln for ln in d.splitlines() if ln.startswith(("-", "+")) and not ln.startswith(("---", "+++")))
            for k, d in diffs.items()}


def run_module(name: str, m: dict, build: Path, max_children: int, fresh: bool, recheck: list[str] | None = None,
               summarize_only: bool = False) -> dict:
    """Mutate one module and test its mutants; ``recheck``: test only these mutants again (the
    survivors of an earlier run, after new tests), keeping the earlier results of the others."""
    work = build / name
    if fresh and work.exists():
        shutil.rmtree(work)
    if not summarize_only:
        prepare(name, m, work)
    globs = [mutant_glob(m["file"], f) for f in m["functions"]]
    env = dict(os.environ, TQDM_DISABLE="1", MPLBACKEND="Agg", PYTHONHASHSEED="0", OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    targets = globs if recheck is None else recheck
    if summarize_only:  # record what an interrupted run had tested, without running anything
        proc = subprocess.CompletedProcess([], returncode=-1)
    else:
        proc = subprocess.run(_mutmut() + ["run", "--max-children", str(max_children), *targets], cwd=work,
                              env=env, capture_output=True, text=True)
        (work / "mutmut_run.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    seconds = time.perf_counter() - t0
    status = results(work)
    pats = [re.compile(re.escape(g[:-1]).replace(r"\*", ".*") + r"\d+$") for g in globs]
    status = {k: v for k, v in status.items() if any(p.match(k) for p in pats)}
    counts: dict[str, int] = {}
    for v in status.values():
        counts[v] = counts.get(v, 0) + 1
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    survived = counts.get("survived", 0)
    no_tests = counts.get("no tests", 0)
    other = {k: v for k, v in counts.items() if k not in ("killed", "timeout", "survived", "no tests")}
    not_checked = counts.get("not checked", 0)
    judged = killed + survived + no_tests
    by_function = {}
    for f, p in zip(m["functions"], pats):
        mine = [v for k, v in status.items() if p.match(k)]
        by_function[f] = {"mutants": len(mine), "killed": sum(v in ("killed", "timeout") for v in mine)}
    rec = {
        "file": m["file"], "functions": list(m["functions"]), "by_function": by_function, "tests": list(m["tests"]),
        "deselected": list(m.get("deselect", [])),
        "mutants": len(status), "killed": killed, "survived": survived, "no_tests": no_tests,
        "timeout": counts.get("timeout", 0), "other": other,
        "score": round(killed / judged, 4) if judged else None,
        "finished": (proc.returncode == 0 or summarize_only) and not_checked == 0, "not_checked": not_checked,
        "mutmut_exit_code": proc.returncode, "seconds": None if summarize_only else round(seconds, 1),
        "summarized_only": summarize_only,
        "surviving": diffs_of(work, m["file"], [k for k, v in sorted(status.items()) if v in ("survived", "no tests")]),
    }
    return rec


def merge_recheck(before: dict, rec: dict) -> dict:
    """A recheck tests only the earlier survivors (mutmut may forget the other results when the test
    selection changes); the earlier kills stand, since adding tests cannot revive a mutant."""
    out = dict(rec)
    out["killed"] = before["killed"] + rec["killed"]
    other = dict(rec["other"])
    other.pop("not checked", None)
    out["other"], out["not_checked"] = other, 0
    judged = out["killed"] + out["survived"] + out["no_tests"]
    out["mutants"] = before["mutants"]
    out["score"] = round(out["killed"] / judged, 4) if judged else None
    out["finished"] = bool(before.get("finished")) and rec["mutmut_exit_code"] == 0
    out["seconds"] = round((rec["seconds"] or 0.0) + (before.get("seconds") or 0.0), 1)
    out["rechecked_survivors"] = len(before.get("surviving", {}))
    out["first_run"] = {k: before[k] for k in ("killed", "survived", "no_tests", "score")}
    if "by_function" in before or "by_function" in rec:
        fns = rec.get("by_function") or before.get("by_function") or {}
        out["by_function"] = {f: {"mutants": v["mutants"],
                                  "killed": v["mutants"] - sum(1 for k in out["surviving"]
                                                              if mutant_glob(out["file"], f)[:-1] in k)}
                              for f, v in fns.items()}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(CONFIG))
    ap.add_argument("--modules", default="", help="comma-separated subset of the configured modules (default: all)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "measured" / "mutation_score.json"))
    ap.add_argument("--build", default=str(ROOT / "build" / "mutation"))
    ap.add_argument("--max-children", type=int, default=1, help="mutants tested in parallel (default 1)")
    ap.add_argument("--fresh", action="store_true", help="discard earlier results in the scratch copies")
    ap.add_argument("--summarize-only", action="store_true",
                    help="record the state of earlier (e.g. interrupted) runs without running mutmut")
    ap.add_argument("--recheck", action="store_true",
                    help="test again only the mutants that survived the recorded run (after adding tests)")
    args = ap.parse_args(argv)
    cfg = load_config(Path(args.config))
    names = [n.strip() for n in args.modules.split(",") if n.strip()] or list(cfg["modules"])
    unknown = [n for n in names if n not in cfg["modules"]]
    if unknown:
        ap.error(f"unknown module(s) {', '.join(unknown)}; allowed: {', '.join(cfg['modules'])}")
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {}
    report.update({"tool": "mutmut " + _version(), "python": platform.python_version(), "goal": cfg["goal"],
                   "config": os.path.relpath(args.config, ROOT)})
    report.setdefault("modules", {})
    for name in names:
        print(f"[mutation] {name} ...", file=sys.stderr, flush=True)
        try:
            before = report["modules"].get(name, {})
            recheck = list(before.get("surviving", {})) if args.recheck and before.get("finished") else None
            if recheck == []:
                print(f"[mutation] {name}: no survivors to recheck", file=sys.stderr)
                continue
            rec = run_module(name, cfg["modules"][name], Path(args.build), args.max_children, args.fresh, recheck,
                             args.summarize_only)
            if recheck is not None:
                rec = merge_recheck(before, rec)
        except KeyboardInterrupt:
            report["modules"][name] = {"file": cfg["modules"][name]["file"], "finished": False,
                                       "error": "interrupted"}
            _write(out, report)
            raise
        rec["meets_goal"] = rec["score"] is not None and rec["score"] >= cfg["goal"]
        report["modules"][name] = rec
        print(f"[mutation] {name}: {rec['killed']} killed, {rec['survived']} survived, {rec['no_tests']} without "
              f"tests, score {rec['score']} ({rec['seconds']} s)", file=sys.stderr, flush=True)
        _write(out, report)
    print(json.dumps(report, indent=1))
    return 0


def _version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
