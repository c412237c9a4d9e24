"""Which sublayer does the work?  Norm ratios and ablations, per recurrence step.

Our model applies one shared block ``recurrence`` times (paper A: 4).  Each application (a *step*)
has two sublayers that write into the residual stream ``x``::

    x <- x + attn(ln1(x))        # attention: moves information between positions
    x <- x + mlp(ln2(x))         # feed-forward network (FFN): computes on each position alone

Paper A (v1) reports that a model trained on ADD alone relies more on its FFN while a jointly
trained model uses its attention more, measured by an "attention output/input ratio" that the
paper does not define (a reviewer asked for the definition).  We measure sublayer use in two
ways, both per step and per model.

1. **Norm ratio** (what the sublayer writes, relative to what is there)::

       ratio(step, kind) = mean over positions p of  ||out_p|| / ||x_p||

   where ``x_p`` is the residual stream entering the sublayer (before its LayerNorm) and
   ``out_p`` what the sublayer adds to it, Euclidean norms over the embedding axis.  The mean is
   over the examples' **scored positions**: from the first ``=`` to the token before ``e``, the
   positions whose next-token prediction is the chain of thought and the answer (the same
   positions the training loss uses; padding excluded).  Computed by
   :class:`jointtask_lib.model.Probe` on a teacher-forced forward pass.  A ratio says how much
   a sublayer *changes* the stream, not whether the change matters — hence:

2. **Ablation** (is the sublayer needed?): zero one sublayer's output at one step (the rest of
   the model untouched) and measure the accuracy again; the *drop* is baseline minus ablated
   accuracy.  Accuracy is ``gen_acc`` by default: the ablated model writes its own chain of
   thought, so a broken step can derail everything after it.

Summaries per model (:func:`reliance_summary`):

* ``attn_share`` = mean-over-steps attention ratio / (that + mean-over-steps FFN ratio): 0.5 means
  both sublayers write equally much, above 0.5 attention writes more;
* ``attn_minus_mlp_drop`` = mean over steps of (drop when attention is ablated − drop when the
  FFN is ablated): positive means the model depends more on its attention.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn as nn

from ..data import TaskData, Vocab
from ..model import GPT, Probe
from ..train import _stack_rows, evaluate_stack, target_mask

KINDS = ("attn", "mlp")

__all__ = ["KINDS", "Ablated", "sublayer_ratios", "evaluate_ablated", "ablation_accuracies", "reliance_summary",
           "all_sublayers", "drops_by_step"]


class Ablated(nn.Module):
    """A stacked :class:`GPT` whose sublayers ``ablate`` (``(step, layer, kind)`` triples) output
    zero; every other computation is unchanged.  Usable wherever a GPT is (``evaluate_stack``)."""

    def __init__(self, model: GPT, ablate: Iterable[tuple[int, int, str]]):
        super().__init__()
        self.model = model
        self.cfg = model.cfg
        self.n_models = model.n_models
        self.ablate = frozenset(_check_sites(model, ablate))

    def forward(self, idx: torch.Tensor, probe: Probe | None = None) -> torch.Tensor:
        """The wrapped model's forward pass with the sites zeroed.  A caller's ``probe`` records
        as usual (ratios, attention); its own ``ablate`` set is extended for this pass only and
        restored afterwards, so the caller's probe is left as it was given."""
        if probe is None:
            return self.model(idx, Probe(ablate=self.ablate))
        own = probe.ablate
        probe.ablate = set(own) | set(self.ablate)
        try:
            return self.model(idx, probe)
        finally:
            probe.ablate = own


def all_sublayers(model: GPT, kinds=KINDS) -> list[tuple[int, int, str]]:
    """Every ``(step, layer, kind)`` site of the model, in execution order."""
    c = model.cfg
    return [(s, l, k) for s in range(c.recurrence) for l in range(c.n_layers) for k in kinds]


def _check_sites(model: GPT, sites) -> list[tuple[int, int, str]]:
    c = model.cfg
    out = []
    for site in sites:
        try:
            s, l, k = site
        except (TypeError, ValueError):
            raise ValueError(f"an ablation site must be a (step, layer, kind) triple; got {site!r}") from None
        if k not in KINDS or not (0 <= int(s) < c.recurrence) or not (0 <= int(l) < c.n_layers):
            raise ValueError(
                f"ablation site {site!r} is out of range: step in 0..{c.recurrence - 1}, "
                f"layer in 0..{c.n_layers - 1}, kind in {KINDS}"
            )
        out.append((int(s), int(l), k))
    return out


