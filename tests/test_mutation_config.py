"""The mutation-testing configuration (benchmarks/mutation.yaml) names things that exist.

``make mutation`` is slow, so it is not part of ``make test``; these checks keep its configuration
from silently going stale when a function or test is renamed (mutmut would then stop with
"nothing matches" after minutes of set-up, or test fewer functions than the README says).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _runner():
    spec = importlib.util.spec_from_file_location("mutation_runner", ROOT / "benchmarks" / "mutation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


M = _runner()
CFG = M.load_config()


def _defined(path: Path) -> set[str]:
    """Top-level functions and Class.method names defined in a source file."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.add(node.name)
        elif isinstance(node, ast.ClassDef):
            out |= {f"{node.name}.{f.name}" for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return out


def test_the_core_modules_are_configured():
    assert {"tasks", "data", "model", "train", "transition", "scorecard", "experiments"} <= set(CFG["modules"])
    assert 0 < CFG["goal"] <= 1


@pytest.mark.parametrize("name", sorted(CFG["modules"]))
def test_configured_functions_and_tests_exist(name):
    m = CFG["modules"][name]
    missing = set(m["functions"]) - _defined(ROOT / m["file"])
    assert not missing, f"{name}: not defined in {m['file']}: {sorted(missing)}"
    for t in list(m["tests"]) + list(m.get("deselect", [])):
        file, _, test = t.partition("::")
        assert (ROOT / file).is_file(), t
        if test:
            assert f"def {test}(" in (ROOT / file).read_text(), f"{name}: no test {t}"


def test_mutant_names_match_mutmuts_mangling():
    assert M.mutant_glob("jointtask_lib/train.py", "_should_stop") == "jointtask_lib.train.x__should_stop__mutmut_*"
    assert M.mutant_glob("jointtask_lib/data.py", "Vocab.encode") == "jointtask_lib.data.x\u01c1Vocab\u01c1encode__mutmut_*"
    assert M.mutant_glob("jointtask_lib/tasks/core.py", "evaluate") == "jointtask_lib.tasks.core.x_evaluate__mutmut_*"


def test_the_recorded_score_covers_configured_modules():
    import json

    data = json.loads((ROOT / "benchmarks" / "measured" / "mutation_score.json").read_text())
    assert data["tool"].startswith("mutmut ")
    for name, rec in data["modules"].items():
        assert name in CFG["modules"], f"recorded module {name} is no longer configured"
        if rec.get("finished"):
            assert rec["killed"] + rec["survived"] + rec["no_tests"] <= rec["mutants"]
            assert rec["score"] == pytest.approx(rec["killed"] / (rec["killed"] + rec["survived"] + rec["no_tests"]), abs=1e-4)
