"""The fast training step: the stacked model's loss and gradients by hand, and a flat AdamW.

Why.  At the widths our sweeps use (d <= 32, T ~ 20-30, batch 32) the reference step
(``per_model_loss`` + autograd + ``clip_per_model`` + ``StackedAdamW``) is dominated by framework
cost: about 2,000 aten calls and dozens of autograd nodes per step, each a few microseconds, plus
``scaled_dot_product_attention``, whose CPU kernel is tuned for long sequences
(``benchmarks/README.md``).  This module computes exactly the same function with far fewer
operations:

* **Forward and backward written out** (:func:`loss_and_grads`): per block application about 15
  operations forward and 30 backward, no autograd graph.  LayerNorm uses
  ``aten.native_layer_norm`` (which also returns the mean and 1/std the backward needs) and its
  backward; attention is two batched matmuls with a precomputed additive causal mask (``baddbmm``)
  and a softmax; every linear layer is one ``bmm``/``baddbmm`` over the model axis, the residual
  added by ``baddbmm``'s input; the gradients of the weights shared by the ``recurrence``
  applications are accumulated in place (``baddbmm_``).  The cross-entropy gradient is
  ``softmax - onehot`` scaled by each model's mask weights.
* **One flat parameter buffer** ``[M, P]`` (:class:`FastStep`): the model's parameters become
  views of it, the gradients are concatenated into a second one, so per-model clipping is one norm
  over the last axis and AdamW is six element-wise operations over the whole stack instead of six
  per parameter tensor.  The AdamW update is the same arithmetic as
  :class:`~jointtask_lib.train.StackedAdamW` (same formulas, same order), so given the same
  gradients the two optimisers agree bitwise; only the gradients differ, at float rounding level.

What is kept: models in a stack stay independent (every operation is batched over the model axis,
the loss is a sum of per-model means), per-model gradient clipping, weight decay on matrices only,
dropping finished models (:meth:`FastStep.keep`), and the optimiser state in the same format as
``StackedAdamW.state()`` so checkpoints are interchangeable between the two steps.

Paper B's trainer (:func:`jointtask_lib.paper_b.icl_train.train_icl_stack`) uses this step by
default (``ICLTrainConfig.step = "fast"``).  Its model is the same
:class:`~jointtask_lib.model.Backbone` between a linear read-in of interleaved ``(x, y)`` tokens
and a linear read-out, with a mean-squared error: :func:`backbone_forward` /
:func:`backbone_backward` serve both models (parameter names under ``backbone.``), and
:class:`FastStep` takes the loss as an argument (``loss``: default :func:`gpt_loss`, paper B's is
:func:`jointtask_lib.paper_b.icl_step.icl_loss_and_grads`, the read-in / read-out / MSE
counterpart of the embedding, head and cross-entropy here); the flat buffer, clipping, AdamW and
:meth:`FastStep.keep` do not depend on the model.  The analysis-only ``head_mask`` of the
in-context model has no fast counterpart (evaluation uses the module's forward).

Correctness is tested in ``tests/test_fast_step.py``: ``torch.autograd.gradcheck`` of
:class:`FusedLoss` in float64, agreement with autograd on the reference model (float64: 1e-10;
float32 on real batches of the quick configuration: see the test), identical training curves for
the first steps, and final accuracies of runs trained with each step; paper B's loss the same
way in ``tests/test_fast_step_icl.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .model import ModelConfig

aten = torch.ops.aten
LN_EPS = 1e-5  # F.layer_norm's default, which the reference model uses

_MASKS: dict = {}


def _causal_mask(t: int, dtype, device) -> torch.Tensor:
    """Additive causal mask ``[T, T]`` (0 on and below the diagonal, -inf above), cached."""
    key = (t, dtype, device)
    m = _MASKS.get(key)
    if m is None:
        m = torch.full((t, t), float("-inf"), dtype=dtype, device=device).triu_(1)
        _MASKS[key] = m
    return m


def _ln_fwd(x, w, b, d):
    xhat, mean, rstd = aten.native_layer_norm(x, [d], None, None, LN_EPS)
    return torch.addcmul(b.unsqueeze(1), xhat, w.unsqueeze(1)), xhat, mean, rstd


def _ln_bwd(g, x, xhat, mean, rstd, w, d):
    """Gradients of ``layer_norm(x) * w + b`` for upstream ``g``: (dx, dw, db)."""
    dw = (g * xhat).sum(1)
    db = g.sum(1)
    dx = aten.native_layer_norm_backward(g * w.unsqueeze(1), x, [d], mean, rstd, None, None,
                                         [True, False, False])[0]
    return dx, dw, db


def _acc(grads: dict, name: str, value: torch.Tensor) -> None:
    cur = grads.get(name)
    if cur is None:
        grads[name] = value
    else:
        cur.add_(value)


def _acc_mm(grads: dict, name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    """``grads[name] += a @ b`` (batched), allocating on first use."""
    cur = grads.get(name)
    if cur is None:
        grads[name] = torch.bmm(a, b)
    else:
        cur.baddbmm_(a, b)


def backbone_forward(cfg: ModelConfig, p: dict, x: torch.Tensor, b: int, t: int, need_grads: bool = True,
                     prefix: str = "backbone."):
    """:class:`~jointtask_lib.model.Backbone` (blocks applied ``recurrence`` times, then the final
    LayerNorm) on the residual stream ``x`` ``[M, B*T, d]``.  Returns ``(out, tape)``; ``tape`` is
    what :func:`backbone_backward` needs (``None`` when ``need_grads`` is false).  Shared by every
    model built on the backbone (paper A's GPT here; paper B's in-context model could use it)."""
    m, n, d = x.shape
    nh = cfg.n_heads
    dh = d // nh
    mb = m * b
    scale = 1.0 / math.sqrt(dh)
    causal = _causal_mask(t, x.dtype, x.device)
    saved = []
    for _ in range(cfg.recurrence):
        for layer in range(cfg.n_layers):
            pre = f"{prefix}blocks.{layer}."
            x0 = x
            a1, xh1, mu1, rs1 = _ln_fwd(x0, p[pre + "ln1.weight"], p[pre + "ln1.bias"], d)
            qkv = torch.bmm(a1, p[pre + "attn.qkv.weight"])  # [M, N, 3d]
            if nh == 1:
                qkv3 = qkv.view(mb, t, 3 * d)
                q, k, vv = qkv3[..., :d], qkv3[..., d:2 * d], qkv3[..., 2 * d:]
            else:
                qkv5 = qkv.view(mb, t, 3, nh, dh).permute(2, 0, 3, 1, 4)  # [3, MB, h, T, dh]
                q, k, vv = (qkv5[i].reshape(mb * nh, t, dh) for i in range(3))
            att = torch.baddbmm(causal, q, k.transpose(1, 2), alpha=scale)
            att = torch.softmax(att, -1)
            y = torch.bmm(att, vv)
            if nh == 1:
                y = y.view(m, n, d)
            else:
                y = y.view(mb, nh, t, dh).transpose(1, 2).reshape(m, n, d)
            x1 = torch.baddbmm(x0, y, p[pre + "attn.proj.weight"]).add_(p[pre + "attn.proj.bias"].unsqueeze(1))
            a2, xh2, mu2, rs2 = _ln_fwd(x1, p[pre + "ln2.weight"], p[pre + "ln2.bias"], d)
            hpre = torch.baddbmm(p[pre + "mlp.fc.bias"].unsqueeze(1), a2, p[pre + "mlp.fc.weight"])
            hact = torch.nn.functional.gelu(hpre)
            x = torch.baddbmm(x1, hact, p[pre + "mlp.proj.weight"]).add_(p[pre + "mlp.proj.bias"].unsqueeze(1))
            if need_grads:
                saved.append((pre, x0, a1, xh1, mu1, rs1, q, k, vv, att, y, x1, a2, xh2, mu2, rs2, hpre, hact))
    xf, xhf, muf, rsf = _ln_fwd(x, p[prefix + "ln_f.weight"], p[prefix + "ln_f.bias"], d)
    tape = (saved, x, xhf, muf, rsf, b, t) if need_grads else None
    return xf, tape


def backbone_backward(cfg: ModelConfig, p: dict, tape, dout: torch.Tensor, grads: dict,
                      prefix: str = "backbone.") -> torch.Tensor:
    """Backward of :func:`backbone_forward`: adds the backbone's parameter gradients to ``grads``
    (by name) and returns the gradient of the input stream ``[M, B*T, d]``."""
    saved, x, xhf, muf, rsf, b, t = tape
    m, n, d = x.shape
    nh = cfg.n_heads
    dh = d // nh
    mb = m * b
    scale = 1.0 / math.sqrt(dh)
    dx, dw, db = _ln_bwd(dout, x, xhf, muf, rsf, p[prefix + "ln_f.weight"], d)
    _acc(grads, prefix + "ln_f.weight", dw)
    _acc(grads, prefix + "ln_f.bias", db)
    for (pre, x0, a1, xh1, mu1, rs1, q, k, vv, att, y, x1, a2, xh2, mu2, rs2, hpre, hact) in reversed(saved):
        # MLP: x = x1 + gelu(ln2(x1) @ Wfc + bfc) @ Wp + bp
        _acc_mm(grads, pre + "mlp.proj.weight", hact.transpose(1, 2), dx)
        _acc(grads, pre + "mlp.proj.bias", dx.sum(1))
        dhid = aten.gelu_backward(torch.bmm(dx, p[pre + "mlp.proj.weight"].transpose(1, 2)), hpre)
        _acc_mm(grads, pre + "mlp.fc.weight", a2.transpose(1, 2), dhid)
        _acc(grads, pre + "mlp.fc.bias", dhid.sum(1))
        da2 = torch.bmm(dhid, p[pre + "mlp.fc.weight"].transpose(1, 2))
        dln, dw, db = _ln_bwd(da2, x1, xh2, mu2, rs2, p[pre + "ln2.weight"], d)
        _acc(grads, pre + "ln2.weight", dw)
        _acc(grads, pre + "ln2.bias", db)
        dx1 = dln.add_(dx)
        # attention: x1 = x0 + softmax(q k^T * s + mask) v @ Wo + bo
        _acc_mm(grads, pre + "attn.proj.weight", y.transpose(1, 2), dx1)
        _acc(grads, pre + "attn.proj.bias", dx1.sum(1))
        dy = torch.bmm(dx1, p[pre + "attn.proj.weight"].transpose(1, 2))  # [M, N, d]
        if nh == 1:
            dy = dy.view(mb, t, d)
        else:
            dy = dy.view(mb, t, nh, dh).transpose(1, 2).reshape(mb * nh, t, dh)
        datt = torch.bmm(dy, vv.transpose(1, 2))
        dv = torch.bmm(att.transpose(1, 2), dy)
        ds = aten._softmax_backward_data(datt, att, -1, x.dtype).mul_(scale)
        dq = torch.bmm(ds, k)
        dk = torch.bmm(ds.transpose(1, 2), q)
        if nh == 1:
            dqkv = torch.cat([dq, dk, dv], -1).view(m, n, 3 * d)
        else:
            dqkv = torch.stack([dq, dk, dv]).view(3, mb, nh, t, dh).permute(1, 3, 0, 2, 4).reshape(m, n, 3 * d)
        _acc_mm(grads, pre + "attn.qkv.weight", a1.transpose(1, 2), dqkv)
        da1 = torch.bmm(dqkv, p[pre + "attn.qkv.weight"].transpose(1, 2))
        dln, dw, db = _ln_bwd(da1, x0, xh1, mu1, rs1, p[pre + "ln1.weight"], d)
        _acc(grads, pre + "ln1.weight", dw)
        _acc(grads, pre + "ln1.bias", db)
        dx = dln.add_(dx1)
    return dx


def loss_and_grads(cfg: ModelConfig, p: dict, inp: torch.Tensor, targets: torch.Tensor,
                   mask: torch.Tensor, need_grads: bool = True):
    """Per-model mean loss ``[M]`` and the gradients of its *sum* with respect to every parameter.

    ``p`` maps the names of :class:`~jointtask_lib.model.GPT`'s parameters to tensors; ``inp`` and
    ``targets`` are ``[M, B, T]`` token ids (the inputs ``tokens[..., :-1]`` and next tokens
    ``tokens[..., 1:]``), ``mask`` ``[M, B, T]`` says which targets count (bool or float).  The
    loss of model i is ``sum(mask_i * nll_i) / max(1, sum(mask_i))``, as in
    :func:`jointtask_lib.train.per_model_loss`.  Returns ``(losses, grads)`` with ``grads`` a
    dict of the same names and shapes as ``p`` (``None`` when ``need_grads`` is false).  Call it
    without autograd recording (``torch.no_grad``).
    """
    m, b, t = inp.shape
    if t > cfg.block_size:
        raise ValueError(f"sequence length {t} exceeds 'block_size' = {cfg.block_size}")
    d, v = cfg.n_embed, cfg.vocab_size
    n = b * t
    wte = p["wte"]
    dtype, dev = wte.dtype, wte.device

    # ---- forward --------------------------------------------------------------------------
    flat_idx = (inp + torch.arange(m, device=dev).view(m, 1, 1) * v).reshape(-1)
    x = torch.index_select(wte.reshape(m * v, d), 0, flat_idx).view(m, b, t, d)
    x = x.add_(p["wpe"][:, None, :t, :]).view(m, n, d)
    xf, tape = backbone_forward(cfg, p, x, b, t, need_grads)
    tied = "head" not in p or p["head"] is None
    head = wte.transpose(1, 2) if tied else p["head"]  # [M, d, V]
    logits = torch.bmm(xf, head)  # [M, N, V]
    logp = torch.log_softmax(logits, -1)
    tgt = targets.reshape(m, n, 1)
    maskf = mask.reshape(m, n).to(dtype)
    count = maskf.sum(1).clamp_min(1)
    nll = logp.gather(-1, tgt).squeeze(-1).neg_()
    losses = (nll * maskf).sum(1) / count
    if not need_grads:
        return losses, None

    # ---- backward -------------------------------------------------------------------------
    grads: dict = {}
    w = (maskf / count.unsqueeze(1)).unsqueeze(-1)  # [M, N, 1]: d(sum of losses)/d(nll)
    dlogits = logp.exp_().mul_(w)
    dlogits.scatter_add_(-1, tgt, -w)
    if tied:
        grads["wte"] = torch.bmm(dlogits.transpose(1, 2), xf)  # [M, V, d]
    else:
        grads["head"] = torch.bmm(xf.transpose(1, 2), dlogits)
    dx = backbone_backward(cfg, p, tape, torch.bmm(dlogits, head.transpose(1, 2)), grads)
    # embeddings: x = wte[idx] + wpe[:T]
    dwte = grads.get("wte")
    if dwte is None:
        dwte = grads["wte"] = torch.zeros_like(wte)
    dwte.view(m * v, d).index_add_(0, flat_idx, dx.reshape(m * n, d))
    dwpe = torch.zeros_like(p["wpe"])
    dwpe[:, :t] = dx.view(m, b, t, d).sum(1)
    grads["wpe"] = dwpe
    return losses, grads


class FusedLoss(torch.autograd.Function):
    """:func:`loss_and_grads` as one autograd node (for ``gradcheck`` and for callers that want
    autograd): ``FusedLoss.apply(cfg, names, inp, targets, mask, *params) -> losses [M]``.
    The backward scales model i's gradients by the upstream gradient of its loss."""

    @staticmethod
    def forward(ctx, cfg, names, inp, targets, mask, *params):
        losses, grads = loss_and_grads(cfg, dict(zip(names, params)), inp, targets, mask)
        ctx.save_for_backward(*[grads[nm] for nm in names])
        return losses

    @staticmethod
    def backward(ctx, gout):
        gs = ctx.saved_tensors
        return (None,) * 5 + tuple(g * gout.view(-1, *([1] * (g.dim() - 1))) for g in gs)


