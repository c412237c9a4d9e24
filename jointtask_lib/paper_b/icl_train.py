"""Training, evaluation and run records for paper B (in-context regression).

What a run is
-------------
An :class:`ICLRunSpec` fixes everything that defines one trained model: the curriculum and its
ordered task list (:data:`jointtask_lib.paper_b.icl.CURRICULA`; ``single`` takes one task), the model shape
(:class:`~jointtask_lib.paper_b.icl_model.ICLConfig`: d, points per prompt, width, layers, heads), the
optimisation recipe (:class:`ICLTrainConfig`), whether each ``w`` is rescaled to unit norm, and the
seed.  Its :meth:`ICLRunSpec.key` (a hash of all of it) names the run on disk.

How it is trained (paper B / Garg et al.)
-----------------------------------------
* Every step draws a **fresh** batch of prompts, all of **one** task: the task the curriculum
  (:func:`jointtask_lib.paper_b.icl.curriculum_schedule`, seeded by the run's seed) assigns to that step.
  Prompts come from the run's own ``torch.Generator`` (:func:`prompt_generator`: seeded with
  ``PROMPT_STREAM + seed``, a stream no initialisation or evaluation draw uses; see
  :mod:`jointtask_lib.paper_b.icl_model` on random streams), so a run is reproducible and independent of
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
* The step (``ICLTrainConfig.step``): ``"fast"`` (default) is paper A's hand-written step
  (:class:`~jointtask_lib.fast_step.FastStep`: one flat parameter buffer, per-model clipping, flat
  AdamW) with paper B's read-in / read-out / MSE (:mod:`jointtask_lib.paper_b.icl_step`);
  ``"reference"`` is autograd on :class:`~jointtask_lib.paper_b.icl_model.ICLModel` +
  :class:`~jointtask_lib.train.StackedAdamW`.  Same loss, same recipe; they differ by float
  rounding only (tests/test_fast_step_icl.py), which grows over thousands of steps, so the step
  is part of the run's key.  Checkpoints are interchangeable (same optimiser-state format).
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
Paper B's claims, their summary statistics and verdict rules are the section's:
:mod:`jointtask_lib.paper_b.section` (this module never imports the scorecard).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import icl
from .. import runs as run_cache
from .icl_model import READ_IO_STREAM, ICLConfig, ICLModel, count_icl_params
from .icl_step import icl_fast_step
from ..checkpoints import atomic_torch_save
from ..runs import RunKind, environment_info, run_dir, write_record
from ..schema import ICL_TRAIN, check_fields
from ..tasks.functions import FUNCTION_CLASSES, INPUT_DEFAULTS, INPUT_DISTRIBUTIONS, sample_prompts
from ..model import stack_states
from ..train import StackedAdamW, StackEngine, autograd_step, resolve_device
from ..validate import check_bool, check_choice, check_float, check_int

# Bump when the meaning of a stored run changes (invalidates the cache).  History: 3 = the key also
# holds the registry entries of the run's function classes (summary and default options) and the
# input defaults, so editing a class's entry does not reuse old runs (issue 13).
RUN_FORMAT = 3
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


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def registry_fingerprint(tasks) -> dict:
    """What the function-class registry says about ``tasks`` (and the snapshot classes): each
    class's summary and default options, and the input defaults — part of an ICL run's key."""
    classes = sorted(set(tasks) | set(PAPER_TASKS))
    return {"classes": {t: {"summary": FUNCTION_CLASSES[t].summary, "defaults": dict(FUNCTION_CLASSES[t].defaults)}
                        for t in classes},
            "inputs": dict(INPUT_DEFAULTS)}


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
    step: str = "fast"  # "fast": jointtask_lib.paper_b.icl_step (hand-written); "reference": autograd

    def __post_init__(self):
        check_fields(self, ICL_TRAIN)  # the bounds of jointtask_lib.schema (paper A's, where shared)

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
        return _hash({"format": RUN_FORMAT, "kind": "icl", **self.to_dict(), "registry": registry_fingerprint(self.tasks)})

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


def icl_optimiser(model: ICLModel, tc: ICLTrainConfig):
    """``(opt, train_step)`` for the recipe ``tc``: the optimiser (its ``state()``/``load()`` is
    what checkpoints hold, StackedAdamW's format for both steps) and ``train_step(xs, ys, lr)``,
    one training step of the stack (forward, backward, per-model clipping when ``grad_clip > 0``,
    AdamW) returning the per-model MSE ``[M]`` (detached).  ``tc.step`` picks the step."""
    if tc.step == "fast":
        opt = icl_fast_step(model, lr=tc.lr, betas=(tc.beta1, tc.beta2), weight_decay=tc.weight_decay,
                            grad_clip=tc.grad_clip)
        return opt, opt.train_step
    opt = StackedAdamW(list(model.parameters()), lr=tc.lr, betas=(tc.beta1, tc.beta2), weight_decay=tc.weight_decay)

    def reference_step(xs, ys, lr):
        per_model = (model(xs, ys) - ys).square().mean(dim=(1, 2))  # [M]
        return autograd_step(per_model, opt, tc.grad_clip, lr)  # paper A's update

    return opt, reference_step


def train_icl_stack(specs: list[ICLRunSpec], *, device: str = "auto", progress: bool = False,
                    checkpoint_path=None, checkpoint_every: int = 1000) -> list[ICLRunResult]:
    """Train one group of runs as a stack; resume from ``checkpoint_path`` if it holds these runs.

    The loop (steps, checkpoints every ``checkpoint_every`` steps, resume, progress, timing) is paper
    A's :class:`~jointtask_lib.train.StackEngine`; what is paper B's: the prompts of each step, the
    step (:func:`icl_optimiser`), the per-step loss log and the block-end snapshots."""
    _check_group(specs)
    check_int("checkpoint_every", checkpoint_every, lo=1)
    dev = resolve_device(device)
    cfg, tc = specs[0].model, specs[0].train
    m = len(specs)
    model = ICLModel(cfg, m, seeds=[s.seed for s in specs]).to(dev)
    opt, train_step = icl_optimiser(model, tc)
    scheds = [s.schedule() for s in specs]
    gens = [prompt_generator(s.seed) for s in specs]
    losses = np.zeros((m, tc.steps), dtype=np.float32)
    snaps: list[list[dict]] = [[] for _ in specs]
    snap_at = set(snapshot_steps(tc.steps)) if tc.snapshot_prompts else set()
    start = 0
    keys = [s.key() for s in specs]
    engine = StackEngine(model, opt, gens, keys)  # paper A's loop: steps, checkpoints, progress

    ck = engine.resume(checkpoint_path)
    if ck is not None:
        start = int(ck["step"])
        losses[:, :start] = ck["losses"][:, :start].numpy()
        snaps = json.loads(ck["snapshots"])

    norm = float(cfg.d)

    def draw(step, active):  # every model trains every step (no run stops early)
        return _sample_step(specs, scheds, gens, step, dev)

    def step_fn(batch, step):
        return train_step(*batch, tc.lr_at(step))

    def after_step(step, per_model):
        losses[:, step] = (per_model.detach() / norm).cpu().numpy()
        if step + 1 in snap_at:
            for i, snap in enumerate(_snapshot(model, specs, step + 1)):
                snaps[i].append(snap)

    def extra():
        return {"losses": torch.from_numpy(losses.copy()), "snapshots": json.dumps(snaps)}

    engine.run(start, tc.steps, draw=draw, step=step_fn, after_step=after_step, progress=progress,
               desc=f"ICL M={m}", checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every, extra=extra)
    seconds = engine.wall_seconds()
    # CPU time of this process (all its threads) while training: on a shared machine the wall
    # time says how busy the others were, the CPU time what the training itself cost.
    stack = {"id": _hash(keys), "size": m, "wall_seconds": seconds, "cpu_seconds": engine.cpu_seconds()}
    states = engine.states()
    return [ICLRunResult(spec=s, state=states[i], task_log=scheds[i], loss_log=losses[i],
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
def _icl_spec_key(d: dict) -> str:
    return ICLRunSpec.from_dict(d).key()


ICL_RUNS = RunKind(name="icl", train_stack=_icl_stack, save_result=_save_icl_record,
                   required=("spec", "curves", "exposure"), order=_icl_order, dependencies=_no_dependencies,
                   checkpoint_every=1000, spec_key=_icl_spec_key)


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
    model.load_state_dict(stack_states(states))
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

    :func:`jointtask_lib.paper_b.icl.retrospective_scores` averaged over all prompts; the attention maps
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
#: least squares already is one): see :func:`jointtask_lib.paper_b.icl.baselines_for`.
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

    * ``levels``: :func:`jointtask_lib.paper_b.icl.reference_levels` (divided by d) -- exact where closed
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
# Summary statistics of error curves (the snapshots use them; the claims in section.py too)
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


__all__ = [
    "PAPER_TASKS", "EVAL_SEED", "SNAPSHOT_SEED", "PROMPT_STREAM", "MAX_TRAIN_SEED", "prompt_generator",
    "ICLTrainConfig", "ICLRunSpec", "ICLRunResult", "ICLEvalConfig", "ICL_RUNS", "MASK_CONDITIONS",
    "snapshot_steps", "icl_optimiser", "train_icl_stack", "task_loss_curves", "rolling_mean", "icl_root", "load_icl_record",
    "load_icl_log", "load_icl_models", "train_or_load", "head_scores", "random_control_heads",
    "evaluate_stack", "evaluate_or_load", "BASELINES", "CORRECT_FITS", "fit_positions_default",
    "baseline_curves", "tail_error", "late_error",
]
