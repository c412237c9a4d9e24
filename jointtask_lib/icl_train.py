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
  Prompts come from the run's own ``torch.Generator`` (:func:`prompt_generator`: seeded with
  ``PROMPT_STREAM + seed``, a stream no initialisation or evaluation draw uses; see
  :mod:`jointtask_lib.icl_model` on random streams), so a run is reproducible and independent of
  which other runs share its stack.  All Hermite classes draw the same random numbers (``xs``,
  then ``w``), so runs with equal seeds see the same ``xs`` and ``w`` and differ only in the link
  function: comparisons between curricula are paired.
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
Runs live under ``<results>/icl/runs/<key>/`` and go through paper A's run cache
(:mod:`jointtask_lib.runs`, as the run kind :data:`ICL_RUNS`), under their own ``icl`` root so
paper A's record tables never meet a record of another kind: ``record.json`` (spec, key, versions,
exposure, curves, snapshots, evaluations), ``model.pt`` (state dict, load with
``weights_only=True``) and ``log.pt`` (per-step task and loss).  :func:`train_or_load` trains only
runs without a record (optionally in several worker processes); :func:`evaluate_or_load` adds an
evaluation (keyed by its own config hash) to each record once.

Claims
------
The verdict functions at the end each state their criterion in their docstring; the notebook only
calls them.  Verdicts: "reproduced", "not reproduced", "inconclusive" (as in
:mod:`jointtask_lib.scorecard`).  With ``explain=True`` each also returns the sentence saying which
branch of its rule decided, which the scorecard row carries in its note.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import icl
from . import runs as run_cache
from .icl_model import READ_IO_STREAM, ICLConfig, ICLModel, count_icl_params
from .runs import (
    RunKind, atomic_torch_save, environment_info, resume_stack_checkpoint, run_dir, write_record,
    save_stack_checkpoint,
)
from .tasks.functions import FUNCTION_CLASSES, INPUT_DISTRIBUTIONS, sample_prompts
from .train import StackedAdamW, _slice_state, _stack_states, clip_per_model, resolve_device
from .validate import check_bool, check_choice, check_float, check_int

RUN_FORMAT = 2  # bump when the meaning of a stored run changes (invalidates the cache)
# 2: training prompts from their own stream (PROMPT_STREAM + seed), no longer the initialisation's
#    seed; read-in/out initialised from 2**30 + seed (2**32 + seed was truncated back to seed).
PAPER_TASKS = ("linear", "quadratic", "cubic")
# The labels (ICLRunSpec.label) of the models notebook 09 trains: the three multi-task curricula
# over PAPER_TASKS and one single-task model per class.
MODEL_LABELS = ("mixed", "sequential", "random") + tuple(f"single:{t}" for t in PAPER_TASKS)
#: Training seeds must stay at or below this; evaluation prompts use seeds above it.
MAX_TRAIN_SEED = 999_999
#: Seed offset of the training-prompt stream: run ``seed`` draws its prompts from ``PROMPT_STREAM + seed``.
PROMPT_STREAM = 2**31
EVAL_SEED = 1_000_152  # evaluation prompts (a nod to the authors' torch.manual_seed(-152))
SNAPSHOT_SEED = 2_000_152  # block-end snapshot prompts
VERDICTS = ("reproduced", "not reproduced", "inconclusive")


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def prompt_generator(seed: int) -> torch.Generator:
    """The generator run ``seed`` draws its training prompts from (``PROMPT_STREAM + seed``)."""
    check_int("seed", seed, lo=0, hi=MAX_TRAIN_SEED)
    return torch.Generator().manual_seed(PROMPT_STREAM + int(seed))


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
    seed: int = 0  # initialisation, prompts and schedule (each from its own stream)

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
    train_seconds: float  # wall time of the whole stack
    stack: dict | None = None  # {"id", "size", "wall_seconds", "cpu_seconds"} of the stack it trained in


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
    gens = [prompt_generator(s.seed) for s in specs]
    losses = np.zeros((m, tc.steps), dtype=np.float32)
    snaps: list[list[dict]] = [[] for _ in specs]
    snap_at = set(snapshot_steps(tc.steps)) if tc.snapshot_prompts else set()
    start, elapsed, cpu = 0, 0.0, 0.0
    keys = [s.key() for s in specs]

    ck = resume_stack_checkpoint(checkpoint_path, keys, model, opt, gens)
    if ck is not None:
        start = int(ck["step"])
        losses[:, :start] = ck["losses"][:, :start].numpy()
        snaps = json.loads(ck["snapshots"])
        elapsed, cpu = float(ck["elapsed"]), float(ck["cpu"])

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=tc.steps, initial=start, desc=f"ICL M={m}", leave=False)
    t0, c0 = time.perf_counter(), time.process_time()
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
            save_stack_checkpoint(checkpoint_path, keys, step + 1, model, opt, gens,
                                  losses=torch.from_numpy(losses.copy()), snapshots=json.dumps(snaps),
                                  elapsed=elapsed + time.perf_counter() - t0, cpu=cpu + time.process_time() - c0)
    if bar is not None:
        bar.close()
    seconds = elapsed + time.perf_counter() - t0
    # CPU time of this process (all its threads) while training: on a shared machine the wall
    # time says how busy the others were, the CPU time what the training itself cost.
    stack = {"id": _hash(keys), "size": m, "wall_seconds": seconds, "cpu_seconds": cpu + time.process_time() - c0}
    return [ICLRunResult(spec=s, state=_slice_state(model, i), task_log=scheds[i], loss_log=losses[i],
                         snapshots=snaps[i], train_seconds=seconds, stack=stack) for i, s in enumerate(specs)]
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
# Records and the run cache (paper A's, :mod:`jointtask_lib.runs`, with this kind of run)
# ============================================================================================