@torch.no_grad()
def sublayer_ratios(model: GPT, datas: list[TaskData], *, limit: int | None = None,
                    batch_size: int = 256, ablate=()) -> np.ndarray:
    """Norm ratios ``[M, recurrence, n_layers, 2]`` (last axis: attention, FFN) of every model of
    the stack on its own data ``datas[i]`` (teacher-forced; see the module docstring).

    The mean over scored positions runs over all examples (up to ``limit`` per model), batches
    weighted by their number of positions.  ``ablate`` sites are zeroed while measuring.
    """
    if len(datas) != model.n_models:
        raise ValueError(f"'datas' must hold one dataset per model ({model.n_models}); got {len(datas)}")
    c = model.cfg
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    sizes = [len(d) if limit is None else min(limit, len(d)) for d in datas]
    if min(sizes) < 1:
        raise ValueError("every dataset in 'datas' must hold at least one example")
    pad = datas[0].vocab.pad_id
    num = torch.zeros(model.n_models, c.recurrence, c.n_layers, 2, dtype=torch.float64)
    den = torch.zeros(model.n_models, dtype=torch.float64)
    for start in range(0, max(sizes), batch_size):
        # A model whose data is exhausted repeats its last row with zero weight.
        rows = [torch.arange(start, start + batch_size).clamp(max=s - 1) for s in sizes]
        valid = torch.stack([(torch.arange(start, start + batch_size) < s) for s in sizes]).to(device)
        batch = _stack_rows(datas, rows, device)
        tokens = batch["tokens"]
        mask = target_mask(tokens, batch["prompt_len"], pad, "after_eq") & valid.unsqueeze(-1)
        probe = Probe(mask=mask, ablate=ablate)
        model(tokens[..., :-1], probe)
        n_pos = mask.sum((1, 2)).double().cpu()
        for (s, l, k), r in probe.ratios.items():
            num[:, s, l, KINDS.index(k)] += torch.nan_to_num(r.double().cpu()) * n_pos
        den += n_pos
    model.train(was)
    return (num / den.clamp_min(1).view(-1, 1, 1, 1)).numpy()


def evaluate_ablated(model: GPT, datas: list[TaskData], vocab: Vocab, max_len: int, ablate=(), **kw) -> list[dict]:
    """:func:`jointtask_lib.train.evaluate_stack` of the model with the sublayers ``ablate``
    zeroed (an empty ``ablate`` gives the ordinary evaluation)."""
    target = Ablated(model, ablate) if ablate else model
    return evaluate_stack(target, datas, vocab, max_len, **kw)


def ablation_accuracies(model: GPT, datas: list[TaskData], vocab: Vocab, max_len: int, *, op: str | None = None,
                        metric: str = "gen_acc", limit: int | None = None, kinds=KINDS,
                        batch_size: int = 512) -> dict:
    """Accuracy of every model with nothing ablated and with each single sublayer ablated.

    Returns ``{"baseline": [M], (step, layer, kind): [M], ...}`` (NumPy arrays): ``metric``
    (``gen_acc``, ``tf_acc`` or ``seq_acc``) over each model's examples, restricted to operation
    ``op`` when given (``per_op``).  One evaluation per site plus the baseline.
    """
    gen = metric in ("gen_acc", "cot_exact")

    def run(sites):
        res = evaluate_ablated(model, datas, vocab, max_len, sites, limit=limit, generate_cot=gen,
                               batch_size=batch_size)
        if op is None:
            return np.array([r[metric] for r in res])
        return np.array([r["per_op"][op][metric] if op in r["per_op"] else np.nan for r in res])

    out = {"baseline": run(())}
    for site in all_sublayers(model, kinds):
        out[site] = run([site])
    return out


def reliance_summary(ratios: np.ndarray, accs: dict | None = None) -> dict[str, np.ndarray]:
    """Per-model summaries (see the module docstring) from :func:`sublayer_ratios` and, if
    given, :func:`ablation_accuracies`.  Layers are averaged.  Returns arrays of length M:
    ``attn_ratio``, ``mlp_ratio``, ``attn_share`` and, with ``accs``, ``attn_drop``,
    ``mlp_drop`` (mean over steps) and ``attn_minus_mlp_drop``."""
    r = np.asarray(ratios, float)
    if r.ndim != 4 or r.shape[-1] != 2:
        raise ValueError(f"'ratios' must have shape [M, steps, layers, 2]; got {r.shape}")
    attn = r[..., 0].mean((1, 2))
    mlp = r[..., 1].mean((1, 2))
    out = {"attn_ratio": attn, "mlp_ratio": mlp, "attn_share": attn / np.maximum(attn + mlp, 1e-12)}
    if accs is not None:
        base = np.asarray(accs["baseline"], float)
        drops = {k: [] for k in KINDS}
        for site, a in accs.items():
            if site == "baseline":
                continue
            drops[site[2]].append(base - np.asarray(a, float))
        for k in KINDS:
            out[f"{k}_drop"] = np.mean(drops[k], axis=0) if drops[k] else np.full_like(base, np.nan)
        out["attn_minus_mlp_drop"] = out["attn_drop"] - out["mlp_drop"]
    return out


def drops_by_step(accs: dict, n_steps: int, layer: int = 0) -> dict[str, np.ndarray]:
    """``{"attn": [M, steps], "mlp": [M, steps]}``: accuracy drop per step for one layer."""
    base = np.asarray(accs["baseline"], float)
    return {k: np.stack([base - np.asarray(accs[(s, layer, k)], float) for s in range(n_steps)], axis=1)
            for k in KINDS}
