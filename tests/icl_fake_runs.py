"""Hand-made paper B runs (records and evaluations in the stored format) for the claim tests.

``python tests/icl_fake_runs.py OUT.json`` writes the claim rows that ``paper_b_claims`` builds from
them; tests/data/paper_b_claims_c8adedb.json was written so with the library of commit c8adedb
(before the typed ICL records), to check that the typed reading gives the same rows.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from jointtask_lib.paper_b import icl_train
from jointtask_lib.paper_b.icl_model import ICLConfig
from jointtask_lib.paper_b.icl_train import ICLRunSpec, ICLTrainConfig

TINY = ICLConfig(d=3, n_points=8, n_embed=16, n_layers=2, n_heads=2)
TC = ICLTrainConfig(steps=30, batch_size=8, lr=3e-3, snapshot_prompts=16, log_every=10)
N = TINY.n_points
CLASSES = icl_train.PAPER_TASKS


def _curve(rng, level: float, fall: float) -> dict:
    """A stored curve: error falling from ``level`` by ``fall`` x, with a band."""
    mean = level * np.exp(-np.log(fall) * np.arange(N) / (N - 1)) * (1 + 0.05 * rng.random(N))
    return {"mean": mean.tolist(), "lo": (0.9 * mean).tolist(), "hi": (1.1 * mean).tolist(), "n_prompts": 64,
            "norm": 3.0}


def _run(rng, label: str, seed: int, fall: dict, *, masked: bool = False, snapshots=None) -> dict:
    cur, task = label.split(":") if ":" in label else (label, None)
    tasks = (task,) if task else CLASSES
    spec = ICLRunSpec(curriculum=cur, tasks=tasks, model=TINY, train=TC, unit_norm_w=True, seed=seed)
    curves = {}
    for c in CLASSES:
        curves[c] = {"none": _curve(rng, 1.0, fall.get(c, 1.0))}
        if masked:
            curves[c].update(top=_curve(rng, 1.0, 1.2), bottom=_curve(rng, 1.0, fall.get(c, 1.0) * 0.9),
                             random=_curve(rng, 1.0, fall.get(c, 1.0) * 0.8))
    ev = {"eval": {"key": "e"}, "curves": curves, "head_scores": {c: [[0.1, 0.7], [0.3, 0.2]] for c in CLASSES},
          "head_scores_mean": [[0.1, 0.7], [0.3, 0.2]],
          "masked_heads": {"top": [[0, 1]], "bottom": [[0, 0]], "random": [[1, 0]]}}
    steps = TC.steps
    share = {c: (1.0 / len(tasks) if c in tasks else 0.0) for c in CLASSES}
    if cur == "mixed":
        share = {"linear": 0.6, "quadratic": 0.3, "cubic": 0.1}
    exposure = {c: {"steps": int(round(share[c] * steps)), "prompts": int(round(share[c] * steps)) * 8,
                    "examples": int(round(share[c] * steps)) * 64, "fraction": share[c]} for c in tasks}
    record = {"key": spec.key(), "label": spec.label(), "exposure": exposure, "snapshots": snapshots or [],
              "stack": {"id": f"stack{seed}", "size": 4, "wall_seconds": 60.0, "cpu_seconds": 120.0}}
    return {"spec": spec, "record": record, "eval": ev}


def _snapshots(lin: list, quad: list) -> list:
    return [{"step": 10 * (i + 1), "classes": {"linear": {"tail": a, "mean": a}, "quadratic": {"tail": b, "mean": b},
                                               "cubic": {"tail": 0.9, "mean": 0.9}}}
            for i, (a, b) in enumerate(zip(lin, quad))]


def scenarios() -> dict:
    """Named sets of runs and baselines covering the claims' branches."""
    rng = np.random.default_rng(13)
    lv = {"zero": 1.0, "constant": 0.9}
    ls = np.r_[1.0, 0.66, 0.33, np.zeros(N - 3)].tolist()
    base = {c: {"levels": dict(lv), "baselines": {"least_squares": {"mean": ls}, "3nn": {"mean": [0.8] * N}}}
            for c in CLASSES}
    good = {"linear": 40.0, "quadratic": 30.0, "cubic": 20.0}
    out = {}
    runs = [_run(rng, "mixed", s, good, masked=True) for s in (2, 0, 1)]
    runs += [_run(rng, "single:cubic", s, {"cubic": 18.0}) for s in range(3)]
    runs += [_run(rng, "single:quadratic", s, {"quadratic": 1.2 + s}) for s in range(3)]
    runs += [_run(rng, "single:linear", s, {"linear": 50.0}) for s in range(2)]
    runs += [_run(rng, "sequential", s, {"cubic": 20.0}, snapshots=_snapshots([0.05, 0.4, 0.8], [0.9, 0.1, 0.6]))
             for s in (1, 0)]
    out["learned"] = (runs, base)
    flat = [_run(rng, "mixed", s, {}, masked=True) for s in range(2)]
    flat += [_run(rng, "single:cubic", 0, {"cubic": 1.1}), _run(rng, "single:linear", 0, {"linear": 1.05})]
    flat += [_run(rng, "sequential", 0, {}, snapshots=_snapshots([0.1, 0.11, 0.12], [0.9, 0.8, 0.8]))]
    out["flat"] = (flat, base)
    out["missing"] = ([_run(rng, "random", 0, good)], base)
    return out


def claim_rows() -> dict:
    from jointtask_lib.paper_b.section import paper_b_claims

    return {name: paper_b_claims(runs, base, preset="test") for name, (runs, base) in scenarios().items()}


if __name__ == "__main__":
    with open(sys.argv[1], "w") as f:
        json.dump(claim_rows(), f, indent=1, sort_keys=True)
