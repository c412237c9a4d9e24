"""Paper B's in-context regression transformer, built from paper A's blocks, for stacks of models.

What the model reads and predicts
---------------------------------
A prompt is ``(x_1, y_1), ..., (x_N, y_N)`` with ``x_i`` in R^d and scalar ``y_i``.  As in Garg et
al. (2022) and Bhasin et al. (2024) the transformer sees **2N tokens**, interleaved

    x_1, y_1, x_2, y_2, ..., x_N, y_N

where each ``y_i`` is padded to a d-vector ``[y_i, 0, ..., 0]``.  A **linear read-in**
(``d -> n_embed``) maps every token to the residual stream, a learned position embedding is added,
the causal transformer (:class:`~jointtask_lib.model.Backbone`: ``n_layers`` pre-LN blocks of
``n_heads``-head attention and a 4x GELU MLP, applied once, then a final LayerNorm) mixes them, and
a **linear read-out** (``n_embed -> 1``) gives one number per token.  Only the outputs at the x
positions (``0, 2, 4, ...``) are used: the output at ``x_k`` predicts ``y_k`` from ``x_k`` and the
``k - 1`` pairs before it (causal attention cannot see ``y_k``).  Predictions are returned as
``[M, B, N]``, position ``k`` (0-based) having seen ``k`` in-context examples.

Differences from the paper's HuggingFace GPT-2 (kept deliberately small, listed so no one is
surprised): the q/k/v projection has no bias (see :class:`~jointtask_lib.model.SelfAttention`),
there is no (unused) token-embedding table, and dropout is absent (the paper sets it to 0 anyway).

Stacks of models
----------------
Every parameter has a leading **model axis** of size M (paper A's convention), so M models (seeds,
curricula, single-task models of one size) train as one program.  Model i is initialised from its
own generators: the backbone and the position embedding GPT-2 style
(:func:`~jointtask_lib.model.init_stacked`, seeded with ``seeds[i]``), the read-in and read-out
like PyTorch's default ``nn.Linear`` (uniform in ``+-1/sqrt(fan_in)``, weights and biases, from a
generator seeded with ``READ_IO_STREAM + seeds[i]``), as in Garg's code where they are plain
``nn.Linear`` layers outside the GPT-2 module.  So a model is identical whether built alone or in
a stack.

Random streams: torch's CPU generator (Mersenne Twister) keeps only the **low 32 bits** of a seed,
so ``manual_seed(s + 2**32)`` is ``manual_seed(s)`` again.  Every stream a run uses therefore gets
its own range of 32-bit seeds: training seeds are at most 999,999
(:data:`jointtask_lib.paper_b.icl_train.MAX_TRAIN_SEED`), evaluation prompts use seeds in ``[10**6,
2**30)``, the read-in/read-out initialisation ``READ_IO_STREAM + seed = 2**30 + seed`` and the
training prompts ``2**31 + seed`` (:data:`jointtask_lib.paper_b.icl_train.PROMPT_STREAM`).

Head masking
------------
``forward(..., head_mask=mask)`` zeroes the output of chosen heads *before* the attention output
projection (the head's slice of the concatenated head outputs).  That is what HuggingFace's
``head_mask`` (used by the paper) does: it multiplies the head's attention probabilities by 0, so
the head contributes nothing.  ``mask`` is ``[n_layers, n_heads]`` (same for every model) or
``[M, n_layers, n_heads]``, 1 = keep, 0 = remove (:func:`jointtask_lib.paper_b.icl.head_mask` builds one).
It is implemented with temporary forward pre-hooks on each block's ``attn.proj``, so paper A's
modules are used unchanged; it combines with a :class:`~jointtask_lib.model.Probe` (the probe
records the attention patterns, which masking does not change).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn

from ..model import Backbone, Linear, ModelConfig, Probe, count_params, init_stacked, slice_state
from ..schema import ARCH, ICL_PROMPT, check_fields, check_heads
from ..validate import check_int

#: ``ModelConfig`` needs a vocabulary size; the in-context model has no token table.
_NO_VOCAB = 2
#: Seed offset of the read-in/read-out initialisation stream (module docstring: random streams).
READ_IO_STREAM = 2**30


@dataclass(frozen=True)
class ICLConfig:
    """Shape of one in-context regression model (paper B's "standard": d=20, 100 points, 12/8/256)."""

    d: int = 5  # input dimension
    n_points: int = 20  # in-context pairs per prompt (2 * n_points tokens)
    n_embed: int = 64
    n_layers: int = 3
    n_heads: int = 2
    mlp_ratio: int = 4

    def __post_init__(self):
        # Bounds declared once in jointtask_lib.schema: the prompt's shape, and the backbone's
        # fields under the names paper A's models give them.
        check_fields(self, ICL_PROMPT)
        check_fields(self, ARCH, ["n_embed", "n_heads", "n_layers", "mlp_ratio"])
        check_heads(self.n_embed, self.n_heads)

    def model_config(self) -> ModelConfig:
        """The backbone's configuration: ``n_layers`` distinct blocks applied once (GPT-2 style)."""
        return ModelConfig(vocab_size=_NO_VOCAB, block_size=2 * self.n_points, n_embed=self.n_embed,
                           n_heads=self.n_heads, recurrence=1, n_layers=self.n_layers,
                           mlp_ratio=self.mlp_ratio)

    @property
    def n_tokens(self) -> int:
        return 2 * self.n_points

    def to_dict(self) -> dict:
        return asdict(self)


def count_icl_params(cfg: ICLConfig) -> int:
    """Exact trainable parameters of one model: read-in, positions, blocks, final LN, read-out."""
    mcfg = cfg.model_config()
    # count_params with tied weights = token table + positions + blocks + final LN; drop the table.
    backbone_and_pos = count_params(replace(mcfg, tie_weights=True)) - mcfg.vocab_size * cfg.n_embed
    read_in = cfg.d * cfg.n_embed + cfg.n_embed
    read_out = cfg.n_embed + 1
    return read_in + backbone_and_pos + read_out


def interleave(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Tokens ``x_1, [y_1, 0..0], x_2, ...``: ``xs [..., N, d]``, ``ys [..., N]`` -> ``[..., 2N, d]``."""
    if xs.shape[:-1] != ys.shape:
        raise ValueError(f"'xs' must be [..., N, d] and 'ys' [..., N] with matching leading axes; "
                         f"got {tuple(xs.shape)} and {tuple(ys.shape)}")
    *lead, n, d = xs.shape
    z = xs.new_zeros(*lead, 2 * n, d)
    z[..., 0::2, :] = xs
    z[..., 1::2, 0] = ys.to(xs.dtype)
    return z


class ICLModel(nn.Module):
    """M stacked in-context regression transformers.  ``forward(xs, ys) -> preds [M, B, N]``."""

    def __init__(self, cfg: ICLConfig, n_models: int = 1, seeds: list[int] | None = None):
        super().__init__()
        check_int("n_models", n_models, lo=1)
        self.icl_cfg = cfg
        self.cfg = cfg.model_config()  # what init_stacked and Backbone read
        self.n_models = n_models
        m, e = n_models, cfg.n_embed
        self.read_in = Linear(m, cfg.d, e)
        self.wpe = nn.Parameter(torch.empty(m, cfg.n_tokens, e))
        self.backbone = Backbone(m, self.cfg)
        self.read_out = Linear(m, e, 1)
        self.seeds = list(range(m)) if seeds is None else [int(s) for s in seeds]
        init_icl(self, self.seeds)

    def forward(self, xs: torch.Tensor, ys: torch.Tensor, probe: Probe | None = None,
                head_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predictions ``[M, B, N]`` (position k predicts ``y_k`` from ``x_k`` and k earlier pairs).

        ``xs [M, B, N, d]`` and ``ys [M, B, N]`` give each model its own prompts; ``xs [B, N, d]``
        and ``ys [B, N]`` give every model the same prompts.  ``N`` may be shorter than
        ``n_points``.  ``head_mask``: see the module docstring.
        """
        m, cfg = self.n_models, self.icl_cfg
        if xs.dim() == 3:
            xs, ys = xs.unsqueeze(0).expand(m, *xs.shape), ys.unsqueeze(0).expand(m, *ys.shape)
        if xs.dim() != 4 or xs.shape[0] != m or xs.shape[-1] != cfg.d:
            raise ValueError(f"'xs' must be [M={m}, B, N, d={cfg.d}] or [B, N, d={cfg.d}]; got {tuple(xs.shape)}")
        n = xs.shape[2]
        if n > cfg.n_points:
            raise ValueError(f"prompts have {n} points but the model was built for 'n_points' = {cfg.n_points}")
        wdtype = self.wpe.dtype
        tokens = interleave(xs.to(wdtype), ys.to(wdtype))
        h = self.read_in(tokens) + self.wpe[:, None, : 2 * n, :]
        with self._masked_heads(head_mask):
            h = self.backbone(h, probe)
        return self.read_out(h)[:, :, 0::2, 0]

    # -- head masking ------------------------------------------------------------------------

    def _full_head_mask(self, head_mask: torch.Tensor) -> torch.Tensor:
        L, H, m = self.icl_cfg.n_layers, self.icl_cfg.n_heads, self.n_models
        mask = torch.as_tensor(head_mask, dtype=self.wpe.dtype, device=self.wpe.device)
        if mask.shape == (L, H):
            mask = mask.unsqueeze(0).expand(m, L, H)
        if mask.shape != (m, L, H):
            raise ValueError(f"'head_mask' must be [n_layers={L}, n_heads={H}] or [M={m}, {L}, {H}]; "
                             f"got {tuple(mask.shape)}")
        return mask

    @contextlib.contextmanager
    def _masked_heads(self, head_mask: torch.Tensor | None):
        if head_mask is None:
            yield
            return
        mask = self._full_head_mask(head_mask)
        dh = self.icl_cfg.n_embed // self.icl_cfg.n_heads
        handles = []
        for layer, block in enumerate(self.backbone.blocks):
            # proj's input is [M, B, T, n_embed] with head j in columns j*dh .. (j+1)*dh - 1.
            cols = mask[:, layer].repeat_interleave(dh, dim=1)[:, None, None, :]

            def hook(module, args, cols=cols):
                return (args[0] * cols,)

            handles.append(block.attn.proj.register_forward_pre_hook(hook))
        try:
            yield
        finally:
            for hd in handles:
                hd.remove()

    # -- analysis ----------------------------------------------------------------------------

    @torch.no_grad()
    def attention(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Attention patterns ``[M, n_layers, n_heads, B, 2N, 2N]`` (query, key) on these prompts.

        ``attention(...)[i]`` is what :func:`jointtask_lib.paper_b.icl.retrospective_scores` reads.
        """
        probe = Probe(attention=True)
        self.forward(xs, ys, probe=probe)
        maps = [probe.attn[(0, layer)] for layer in range(self.icl_cfg.n_layers)]  # [M, B, h, T, T]
        return torch.stack(maps, dim=1).permute(0, 1, 3, 2, 4, 5)

    def extract(self, i: int) -> "ICLModel":
        """Model ``i`` of the stack as a stand-alone (M = 1) model."""
        one = ICLModel(self.icl_cfg, 1, seeds=[self.seeds[i]])
        one.load_state_dict(slice_state(self, i))
        return one.to(self.wpe.device)


def init_icl(model: ICLModel, seeds: list[int]) -> None:
    """Initialise each model of the stack from its own seed (see the module docstring).

    The backbone and positions use :func:`jointtask_lib.model.init_stacked` (GPT-2 style, seeded
    with ``seed``); the read-in and read-out are then redrawn, PyTorch-``nn.Linear`` style, from a
    second generator per model seeded with ``READ_IO_STREAM + seed`` (``2**30 + seed``: a seed
    torch does not truncate back onto ``seed``, see the module docstring).
    """
    for s in seeds:
        check_int("seeds", int(s), lo=0, hi=READ_IO_STREAM - 1)
    init_stacked(model, seeds)
    gens = [torch.Generator().manual_seed(READ_IO_STREAM + int(s)) for s in seeds]
    with torch.no_grad():
        for lin in (model.read_in, model.read_out):
            bound = 1.0 / math.sqrt(lin.weight.shape[1])
            for i, g in enumerate(gens):
                lin.weight[i].copy_((torch.rand(lin.weight.shape[1:], generator=g) * 2 - 1) * bound)
                lin.bias[i].copy_((torch.rand(lin.bias.shape[1:], generator=g) * 2 - 1) * bound)


__all__ = ["ICLConfig", "ICLModel", "count_icl_params", "interleave", "init_icl", "READ_IO_STREAM"]
