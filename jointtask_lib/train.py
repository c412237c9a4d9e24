"""Training and evaluation of stacks of models.

What is trained
---------------
A :class:`RunSpec` says everything that defines one trained model: the task mix
(:class:`~jointtask_lib.tasks.TaskConfig`), the architecture (:class:`Arch`), the optimisation
recipe (:class:`TrainConfig`) and the seed.  Its :meth:`RunSpec.key` (a hash of all of it) names
the run on disk and keys the run cache.

How it is trained
-----------------
Runs that share a width and a recipe are trained **together** as one stack (see
:mod:`jointtask_lib.model`): one forward/backward pass for all M models, the loss being the *sum*
of the per-model mean losses (so every model's gradient is exactly what it would be alone),
gradient clipping computed per model, and an AdamW applied elementwise (identical to training each
model alone).  Each model keeps its own data, its own initialisation seed and its own stream of
mini-batches.  A model that has finished (see *early stopping*) is removed from the stack, so it
stops costing compute.  The loop itself (steps, removing finished models, checkpoint/resume,
progress, timing) is :class:`StackEngine`, which paper B's trainer
(:func:`jointtask_lib.paper_b.icl_train.train_icl_stack`) uses too.

* The step (``TrainConfig.step``): ``"fast"`` (default) computes the loss and its gradients by
  hand and updates one flat parameter buffer (:mod:`jointtask_lib.fast_step`); ``"reference"`` is
  autograd on :class:`~jointtask_lib.model.GPT` + :func:`clip_per_model` + :class:`StackedAdamW`.
  Both compute the same function (tests: gradients equal to 1e-12 in float64); they differ by
  float rounding, which grows over thousands of steps (final accuracies then differ by about as
  much as between seeds: tests/test_fast_step.py), so the
  choice is part of the run's key (a cached run is only reused by the step that trained it).
* Loss: next-token cross-entropy on the tokens after the first ``=`` (the CoT and the answer and
  ``e``; ``loss_on="full"`` trains on the whole sequence).
* Optimiser: AdamW, linear warm-up then cosine decay to ``min_lr_frac * lr``.

Evaluation (exact definitions)
------------------------------
* ``gen_acc`` — **final-answer accuracy with the model generating its own CoT**: the model is
  given the expression and the first ``=`` and decodes greedily until it emits ``e`` (or reaches
  the longest possible example length).  Its answer is the token right after the last ``=`` it
  generated, and must be directly followed by ``e``.  Correct iff that token is the true answer.
  This is the honest measure, reported in every table.
* ``tf_acc`` — teacher-forced answer accuracy: given the true sequence up to the final ``=``, is
  the arg-max prediction the true answer?
* ``seq_acc`` — teacher-forced exact match: every token after the first ``=`` is predicted
  correctly given the true prefix.  If it holds, greedy generation reproduces the whole true
  CoT, so ``seq_acc`` is a lower bound on ``gen_acc``; it costs one forward pass, so it is what the
  training curves and early stopping use.
* ``cot_exact`` — the generated sequence equals the true one token for token.
* ``per_op`` — ``gen_acc``, ``tf_acc`` restricted to the examples of each operation of the mix.

Early stopping (``early_stop=True``; a documented rule, turn it off to train the full budget)
---------------------------------------------------------------------------------------------
Every ``eval_every`` steps ``seq_acc`` is measured on ``eval_size`` *validation* examples
(:func:`jointtask_lib.data.make_validation`: expressions in neither the training nor the test
set, so stopping never looks at the test set that the final metrics use).  A model stops
when (a) *converged*: ``seq_acc >= converge_acc`` at two consecutive evaluations, or (b) *at
chance*: at least ``min_frac`` of the step budget is spent and at every evaluation of the last
``patience_frac`` of the budget the teacher-forced answer accuracy ``tf_acc`` stayed within
``max(chance_margin, 3 standard errors)`` of the chance level — the frequency of the most common
answer among the validation examples evaluated (the best constant guess: about 1/n for ADD mod
n on a varied set, more for MAX, and more on a small validation part with repeated expressions —
0.14-0.21 for ADD at the quick configuration), the standard error that of a proportion at that
level over those examples.  A model that has not even learned the last reduction step after
half its budget has clearly failed at this size.  A model that has learned *something* is never
stopped before its budget: a run whose ``seq_acc`` sat flat at 0.74 from step 2,750 to 4,750 of
5,000 reached 0.996 at step 5,000, the end of its cosine schedule (``benchmarks/README.md``), so
stopping on any plateau would move the learning transitions.  ``min_frac = 1`` turns rule (b) off.  Rule (b) can still
stop a model that would have "grokked" after a long time at chance; the learning-transition
notebooks state the budget they used.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F

from .data import TaskData, Vocab, make_datasets, make_validation, max_example_length
from .fast_step import FastStep
from .model import GPT, ModelConfig, count_params
from .model import slice_state, stack_states
from .records import DIVERGED
from .tasks import TaskConfig
from .schema import ARCH, RUN, TRAIN, check_fields, check_heads
from .validate import MAX_EXAMPLES, MAX_SEED, check_choice  # noqa: F401 (MAX_EXAMPLES, MAX_SEED re-exported)

# Bump when the meaning of a stored run changes (invalidates the cache).  History: 4 = the key also
# holds the vocabulary and the context length (issue 13): adding an operation to a family's registry
# changes every vocabulary of that family, hence every weight shape, and must not reuse old runs.
RUN_FORMAT = 4


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arch:
    """Architecture hyper-parameters (the vocabulary and context length come from the task)."""

    n_embed: int = 32
    n_heads: int = 1
    recurrence: int = 4
    n_layers: int = 1
    mlp_ratio: int = 4
    tie_weights: bool = False

    def __post_init__(self):
        check_fields(self, ARCH)  # the bounds of jointtask_lib.schema, checked once
        check_heads(self.n_embed, self.n_heads)

    def model_config(self, vocab_size: int, block_size: int) -> ModelConfig:
        return ModelConfig(vocab_size=vocab_size, block_size=block_size, **asdict(self))


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup: int = 100
    min_lr_frac: float = 0.1
    grad_clip: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    loss_on: str = "after_eq"
    n_train: int | None = None
    n_test: int | None = None
    data_seed: int | None = None  # None: use the run's seed
    eval_every: int = 250
    eval_size: int = 256
    early_stop: bool = True
    converge_acc: float = 0.99
    min_frac: float = 0.5
    patience_frac: float = 0.3
    chance_margin: float = 0.05
    step: str = "fast"  # "fast": jointtask_lib.fast_step; "reference": autograd + StackedAdamW

    def __post_init__(self):
        check_fields(self, TRAIN)  # the bounds of jointtask_lib.schema


def _from_dict(cls, d: dict, where: str):
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(known))}"
        )
    return cls(**d)


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one trained model.

    ``init`` (optional) is another run whose trained weights initialise this one — pretraining
    (e.g. MAX+MED, then ADD).  It must have the same model shape (architecture, vocabulary and
    context length); it is part of this run's identity (and hash) and is trained first, through
    the run cache, if it has no record yet.
    """

    task: TaskConfig
    arch: Arch = Arch()
    train: TrainConfig = TrainConfig()
    seed: int = 0
    init: "RunSpec | None" = None

    def __post_init__(self):
        check_fields(self, RUN)
        if self.init is not None:
            if not isinstance(self.init, RunSpec):
                raise ValueError(f"'init' must be a RunSpec or None; got {type(self.init).__name__}")
            if self.init.model_config() != self.model_config():
                raise ValueError(
                    "'init' must have the same model shape (arch, vocabulary, context length) as the run; "
                    f"got {self.init.model_config()} vs {self.model_config()}"
                )

    def to_dict(self) -> dict:
        d = {"task": self.task.to_dict(), "arch": asdict(self.arch), "train": asdict(self.train),
             "seed": self.seed}
        if self.init is not None:  # absent when None, so keys of runs without init never change
            d["init"] = self.init.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        unknown = set(d) - {"task", "arch", "train", "seed", "init"}
        if unknown:
            raise ValueError(
                f"unknown run field(s) {', '.join(sorted(unknown))}; allowed: task, arch, train, seed, init"
            )
        return cls(
            task=TaskConfig.from_dict(d["task"]),
            arch=_from_dict(Arch, d.get("arch", {}), "arch"),
            train=_from_dict(TrainConfig, d.get("train", {}), "train"),
            seed=d.get("seed", 0),
            init=None if d.get("init") is None else RunSpec.from_dict(d["init"]),
        )

    def key(self) -> str:
        """Stable hash of everything that shapes the run (names the run; keys the cache): the
        resolved configuration, and what the task registry derives from it — the vocabulary (every
        operation of the family has a token, so one more registry entry changes it) and the
        context length.  ``init`` contributes its own configuration (and so its vocabulary)."""
        blob = json.dumps({"format": RUN_FORMAT, **self.to_dict(), "vocab": self.vocab().tokens,
                           "block_size": max_example_length(self.task)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def name(self) -> str:
        ops = "+".join(self.task.ops)
        size = self.task.task_family.tag(self.task.size)
        return f"{ops}_{size}_d{self.arch.n_embed}_s{self.seed}_{self.key()[:8]}"

    def vocab(self) -> Vocab:
        return Vocab.for_task(self.task)

    def model_config(self) -> ModelConfig:
        return self.arch.model_config(len(self.vocab()), max_example_length(self.task))

    def n_params(self) -> int:
        return count_params(self.model_config())

    def data_seed(self) -> int:
        return self.seed if self.train.data_seed is None else self.train.data_seed

    def data(self) -> tuple[TaskData, TaskData]:
        return make_datasets(self.task, self.train.n_train, self.train.n_test, self.data_seed())

    def validation(self) -> TaskData:
        """The ``eval_size`` examples early stopping and the training curves are measured on."""
        return make_validation(self.task, self.train.eval_size, self.data_seed(), self.train.n_test)

    def group_key(self) -> str:
        """Runs with equal group keys can be trained in one stack.  The data seed is not part of it:
        every model of a stack draws its own data (``data_seeds: per_run`` gives every run its own
        seed, and those runs must still share stacks)."""
        train = asdict(self.train)
        train.pop("data_seed")
        blob = json.dumps([asdict(self.arch), train, self.vocab().tokens,
                           max_example_length(self.task)], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resolve_device(device: str = "auto") -> torch.device:
    check_choice("device", device, ("auto", "cpu", "cuda"))
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("'device' = 'cuda' but no CUDA device is available; allowed here: auto, cpu")
    return torch.device(device)


# ------------------------------------------------------------------------------------------------
# Optimiser: AdamW over stacked parameters, with per-model gradient clipping and model removal
# ------------------------------------------------------------------------------------------------


class StackedAdamW:
    """AdamW on parameters whose first axis indexes models (same update as ``torch.optim.AdamW``).

    The update is elementwise, so model i's trajectory is independent of the others.  Weight
    decay applies to matrices (embeddings, weights), not to biases and LayerNorm gains.
    """

    def __init__(self, params, lr, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.0):
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.decay = [p.dim() >= 3 for p in self.params]
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    @torch.no_grad()
    def step(self, lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        b1, b2 = self.betas
        self.t += 1
        bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
        for p, m, v, decay in zip(self.params, self.exp_avg, self.exp_avg_sq, self.decay):
            g = p.grad
            if decay and self.weight_decay:
                p.mul_(1 - lr * self.weight_decay)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(bc2)).add_(self.eps)
            p.addcdiv_(m, denom, value=-lr / bc1)

    def keep(self, idx: torch.Tensor) -> None:
        """Keep only the models ``idx`` (the parameters must be sliced the same way)."""
        self.exp_avg = [m[idx].contiguous() for m in self.exp_avg]
        self.exp_avg_sq = [v[idx].contiguous() for v in self.exp_avg_sq]

    def state(self) -> dict:
        return {"t": self.t, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def load(self, state: dict) -> None:
        self.t = int(state["t"])
        self.exp_avg = [t.clone() for t in state["exp_avg"]]
        self.exp_avg_sq = [t.clone() for t in state["exp_avg_sq"]]


@torch.no_grad()
def clip_per_model(params, max_norm: float) -> torch.Tensor:
    """Scale each model's gradient so its global norm is at most ``max_norm``; returns the norms."""
    norms = torch.stack([p.grad.pow(2).flatten(1).sum(1) for p in params]).sum(0).sqrt()
    if max_norm > 0:
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for p in params:
            p.grad.mul_(scale.view(-1, *([1] * (p.dim() - 1))))
    return norms


def autograd_step(losses: torch.Tensor, opt: StackedAdamW, grad_clip: float, lr: float) -> torch.Tensor:
    """The reference step's update, given the per-model losses ``[M]`` of a stack: backward of
    their sum (so each model's gradient is exactly its own), per-model clipping when
    ``grad_clip > 0`` (:func:`clip_per_model`), then ``opt.step(lr)``.  Returns the losses, detached.
    Paper A's and paper B's reference steps and the throughput benchmark all update through here."""
    for p in opt.params:
        p.grad = None
    losses.sum().backward()
    if grad_clip > 0:
        clip_per_model(opt.params, grad_clip)
    opt.step(lr)
    return losses.detach()


def stack_optimiser(model: GPT, cfg: TrainConfig, pad_id: int):
    """``(opt, train_step)`` for the recipe ``cfg`` (its ``step``: ``"fast"`` or ``"reference"``):
    the optimiser (:class:`~jointtask_lib.fast_step.FastStep` or :class:`StackedAdamW`; its
    ``state()``/``load()`` is what checkpoints hold) and ``train_step(tokens, prompt_len, lr)``, one
    training step of the whole stack on ``[M, B, T]`` tokens (loss on ``cfg.loss_on``, per-model
    clipping at ``cfg.grad_clip``, AdamW at ``lr``) returning the per-model losses ``[M]``.

    This is the step :func:`train_stack` trains with, and what ``benchmarks/train_throughput.py``
    times (paper B's counterpart: :func:`jointtask_lib.paper_b.icl_train.icl_optimiser`)."""
    if cfg.step == "fast":
        opt = FastStep(model, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay,
                       grad_clip=cfg.grad_clip)

        def fast_step(tokens, prompt_len, lr):
            return opt.train_step(tokens, target_mask(tokens, prompt_len, pad_id, cfg.loss_on), lr)

        return opt, fast_step
    opt = StackedAdamW(list(model.parameters()), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                       weight_decay=cfg.weight_decay)

    def reference_step(tokens, prompt_len, lr):
        return autograd_step(per_model_loss(model, tokens, prompt_len, pad_id, cfg.loss_on), opt, cfg.grad_clip, lr)

    return opt, reference_step


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr`` then cosine decay to ``min_lr_frac * lr`` at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    span = max(1, cfg.steps - cfg.warmup)
    frac = min(1.0, (step - cfg.warmup) / span)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * frac)))


# ------------------------------------------------------------------------------------------------
# Loss and evaluation
# ------------------------------------------------------------------------------------------------


def target_mask(tokens: torch.Tensor, prompt_len: torch.Tensor, pad_id: int, loss_on: str) -> torch.Tensor:
    """Which next-token targets count: ``[M, B, T-1]`` for inputs ``tokens[..., :-1]``."""
    targets = tokens[..., 1:]
    mask = targets != pad_id
    if loss_on == "after_eq":
        pos = torch.arange(1, tokens.shape[-1], device=tokens.device)
        mask &= pos >= prompt_len.unsqueeze(-1)
    return mask


def per_model_loss(model: GPT, tokens, prompt_len, pad_id: int, loss_on: str) -> torch.Tensor:
    """Mean next-token loss of each model on its own batch: ``[M]``."""
    logits = model(tokens[..., :-1])
    targets = tokens[..., 1:]
    mask = target_mask(tokens, prompt_len, pad_id, loss_on)
    ce = F.cross_entropy(logits.flatten(0, 2), targets.flatten(), reduction="none").view(targets.shape)
    return (ce * mask).sum((1, 2)) / mask.sum((1, 2)).clamp_min(1)


def _stack_rows(datas: list[TaskData], rows: list[torch.Tensor], device) -> dict:
    """Gather rows of each model's data into ``[M, B, ...]`` tensors, cropped to the longest."""
    length = max(int(d.lengths[r].max()) for d, r in zip(datas, rows))
    return {
        "tokens": torch.stack([
            F.pad(d.tokens[r, :length], (0, length - min(length, d.tokens.shape[1])), value=d.vocab.pad_id)
            for d, r in zip(datas, rows)
        ]).to(device),
        "prompt_len": torch.stack([d.prompt_len[r] for d, r in zip(datas, rows)]).to(device),
        "lengths": torch.stack([d.lengths[r] for d, r in zip(datas, rows)]).to(device),
        "answer": torch.stack([d.answer[r] for d, r in zip(datas, rows)]).to(device),
    }


@torch.no_grad()
def teacher_forced(model: GPT, batch: dict, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: (answer correct given the true prefix, every target after '=' correct)."""
    tokens = batch["tokens"]
    logits = model(tokens[..., :-1])
    pred = logits.argmax(-1)
    targets = tokens[..., 1:]
    mask = target_mask(tokens, batch["prompt_len"], pad_id, "after_eq")
    seq_ok = ((pred == targets) | ~mask).all(-1)
    ans_pos = (batch["lengths"] - 3).clamp_min(0)  # logits at len-3 predict the answer at len-2
    ans_pred = pred.gather(-1, ans_pos.unsqueeze(-1)).squeeze(-1)
    return ans_pred == batch["answer"], seq_ok


@torch.no_grad()
def generate(model: GPT, batch: dict, vocab: Vocab, max_len: int) -> torch.Tensor:
    """Greedy decoding from each prompt (expression + first '=') until 'e' or ``max_len``."""
    m, b = batch["prompt_len"].shape
    dev = batch["tokens"].device
    buf = torch.full((m, b, max_len), vocab.pad_id, dtype=torch.long, device=dev)
    plen = batch["prompt_len"]
    pos = torch.arange(batch["tokens"].shape[-1], device=dev)
    prompt = torch.where(pos < plen.unsqueeze(-1), batch["tokens"], torch.full_like(batch["tokens"], vocab.pad_id))
    width = min(max_len, prompt.shape[-1])
    buf[..., :width] = prompt[..., :width]
    cur = plen.clone()
    done = torch.zeros(m, b, dtype=torch.bool, device=dev)
    while True:
        active = ~done & (cur < max_len)
        if not bool(active.any()):
            break
        t = int(cur[active].max())
        logits = model(buf[..., :t])
        nxt = logits.gather(2, (cur - 1).clamp(max=t - 1).view(m, b, 1, 1).expand(m, b, 1, logits.shape[-1]))
        nxt = nxt.squeeze(2).argmax(-1)
        write = active
        idx = cur.clamp(max=max_len - 1)
        cur_vals = buf.gather(2, idx.unsqueeze(-1)).squeeze(-1)
        buf.scatter_(2, idx.unsqueeze(-1), torch.where(write, nxt, cur_vals).unsqueeze(-1))
        done |= write & (nxt == vocab.end_id)
        cur = cur + write.long()
    return buf


def generated_answers(seq: torch.Tensor, prompt_len: torch.Tensor, vocab: Vocab) -> torch.Tensor:
    """The token after the last '=' before the first generated 'e' (``-1`` if malformed)."""
    t = seq.shape[-1]
    pos = torch.arange(t, device=seq.device)
    gen = pos >= prompt_len.unsqueeze(-1)
    is_e = (seq == vocab.end_id) & gen
    has_e = is_e.any(-1)
    first_e = torch.where(is_e, pos, torch.full_like(seq, t)).min(-1).values
    is_eq = (seq == vocab.eq_id) & (pos < first_e.unsqueeze(-1))
    last_eq = torch.where(is_eq, pos, torch.full_like(seq, -1)).max(-1).values
    ok = has_e & (last_eq + 2 == first_e)
    ans = seq.gather(-1, (last_eq + 1).clamp(0, t - 1).unsqueeze(-1)).squeeze(-1)
    return torch.where(ok, ans, torch.full_like(ans, -1))


@torch.no_grad()
def evaluate_stack(
    model: GPT,
    datas: list[TaskData],
    vocab: Vocab,
    max_len: int,
    *,
    limit: int | None = None,
    generate_cot: bool = True,
    batch_size: int = 512,
    device=None,
) -> list[dict]:
    """Metrics (see the module docstring) of model i on ``datas[i]`` for every model of the stack."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    sizes = [len(d) if limit is None else min(limit, len(d)) for d in datas]
    n = max(sizes)
    acc = {k: [[] for _ in datas] for k in ("gen", "tf", "seq", "cot")}
    for start in range(0, n, batch_size):
        rows = [torch.arange(start, min(start + batch_size, n)).clamp(max=s - 1) for s in sizes]
        batch = _stack_rows(datas, rows, device)
        tf, seq = teacher_forced(model, batch, vocab.pad_id)
        if generate_cot:
            out = generate(model, batch, vocab, max_len)
            gen = generated_answers(out, batch["prompt_len"], vocab) == batch["answer"]
            ref = torch.full_like(out, vocab.pad_id)
            ref[..., : batch["tokens"].shape[-1]] = batch["tokens"][..., :max_len]
            cot = (out == ref).all(-1)
        for i, s in enumerate(sizes):
            valid = slice(0, max(0, min(batch_size, s - start)))
            acc["tf"][i].append(tf[i, valid].cpu())
            acc["seq"][i].append(seq[i, valid].cpu())
            if generate_cot:
                acc["gen"][i].append(gen[i, valid].cpu())
                acc["cot"][i].append(cot[i, valid].cpu())
    model.train(was_training)
    results = []
    for i, d in enumerate(datas):
        r = {}
        cat = {k: torch.cat(v[i]).float() for k, v in acc.items() if v[i]}
        names = {"gen": "gen_acc", "tf": "tf_acc", "seq": "seq_acc", "cot": "cot_exact"}
        for k, v in cat.items():
            r[names[k]] = float(v.mean())
        task_id = d.task_id[: sizes[i]]
        per_op = {}
        for j, op in enumerate(d.task.ops):
            sel = task_id == j
            if bool(sel.any()):
                per_op[op] = {names[k]: float(v[sel].mean()) for k, v in cat.items() if k in ("gen", "tf", "seq")}
                per_op[op]["n"] = int(sel.sum())
        r["per_op"] = per_op
        r["n_eval"] = sizes[i]
        results.append(r)
    return results


# ------------------------------------------------------------------------------------------------
# The training loop
# ------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    spec: RunSpec
    state: dict  # the model's parameters as an M=1 state dict
    curve: list[dict]
    metrics: dict
    steps_trained: int
    stop_reason: str
    train_seconds: float


# DIVERGED (from records): the ``stop_reason`` of a run whose training loss became NaN or infinite: it
# stops at that step and its record says so (never "budget"/"converged"); tables show it as diverged.


def chance_level(data: TaskData, limit: int | None = None) -> float:
    """Accuracy of the best constant guess: the frequency of the most common answer among the
    first ``limit`` examples of ``data`` (all of them by default)."""
    ans = data.answer[:limit] if limit is not None else data.answer
    if len(ans) == 0:
        return 0.0
    return float(torch.bincount(ans).max()) / len(ans)


def _should_stop(curve: list[dict], step: int, cfg: TrainConfig, chance: float = 0.0,
                 n_eval: int | None = None) -> str | None:
    """The early-stopping rule of the module docstring: ``"converged"``, ``"at_chance"`` or None.

    ``chance``: the run's chance level (:func:`chance_level` of its validation examples);
    ``n_eval``: how many examples each evaluation used (default ``cfg.eval_size``).
    """
    if not cfg.early_stop or len(curve) < 2:
        return None
    if curve[-1]["seq_acc"] >= cfg.converge_acc and curve[-2]["seq_acc"] >= cfg.converge_acc:
        return "converged"
    if step >= cfg.min_frac * cfg.steps:
        window_start = step - cfg.patience_frac * cfg.steps
        window = [c["tf_acc"] for c in curve if c["step"] > window_start]
        if len(window) >= 2:
            n = n_eval or cfg.eval_size
            se = math.sqrt(chance * (1.0 - chance) / n)
            if max(window) <= chance + max(cfg.chance_margin, 3.0 * se):
                return "at_chance"
    return None


def _batch_generators(specs: list[RunSpec]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(1_000_003 * s.seed + 7) for s in specs]


class StackEngine:
    """The one loop that trains a stack of models (paper A's :func:`train_stack`, paper B's
    :func:`jointtask_lib.paper_b.icl_train.train_icl_stack`): steps, dropping finished models,
    checkpoint/resume, progress and timing.  What a step trains on and what happens after it are
    the trainer's (:meth:`run`'s ``draw``, ``step`` and ``after_step``).

    ``active`` lists the runs still in the stack (indices into the trainer's runs, in stack
    order); :meth:`drop` removes models from the stack (their state goes to ``finished``) and the
    optimiser state with them (``StackedAdamW`` or :class:`~jointtask_lib.fast_step.FastStep`).
    A checkpoint (:func:`jointtask_lib.checkpoints.save_stack_checkpoint`) holds the parameters,
    the optimiser state (``StackedAdamW.state()``'s format for both steps), the random streams,
    ``active``, ``finished``, the step, the wall and CPU seconds so far, and the trainer's
    ``extra`` entries; :meth:`resume` restores all of it, so a resumed stack gives the same result
    as an uninterrupted one.
    """

    def __init__(self, model, opt, gens: list[torch.Generator], keys: list[str]):
        self.model, self.opt, self.gens, self.keys = model, opt, gens, list(keys)
        self.active = list(range(len(keys)))
        self.finished: dict[int, dict] = {}
        self.elapsed = 0.0  # wall and CPU seconds of earlier sessions (resume)
        self.cpu = 0.0
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def drop(self, positions) -> None:
        """Remove the models at stack ``positions`` (their state is kept in ``finished``)."""
        gone = set(positions)
        for j in gone:
            self.finished[self.active[j]] = slice_state(self.model, j)
        keep = [j for j in range(len(self.active)) if j not in gone]
        self.active = [self.active[j] for j in keep]
        if self.active:
            _select(self.model, self.opt, torch.tensor(keep, dtype=torch.long))

    def wall_seconds(self) -> float:
        return self.elapsed + time.perf_counter() - self._t0

    def cpu_seconds(self) -> float:
        """CPU time of this process (all its threads) while training, resumed sessions included."""
        return self.cpu + time.process_time() - self._c0

    def save(self, path, step: int, **extra) -> None:
        from .checkpoints import save_stack_checkpoint  # the storage layer (bottom floor)

        save_stack_checkpoint(path, self.keys, step, self.model, self.opt, self.gens, active=self.active,
                              finished=self.finished, elapsed=self.wall_seconds(), cpu=self.cpu_seconds(), **extra)

    def resume(self, path) -> dict | None:
        """Restore the checkpoint at ``path`` if it is of these runs; returns it (the trainer reads
        its ``step`` and ``extra`` entries) or ``None`` (nothing touched)."""
        from .checkpoints import load_checkpoint

        ck = load_checkpoint(path, self.keys) if path else None
        if ck is None:
            return None
        self.active = list(ck["active"]) if "active" in ck else list(range(len(self.keys)))
        _select(self.model, self.opt, torch.tensor(self.active, dtype=torch.long))
        self.model.load_state_dict(ck["model"])
        self.opt.load(ck["opt"])
        for g, st in zip(self.gens, ck["gens"]):
            g.set_state(st)
        self.finished = {int(k): v for k, v in ck.get("finished", {}).items()}
        self.elapsed, self.cpu = float(ck["elapsed"]), float(ck.get("cpu", 0.0))
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        return ck

    def run(self, start: int, steps: int, *, draw, step, after_step=None, progress: bool = False, desc: str = "",
            checkpoint_path=None, checkpoint_every: int = 500, extra=None) -> None:
        """Train from ``start`` to ``steps`` (or until no model is left).

        Per step: ``batch = draw(i, active)``, ``losses = step(batch, i)`` (per-model losses of
        the stack, ``[len(active)]``), ``after_step(i, losses)`` (may call :meth:`drop`); every
        ``checkpoint_every`` steps (not after the last) a checkpoint with ``extra()``'s entries.
        """
        self.model.train()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, initial=start, desc=desc, leave=False)
        for i in range(start, steps):
            if not self.active:
                break
            losses = step(draw(i, self.active), i)
            if bar is not None:
                bar.update(1)
            if after_step is not None:
                after_step(i, losses)
            if not self.active:
                break
            if checkpoint_path and (i + 1) % checkpoint_every == 0 and i + 1 < steps:
                self.save(checkpoint_path, i + 1, **(extra() if extra is not None else {}))
        if bar is not None:
            bar.close()

    def states(self) -> list[dict]:
        """Every run's final state (M=1 state dicts, in run order); call after :meth:`run`."""
        for j, i in enumerate(self.active):
            self.finished[i] = slice_state(self.model, j)
        return [self.finished[i] for i in range(len(self.keys))]


def train_stack(
    specs: list[RunSpec],
    *,
    device: str = "auto",
    progress: bool = True,
    checkpoint_path=None,
    checkpoint_every: int = 500,
    final_eval: bool = True,
    init_states: list[dict | None] | None = None,
) -> list[RunResult]:
    """Train the runs ``specs`` (one group: equal :meth:`RunSpec.group_key`) as one stack.

    ``init_states[i]`` (an M=1 state dict, or ``None``) replaces run i's random initialisation
    (pretraining; see :attr:`RunSpec.init`).  With ``checkpoint_path``, the stack's full state (parameters, optimiser, mini-batch streams,
    curves, finished models) is saved there atomically every ``checkpoint_every`` steps and a
    later call with the same specs resumes from it, giving the same result as an uninterrupted
    run.
    """
    if not specs:
        return []
    keys = {s.group_key() for s in specs}
    if len(keys) != 1:
        raise ValueError("'specs' must share architecture, training recipe and vocabulary (one group)")
    dev = resolve_device(device)
    cfg = specs[0].train
    mcfg = specs[0].model_config()
    vocab = specs[0].vocab()
    max_len = mcfg.block_size
    datas = [s.data() for s in specs]
    trains = [d[0] for d in datas]
    tests = [d[1] for d in datas]
    m_all = len(specs)

    model = GPT(mcfg, m_all, seeds=[s.seed for s in specs])
    if init_states is not None:
        if len(init_states) != m_all:
            raise ValueError(f"'init_states' must have one entry per run ({m_all}); got {len(init_states)}")
        with torch.no_grad():
            for name, p in model.named_parameters():
                for i, st in enumerate(init_states):
                    if st is not None:
                        p[i].copy_(st[name][0])
    model = model.to(dev)
    opt, one_step = stack_optimiser(model, cfg, vocab.pad_id)
    gens = _batch_generators(specs)
    engine = StackEngine(model, opt, gens, [s.key() for s in specs])
    curves: list[list[dict]] = [[] for _ in specs]
    stop_reason = ["budget"] * m_all
    steps_done = [cfg.steps] * m_all
    loss_sum = torch.zeros(m_all)
    loss_n = 0
    start_step = 0

    ck = engine.resume(checkpoint_path)
    if ck is not None:
        curves = json.loads(ck["curves"])
        stop_reason = list(ck["stop_reason"])
        steps_done = list(ck["steps_done"])
        loss_sum = ck["loss_sum"].clone()
        loss_n = int(ck["loss_n"])
        start_step = int(ck["step"])

    eval_sets = [s.validation() for s in specs]
    chances = [chance_level(e, cfg.eval_size) for e in eval_sets]
    n_evals = [min(len(e), cfg.eval_size) for e in eval_sets]

    def draw(step, active):
        rows = [torch.randint(len(trains[i]), (cfg.batch_size,), generator=gens[i]) for i in active]
        return _stack_rows([trains[i] for i in active], rows, dev)

    def train_step(batch, step):
        return one_step(batch["tokens"], batch["prompt_len"], lr_at(step, cfg))

    def after_step(step, losses):
        nonlocal loss_n
        active = engine.active
        loss_sum[active] += losses.detach().cpu()
        loss_n += 1
        if not bool(torch.isfinite(losses.detach()).all()):  # diverged: stop those runs, say so
            bad = [j for j, i in enumerate(active) if not math.isfinite(float(losses[j].detach()))]
            for j in bad:
                stop_reason[active[j]], steps_done[active[j]] = DIVERGED, step + 1
            engine.drop(bad)
            if not engine.active:
                return
        active = engine.active
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            res = evaluate_stack(engine.model, [eval_sets[i] for i in active], vocab, max_len,
                                 limit=cfg.eval_size, generate_cot=False)
            stop_now = []
            for j, i in enumerate(active):
                curves[i].append({"step": step + 1, "train_loss": float(loss_sum[i]) / max(1, loss_n),
                                  "seq_acc": res[j]["seq_acc"], "tf_acc": res[j]["tf_acc"]})
                why = _should_stop(curves[i], step + 1, cfg, chances[i], n_evals[i])
                if why is not None and step + 1 < cfg.steps:
                    stop_now.append((j, i, why))
            loss_sum.zero_()
            loss_n = 0
            for j, i, why in stop_now:
                stop_reason[i], steps_done[i] = why, step + 1
            if stop_now:
                engine.drop([j for j, _, _ in stop_now])

    def extra():
        return {"curves": json.dumps(curves), "stop_reason": stop_reason, "steps_done": steps_done,
                "loss_sum": loss_sum, "loss_n": loss_n}

    engine.run(start_step, cfg.steps, draw=draw, step=train_step, after_step=after_step, progress=progress,
               desc=f"d={mcfg.n_embed} M={m_all}", checkpoint_path=checkpoint_path,
               checkpoint_every=checkpoint_every, extra=extra)
    finished = dict(enumerate(engine.states()))
    train_seconds = engine.wall_seconds()

    # Final evaluation: all models, rebuilt as one stack, on their full test sets.
    full = GPT(mcfg, m_all).to(dev)
    full.load_state_dict(stack_states([finished[i] for i in range(m_all)]))
    metrics = evaluate_stack(full, tests, vocab, max_len, generate_cot=final_eval) if final_eval else [{}] * m_all
    return [
        RunResult(spec=s, state=finished[i], curve=curves[i], metrics=metrics[i],
                  steps_trained=steps_done[i], stop_reason=stop_reason[i], train_seconds=train_seconds)
        for i, s in enumerate(specs)
    ]


def _select(model: GPT, opt: "StackedAdamW | FastStep", keep: torch.Tensor) -> None:
    """Keep only the models ``keep`` of the stack (parameters and optimiser state)."""
    with torch.no_grad():
        for mod in model.modules():
            for name, p in list(mod.named_parameters(recurse=False)):
                setattr(mod, name, torch.nn.Parameter(p[keep.to(p.device)].contiguous()))
    model.n_models = len(keep)
    opt.params = list(model.parameters())
    opt.keep(keep)


def load_model(spec: RunSpec, state: dict, device: str = "cpu") -> GPT:
    """A single trained model (M=1) from its spec and state dict."""
    model = GPT(spec.model_config(), 1)
    model.load_state_dict(state)
    return model.to(resolve_device(device)).eval()


def stack_models(specs: list[RunSpec], states: list[dict], device: str = "cpu") -> GPT:
    """Several trained models of one group as one stack (for fast joint evaluation)."""
    model = GPT(specs[0].model_config(), len(specs))
    model.load_state_dict(stack_states(states))
    return model.to(resolve_device(device)).eval()


__all__ = [
    "Arch", "TrainConfig", "RunSpec", "RunResult", "StackedAdamW", "train_stack", "evaluate_stack",
    "generate", "generated_answers", "per_model_loss", "lr_at", "clip_per_model", "autograd_step",
    "stack_optimiser", "load_model",
    "stack_models", "resolve_device", "replace",
]
