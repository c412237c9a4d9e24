"""A small decoder-only transformer, written for *stacks* of models.

Paper A's model: token + learned position embeddings, **one** pre-LayerNorm block (single-head
causal self-attention, then a 4x GELU MLP) whose weights are *shared* and applied ``recurrence``
times (default 4), a final LayerNorm, and a linear head.  ``n_layers`` distinct blocks (each step
applies all of them in turn) and ``n_heads`` are there for the depth and head sweeps that paper
A's reviewers asked for, and for paper B's GPT-2-style model (``n_layers=L, recurrence=1``).

Every parameter carries a leading **model axis** of size M: ``wte`` is ``[M, V, d]``, a linear
layer's weight ``[M, d_in, d_out]``.  M models of one width train as one program (batched matmuls
over the model axis; see ``benchmarks/README.md`` for why this beat ``torch.func.vmap`` here),
and a single model is simply M = 1 — there is one code path.  Models in a stack never interact:
the loss is a *sum* of per-model losses, so each model's gradient is exactly its own.

Inputs are ``[M, B, T]`` token ids; the forward pass returns logits ``[M, B, T, V]``.  The backbone
(:class:`Backbone`) is shared with paper B's in-context model, which replaces the token
embedding by a linear read-in (:mod:`jointtask_lib.paper_b.icl_model`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .schema import ARCH, MODEL_SHAPE, check_fields, check_heads
from .validate import check_int


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    block_size: int  # longest sequence the position embedding covers
    n_embed: int = 32
    n_heads: int = 1
    recurrence: int = 4  # how many times the (shared) block stack is applied
    n_layers: int = 1  # distinct blocks in the stack
    mlp_ratio: int = 4
    tie_weights: bool = False  # share the token embedding with the output head

    def __post_init__(self):
        # Bounds declared once, in jointtask_lib.schema (shared with Arch, the CLI and the presets).
        check_fields(self, MODEL_SHAPE)
        check_fields(self, ARCH)
        check_heads(self.n_embed, self.n_heads)

    def to_dict(self) -> dict:
        return asdict(self)


def count_params(cfg: ModelConfig) -> int:
    """Exact number of trainable parameters of one model (embeddings and head included)."""
    d, v, t, h = cfg.n_embed, cfg.vocab_size, cfg.block_size, cfg.mlp_ratio * cfg.n_embed
    ln = 2 * d
    block = ln + d * 3 * d + (d * d + d) + ln + (d * h + h) + (h * d + d)
    head = 0 if cfg.tie_weights else v * d
    return v * d + t * d + cfg.n_layers * block + ln + head


# ------------------------------------------------------------------------------------------------
# Stacked building blocks
# ------------------------------------------------------------------------------------------------


def stacked_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """``x @ w + b`` per model: x ``[M, ..., i]``, w ``[M, i, o]``, b ``[M, o]``."""
    m, i = x.shape[0], x.shape[-1]
    flat = x.reshape(m, -1, i)
    out = torch.baddbmm(b.unsqueeze(1), flat, w) if b is not None else torch.bmm(flat, w)
    return out.reshape(*x.shape[:-1], w.shape[-1])


def stacked_layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return F.layer_norm(x, x.shape[-1:]) * w.reshape(shape) + b.reshape(shape)


class LayerNorm(nn.Module):
    def __init__(self, m: int, d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(m, d))
        self.bias = nn.Parameter(torch.zeros(m, d))

    def forward(self, x):
        return stacked_layer_norm(x, self.weight, self.bias)


class Linear(nn.Module):
    def __init__(self, m: int, d_in: int, d_out: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(m, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(m, d_out)) if bias else None

    def forward(self, x):
        return stacked_linear(x, self.weight, self.bias)


class SelfAttention(nn.Module):
    """Causal multi-head self-attention (``scaled_dot_product_attention``).

    The q/k/v projection has no bias: a key bias shifts every score of a query by the same amount
    and is cancelled by the softmax, so its gradient is zero up to rounding, and Adam would turn
    that rounding noise into full-size updates (models would then differ by how they were batched).
    """

    def __init__(self, m: int, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = Linear(m, cfg.n_embed, 3 * cfg.n_embed, bias=False)
        self.proj = Linear(m, cfg.n_embed, cfg.n_embed)

    def forward(self, x, probe: "Probe | None" = None, step: int = 0, layer: int = 0):
        m, b, t, d = x.shape
        h = self.n_heads
        q, k, v = self.qkv(x).split(d, dim=-1)
        # [M, B, T, d] -> [M*B, h, T, d/h]
        q, k, v = (z.reshape(m * b, t, h, d // h).transpose(1, 2) for z in (q, k, v))
        if probe is not None and probe.attention:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(d // h)
            att = att.masked_fill(torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
            att = att.softmax(dim=-1)
            probe.attn[(step, layer)] = att.reshape(m, b, h, t, t).detach()
            y = att @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(m, b, t, d)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, m: int, cfg: ModelConfig):
        super().__init__()
        self.fc = Linear(m, cfg.n_embed, cfg.mlp_ratio * cfg.n_embed)
        self.proj = Linear(m, cfg.mlp_ratio * cfg.n_embed, cfg.n_embed)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, m: int, cfg: ModelConfig):
        super().__init__()
        self.ln1 = LayerNorm(m, cfg.n_embed)
        self.attn = SelfAttention(m, cfg)
        self.ln2 = LayerNorm(m, cfg.n_embed)
        self.mlp = MLP(m, cfg)

    def forward(self, x, probe: "Probe | None" = None, step: int = 0, layer: int = 0):
        if probe is None:
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))
        a = self.attn(self.ln1(x), probe, step, layer)
        a = probe.sublayer(step, layer, "attn", x, a)
        x = x + a
        f = self.mlp(self.ln2(x))
        f = probe.sublayer(step, layer, "mlp", x, f)
        return x + f


class Probe:
    """Optional instrumentation of a forward pass, for the analysis notebooks.

    * ``attention=True`` stores every attention pattern ``attn[(step, layer)]``: ``[M, B, h, T, T]``.
    * Norm ratios: ``ratios[(step, layer, 'attn'|'mlp')]`` is ``||sublayer output|| / ||input||``
      per model (``[M]``), norms over the last axis averaged over batch and positions (``mask``
      selects positions, e.g. non-padding).
    * ``ablate``: a set of ``(step, layer, 'attn'|'mlp')`` whose sublayer output is zeroed.
    """

    def __init__(self, attention: bool = False, ablate=(), mask: torch.Tensor | None = None):
        self.attention = attention
        self.ablate = set(ablate)
        self.mask = mask
        self.attn: dict = {}
        self.ratios: dict = {}

    def sublayer(self, step, layer, kind, x_in, out):
        num = out.norm(dim=-1)
        den = x_in.norm(dim=-1).clamp_min(1e-12)
        r = num / den  # [M, B, T]
        if self.mask is not None:
            mk = self.mask.to(r.dtype)
            self.ratios[(step, layer, kind)] = ((r * mk).sum((1, 2)) / mk.sum((1, 2))).detach()
        else:
            self.ratios[(step, layer, kind)] = r.mean((1, 2)).detach()
        if (step, layer, kind) in self.ablate:
            return torch.zeros_like(out)
        return out


class Backbone(nn.Module):
    """The block stack applied ``recurrence`` times, then the final LayerNorm."""

    def __init__(self, m: int, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(Block(m, cfg) for _ in range(cfg.n_layers))
        self.ln_f = LayerNorm(m, cfg.n_embed)

    def forward(self, x, probe: Probe | None = None):
        for step in range(self.cfg.recurrence):
            for layer, block in enumerate(self.blocks):
                x = block(x, probe, step, layer)
        return self.ln_f(x)


class GPT(nn.Module):
    """M stacked language models of one configuration.  ``forward(idx [M,B,T]) -> [M,B,T,V]``."""

    def __init__(self, cfg: ModelConfig, n_models: int = 1, seeds: list[int] | None = None):
        super().__init__()
        check_int("n_models", n_models, lo=1)
        self.cfg, self.n_models = cfg, n_models
        m, d = n_models, cfg.n_embed
        self.wte = nn.Parameter(torch.empty(m, cfg.vocab_size, d))
        self.wpe = nn.Parameter(torch.empty(m, cfg.block_size, d))
        self.backbone = Backbone(m, cfg)
        self.head = None if cfg.tie_weights else nn.Parameter(torch.empty(m, d, cfg.vocab_size))
        init_stacked(self, list(range(m)) if seeds is None else seeds)

    def forward(self, idx: torch.Tensor, probe: Probe | None = None) -> torch.Tensor:
        m, b, t = idx.shape
        if t > self.cfg.block_size:
            raise ValueError(f"sequence length {t} exceeds 'block_size' = {self.cfg.block_size}")
        # Model i looks its tokens up in its own table: offset the ids into the flattened stack.
        offsets = torch.arange(m, device=idx.device).view(m, 1, 1) * self.cfg.vocab_size
        tok = F.embedding(idx + offsets, self.wte.reshape(-1, self.cfg.n_embed))
        x = tok + self.wpe[:, None, :t, :]
        x = self.backbone(x, probe)
        head = self.wte.transpose(1, 2) if self.head is None else self.head
        return stacked_linear(x, head, None)


def init_stacked(module: nn.Module, seeds: list[int]) -> None:
    """Initialise model i of the stack from its own generator seeded with ``seeds[i]``.

    GPT-2 style: N(0, 0.02) for embeddings and weights, N(0, 0.02/sqrt(2·layers·recurrence)) for
    the residual output projections, zeros for biases, ones for LayerNorm gains.  Parameters are
    visited in a fixed order, so model i is identical whether it is trained alone or in a stack.
    """
    if len(seeds) != next(module.parameters()).shape[0]:
        raise ValueError(f"'seeds' must have one entry per model; got {len(seeds)}")
    cfg = module.cfg
    resid_std = 0.02 / math.sqrt(2 * cfg.n_layers * cfg.recurrence)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif name.split(".")[-2:-1] in (["ln1"], ["ln2"], ["ln_f"]):
                p.fill_(1.0)
            else:
                std = resid_std if name.endswith("proj.weight") else 0.02
                for i, g in enumerate(gens):
                    p[i].copy_(torch.randn(p.shape[1:], generator=g) * std)


def slice_state(model: nn.Module, j: int) -> dict:
    """The state dict of model ``j`` of a stack, as an M=1 state dict on the CPU (a copy)."""
    return {k: v[j : j + 1].detach().cpu().clone() for k, v in model.state_dict().items()}


def stack_states(states: list[dict]) -> dict:
    """M=1 state dicts joined into the state dict of one stack (the inverse of :func:`slice_state`)."""
    return {k: torch.cat([s[k] for s in states]) for k in states[0]}