def icl_root(results) -> Path:
    """``<results>/icl``: the root of paper B's run records."""
    return Path(results) / "icl"


def _save_icl_record(root, res: ICLRunResult, device: str) -> dict:
    """Write a finished run under ``root``: weights and per-step log first, then the record."""
    d = run_dir(root, res.spec.key())
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
        # A non-finite training loss: the record says so (the stack is not stopped early).
        "stop_reason": "budget" if np.isfinite(res.loss_log).all() else "diverged",
        "stack": res.stack,
        "env": environment_info(device),
        "evals": {},
    }
    return write_record(record, d / "record.json")


def _icl_stack(root, specs, *, device, progress, checkpoint_path, checkpoint_every):
    return train_icl_stack(specs, device=device, progress=progress, checkpoint_path=checkpoint_path,
                           checkpoint_every=checkpoint_every)


def _icl_order(spec: ICLRunSpec):
    return spec.model.n_embed


def _no_dependencies(spec: ICLRunSpec) -> list:
    return []


#: Paper B's runs as a kind of the generic run cache (:class:`jointtask_lib.runs.RunKind`).
ICL_RUNS = RunKind(name="icl", train_stack=_icl_stack, save_result=_save_icl_record, required=("curves", "exposure"),
                   order=_icl_order, dependencies=_no_dependencies, checkpoint_every=1000)


def load_icl_record(results, spec_or_key) -> dict | None:
    """The record of a finished run, ``None`` if absent; ``CorruptRecord`` if unreadable."""
    return run_cache.load_record(icl_root(results), spec_or_key, kind=ICL_RUNS)


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
    model.load_state_dict(_stack_states(states))
    return model.to(resolve_device(device)).eval()


def _check_model_shape(specs):
    if not specs or len({json.dumps(asdict(s.model), sort_keys=True) for s in specs}) != 1:
        raise ValueError("'specs' must be a non-empty list of runs with one model shape")


def train_or_load(results, specs: list[ICLRunSpec], *, device: str = "auto", progress: bool = False,
                  force: bool = False, checkpoint_every: int = 1000, workers: int = 1) -> list[dict]:
    """Records for ``specs`` (in order): finished runs are read, missing ones trained (stacked).

    Training is resumable: each stack checkpoints every ``checkpoint_every`` steps under
    ``<results>/icl/groups/`` and a re-run continues from there.  ``force`` retrains everything.
    ``workers > 1``: that many single-threaded processes, each training a share of every group
    (:func:`jointtask_lib.runs.train_or_load`); on a CPU with that many free cores, the fastest.
    """
    return run_cache.train_or_load(icl_root(results), specs, device=device, progress=progress, force=force,
                                   kind=ICL_RUNS, workers=workers, checkpoint_every=checkpoint_every)
# ============================================================================================
# Evaluation: error curves, head scores, head masking
# ============================================================================================

#: Conditions of the masking experiment: no mask, the top heads, and two controls.
MASK_CONDITIONS = ("none", "top", "bottom", "random")