def gpt_loss(cfg: ModelConfig, p: dict, tokens: torch.Tensor, mask: torch.Tensor, need_grads: bool = True):
    """:func:`loss_and_grads` on a batch as :meth:`FastStep.train_step` receives it: ``tokens``
    ``[M, B, T+1]`` (inputs and next tokens) and the target mask ``[M, B, T]``."""
    return loss_and_grads(cfg, p, tokens[..., :-1], tokens[..., 1:], mask, need_grads)


class FastStep:
    """Training step + AdamW for a stacked model on the backbone, in place.

    Drop-in for :class:`~jointtask_lib.train.StackedAdamW` in ``train_stack`` (same ``params``,
    ``t``, ``keep``, ``state``, ``load``), plus :meth:`train_step`, which does forward, backward,
    per-model clipping and the AdamW update in one call.  On construction the model's parameters
    are replaced by views of one ``[M, P]`` buffer (values unchanged); :meth:`keep` re-binds them
    after the model has been sliced.

    ``loss(cfg, p, a, b, need_grads=True) -> (losses [M], grads by name)`` computes the per-model
    losses and the gradients of their sum from the parameters ``p`` (by name) and the batch
    ``(a, b)`` that :meth:`train_step` receives; ``cfg`` is ``model.cfg``.  Default
    :func:`gpt_loss` (paper A's :class:`~jointtask_lib.model.GPT`: ``a`` = tokens, ``b`` = target
    mask); paper B's in-context model passes
    :func:`jointtask_lib.paper_b.icl_step.icl_loss_and_grads` (``a`` = xs, ``b`` = ys).
    """

    def __init__(self, model: nn.Module, lr, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.0,
                 grad_clip: float = 0.0, loss=None):
        self.model = model
        self.loss = gpt_loss if loss is None else loss
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.grad_clip = grad_clip
        names = [nm for nm, _ in model.named_parameters()]
        # decayed parameters (matrices and embeddings: dim >= 3 with the model axis) come first,
        # so weight decay is one multiply over a prefix of the flat buffer
        shapes = dict((nm, q.shape) for nm, q in model.named_parameters())
        self.names = sorted(names, key=lambda nm: 0 if len(shapes[nm]) >= 3 else 1)
        self.n_decay = sum(math.prod(shapes[nm][1:]) for nm in self.names if len(shapes[nm]) >= 3)
        self._bind()
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.t = 0
        self.last_norms: torch.Tensor | None = None

    # -- parameter layout ----------------------------------------------------------------------
    def _bind(self) -> None:
        """Copy the model's current parameters into one flat buffer and make them views of it."""
        named = dict(self.model.named_parameters())
        params = [named[nm] for nm in self.names]
        m = params[0].shape[0]
        with torch.no_grad():
            self.flat = torch.cat([q.detach().reshape(m, -1) for q in params], 1)
        self.sizes = [q[0].numel() for q in params]
        self.shapes = [tuple(q.shape[1:]) for q in params]
        mods = dict(self.model.named_modules())
        views, off = [], 0
        for nm, size, shape in zip(self.names, self.sizes, self.shapes):
            mod_name, _, attr = nm.rpartition(".")
            view = nn.Parameter(self.flat[:, off:off + size].view(m, *shape))
            setattr(mods[mod_name], attr, view)
            views.append(view)
            off += size
        self.params = views
        self.pdict = dict(zip(self.names, views))

    def _views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        m, out, off = flat.shape[0], [], 0
        for size, shape in zip(self.sizes, self.shapes):
            out.append(flat[:, off:off + size].reshape(m, *shape))
            off += size
        return out

    def grads(self, a, b) -> tuple[torch.Tensor, torch.Tensor]:
        """(losses ``[M]``, flat gradient ``[M, P]`` in this object's layout) of the batch
        ``(a, b)`` (see the class docstring), no update."""
        with torch.no_grad():
            losses, g = self.loss(self.model.cfg, self.pdict, a, b)
            m = self.flat.shape[0]
            return losses, torch.cat([g[nm].reshape(m, -1) for nm in self.names], 1)

    # -- the step ------------------------------------------------------------------------------
    @torch.no_grad()
    def train_step(self, a: torch.Tensor, b: torch.Tensor, lr: float | None = None) -> torch.Tensor:
        """One training step on the batch ``(a, b)``: with the default loss ``tokens``
        ``[M, B, T+1]`` and target mask ``[M, B, T]`` (:func:`jointtask_lib.train.target_mask`);
        with paper B's, ``xs`` ``[M, B, N, d]`` and ``ys`` ``[M, B, N]``.  Returns the per-model
        losses ``[M]``."""
        losses, g = self.grads(a, b)
        norms = torch.linalg.vector_norm(g, dim=1)
        self.last_norms = norms
        if self.grad_clip > 0:
            g.mul_((self.grad_clip / (norms + 1e-6)).clamp_(max=1.0).unsqueeze(1))
        self.step(g, lr)
        return losses

    @torch.no_grad()
    def step(self, g: torch.Tensor, lr: float | None = None) -> None:
        """AdamW with flat gradient ``g`` ``[M, P]`` (the arithmetic of ``StackedAdamW.step``)."""
        lr = self.lr if lr is None else lr
        b1, b2 = self.betas
        self.t += 1
        bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
        p, m, v = self.flat, self.exp_avg, self.exp_avg_sq
        if self.weight_decay:
            p[:, : self.n_decay].mul_(1 - lr * self.weight_decay)
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (v.sqrt() / math.sqrt(bc2)).add_(self.eps)
        p.addcdiv_(m, denom, value=-lr / bc1)

    # -- StackedAdamW's interface ----------------------------------------------------------------
    def keep(self, idx: torch.Tensor) -> None:
        """Keep only the models ``idx``; the model's parameters must already be sliced the same
        way (``train._select`` does it); they are re-bound to a new flat buffer."""
        self._bind()
        self.exp_avg = self.exp_avg[idx.to(self.flat.device)].contiguous()
        self.exp_avg_sq = self.exp_avg_sq[idx.to(self.flat.device)].contiguous()

    def _per_param(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Per-parameter tensors in the model's ``parameters()`` order (StackedAdamW's format)."""
        by_name = dict(zip(self.names, self._views(flat)))
        return [by_name[nm].clone() for nm, _ in self.model.named_parameters()]

    def state(self) -> dict:
        return {"t": self.t, "exp_avg": self._per_param(self.exp_avg),
                "exp_avg_sq": self._per_param(self.exp_avg_sq)}

    def load(self, state: dict) -> None:
        self.t = int(state["t"])
        order = [nm for nm, _ in self.model.named_parameters()]
        m = self.flat.shape[0]
        for key in ("exp_avg", "exp_avg_sq"):
            by_name = dict(zip(order, state[key]))
            setattr(self, key, torch.cat([by_name[nm].reshape(m, -1) for nm in self.names], 1)
                    .to(self.flat.device, self.flat.dtype))
