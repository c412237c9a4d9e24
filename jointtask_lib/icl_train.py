"""Training, evaluation, run records and claim verdicts for paper B (in-context regression).

What a run is
-------------
An :class:`ICLRunSpec` fixes everything that defines one trained model: the curriculum and its
ordered task list (:data:`jointtask_lib.icl.CURRICULA`; ``single`` takes one task), the model shape
(:class:`~jointtask_lib.icl_model.ICLConfig`: d, points per prompt, width, layers, heads), the
optimisation recipe (:class:`ICLTrainConfig`), whether each ``w`` is rescaled to unit norm, and the
seed.  Its :meth:`ICLRunSpec.key` (a hash of all of it) names the run on disk.

How it is trained (paper B / Garg et al.)
-----------------------------------------
* Every step draws a **fresh** batch of prompts, all of **one** task: the task the curriculum
  (:func:`jointtask_lib.icl.curriculum_schedule`, seeded by the run's seed) assigns to that step.
  Prompts come from the run's own ``torch.Generator`` seeded with the run's seed, so a run is
  reproducible and independent of which other runs share its stack.  All Hermite classes draw the
  same random numbers (``xs``, then ``w``), so runs with equal seeds see the same ``xs`` and ``w``
  and differ only in the link function: comparisons between curricula are paired.
* Loss: squared error of the prediction at every x position, averaged over positions and prompts
  (Garg's ``mean_squared_error``).  Curves and snapshots report it **divided by d** (the papers'
  "normalised MSE").
* Adam(W) with paper B's settings by default: constant learning rate (optional linear warm-up), no
  weight decay, no gradient clipping, betas (0.9, 0.999).
* Runs that share a model shape and recipe train together as one stack (leading model axis): the
  loss is the sum of the per-model losses, so each model's gradient and update are its own.
* The per-step log (task index and loss of every step) is saved with the run (``log.pt``), so the
  data each task received is exact, not an expectation: ``record["exposure"]``.
* At the end of each curriculum third (``snapshots``: steps T/3, 2T/3, T) every model is evaluated
  on a small fixed set of prompts of each class; the sequential curriculum's forgetting is read
  from these.

Records
-------
Runs live under ``<results>/icl/runs/<key>/`` (the layout of :mod:`jointtask_lib.runs`, under its
own ``icl`` folder so paper A's record tables never meet a record of another kind):
``record.json`` (spec, key, versions, exposure, curves, snapshots, evaluations), ``model.pt`` (state
dict, load with ``weights_only=True``) and ``log.pt`` (per-step task and loss).
:func:`train_or_load` trains only runs without a record; :func:`evaluate_or_load` adds an
evaluation (keyed by its own config hash) to each record once.

Claims
------
The verdict functions at the end each state their criterion in their docstring; the notebook only
calls them.  Verdicts: "reproduced", "not reproduced", "inconclusive" (as in
:mod:`jointtask_lib.scorecard`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from . import icl
from .icl_model import ICLConfig, ICLModel, count_icl_params, slice_state, stack_states
from .runs import CorruptRecord, atomic_torch_save, atomic_write_json, environment_info, load_checkpoint, run_dir
from .tasks.functions import FUNCTION_CLASSES, sample_prompts
from .train import StackedAdamW, clip_per_model, resolve_device
from .validate import check_bool, check_choice, check_float, check_int

RUN_FORMAT = 1  # bump when the meaning of a stored run changes (invalidates the cache)
PAPER_TASKS = ("linear", "quadratic", "cubic")
#: Training seeds must stay below this; evaluation prompts use seeds at or above it.
MAX_TRAIN_SEED = 999_999
EVAL_SEED = 1_000_152  # evaluation prompts (a nod to the authors' torch.manual_seed(-152))
SNAPSHOT_SEED = 2_000_152  # block-end snapshot prompts
VERDICTS = ("reproduced", "not reproduced", "inconclusive")


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


# ============================================================================================
# Configuration
# ============================================================================================


@dataclass(frozen=True)
class ICLTrainConfig:
    """Optimisation recipe (defaults: paper B's, except the step budget)."""

    steps: int = 10_000
    batch_size: int = 64
    lr: float = 1e-4
    warmup: int = 0  # linear warm-up steps, then constant
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # 0 = off (the paper does not clip)
    snapshot_prompts: int = 256  # prompts per class for the block-end snapshots (0 = none)
    log_every: int = 100  # bin width of the curves stored in record.json

    def __post_init__(self):
        check_int("steps", self.steps, lo=3)
        check_int("batch_size", self.batch_size, lo=1)
        check_float("lr", self.lr, lo=0.0, lo_open=True)
        check_int("warmup", self.warmup, lo=0)
        check_float("beta1", self.beta1, lo=0.0, hi=1.0, hi_open=True)
        check_float("beta2", self.beta2, lo=0.0, hi=1.0, hi_open=True)
        check_float("weight_decay", self.weight_decay, lo=0.0)
        check_float("grad_clip", self.grad_clip, lo=0.0)
        check_int("snapshot_prompts", self.snapshot_prompts, lo=0)
        check_int("log_every", self.log_every, lo=1)

    def lr_at(self, step: int) -> float:
        return self.lr * min(1.0, (step + 1) / self.warmup) if self.warmup else self.lr


@dataclass(frozen=True)
class ICLRunSpec:
    """Everything that defines one trained in-context regression model."""

    curriculum: str = "mixed"
    tasks: tuple[str, ...] = PAPER_TASKS
    model: ICLConfig = ICLConfig()
    train: ICLTrainConfig = ICLTrainConfig()
    unit_norm_w: bool = False  # paper default: w ~ N(0, I) unnormalised
    seed: int = 0  # initialisation, prompts and schedule

    def __post_init__(self):
        check_choice("curriculum", self.curriculum, icl.CURRICULA)
        if isinstance(self.tasks, str) or not self.tasks:
            raise ValueError(f"'tasks' must be a non-empty list of function classes; got {self.tasks!r}")
        object.__setattr__(self, "tasks", tuple(self.tasks))
        for t in self.tasks:
            check_choice("tasks", t, FUNCTION_CLASSES)
        if self.curriculum == "single" and len(self.tasks) != 1:
            raise ValueError(f"'tasks' must hold exactly one task for curriculum 'single'; got {list(self.tasks)}")
        if self.train.steps < len(self.tasks):
            raise ValueError(f"'steps' must be at least the number of tasks ({len(self.tasks)}); got {self.train.steps}")
        check_bool("unit_norm_w", self.unit_norm_w)
        check_int("seed", self.seed, lo=0, hi=MAX_TRAIN_SEED)

    def to_dict(self) -> dict:
        return {"curriculum": self.curriculum, "tasks": list(self.tasks), "model": asdict(self.model),
                "train": asdict(self.train), "unit_norm_w": self.unit_norm_w, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> "ICLRunSpec":
        allowed = {"curriculum", "tasks", "model", "train", "unit_norm_w", "seed"}
        unknown = set(d) - allowed
        if unknown:
            raise ValueError(f"unknown run field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}")
        return cls(curriculum=d.get("curriculum", "mixed"), tasks=tuple(d.get("tasks", PAPER_TASKS)),
                   model=ICLConfig(**d.get("model", {})), train=ICLTrainConfig(**d.get("train", {})),
                   unit_norm_w=d.get("unit_norm_w", False), seed=d.get("seed", 0))

    def key(self) -> str:
        """Stable hash of the resolved configuration (names the run; keys the cache)."""
        return _hash({"format": RUN_FORMAT, "kind": "icl", **self.to_dict()})

    def label(self) -> str:
        """``mixed``, ``sequential``, ``random`` or ``single:<task>``."""
        return f"single:{self.tasks[0]}" if self.curriculum == "single" else self.curriculum

    def name(self) -> str:
        return f"{self.label().replace(':', '-')}_s{self.seed}_{self.key()[:8]}"

    def n_params(self) -> int:
        return count_icl_params(self.model)

    def schedule(self) -> np.ndarray:
        """Per-step task indices (exactly what training uses)."""
        return icl.curriculum_schedule(self.curriculum, list(self.tasks), self.train.steps, seed=self.seed)

    def task_options(self) -> dict:
        return {"unit_norm_w": self.unit_norm_w} if self.unit_norm_w else {}

    def group_key(self) -> str:
        """Runs with equal group keys train in one stack."""
        return _hash([asdict(self.model), asdict(self.train), self.unit_norm_w])


def snapshot_steps(total_steps: int) -> list[int]:
    """Steps after which the block-end snapshots are taken: the ends of three equal thirds."""
    return [int(s) for s in icl.block_bounds(3, total_steps)[1:]]


# ============================================================================================
# Training
# ============================================================================================


@dataclass
class ICLRunResult:
    spec: ICLRunSpec
    state: dict
    task_log: np.ndarray  # [steps] task index of each step
    loss_log: np.ndarray  # [steps] normalised training loss (MSE / d) of each step
    snapshots: list
    train_seconds: float


def _sample_step(specs, scheds, gens, step, device):
    xs, ys = [], []
    for s, sch, g in zip(specs, scheds, gens):
        x, y = sample_prompts(s.tasks[sch[step]], s.train.batch_size, s.model.n_points, s.model.d, g,
                              **s.task_options())
        xs.append(x)
        ys.append(y)
    return torch.stack(xs).to(device), torch.stack(ys).to(device)


def _check_group(specs: list[ICLRunSpec]) -> None:
    if not specs:
        raise ValueError("'specs' must hold at least one run")
    if len({s.group_key() for s in specs}) != 1:
        raise ValueError("'specs' must share model shape, training recipe and unit_norm_w (one group)")


@torch.no_grad()
def _snapshot(model: ICLModel, specs: list[ICLRunSpec], step: int, classes=PAPER_TASKS) -> list[dict]:
    """Error of each model on a fixed set of prompts of every class: position-mean and tail."""
    s0 = specs[0]
    n = s0.train.snapshot_prompts
    out = [{"step": step, "classes": {}} for _ in specs]
    was_training = model.training
    model.eval()
    for c in classes:
        prompts = icl.make_eval_prompts(c, s0.model.d, s0.model.n_points, n_prompts=n, seed=SNAPSHOT_SEED,
                                        **s0.task_options())
        errs = _stacked_errors(model, prompts, norm=float(s0.model.d))  # [M, P, N]
        for i in range(len(specs)):
            curve = errs[i].mean(0)
            out[i]["classes"][c] = {"mean": float(curve.mean()), "tail": tail_error(curve)}
    model.train(was_training)
    return out


def train_icl_stack(specs: list[ICLRunSpec], *, device: str = "auto", progress: bool = False,
                    checkpoint_path=None, checkpoint_every: int = 1000) -> list[ICLRunResult]:
    """Train one group of runs as a stack; resume from ``checkpoint_path`` if it holds these runs."""
    _check_group(specs)
    check_int("checkpoint_every", checkpoint_every, lo=1)
    dev = resolve_device(device)
    cfg, tc = specs[0].model, specs[0].train
    m = len(specs)
    model = ICLModel(cfg, m, seeds=[s.seed for s in specs]).to(dev)
    opt = StackedAdamW(list(model.parameters()), lr=tc.lr, betas=(tc.beta1, tc.beta2),
                       weight_decay=tc.weight_decay)
    scheds = [s.schedule() for s in specs]
    gens = [torch.Generator().manual_seed(s.seed) for s in specs]
    losses = np.zeros((m, tc.steps), dtype=np.float32)
    snaps: list[list[dict]] = [[] for _ in specs]
    snap_at = set(snapshot_steps(tc.steps)) if tc.snapshot_prompts else set()
    start, elapsed = 0, 0.0
    keys = [s.key() for s in specs]

    ck = load_checkpoint(checkpoint_path, keys) if checkpoint_path else None
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load(ck["opt"])
        for g, st in zip(gens, ck["gens"]):
            g.set_state(st)
        start = int(ck["step"])
        losses[:, :start] = ck["losses"][:, :start].numpy()
        snaps = json.loads(ck["snapshots"])
        elapsed = float(ck["elapsed"])

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=tc.steps, initial=start, desc=f"ICL M={m}", leave=False)
    t0 = time.perf_counter()
    norm = float(cfg.d)
    model.train()
    for step in range(start, tc.steps):
        xs, ys = _sample_step(specs, scheds, gens, step, dev)
        preds = model(xs, ys)
        per_model = (preds - ys).square().mean(dim=(1, 2))  # [M]
        for p in model.parameters():
            p.grad = None
        per_model.sum().backward()
        if tc.grad_clip > 0:
            clip_per_model(opt.params, tc.grad_clip)
        opt.step(tc.lr_at(step))
        losses[:, step] = (per_model.detach() / norm).cpu().numpy()
        if bar is not None:
            bar.update(1)
        if step + 1 in snap_at:
            for i, snap in enumerate(_snapshot(model, specs, step + 1)):
                snaps[i].append(snap)
        if checkpoint_path and (step + 1) % checkpoint_every == 0 and step + 1 < tc.steps:
            atomic_torch_save({
                "keys": keys, "step": step + 1, "model": model.state_dict(), "opt": opt.state(),
                "gens": [g.get_state() for g in gens], "losses": torch.from_numpy(losses.copy()),
                "snapshots": json.dumps(snaps), "elapsed": elapsed + time.perf_counter() - t0,
            }, checkpoint_path)
    if bar is not None:
        bar.close()
    seconds = elapsed + time.perf_counter() - t0
    state = model.state_dict()
    return [ICLRunResult(spec=s, state=slice_state(state, i), task_log=scheds[i], loss_log=losses[i],
                         snapshots=snaps[i], train_seconds=seconds) for i, s in enumerate(specs)]


# ============================================================================================
# Curves from the per-step log
# ============================================================================================


def task_loss_curves(task_log, loss_log, tasks, window: int = 100) -> dict:
    """Training loss per task, binned two ways, from the per-step log.

    * ``by_step[task]``: ``{"step": [...], "loss": [...], "n": [...]}`` -- for each window of
      ``window`` consecutive steps, the mean loss of the steps in it that trained ``task`` (windows
      without such a step are skipped); ``step`` is the window's end.
    * ``by_task_batches[task]``: ``{"batches": [...], "loss": [...]}`` -- the task's own steps in
      order, in groups of ``window``; ``batches`` = how many batches of that task had been trained
      on by the end of the group (the x-axis of the paper's Fig. 4 for the mixed model).
    """
    check_int("window", window, lo=1)
    tl, ll = np.asarray(task_log), np.asarray(loss_log, dtype=np.float64)
    if tl.shape != ll.shape or tl.ndim != 1:
        raise ValueError(f"'task_log' and 'loss_log' must be 1-D of equal length; got {tl.shape}, {ll.shape}")
    by_step, by_batches = {}, {}
    n_win = math.ceil(len(tl) / window)
    for t, name in enumerate(tasks):
        sel = tl == t
        steps, loss, cnt = [], [], []
        for w in range(n_win):
            lo, hi = w * window, min(len(tl), (w + 1) * window)
            k = int(sel[lo:hi].sum())
            if k:
                steps.append(hi)
                loss.append(float(ll[lo:hi][sel[lo:hi]].mean()))
                cnt.append(k)
        by_step[name] = {"step": steps, "loss": loss, "n": cnt}
        own = ll[sel]
        groups = [own[i:i + window] for i in range(0, len(own), window)]
        by_batches[name] = {"batches": [min(len(own), (i + 1) * window) for i in range(len(groups))],
                            "loss": [float(g.mean()) for g in groups]}
    return {"by_step": by_step, "by_task_batches": by_batches}


def rolling_mean(values, window: int) -> np.ndarray:
    """Trailing rolling mean (the first ``window - 1`` entries average what exists so far)."""
    v = np.asarray(values, dtype=np.float64)
    check_int("window", window, lo=1)
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


# ============================================================================================
# Records and the run cache
# ============================================================================================


def icl_root(results) -> Path:
    """``<results>/icl``: the root of paper B's run records."""
    return Path(results) / "icl"


def save_icl_result(results, res: ICLRunResult, device: str) -> dict:
    """Write a finished run: weights and per-step log first, then the record that marks it done."""
    d = run_dir(icl_root(results), res.spec.key())
    spec = res.spec
    atomic_torch_save(res.state, d / "model.pt")
    atomic_torch_save({"task": torch.from_numpy(np.asarray(res.task_log, dtype=np.int64)),
                       "loss": torch.from_numpy(np.asarray(res.loss_log, dtype=np.float32))}, d / "log.pt")
    exp = icl.task_exposure(res.task_log, len(spec.tasks), batch_size=spec.train.batch_size,
                            n_points=spec.model.n_points)
    last = res.task_log[-spec.train.log_every:], res.loss_log[-spec.train.log_every:]
    record = {
        "key": spec.key(), "name": spec.name(), "label": spec.label(), "kind": "icl", "format": RUN_FORMAT,
        "spec": spec.to_dict(), "n_params": spec.n_params(),
        "exposure": {spec.tasks[t]: {"steps": int(exp["steps"][t]), "prompts": int(exp["prompts"][t]),
                                     "examples": int(exp["examples"][t]), "fraction": float(exp["fraction"][t])}
                     for t in range(len(spec.tasks))},
        "curves": task_loss_curves(res.task_log, res.loss_log, spec.tasks, spec.train.log_every),
        "final_train_loss": {spec.tasks[t]: (float(last[1][last[0] == t].mean()) if (last[0] == t).any() else None)
                             for t in range(len(spec.tasks))},
        "snapshots": res.snapshots,
        "train_seconds": res.train_seconds,
        "env": environment_info(device),
        "evals": {},
    }
    atomic_write_json(record, d / "record.json")
    return record


def load_icl_record(results, spec_or_key) -> dict | None:
    """The record of a finished run, ``None`` if absent; :class:`CorruptRecord` if unreadable."""
    key = spec_or_key if isinstance(spec_or_key, str) else spec_or_key.key()
    p = run_dir(icl_root(results), key) / "record.json"
    if not p.exists():
        return None
    try:
        rec = json.loads(p.read_text())
        if rec.get("key") != key or "curves" not in rec:
            raise ValueError("key mismatch or missing curves")
        return rec
    except (ValueError, json.JSONDecodeError) as exc:
        raise CorruptRecord(f"corrupt run record {p}: {exc}; delete the directory to retrain") from exc


def load_icl_log(results, spec: ICLRunSpec) -> dict:
    """The per-step log of a finished run: ``{"task": int64 [steps], "loss": float32 [steps]}``."""
    ck = torch.load(run_dir(icl_root(results), spec.key()) / "log.pt", map_location="cpu", weights_only=True)
    return {"task": ck["task"].numpy(), "loss": ck["loss"].numpy()}


def load_icl_models(results, specs: list[ICLRunSpec], device: str = "cpu") -> ICLModel:
    """The trained models of ``specs`` (one model shape) as one stack, in eval mode."""
    _check_model_shape(specs)
    states = [torch.load(run_dir(icl_root(results), s.key()) / "model.pt", map_location="cpu", weights_only=True)
              for s in specs]
    model = ICLModel(specs[0].model, len(specs), seeds=[s.seed for s in specs])
    model.load_state_dict(stack_states(states))
    return model.to(resolve_device(device)).eval()


def _check_model_shape(specs):
    if not specs or len({json.dumps(asdict(s.model), sort_keys=True) for s in specs}) != 1:
        raise ValueError("'specs' must be a non-empty list of runs with one model shape")


def _groups(specs: list[ICLRunSpec]) -> list[list[ICLRunSpec]]:
    groups: dict[str, list[ICLRunSpec]] = {}
    for s in specs:
        groups.setdefault(s.group_key(), []).append(s)
    return [groups[k] for k in sorted(groups)]


def _group_checkpoint(results, specs) -> Path:
    return icl_root(results) / "groups" / _hash([s.key() for s in specs]) / "ckpt.pt"


def train_or_load(results, specs: list[ICLRunSpec], *, device: str = "auto", progress: bool = False,
                  force: bool = False, checkpoint_every: int = 1000) -> list[dict]:
    """Records for ``specs`` (in order): finished runs are read, missing ones trained (stacked).

    Training is resumable: each stack checkpoints every ``checkpoint_every`` steps under
    ``<results>/icl/groups/`` and a re-run continues from there.  ``force`` retrains everything.
    """
    records: dict[str, dict] = {}
    todo = []
    for s in specs:
        rec = None if force else load_icl_record(results, s)
        if rec is None:
            todo.append(s)
        else:
            records[s.key()] = rec
    unique = list({s.key(): s for s in todo}.values())
    dev = str(resolve_device(device))
    for group in _groups(unique):
        ck = _group_checkpoint(results, group)
        for res in train_icl_stack(group, device=dev, progress=progress, checkpoint_path=ck,
                                   checkpoint_every=checkpoint_every):
            records[res.spec.key()] = save_icl_result(results, res, dev)
        if ck.exists():
            ck.unlink()
    return [records[s.key()] for s in specs]


# ============================================================================================
# Evaluation: error curves, head scores, head masking
# ============================================================================================


@dataclass(frozen=True)
class ICLEvalConfig:
    """How trained models are evaluated (Garg: 1280 prompts in batches of 64, 90% bootstrap CIs).

    ``n_mask`` heads are masked: the ``n_mask`` with the highest retrospective score (averaged over
    the evaluation classes, as the paper picked heads bright on all three) and, as the control, the
    ``n_mask`` with the lowest.
    """

    classes: tuple[str, ...] = PAPER_TASKS
    n_prompts: int = 1280
    batch_size: int = 64
    seed: int = EVAL_SEED
    n_boot: int = 1000
    ci: float = 0.90
    score_prompts: int = 256
    n_mask: int = 1

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(self.classes))
        if not self.classes:
            raise ValueError("'classes' must name at least one function class")
        for c in self.classes:
            check_choice("classes", c, FUNCTION_CLASSES)
        check_int("n_prompts", self.n_prompts, lo=2)
        check_int("batch_size", self.batch_size, lo=1)
        check_int("seed", self.seed, lo=MAX_TRAIN_SEED + 1)
        check_int("n_boot", self.n_boot, lo=1)
        check_float("ci", self.ci, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        check_int("score_prompts", self.score_prompts, lo=1)
        check_int("n_mask", self.n_mask, lo=0)

    def key(self) -> str:
        return _hash(asdict(self))

    def prompts(self, name: str, d: int, n_points: int, unit_norm_w: bool):
        opts = {"unit_norm_w": True} if unit_norm_w else {}
        return icl.make_eval_prompts(name, d, n_points, n_prompts=self.n_prompts, batch_size=self.batch_size,
                                     seed=self.seed, **opts)


def _curve_json(c: dict) -> dict:
    return {"mean": [float(v) for v in c["mean"]], "lo": [float(v) for v in c["lo"]],
            "hi": [float(v) for v in c["hi"]], "n_prompts": int(c["n_prompts"]), "norm": float(c.get("norm", 1.0))}


@torch.no_grad()
def _stacked_errors(model: ICLModel, prompts, norm: float, head_mask=None, chunk: int = 256) -> torch.Tensor:
    """Squared errors ``[M, P, N]`` / ``norm`` of every model of the stack on shared prompts."""
    xs = torch.cat([p[0] for p in prompts])
    ys = torch.cat([p[1] for p in prompts])
    dev = model.wpe.device
    out = []
    for lo in range(0, len(xs), chunk):
        x, y = xs[lo:lo + chunk].to(dev), ys[lo:lo + chunk].to(dev)
        preds = model(x, y, head_mask=head_mask)
        out.append(((preds.double() - y.double()).square() / norm).cpu())
    return torch.cat(out, dim=1)


@torch.no_grad()
def head_scores(model: ICLModel, xs: torch.Tensor, ys: torch.Tensor, max_elements: int = 50_000_000) -> torch.Tensor:
    """Retrospective scores ``[M, layers, heads]`` (float64) of every model on shared prompts.

    :func:`jointtask_lib.icl.retrospective_scores` averaged over all prompts; the attention maps
    are taken ``chunk`` prompts at a time (at most ``max_elements`` attention weights in memory), so
    paper-size models (200 tokens, 12 layers x 8 heads) fit.
    """
    m, cfg = model.n_models, model.icl_cfg
    t = 2 * xs.shape[-2]
    chunk = max(1, max_elements // (m * cfg.n_layers * cfg.n_heads * t * t))
    total = torch.zeros(m, cfg.n_layers, cfg.n_heads, dtype=torch.float64)
    for lo in range(0, xs.shape[0], chunk):
        att = model.attention(xs[lo:lo + chunk], ys[lo:lo + chunk]).cpu()  # [M, L, H, b, T, T]
        b = att.shape[3]
        for i in range(m):
            total[i] += icl.retrospective_scores(att[i]) * b
    return total / xs.shape[0]


@torch.no_grad()
def evaluate_stack(model: ICLModel, specs: list[ICLRunSpec], ecfg: ICLEvalConfig) -> list[dict]:
    """Error curves (unmasked, top-masked, bottom-masked) and head scores for each model."""
    s0 = specs[0]
    d, n = s0.model.d, s0.model.n_points
    L, H = s0.model.n_layers, s0.model.n_heads
    unw = s0.unit_norm_w
    m = len(specs)
    dev = model.wpe.device
    res = [{"eval": {**asdict(ecfg), "key": ecfg.key()}, "curves": {}, "head_scores": {}} for _ in specs]
    score_sum = np.zeros((m, L, H))
    for c in ecfg.classes:
        opts = {"unit_norm_w": True} if unw else {}
        sp = icl.make_eval_prompts(c, d, n, n_prompts=ecfg.score_prompts, batch_size=ecfg.score_prompts,
                                   seed=ecfg.seed + 1, **opts)[0]
        sc = head_scores(model, sp[0].to(dev), sp[1].to(dev))  # [M, L, H]
        for i in range(m):
            res[i]["head_scores"][c] = sc[i].tolist()
            score_sum[i] += sc[i].numpy()
    mean_scores = score_sum / len(ecfg.classes)
    top = [icl.select_heads(mean_scores[i], ecfg.n_mask, "top") for i in range(m)]
    bottom = [icl.select_heads(mean_scores[i], ecfg.n_mask, "bottom") for i in range(m)]
    masks = {"none": None,
             "top": torch.stack([icl.head_mask(top[i], L, H) for i in range(m)]),
             "bottom": torch.stack([icl.head_mask(bottom[i], L, H) for i in range(m)])}
    if ecfg.n_mask == 0:
        masks = {"none": None}
    for c in ecfg.classes:
        prompts = ecfg.prompts(c, d, n, unw)
        for cond, mk in masks.items():
            errs = _stacked_errors(model, prompts, float(d), head_mask=mk)
            for i in range(m):
                cur = icl.bootstrap_curve(errs[i], n_boot=ecfg.n_boot, ci=ecfg.ci, seed=ecfg.seed)
                cur["norm"] = float(d)
                res[i]["curves"].setdefault(c, {})[cond] = _curve_json(cur)
    for i in range(m):
        res[i]["head_scores_mean"] = mean_scores[i].tolist()
        res[i]["masked_heads"] = {"top": [list(h) for h in top[i]], "bottom": [list(h) for h in bottom[i]]}
    return res


def evaluate_or_load(results, specs: list[ICLRunSpec], ecfg: ICLEvalConfig = ICLEvalConfig(), *,
                     device: str = "auto", force: bool = False) -> list[dict]:
    """The evaluation ``ecfg`` of each (trained) run, computed once and stored in its record.

    Runs of one model shape are evaluated as one stack on shared prompts.  Returns one dict per
    spec: ``curves[class][none|top|bottom]`` (``mean``, ``lo``, ``hi`` per position, divided by
    d), ``head_scores[class]`` and ``head_scores_mean`` (``[layers][heads]``), ``masked_heads``.
    """
    ek = ecfg.key()
    out: dict[str, dict] = {}
    todo = []
    for s in specs:
        rec = load_icl_record(results, s)
        if rec is None:
            raise ValueError(f"run {s.name()} has no record under {icl_root(results)}: train it first (train_or_load)")
        if not force and ek in rec.get("evals", {}):
            out[s.key()] = rec["evals"][ek]
        else:
            todo.append(s)
    todo = list({s.key(): s for s in todo}.values())
    shapes: dict[str, list[ICLRunSpec]] = {}
    for s in todo:
        shapes.setdefault(_hash([asdict(s.model), s.unit_norm_w]), []).append(s)
    for group in shapes.values():
        model = load_icl_models(results, group, device)
        for s, ev in zip(group, evaluate_stack(model, group, ecfg)):
            rec = load_icl_record(results, s)
            ev = json.loads(json.dumps(ev))  # exactly what a later call reads back
            rec.setdefault("evals", {})[ek] = ev
            atomic_write_json(rec, run_dir(icl_root(results), s.key()) / "record.json")
            out[s.key()] = ev
    return [out[s.key()] for s in specs]


BASELINES = ("least_squares", "3nn", "averaging")


def baseline_curves(d: int, n_points: int, unit_norm_w: bool, ecfg: ICLEvalConfig = ICLEvalConfig(),
                    names=BASELINES) -> dict:
    """Per class: reference levels (:func:`jointtask_lib.icl.reference_levels`, divided by d) and
    the error curves of the classical baselines on the *same* prompts as the models."""
    out = {}
    opts = {"unit_norm_w": True} if unit_norm_w else {}
    for c in ecfg.classes:
        fns = icl.baselines_for(c, **opts)
        unknown = [b for b in names if b not in fns]
        if unknown:
            raise ValueError(f"unknown baseline(s) {unknown}; allowed: {', '.join(fns)}")
        prompts = ecfg.prompts(c, d, n_points, unit_norm_w)
        lv = icl.reference_levels(c, d, **opts)
        out[c] = {"levels": {k: lv[k] for k in ("zero", "constant", "prompt_mean")},
                  "baselines": {b: _curve_json(icl.error_curve(fns[b], prompts, norm=float(d),
                                                               n_boot=ecfg.n_boot, ci=ecfg.ci,
                                                               boot_seed=ecfg.seed))
                                for b in names}}
    return out


# ============================================================================================
# Claims: summary statistics and verdict rules
# ============================================================================================


def tail_error(curve, frac: float = 0.1, min_points: int = 2) -> float:
    """Mean error over the last ``max(min_points, ceil(frac * N))`` positions of a curve.

    N = 20 -> the last 2 positions (k = 18, 19); N = 100 -> k = 90..99, where the paper's figures
    are read.  This is "the error once the model has seen (almost) the whole prompt".
    """
    c = np.asarray(curve, dtype=np.float64)
    k = min(len(c), max(min_points, math.ceil(frac * len(c))))
    return float(c[-k:].mean())


def verdict_data_efficiency(mixed_err: float, single_err: float, single_constant_level: float,
                            cubic_fraction: float, *, tol: float = 0.2, fail: float = 0.5,
                            learned: float = 0.5) -> str:
    """Claim "mixed reaches single-task cubic error with ~1/9 of the cubic data".

    Inputs: cubic evaluation error averaged over all positions (as the paper's Fig. 4 averages its
    loss over positions), mean over seeds, for the mixed and the single-task cubic models; the
    constant-predictor level of the cubic class; the fraction of mixed's steps that were cubic.

    * *inconclusive* if the single-task model did not clearly learn cubic in context (error above
      ``learned`` = 0.5 x the constant level; the paper's single-task cubic model ends at 0.21 x):
      "as good as a model that learned little" says nothing; or if the cubic fraction is not
      about 1/9 (above 0.15).
    * *reproduced* if ``mixed <= (1 + tol) * single`` (default: within 20%, or better);
    * *not reproduced* if ``mixed > (1 + fail) * single`` (more than 50% worse);
    * otherwise *inconclusive*.
    """
    if single_err > learned * single_constant_level or cubic_fraction > 0.15:
        return "inconclusive"
    if mixed_err <= (1 + tol) * single_err:
        return "reproduced"
    if mixed_err > (1 + fail) * single_err:
        return "not reproduced"
    return "inconclusive"


def converged(tail: float, constant_level: float, frac: float = 0.25) -> bool:
    """A model *converged* on a class if its tail error is at most ``frac`` x the constant level.

    Default 0.25: with unit-norm ``w`` the best predictor that is linear in x leaves half the
    quadratic class's variance unexplained (0.5 x constant level), so reaching 0.25 requires the
    non-linear part to be learned in context.  The paper's converged mixed models reach about
    0.5 / 12 ~ 4% of the constant level at k = 90, its failed single-task models stay near 100%.
    """
    return bool(tail <= frac * constant_level)


def verdict_convergence(mixed_tails, single_tails, constant_level: float, *, frac: float = 0.25,
                        min_seeds: int = 3) -> str:
    """Claim "mixed converges on quadratic where single-task does not" (paper: 3/5 vs 0/5).

    Each seed counts as converged by :func:`converged`.  With ``p`` the converged fractions:
    with fewer than ``min_seeds`` seeds on either side, *inconclusive*; otherwise *reproduced* if
    ``p_mixed - p_single >= 0.5``, *not reproduced* if ``p_mixed <= p_single`` (no advantage: both
    fail, or both succeed), else *inconclusive* (an advantage too small for the seed count).
    """
    if len(mixed_tails) < min_seeds or len(single_tails) < min_seeds:
        return "inconclusive"
    pm = np.mean([converged(t, constant_level, frac) for t in mixed_tails])
    ps = np.mean([converged(t, constant_level, frac) for t in single_tails])
    if pm - ps >= 0.5:
        return "reproduced"
    if pm <= ps:
        return "not reproduced"
    return "inconclusive"


def verdict_forgetting(tail_after_own_block: float, tail_final: float, constant_level: float, *,
                       ratio: float = 2.0) -> str:
    """Claim "the sequential curriculum forgets" (it "is unable to learn any of the tasks").

    Inputs: the sequential model's tail error on its *first* task (linear) at the end of that
    task's block (block-end snapshot) and at the end of training; that class's constant level.

    * *inconclusive* if the task was never learned (error after its own block above half the
      constant level): nothing to forget;
    * *reproduced* if the final error is at least ``ratio`` x the error after its own block **and**
      at least half the constant level (the in-context skill is mostly gone, not just a bit worse);
    * *not reproduced* if the final error is at most 1.25 x the error after its own block (retained);
    * otherwise *inconclusive*.
    """
    if tail_after_own_block > 0.5 * constant_level:
        return "inconclusive"
    if tail_final >= ratio * tail_after_own_block and tail_final >= 0.5 * constant_level:
        return "reproduced"
    if tail_final <= 1.25 * tail_after_own_block:
        return "not reproduced"
    return "inconclusive"


def retention(masked_tail: float, unmasked_tail: float, constant_level: float) -> float:
    """Share of the in-context improvement that survives masking:
    ``(constant - masked) / (constant - unmasked)`` (1 = untouched, 0 = back to the constant
    predictor, negative = worse than it)."""
    gain = constant_level - unmasked_tail
    return float((constant_level - masked_tail) / gain) if gain > 0 else float("nan")


def verdict_masking(cases: list[dict]) -> str:
    """Claim "masking the retrospective heads destroys ICL (masking other heads does not)".

    ``cases``: one dict per (model, class) with tail errors ``unmasked``, ``top`` (the ``n_mask``
    highest-scoring heads masked), ``bottom`` (the same number of lowest-scoring heads) and the
    class's ``constant`` level.  Only cases where the unmasked model learned (tail <= 0.5 x
    constant) count.  With medians of :func:`retention` over those cases:

    * *reproduced* if ``r_top <= 0.25`` (at most a quarter of the in-context gain survives) and
      ``r_bottom >= 0.5`` (the control keeps at least half);
    * *not reproduced* if ``r_top >= r_bottom - 0.1`` (top masking no worse than the control);
    * otherwise, or with no case that counts, *inconclusive*.
    """
    ok = [c for c in cases if c["unmasked"] <= 0.5 * c["constant"]]
    if not ok:
        return "inconclusive"
    rt = float(np.median([retention(c["top"], c["unmasked"], c["constant"]) for c in ok]))
    rb = float(np.median([retention(c["bottom"], c["unmasked"], c["constant"]) for c in ok]))
    if rt <= 0.25 and rb >= 0.5:
        return "reproduced"
    if rt >= rb - 0.1:
        return "not reproduced"
    return "inconclusive"


def least_squares_gap(model_curve, ls_curve, zero_level: float) -> dict:
    """Gap ``(model - least squares) / zero level`` per position k >= 1: its mean and max."""
    m, ls = np.asarray(model_curve, dtype=np.float64), np.asarray(ls_curve, dtype=np.float64)
    gap = (m[1:] - ls[1:]) / zero_level
    return {"mean": float(gap.mean()), "max": float(gap.max())}


def verdict_least_squares(mean_gap: float, max_gap: float, *, tol_mean: float = 0.05,
                          tol_max: float = 0.15, fail_mean: float = 0.15) -> str:
    """Claim "the transformer matches least squares on linear functions" (Garg et al.).

    Gaps are :func:`least_squares_gap` (in units of the zero predictor's error, so 1 = "no better
    than predicting 0").  *reproduced* if the mean gap over k >= 1 is at most ``tol_mean`` (5%)
    and the largest at most ``tol_max`` (15%); *not reproduced* if the mean gap exceeds
    ``fail_mean`` (15%); otherwise *inconclusive* (close, but measurably short of least squares).
    """
    if mean_gap <= tol_mean and max_gap <= tol_max:
        return "reproduced"
    if mean_gap > fail_mean:
        return "not reproduced"
    return "inconclusive"


# --------------------------------------------------------------------------------------------
# The five claims of the notebook, as scorecard rows
# --------------------------------------------------------------------------------------------

NOTEBOOK = "09_icl_function_classes"


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3g}"


def _pick(runs: list[dict], label: str) -> list[dict]:
    return sorted([r for r in runs if r["spec"].label() == label], key=lambda r: r["spec"].seed)


def _row(id, claim, paper_value, ours, verdict, preset, note):
    from .scorecard import claim as make_claim

    return make_claim(id=id, paper="B", claim=claim, paper_value=paper_value, ours=ours, verdict=verdict,
                      preset=preset, notebook=NOTEBOOK, note=note)


def paper_b_claims(runs: list[dict], baselines: dict, *, preset: str, converge_frac: float = 0.25) -> list[dict]:
    """Scorecard rows (:func:`jointtask_lib.scorecard.claim`) for paper B's five claims.

    ``runs``: one dict per trained model, ``{"spec": ICLRunSpec, "record": dict, "eval": dict}``
    (the record from :func:`train_or_load`, the evaluation from :func:`evaluate_or_load`);
    ``baselines``: :func:`baseline_curves` on the same prompts.  Each row's verdict comes from the
    matching ``verdict_*`` function (its docstring is the criterion, repeated in the row's
    ``note``); a claim whose runs are missing is *inconclusive* with ``ours = "not run"``.
    """
    rows = []
    lv = {c: b["levels"] for c, b in baselines.items()}

    # 1. data efficiency on cubic
    mixed, single_c = _pick(runs, "mixed"), _pick(runs, "single:cubic")
    cid, cclaim = "B1-cubic-data", "Mixed curriculum matches single-task cubic error with ~1/9 of the cubic data"
    cpaper = "cubic val. MSE/d 69.1 (mixed, 55,069 cubic steps) vs 95.8 (single-task, 500k steps)"
    cnote = ("verdict_data_efficiency: reproduced if mixed <= 1.2 x single (error on cubic averaged over "
             "all k, mean over seeds); not reproduced if > 1.5 x; inconclusive if the single-task model "
             "stays above 0.5 x the constant level")
    if mixed and single_c and "cubic" in lv:
        m = float(np.mean([np.mean(r["eval"]["curves"]["cubic"]["none"]["mean"]) for r in mixed]))
        sg = float(np.mean([np.mean(r["eval"]["curves"]["cubic"]["none"]["mean"]) for r in single_c]))
        frac = float(np.mean([r["record"]["exposure"]["cubic"]["fraction"] for r in mixed]))
        cb = int(np.mean([r["record"]["exposure"]["cubic"]["steps"] for r in mixed]))
        sb = int(single_c[0]["record"]["exposure"]["cubic"]["steps"])
        ours = (f"cubic error/d mean over k: mixed {_fmt(m)} ({len(mixed)} seeds) vs single {_fmt(sg)} "
                f"({len(single_c)}); ratio {m / sg:.2f}; mixed trained on {cb} cubic batches vs {sb} "
                f"(fraction {frac:.3f}); constant level {_fmt(lv['cubic']['constant'])}")
        v = verdict_data_efficiency(m, sg, lv["cubic"]["constant"], frac)
    else:
        ours, v = "not run", "inconclusive"
    rows.append(_row(cid, cclaim, cpaper, ours, v, preset, cnote))

    # 2. quadratic convergence across seeds
    single_q = _pick(runs, "single:quadratic")
    qnote = (f"verdict_convergence: a seed converged if its tail error (last 10% of k, >= 2 positions) "
             f"<= {converge_frac} x the constant level; with >= 3 seeds each: reproduced if the converged "
             f"fractions differ by >= 0.5, not reproduced if mixed <= single; else inconclusive")
    if mixed and single_q and "quadratic" in lv:
        c = lv["quadratic"]["constant"]
        tm = [tail_error(r["eval"]["curves"]["quadratic"]["none"]["mean"]) for r in mixed]
        ts = [tail_error(r["eval"]["curves"]["quadratic"]["none"]["mean"]) for r in single_q]
        nm = sum(converged(t, c, converge_frac) for t in tm)
        ns = sum(converged(t, c, converge_frac) for t in ts)
        ours = (f"converged on quadratic: mixed {nm}/{len(tm)}, single-task {ns}/{len(ts)}; tail errors/d "
                f"mixed [{', '.join(_fmt(t) for t in tm)}], single [{', '.join(_fmt(t) for t in ts)}]; "
                f"threshold {_fmt(converge_frac * c)} (constant level {_fmt(c)})")
        v = verdict_convergence(tm, ts, c, frac=converge_frac)
    else:
        ours, v = "not run", "inconclusive"
    rows.append(_row("B2-quadratic-convergence", "Mixed curriculum converges on quadratic where single-task "
                     "training does not", "3/5 mixed vs 0/5 single-task seeds (60% vs 0%)", ours, v, preset, qnote))

    # 3. sequential forgetting
    seq = _pick(runs, "sequential")
    fnote = ("verdict_forgetting: inconclusive if linear was never learned (tail error after the linear third "
             "> 0.5 x constant level); reproduced if the final linear tail error is >= 2 x its value after the "
             "linear third and >= 0.5 x the constant level; not reproduced if <= 1.25 x")
    snaps = seq[0]["record"]["snapshots"] if seq else []
    if len(snaps) >= 3 and "linear" in lv:
        lin = [s["classes"]["linear"]["tail"] for s in snaps]
        quad = [s["classes"]["quadratic"]["tail"] for s in snaps] if "quadratic" in snaps[0]["classes"] else None
        ours = (f"sequential, linear tail error/d after the linear third {_fmt(lin[0])}, at the end {_fmt(lin[-1])} "
                f"(x{lin[-1] / lin[0]:.1f}; constant level {_fmt(lv['linear']['constant'])})")
        if quad is not None:
            ours += f"; quadratic after its third {_fmt(quad[1])}, at the end {_fmt(quad[-1])}"
        v = verdict_forgetting(lin[0], lin[-1], lv["linear"]["constant"])
    else:
        ours, v = "not run", "inconclusive"
    rows.append(_row("B3-sequential-forgets", "The sequential curriculum forgets earlier tasks (catastrophic "
                     "forgetting)", "sequential ~10 on linear at k=90 (zero level 1): fails on every class but "
                     "the last", ours, v, preset, fnote))

    # 4. head masking
    mnote = ("verdict_masking: retention = (constant - masked)/(constant - unmasked) at the tail; reproduced if "
             "median retention <= 0.25 with the top heads masked and >= 0.5 with the same number of "
             "lowest-scoring heads masked; not reproduced if top >= bottom - 0.1")
    cases = []
    for r in mixed:
        for c, cur in r["eval"]["curves"].items():
            if "top" in cur and c in lv:
                cases.append({"unmasked": tail_error(cur["none"]["mean"]), "top": tail_error(cur["top"]["mean"]),
                              "bottom": tail_error(cur["bottom"]["mean"]), "constant": lv[c]["constant"]})
    ok = [c for c in cases if c["unmasked"] <= 0.5 * c["constant"]]
    if ok:
        rt = float(np.median([retention(c["top"], c["unmasked"], c["constant"]) for c in ok]))
        rb = float(np.median([retention(c["bottom"], c["unmasked"], c["constant"]) for c in ok]))
        spec0 = mixed[0]["spec"]
        nmask = len(mixed[0]["eval"]["masked_heads"]["top"])
        ours = (f"mixed models, {len(ok)} (seed, class) cases: median retention of the in-context gain "
                f"{rt:.2f} with the {nmask} top retrospective heads masked vs {rb:.2f} with {nmask} lowest-scoring "
                f"heads masked (of {spec0.model.n_layers * spec0.model.n_heads} heads)")
        v = verdict_masking(cases)
    else:
        ours, v = ("not run" if not cases else "no mixed model learned in context (nothing to destroy)"), "inconclusive"
    rows.append(_row("B4-retrospective-masking", "Masking the retrospective heads destroys in-context learning "
                     "(masking other heads does not)", "7 of 96 heads masked: error back to about the zero "
                     "level for all k; 7 control heads: ICL intact", ours, v, preset, mnote))

    # 5. linear vs least squares (Garg et al.)
    single_l = _pick(runs, "single:linear")
    lnote = ("verdict_least_squares: gap = (model - least squares)/zero level per k >= 1; reproduced if mean gap "
             "<= 0.05 and max <= 0.15; not reproduced if mean gap > 0.15")
    if single_l and "linear" in baselines:
        ls = baselines["linear"]["baselines"]["least_squares"]["mean"]
        z = lv["linear"]["zero"]
        gaps = [least_squares_gap(r["eval"]["curves"]["linear"]["none"]["mean"], ls, z) for r in single_l]
        gm, gx = float(np.mean([g["mean"] for g in gaps])), float(np.mean([g["max"] for g in gaps]))
        extra = ""
        if "3nn" in baselines["linear"]["baselines"]:
            g3 = least_squares_gap(baselines["linear"]["baselines"]["3nn"]["mean"], ls, z)
            extra = f"; for scale, 3-NN's mean gap {g3['mean']:.3f}"
        ours = (f"single-task linear ({len(single_l)} seed(s)): mean gap to least squares {gm:.3f}, max "
                f"{gx:.3f} (units of the zero level){extra}")
        v = verdict_least_squares(gm, gx)
    else:
        ours, v = "not run", "inconclusive"
    rows.append(_row("B5-linear-least-squares", "A transformer trained on linear functions matches least squares "
                     "in context (Garg et al. 2022)", "error on the least-squares curve: ~0 for k >= d (d = 20)",
                     ours, v, preset, lnote))
    return rows


__all__ = [
    "PAPER_TASKS", "EVAL_SEED", "SNAPSHOT_SEED", "ICLTrainConfig", "ICLRunSpec", "ICLRunResult",
    "ICLEvalConfig", "snapshot_steps", "train_icl_stack", "task_loss_curves", "rolling_mean",
    "icl_root", "save_icl_result", "load_icl_record", "load_icl_log", "load_icl_models",
    "train_or_load", "head_scores", "evaluate_stack", "evaluate_or_load", "BASELINES", "baseline_curves",
    "tail_error", "verdict_data_efficiency", "converged", "verdict_convergence",
    "verdict_forgetting", "retention", "verdict_masking", "least_squares_gap",
    "verdict_least_squares", "VERDICTS", "paper_b_claims",
]