@dataclass(frozen=True)
class ICLEvalConfig:
    """How trained models are evaluated (Garg: 1280 prompts in batches of 64, 90% bootstrap CIs).

    ``n_mask`` heads are masked: the ``n_mask`` with the highest retrospective score (averaged over
    the evaluation classes, as the paper picked heads bright on all three) and, as two controls,
    the ``n_mask`` with the lowest score and ``n_mask`` drawn at random from the *other* heads
    (not among the top ones; seeded by ``seed`` + the run's seed, so a model's control heads do
    not depend on which models share its stack).  ``n_mask = 0``: no masking.

    Input distribution of the evaluation prompts (distribution shift; defaults = training's):
    ``x_dist`` (``gaussian``, ``skewed`` = Garg's skewed covariance with eigenvalues
    proportional to ``1/i^2``, ``student_t``), ``x_scale`` (``x`` multiplied by it), ``cov_seed``
    (which fixed random rotation the skewed covariance uses) and ``df`` (Student-t degrees of
    freedom); see :mod:`jointtask_lib.tasks.functions`.  All are part of :meth:`key`, so every
    shift is a separate cached evaluation.
    """

    classes: tuple[str, ...] = PAPER_TASKS
    n_prompts: int = 1280
    batch_size: int = 64
    seed: int = EVAL_SEED
    n_boot: int = 1000
    ci: float = 0.90
    score_prompts: int = 256
    n_mask: int = 1
    x_dist: str = "gaussian"
    x_scale: float = 1.0
    cov_seed: int = 0
    df: float = 4.0

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(self.classes))
        if not self.classes:
            raise ValueError("'classes' must name at least one function class")
        for c in self.classes:
            check_choice("classes", c, FUNCTION_CLASSES)
        check_int("n_prompts", self.n_prompts, lo=2)
        check_int("batch_size", self.batch_size, lo=1)
        # Below READ_IO_STREAM - MAX_TRAIN_SEED - 2: seed + 1 (head-score prompts) and seed + run
        # seed (random control heads) stay clear of the initialisation streams.
        check_int("seed", self.seed, lo=MAX_TRAIN_SEED + 1, hi=READ_IO_STREAM - MAX_TRAIN_SEED - 2)
        check_int("n_boot", self.n_boot, lo=1)
        check_float("ci", self.ci, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        check_int("score_prompts", self.score_prompts, lo=1)
        check_int("n_mask", self.n_mask, lo=0)
        check_choice("x_dist", self.x_dist, INPUT_DISTRIBUTIONS)
        object.__setattr__(self, "x_scale", check_float("x_scale", self.x_scale, lo=0.0, lo_open=True))
        check_int("cov_seed", self.cov_seed, lo=0)
        object.__setattr__(self, "df", check_float("df", self.df, lo=0.0, lo_open=True))

    def key(self) -> str:
        return _hash(asdict(self))

    def input_options(self) -> dict:
        """The input-distribution options for :func:`jointtask_lib.tasks.functions.sample_batch`."""
        return {"x_dist": self.x_dist, "x_scale": self.x_scale, "cov_seed": self.cov_seed, "df": self.df}

    def shift_label(self) -> str:
        """``in distribution`` or a short name of the shift (e.g. ``skewed covariance, x scaled x2``)."""
        parts = []
        if self.x_dist == "skewed":
            parts.append("skewed covariance" + (f" (cov_seed {self.cov_seed})" if self.cov_seed else ""))
        elif self.x_dist == "student_t":
            parts.append(f"Student-t inputs (df {self.df:g})")
        if self.x_scale != 1.0:
            parts.append(f"x scaled x{self.x_scale:g}")
        return ", ".join(parts) if parts else "in distribution"

    def prompt_options(self, unit_norm_w: bool) -> dict:
        return {**({"unit_norm_w": True} if unit_norm_w else {}), **self.input_options()}

    def prompts(self, name: str, d: int, n_points: int, unit_norm_w: bool):
        return icl.make_eval_prompts(name, d, n_points, n_prompts=self.n_prompts, batch_size=self.batch_size,
                                     seed=self.seed, **self.prompt_options(unit_norm_w))


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


def random_control_heads(scores, n: int, exclude, seed: int) -> list[tuple[int, int]]:
    """``n`` heads drawn uniformly (seeded) from those not in ``exclude`` (the masking control)."""
    s = np.asarray(scores, dtype=np.float64)
    n_heads = s.size
    excluded = {tuple(h) for h in exclude}
    check_int("n", n, lo=0, hi=n_heads - len(excluded))
    order = icl.select_heads(s, n_heads, "random", seed=seed)
    return [h for h in order if h not in excluded][:n]


@torch.no_grad()
def evaluate_stack(model: ICLModel, specs: list[ICLRunSpec], ecfg: ICLEvalConfig) -> list[dict]:
    """Error curves (unmasked and each masking condition) and head scores for each model."""
    s0 = specs[0]
    d, n = s0.model.d, s0.model.n_points
    L, H = s0.model.n_layers, s0.model.n_heads
    if 2 * ecfg.n_mask > L * H:
        raise ValueError(f"'n_mask' must be at most half the heads ({L * H // 2} of {L * H}), so that the "
                         f"control heads can differ from the top ones; got {ecfg.n_mask}")
    unw = s0.unit_norm_w
    m = len(specs)
    dev = model.wpe.device
    res = [{"eval": {**asdict(ecfg), "key": ecfg.key()}, "curves": {}, "head_scores": {}} for _ in specs]
    score_sum = np.zeros((m, L, H))
    for c in ecfg.classes:
        sp = icl.make_eval_prompts(c, d, n, n_prompts=ecfg.score_prompts, batch_size=ecfg.score_prompts,
                                   seed=ecfg.seed + 1, **ecfg.prompt_options(unw))[0]
        sc = head_scores(model, sp[0].to(dev), sp[1].to(dev))  # [M, L, H]
        for i in range(m):
            res[i]["head_scores"][c] = sc[i].tolist()
            score_sum[i] += sc[i].numpy()
    mean_scores = score_sum / len(ecfg.classes)
    chosen = {"top": [icl.select_heads(mean_scores[i], ecfg.n_mask, "top") for i in range(m)],
              "bottom": [icl.select_heads(mean_scores[i], ecfg.n_mask, "bottom") for i in range(m)]}
    chosen["random"] = [random_control_heads(mean_scores[i], ecfg.n_mask, chosen["top"][i], ecfg.seed + specs[i].seed)
                        for i in range(m)]
    masks = {"none": None}
    if ecfg.n_mask > 0:
        for cond in MASK_CONDITIONS[1:]:
            masks[cond] = torch.stack([icl.head_mask(chosen[cond][i], L, H) for i in range(m)])
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
        res[i]["masked_heads"] = {cond: [list(h) for h in chosen[cond][i]] for cond in chosen}
    return res


def evaluate_or_load(results, specs: list[ICLRunSpec], ecfg: ICLEvalConfig = ICLEvalConfig(), *,
                     device: str = "auto", force: bool = False) -> list[dict]:
    """The evaluation ``ecfg`` of each (trained) run, computed once and stored in its record.

    Runs of one model shape are evaluated as one stack on shared prompts.  Returns one dict per
    spec: ``curves[class][none|top|bottom|random]`` (``mean``, ``lo``, ``hi`` per position,
    divided by d; only ``none`` when ``n_mask = 0``), ``head_scores[class]`` and
    ``head_scores_mean`` (``[layers][heads]``), ``masked_heads[top|bottom|random]``.
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
            write_record(rec, run_dir(icl_root(results), s.key()) / "record.json")  # new checksum
            out[s.key()] = ev
    return [out[s.key()] for s in specs]


#: Classical baselines every class gets.
BASELINES = ("least_squares", "3nn", "averaging")
#: Correctly specified fits, where meaningful (Hermite classes of degree > 1; for linear,
#: least squares already is one): see :func:`jointtask_lib.icl.baselines_for`.
CORRECT_FITS = ("poly_least_squares", "single_index_fit")


def fit_positions_default(d: int, n_points: int) -> list[int]:
    """Where the (costly) single-index fit is evaluated by default: k = 2, d, 2d, 3d, ... and N - 1."""
    check_int("d", d, lo=1)
    check_int("n_points", n_points, lo=2)
    ks = {min(2, n_points - 1), n_points - 1} | set(range(d, n_points, d))
    return sorted(k for k in ks if 1 <= k <= n_points - 1)


def baseline_curves(d: int, n_points: int, unit_norm_w: bool, ecfg: ICLEvalConfig = ICLEvalConfig(),
                    names=None, *, fit_positions=None) -> dict:
    """Per class: reference levels and the error curves of the classical baselines on the *same*
    prompts as the models (the evaluation's input distribution included).

    * ``levels``: :func:`jointtask_lib.icl.reference_levels` (divided by d) -- exact where closed
      forms exist (Gaussian ``x``, any ``x_scale``), Monte Carlo otherwise (skewed or Student-t
      inputs: 4,096 prompts of 64 points); ``levels["method"]`` says which.
    * ``baselines``: ``names`` (default :data:`BASELINES` plus :data:`CORRECT_FITS` where the class
      has them; a correctly specified fit named for a class without one is skipped).  The
      single-index fit is run only at ``fit_positions`` (default :func:`fit_positions_default`;
      other positions are NaN): it costs ``n_restarts x n_iter`` batched solves per position.
    """
    valid = set(BASELINES) | set(CORRECT_FITS) | {"zero", "running_mean"}
    if names is not None:
        for b in names:
            check_choice("names", b, sorted(valid))
    positions = fit_positions_default(d, n_points) if fit_positions is None else list(fit_positions)
    out = {}
    opts = ecfg.prompt_options(unit_norm_w)
    for c in ecfg.classes:
        fns = icl.baselines_for(c, fit_positions=positions, **({"unit_norm_w": True} if unit_norm_w else {}))
        wanted = [b for b in (names or BASELINES + CORRECT_FITS) if b in fns]
        prompts = ecfg.prompts(c, d, n_points, unit_norm_w)
        lv = icl.reference_levels(c, d, **opts)
        out[c] = {"levels": {k: lv[k] for k in ("zero", "constant", "prompt_mean", "method")},
                  "baselines": {b: _curve_json(icl.error_curve(fns[b], prompts, norm=float(d),
                                                               n_boot=ecfg.n_boot, ci=ecfg.ci,
                                                               boot_seed=ecfg.seed))
                                for b in wanted}}
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


def late_error(curve, start: int) -> float:
    """Mean error over the positions ``k >= start`` (``start = d``: once the prompt holds at least
    as many examples as x has dimensions, enough to pin down ``w``).  Unlike the mean over all k,
    it leaves out the first positions, where every predictor is bad and ratios are pulled to 1."""
    c = np.asarray(curve, dtype=np.float64)
    check_int("start", start, lo=0, hi=len(c) - 1)
    return float(c[start:].mean())


def _seeds(n: int, what: str) -> str:
    return f"{n} {what} seed{'s' if n != 1 else ''}"


def _n_seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _out(verdict: str, why: str, explain: bool):
    return (verdict, why) if explain else verdict


def verdict_data_efficiency(mixed_mean: float, single_mean: float, mixed_late: float, single_late: float,
                            single_constant_level: float, cubic_fraction: float, *, tol: float = 0.2,
                            fail: float = 0.5, learned: float = 0.5, max_fraction: float = 0.15,
                            explain: bool = False):
    """Claim "mixed reaches single-task cubic error with ~1/9 of the cubic data".

    Inputs: cubic evaluation error of the mixed and the single-task cubic models, mean over seeds,
    two ways: averaged over **all** positions (``*_mean``, as the paper's Fig. 4 averages its loss
    over positions) and over the positions ``k >= d`` (``*_late``, :func:`late_error`); the
    constant-predictor level of the cubic class; the fraction of mixed's steps that were cubic.
    The all-k mean alone would flatter the mixed model: at small k every model is near the
    constant level, which pulls any ratio towards 1, so the rule needs both.

    * *inconclusive* if the cubic fraction is not about 1/9 (above ``max_fraction`` = 0.15), or
      the single-task model did not clearly learn cubic in context (its error at ``k >= d`` above
      ``learned`` = 0.5 x the constant level; the paper's single-task cubic model ends at 0.21 x):
      "as good as a model that learned little" says nothing;
    * *reproduced* if mixed <= (1 + ``tol``) x single on **both** measures (within 20%, or better);
    * *not reproduced* if mixed > (1 + ``fail``) x single on **either** measure (> 50% worse);
    * otherwise *inconclusive*.
    """
    rm, rl = mixed_mean / single_mean, mixed_late / single_late
    ratios = f"mixed / single-task = {rm:.2f} over all k, {rl:.2f} at k >= d"
    if cubic_fraction > max_fraction:
        return _out("inconclusive", f"the mixed model's cubic share of steps is {cubic_fraction:.3f}, "
                    f"not about 1/9 (at most {max_fraction})", explain)
    if single_late > learned * single_constant_level:
        return _out("inconclusive", f"the single-task cubic model did not learn cubic in context (its error at "
                    f"k >= d is {single_late / single_constant_level:.2f} x the constant level, above {learned}): "
                    f"matching it says nothing ({ratios})", explain)
    if rm <= 1 + tol and rl <= 1 + tol:
        return _out("reproduced", f"{ratios}: both within {1 + tol:g}x", explain)
    if rm > 1 + fail or rl > 1 + fail:
        return _out("not reproduced", f"{ratios}: more than {1 + fail:g}x on at least one", explain)
    return _out("inconclusive", f"{ratios}: between {1 + tol:g}x and {1 + fail:g}x", explain)


def converged(tail: float, constant_level: float, frac: float = 0.25) -> bool:
    """A model *converged* on a class if its tail error is at most ``frac`` x the constant level.

    Default 0.25: with unit-norm ``w`` the best predictor that is linear in x leaves half the
    quadratic class's variance unexplained (0.5 x constant level), so reaching 0.25 requires the
    non-linear part to be learned in context.  The paper's converged mixed models reach about
    0.5 / 12 ~ 4% of the constant level at k = 90, its failed single-task models stay near 100%.
    """
    return bool(tail <= frac * constant_level)


def verdict_convergence(mixed_tails, single_tails, constant_level: float, *, frac: float = 0.25,
                        min_seeds: int = 3, explain: bool = False):
    """Claim "mixed converges on quadratic where single-task does not" (paper: 3/5 vs 0/5).

    Each seed counts as converged by :func:`converged`.  With ``p`` the converged fractions:

    * *inconclusive* with fewer than ``min_seeds`` seeds on either side;
    * *inconclusive* if **no** seed of either converged (``p_mixed = p_single = 0``): at this
      budget neither learned quadratic in context, so the comparison was never put to the test
      (a budget failure, not evidence against the claim);
    * *reproduced* if ``p_mixed - p_single >= 0.5``;
    * *not reproduced* if ``p_mixed <= p_single`` with some seed converged (no advantage: e.g.
      both succeed);
    * otherwise *inconclusive* (an advantage too small for the seed count).
    """
    nm, ns = len(mixed_tails), len(single_tails)
    if nm < min_seeds or ns < min_seeds:
        return _out("inconclusive", f"{_n_seeds(nm)} of mixed and {_n_seeds(ns)} of single-task: at least {min_seeds} of each "
                    "are needed to compare convergence rates", explain)
    km = sum(converged(t, constant_level, frac) for t in mixed_tails)
    ks = sum(converged(t, constant_level, frac) for t in single_tails)
    counts = f"converged: mixed {km}/{nm}, single-task {ks}/{ns}"
    pm, ps = km / nm, ks / ns
    if km == 0 and ks == 0:
        return _out("inconclusive", f"{counts}: neither curriculum converged at this budget, so the comparison "
                    "is untested (a budget failure, not evidence against the claim)", explain)
    if pm - ps >= 0.5:
        return _out("reproduced", f"{counts}: a difference of at least half the seeds", explain)
    if pm <= ps:
        return _out("not reproduced", f"{counts}: mixed converged no more often than single-task", explain)
    return _out("inconclusive", f"{counts}: an advantage too small for {nm} and {ns} seeds", explain)


def verdict_forgetting(tail_after_own_block: float, tail_final: float, constant_level: float, *,
                       ratio: float = 2.0, explain: bool = False):
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
    growth = tail_final / tail_after_own_block if tail_after_own_block > 0 else float("inf")
    facts = (f"linear tail error {tail_after_own_block / constant_level:.2f} x the constant level after its "
             f"own third, {tail_final / constant_level:.2f} x at the end (x{growth:.1f})")
    if tail_after_own_block > 0.5 * constant_level:
        return _out("inconclusive", f"{facts}: linear was never learned in its third, so there was nothing to "
                    "forget", explain)
    if tail_final >= ratio * tail_after_own_block and tail_final >= 0.5 * constant_level:
        return _out("reproduced", f"{facts}: the skill is mostly gone", explain)
    if tail_final <= 1.25 * tail_after_own_block:
        return _out("not reproduced", f"{facts}: retained", explain)
    return _out("inconclusive", f"{facts}: worse, but not mostly gone", explain)


def retention(masked_tail: float, unmasked_tail: float, constant_level: float) -> float:
    """Share of the in-context improvement that survives masking:
    ``(constant - masked) / (constant - unmasked)`` (1 = untouched, 0 = back to the constant
    predictor, negative = worse than it)."""
    gain = constant_level - unmasked_tail
    return float((constant_level - masked_tail) / gain) if gain > 0 else float("nan")


def verdict_masking(cases: list[dict], *, explain: bool = False):
    """Claim "masking the retrospective heads destroys ICL (masking other heads does not)".

    ``cases``: one dict per (model, class) with tail errors ``unmasked``, ``top`` (the ``n_mask``
    highest-scoring heads masked), the controls ``bottom`` (the same number of lowest-scoring
    heads) and, optionally, ``random`` (as many random heads other than the top ones), and the
    class's ``constant`` level.  Only cases where the unmasked model learned (tail <= 0.5 x
    constant) count.  With medians of :func:`retention` over those cases, and ``r_control`` the
    smallest of the controls' medians (the most destructive control):

    * *reproduced* if ``r_top <= 0.25`` (at most a quarter of the in-context gain survives) and
      ``r_control >= 0.5`` (every control keeps at least half);
    * *not reproduced* if ``r_top >= r_control - 0.1`` (top masking no more destructive than a
      control);
    * otherwise, or with no case that counts, *inconclusive*.
    """
    ok = [c for c in cases if c["unmasked"] <= 0.5 * c["constant"]]
    if not ok:
        return _out("inconclusive", "no model learned in context (nothing to destroy)", explain)
    med = {k: float(np.median([retention(c[k], c["unmasked"], c["constant"]) for c in ok]))
           for k in ("top", "bottom", "random") if all(k in c for c in ok)}
    controls = {k: v for k, v in med.items() if k != "top"}
    if not controls:
        return _out("inconclusive", "no control condition (bottom or random heads) was evaluated", explain)
    rc = min(controls.values())
    facts = (f"median retention of the in-context gain over {len(ok)} case(s): top heads masked "
             f"{med['top']:.2f}, " + ", ".join(f"{k} control {v:.2f}" for k, v in controls.items()))
    if med["top"] <= 0.25 and rc >= 0.5:
        return _out("reproduced", f"{facts}: only the top heads destroy it", explain)
    if med["top"] >= rc - 0.1:
        return _out("not reproduced", f"{facts}: the top heads are no more destructive than a control", explain)
    return _out("inconclusive", f"{facts}: partial", explain)


def least_squares_gap(model_curve, ls_curve, zero_level: float) -> dict:
    """Gap ``(model - least squares) / zero level`` per position k >= 1: its mean and max."""
    m, ls = np.asarray(model_curve, dtype=np.float64), np.asarray(ls_curve, dtype=np.float64)
    gap = (m[1:] - ls[1:]) / zero_level
    return {"mean": float(gap.mean()), "max": float(gap.max())}


def verdict_least_squares(mean_gap: float, max_gap: float, model_late: float, zero_level: float, *,
                          tol_mean: float = 0.05, tol_max: float = 0.15, fail_mean: float = 0.15,
                          learned: float = 0.5, explain: bool = False):
    """Claim "the transformer matches least squares on linear functions" (Garg et al.).

    Gaps are :func:`least_squares_gap` (in units of the zero predictor's error, so 1 = "no better
    than predicting 0"); ``model_late`` is the model's own error at ``k >= d`` (:func:`late_error`),
    where least squares is exact.

    * *inconclusive* if the model never learned linear regression in context: ``model_late`` above
      ``learned`` (0.5) x the zero level (a budget failure says nothing about the claim);
    * *reproduced* if the mean gap over k >= 1 is at most ``tol_mean`` (5%) and the largest at
      most ``tol_max`` (15%);
    * *not reproduced* if the mean gap exceeds ``fail_mean`` (15%);
    * otherwise *inconclusive* (close, but measurably short of least squares).
    """
    facts = f"mean gap {mean_gap:.3f}, largest {max_gap:.3f} (x zero level)"
    if model_late > learned * zero_level:
        return _out("inconclusive", f"the model never learned in context (error at k >= d is "
                    f"{model_late / zero_level:.2f} x the zero level, above {learned}); {facts}", explain)
    if mean_gap <= tol_mean and max_gap <= tol_max:
        return _out("reproduced", f"{facts}: within {tol_mean} on average and {tol_max} everywhere", explain)
    if mean_gap > fail_mean:
        return _out("not reproduced", f"{facts}: more than {fail_mean} on average", explain)
    return _out("inconclusive", f"{facts}: close, but short of the thresholds {tol_mean} / {tol_max}", explain)


# --------------------------------------------------------------------------------------------
# The five claims of the notebook, as scorecard rows
# --------------------------------------------------------------------------------------------

NOTEBOOK = "09_icl_function_classes"


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3g}"


def _pick(runs: list[dict], label: str) -> list[dict]:
    return sorted([r for r in runs if r["spec"].label() == label], key=lambda r: r["spec"].seed)


def _note(why: str, rests_on: str, rule: str) -> str:
    return f"This run: {why}. Rests on {rests_on}. Rule ({rule})"


def _row(id, claim, paper_value, ours, verdict, preset, note):
    from .scorecard import claim as make_claim

    return make_claim(id=id, paper="B", claim=claim, paper_value=paper_value, ours=ours, verdict=verdict,
                      preset=preset, notebook=NOTEBOOK, note=note)


def _curve(run: dict, cls: str, cond: str = "none") -> list[float]:
    return run["eval"]["curves"][cls][cond]["mean"]


def paper_b_claims(runs: list[dict], baselines: dict, *, preset: str, converge_frac: float = 0.25) -> list[dict]:
    """Scorecard rows (:func:`jointtask_lib.scorecard.claim`) for paper B's five claims.

    ``runs``: one dict per trained model, ``{"spec": ICLRunSpec, "record": dict, "eval": dict}``
    (the record from :func:`train_or_load`, the in-distribution evaluation from
    :func:`evaluate_or_load`); ``baselines``: :func:`baseline_curves` on the same prompts.  Each
    row's verdict comes from the matching ``verdict_*`` function; its ``note`` says which branch of
    the rule decided and why (``explain=True``), how many seeds the row rests on, and the rule.
    A claim whose runs are missing is *inconclusive* with ``ours = "not run"``.
    """
    rows = []
    lv = {c: b["levels"] for c, b in baselines.items()}

    # 1. data efficiency on cubic
    mixed, single_c = _pick(runs, "mixed"), _pick(runs, "single:cubic")
    crule = ("verdict_data_efficiency: cubic error averaged over all k and over k >= d, mean over seeds; "
             "reproduced if mixed <= 1.2 x single-task on both; not reproduced if > 1.5 x on either; "
             "inconclusive if the single-task model's error at k >= d stays above 0.5 x the constant level")
    if mixed and single_c and "cubic" in lv:
        d = mixed[0]["spec"].model.d
        m_all = float(np.mean([np.mean(_curve(r, "cubic")) for r in mixed]))
        s_all = float(np.mean([np.mean(_curve(r, "cubic")) for r in single_c]))
        m_late = float(np.mean([late_error(_curve(r, "cubic"), d) for r in mixed]))
        s_late = float(np.mean([late_error(_curve(r, "cubic"), d) for r in single_c]))
        frac = float(np.mean([r["record"]["exposure"]["cubic"]["fraction"] for r in mixed]))
        cb = int(np.mean([r["record"]["exposure"]["cubic"]["steps"] for r in mixed]))
        sb = int(single_c[0]["record"]["exposure"]["cubic"]["steps"])
        ours = (f"cubic error/d, mixed ({_n_seeds(len(mixed))}) vs single-task ({_n_seeds(len(single_c))}): over all k "
                f"{_fmt(m_all)} vs {_fmt(s_all)} (ratio {m_all / s_all:.2f}); at k >= d {_fmt(m_late)} vs "
                f"{_fmt(s_late)} (ratio {m_late / s_late:.2f}); mixed trained on {cb} cubic batches vs {sb} "
                f"(fraction {frac:.3f}); constant level {_fmt(lv['cubic']['constant'])}")
        v, why = verdict_data_efficiency(m_all, s_all, m_late, s_late, lv["cubic"]["constant"], frac, explain=True)
        rests = f"{_seeds(len(mixed), 'mixed')} and {_seeds(len(single_c), 'single-task cubic')}"
    else:
        ours, v, why, rests = "not run", "inconclusive", "the mixed or single-task cubic runs are missing", "no runs"
    rows.append(_row("B1-cubic-data", "Mixed curriculum matches single-task cubic error with ~1/9 of the cubic data",
                     "cubic val. MSE/d 69.1 (mixed, 55,069 cubic steps) vs 95.8 (single-task, 500k steps)",
                     ours, v, preset, _note(why, rests, crule)))

    # 2. quadratic convergence across seeds
    single_q = _pick(runs, "single:quadratic")
    qrule = (f"verdict_convergence: a seed converged if its tail error (last 10% of k, >= 2 positions) "
             f"<= {converge_frac} x the constant level; with >= 3 seeds each: inconclusive if no seed of either "
             "converged; reproduced if the converged fractions differ by >= 0.5; not reproduced if mixed <= "
             "single; else inconclusive")
    if mixed and single_q and "quadratic" in lv:
        c = lv["quadratic"]["constant"]
        tm = [tail_error(_curve(r, "quadratic")) for r in mixed]
        ts = [tail_error(_curve(r, "quadratic")) for r in single_q]
        nm = sum(converged(t, c, converge_frac) for t in tm)
        ns = sum(converged(t, c, converge_frac) for t in ts)
        ours = (f"converged on quadratic: mixed {nm}/{len(tm)}, single-task {ns}/{len(ts)}; tail errors/d "
                f"mixed [{', '.join(_fmt(t) for t in tm)}], single [{', '.join(_fmt(t) for t in ts)}]; "
                f"threshold {_fmt(converge_frac * c)} (constant level {_fmt(c)})")
        v, why = verdict_convergence(tm, ts, c, frac=converge_frac, explain=True)
        rests = f"{_seeds(len(tm), 'mixed')} and {_seeds(len(ts), 'single-task quadratic')}"
    else:
        ours, v, why, rests = "not run", "inconclusive", "the mixed or quadratic-only runs are missing", "no runs"
    rows.append(_row("B2-quadratic-convergence", "Mixed curriculum converges on quadratic where single-task "
                     "training does not", "3/5 mixed vs 0/5 single-task seeds (60% vs 0%)", ours, v, preset,
                     _note(why, rests, qrule)))

    # 3. sequential forgetting
    seq = _pick(runs, "sequential")
    frule = ("verdict_forgetting: inconclusive if linear was never learned (tail error after the linear third "
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
        v, why = verdict_forgetting(lin[0], lin[-1], lv["linear"]["constant"], explain=True)
        rests = f"1 sequential seed (seed {seq[0]['spec'].seed}, the lowest of {len(seq)})"
    else:
        ours, v, why, rests = "not run", "inconclusive", "no sequential run with three snapshots", "no runs"
    rows.append(_row("B3-sequential-forgets", "The sequential curriculum forgets earlier tasks (catastrophic "
                     "forgetting)", "sequential ~10 on linear at k=90 (zero level 1): fails on every class but "
                     "the last", ours, v, preset, _note(why, rests, frule)))

    # 4. head masking
    mrule = ("verdict_masking: retention = (constant - masked)/(constant - unmasked) at the tail, over the "
             "(seed, class) cases where the unmasked model learned; reproduced if median retention <= 0.25 with "
             "the top heads masked and >= 0.5 with each control (as many lowest-scoring heads; as many random "
             "non-top heads); not reproduced if top >= the most destructive control - 0.1")
    cases = []
    for r in mixed:
        for c, cur in r["eval"]["curves"].items():
            if "top" in cur and c in lv:
                cases.append({"unmasked": tail_error(cur["none"]["mean"]), "constant": lv[c]["constant"],
                              **{k: tail_error(cur[k]["mean"]) for k in ("top", "bottom", "random") if k in cur}})
    ok = [c for c in cases if c["unmasked"] <= 0.5 * c["constant"]]
    v, why = verdict_masking(cases, explain=True)
    if ok:
        med = {k: float(np.median([retention(c[k], c["unmasked"], c["constant"]) for c in ok]))
               for k in ("top", "bottom", "random") if all(k in c for c in ok)}
        spec0 = mixed[0]["spec"]
        nmask = len(mixed[0]["eval"]["masked_heads"]["top"])
        ours = (f"mixed models, {len(ok)} (seed, class) cases: median retention of the in-context gain "
                f"{med['top']:.2f} with the {nmask} top retrospective heads masked vs "
                + " and ".join(f"{med[k]:.2f} with {nmask} {name} heads" for k, name in
                               (("bottom", "lowest-scoring"), ("random", "random other")) if k in med)
                + f" (of {spec0.model.n_layers * spec0.model.n_heads} heads)")
    else:
        ours = "not run" if not cases else "no mixed model learned in context (nothing to destroy)"
    rows.append(_row("B4-retrospective-masking", "Masking the retrospective heads destroys in-context learning "
                     "(masking other heads does not)", "7 of 96 heads masked: error back to about the zero "
                     "level for all k; 7 control heads: ICL intact", ours, v, preset,
                     _note(why, _seeds(len(mixed), "mixed") if mixed else "no runs", mrule)))

    # 5. linear vs least squares (Garg et al.)
    single_l = _pick(runs, "single:linear")
    lrule = ("verdict_least_squares: gap = (model - least squares)/zero level per k >= 1; inconclusive if the "
             "model's error at k >= d is above 0.5 x the zero level (never learned); reproduced if mean gap "
             "<= 0.05 and max <= 0.15; not reproduced if mean gap > 0.15")
    if single_l and "linear" in baselines:
        ls = baselines["linear"]["baselines"]["least_squares"]["mean"]
        z = lv["linear"]["zero"]
        d = single_l[0]["spec"].model.d
        gaps = [least_squares_gap(_curve(r, "linear"), ls, z) for r in single_l]
        gm, gx = float(np.mean([g["mean"] for g in gaps])), float(np.mean([g["max"] for g in gaps]))
        late = float(np.mean([late_error(_curve(r, "linear"), d) for r in single_l]))
        extra = ""
        if "3nn" in baselines["linear"]["baselines"]:
            g3 = least_squares_gap(baselines["linear"]["baselines"]["3nn"]["mean"], ls, z)
            extra = f"; for scale, 3-NN's mean gap {g3['mean']:.3f}"
        ours = (f"single-task linear ({_n_seeds(len(single_l))}): mean gap to least squares {gm:.3f}, max "
                f"{gx:.3f} (units of the zero level); its error at k >= d {_fmt(late)}{extra}")
        v, why = verdict_least_squares(gm, gx, late, z, explain=True)
        rests = _seeds(len(single_l), "linear-only")
    else:
        ours, v, why, rests = "not run", "inconclusive", "the linear-only run is missing", "no runs"
    rows.append(_row("B5-linear-least-squares", "A transformer trained on linear functions matches least squares "
                     "in context (Garg et al. 2022)", "error on the least-squares curve: ~0 for k >= d (d = 20)",
                     ours, v, preset, _note(why, rests, lrule)))
    return rows


def claims_summary(rows: list[dict]) -> str:
    """A plain-text summary of claim rows (what the run showed), generated from the rows alone."""
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    head = (f"{len(rows)} claims at the '{rows[0]['preset'] if rows else '?'}' preset: "
            + ", ".join(f"{n} {v}" for v, n in counts.items()))
    lines = [head]
    for r in rows:
        why = r["note"].split(" Rule (")[0]
        lines += [f"* {r['claim']}: {r['verdict'].upper()}", f"    ours:  {r['ours']}", f"    {why}"]
    return "\n".join(lines)


__all__ = [
    "PAPER_TASKS", "EVAL_SEED", "SNAPSHOT_SEED", "PROMPT_STREAM", "MAX_TRAIN_SEED", "prompt_generator",
    "ICLTrainConfig", "ICLRunSpec", "ICLRunResult", "ICLEvalConfig", "ICL_RUNS", "MASK_CONDITIONS",
    "snapshot_steps", "train_icl_stack", "task_loss_curves", "rolling_mean", "icl_root", "load_icl_record",
    "load_icl_log", "load_icl_models", "train_or_load", "head_scores", "random_control_heads", "evaluate_stack",
    "evaluate_or_load", "BASELINES", "CORRECT_FITS", "fit_positions_default", "baseline_curves", "tail_error",
    "late_error", "verdict_data_efficiency", "converged", "verdict_convergence", "verdict_forgetting",
    "retention", "verdict_masking", "least_squares_gap", "verdict_least_squares", "VERDICTS",
    "paper_b_claims", "claims_summary", "NOTEBOOK",
]
