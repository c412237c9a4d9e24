"""Two tiny deterministic runs whose records are compared against ``tests/data/behaviour_records.json``
(saved before the architecture refactor of issue 13): what a configuration trains must not depend on
where the code lives.  Only the trained values are kept (no keys, timings or environment)."""

from __future__ import annotations

import torch


def listops_runs() -> list[dict]:
    from jointtask_lib.tasks import TaskConfig
    from jointtask_lib.train import Arch, RunSpec, TrainConfig, train_stack

    task = TaskConfig(ops=("ADD", "MAX"), modulus=5, depth=2)
    train = TrainConfig(steps=40, batch_size=8, warmup=5, n_train=200, n_test=48, eval_every=20,
                        eval_size=32, early_stop=False)
    specs = [RunSpec(task=task, arch=Arch(n_embed=8, recurrence=2), train=train, seed=s) for s in (0, 1)]
    out = []
    for s, r in zip(specs, train_stack(specs, device="cpu", progress=False)):
        out.append({"name_prefix": s.name().rsplit("_", 1)[0], "n_params": s.n_params(), "curve": r.curve,
                    "metrics": r.metrics, "steps_trained": r.steps_trained, "stop_reason": r.stop_reason,
                    "weights_sum": float(sum(v.double().abs().sum() for v in r.state.values()))})
    return out


def icl_runs() -> list[dict]:
    try:
        from jointtask_lib.paper_b.icl_model import ICLConfig
        from jointtask_lib.paper_b.icl_train import ICLRunSpec, ICLTrainConfig, train_icl_stack
    except ImportError:  # before the move into paper_b/
        from jointtask_lib.icl_model import ICLConfig
        from jointtask_lib.icl_train import ICLRunSpec, ICLTrainConfig, train_icl_stack

    model = ICLConfig(d=3, n_points=8, n_embed=16, n_layers=2, n_heads=2)
    train = ICLTrainConfig(steps=30, batch_size=8, lr=3e-3, snapshot_prompts=16, log_every=10)
    specs = [ICLRunSpec(curriculum=c, model=model, train=train, unit_norm_w=True, seed=0)
             for c in ("mixed", "sequential")]
    out = []
    for s, r in zip(specs, train_icl_stack(specs, device="cpu")):
        out.append({"label": s.label(), "n_params": s.n_params(),
                    "loss_log": [float(x) for x in r.loss_log], "task_log": [int(x) for x in r.task_log],
                    "weights_sum": float(sum(v.double().abs().sum() for v in r.state.values()))})
    return out


__all__ = ["listops_runs", "icl_runs", "torch"]
