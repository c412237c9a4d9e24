"""Write tests/data/behaviour_records.json: the records of two tiny deterministic runs (one ListOps
stack of two models, one in-context stack of two models), produced by the code as it was before
the architecture refactor (issue 13), so ``tests/test_behaviour_fixture.py`` can show that the
refactor did not change what a run configuration trains.

Run from the repository root:  .venv/bin/python tests/data/make_behaviour_fixture.py
(only when a change is *meant* to change training; say so in the commit).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from behaviour_runs import icl_runs, listops_runs  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    out = {"listops": listops_runs(), "icl": icl_runs()}
    (HERE / "behaviour_records.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print("wrote", HERE / "behaviour_records.json")
