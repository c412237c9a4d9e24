"""Paper B's loss and its gradients by hand, for the fast training step.

:func:`icl_loss_and_grads` is the in-context model's counterpart of
:func:`jointtask_lib.fast_step.loss_and_grads`: the same hand-written backbone
(:func:`~jointtask_lib.fast_step.backbone_forward` / :func:`~jointtask_lib.fast_step.backbone_backward`,
shared, not copied), with paper B's ends instead of paper A's: a linear **read-in** of the
interleaved ``(x, y)`` tokens plus the position embedding instead of the token embedding, a linear
**read-out** at the x positions instead of the vocabulary head, and the **mean-squared error**
instead of the cross-entropy.  Handed to :class:`~jointtask_lib.fast_step.FastStep` as its
``loss``, it trains an :class:`~jointtask_lib.paper_b.icl_model.ICLModel` stack with the flat
parameter buffer, per-model clipping, flat AdamW and :meth:`~jointtask_lib.fast_step.FastStep.keep`
(:func:`icl_fast_step`).

Same arithmetic as the reference (``ICLModel.forward`` + autograd in
:func:`jointtask_lib.paper_b.icl_train.train_icl_stack`): model i's loss is
``mean over prompts b and positions k of (pred_ibk - y_ibk)^2``, the prediction at x position
``2k`` of the read-out; the gradient is that of the *sum* of the per-model losses, so each model's
gradient is its own.  Only float rounding differs (tests/test_fast_step_icl.py: 1e-10 in float64,
``gradcheck`` included).  The read-out is computed at the x positions only (the reference computes
it at every token and drops the y positions; those outputs have no gradient).

Not here: ``head_mask`` (an analysis option of ``ICLModel.forward``, never used in training);
evaluation and the analysis keep using the module's forward.
"""

from __future__ import annotations

import torch

from ..fast_step import FastStep, backbone_backward, backbone_forward
from ..model import ModelConfig
from .icl_model import ICLModel, interleave


def icl_loss_and_grads(cfg: ModelConfig, p: dict, xs: torch.Tensor, ys: torch.Tensor,
                       need_grads: bool = True):
    """Per-model mean squared error ``[M]`` and the gradients of its *sum* for every parameter.

    ``cfg`` is the backbone's configuration (``ICLModel.cfg``); ``p`` maps the names of
    :class:`~jointtask_lib.paper_b.icl_model.ICLModel`'s parameters to tensors; ``xs`` ``[M, B, N, d]``
    and ``ys`` ``[M, B, N]`` are each model's prompts.  Returns ``(losses, grads)`` with ``grads``
    a dict of the same names and shapes as ``p`` (``None`` when ``need_grads`` is false).  Call it
    without autograd recording (``torch.no_grad``).
    """
    w_in = p["read_in.weight"]  # [M, d, e]
    dtype = w_in.dtype
    m, b, n, d_in = xs.shape
    if ys.shape != (m, b, n):
        raise ValueError(f"'ys' must be [M, B, N] = {[m, b, n]}; got {list(ys.shape)}")
    t = 2 * n
    if t > cfg.block_size:
        raise ValueError(f"prompts have {n} points but the model was built for 'n_points' = {cfg.block_size // 2}")
    e = cfg.n_embed
    ys = ys.to(dtype)

    # ---- forward: read-in + positions, backbone, read-out at the x positions, MSE -----------
    tokens = interleave(xs.to(dtype), ys).view(m, b * t, d_in)
    x = torch.baddbmm(p["read_in.bias"].unsqueeze(1), tokens, w_in)  # [M, B*T, e]
    x = x.view(m, b, t, e).add_(p["wpe"][:, None, :t, :]).view(m, b * t, e)
    xf, tape = backbone_forward(cfg, p, x, b, t, need_grads)
    xo = xf.view(m, b, t, e)[:, :, 0::2, :].reshape(m, b * n, e)  # outputs at x_1, x_2, ...
    preds = torch.baddbmm(p["read_out.bias"].unsqueeze(1), xo, p["read_out.weight"])  # [M, B*N, 1]
    diff = preds.view(m, b, n) - ys
    losses = diff.square().mean(dim=(1, 2))
    if not need_grads:
        return losses, None

    # ---- backward ------------------------------------------------------------------------
    grads: dict = {}
    dpred = diff.mul(2.0 / (b * n)).view(m, b * n, 1)  # d(sum of losses)/d(pred)
    grads["read_out.weight"] = torch.bmm(xo.transpose(1, 2), dpred)  # [M, e, 1]
    grads["read_out.bias"] = dpred.sum(1)  # [M, 1]
    dxf = xf.new_zeros(m, b, t, e)
    dxf[:, :, 0::2, :] = torch.bmm(dpred, p["read_out.weight"].transpose(1, 2)).view(m, b, n, e)
    dx = backbone_backward(cfg, p, tape, dxf.view(m, b * t, e), grads)  # [M, B*T, e]
    dwpe = torch.zeros_like(p["wpe"])
    dwpe[:, :t] = dx.view(m, b, t, e).sum(1)
    grads["wpe"] = dwpe
    grads["read_in.weight"] = torch.bmm(tokens.transpose(1, 2), dx)  # [M, d, e]
    grads["read_in.bias"] = dx.sum(1)
    return losses, grads


class ICLFusedLoss(torch.autograd.Function):
    """:func:`icl_loss_and_grads` as one autograd node (for ``gradcheck``):
    ``ICLFusedLoss.apply(cfg, names, xs, ys, *params) -> losses [M]``."""

    @staticmethod
    def forward(ctx, cfg, names, xs, ys, *params):
        losses, grads = icl_loss_and_grads(cfg, dict(zip(names, params)), xs, ys)
        ctx.save_for_backward(*[grads[nm] for nm in names])
        return losses

    @staticmethod
    def backward(ctx, gout):
        gs = ctx.saved_tensors
        return (None,) * 4 + tuple(g * gout.view(-1, *([1] * (g.dim() - 1))) for g in gs)


def icl_fast_step(model: ICLModel, lr: float, betas=(0.9, 0.999), weight_decay: float = 0.0,
                  grad_clip: float = 0.0) -> FastStep:
    """A :class:`~jointtask_lib.fast_step.FastStep` that trains ``model`` on paper B's loss:
    ``step.train_step(xs, ys, lr)`` does forward, backward, per-model clipping (when
    ``grad_clip > 0``) and the AdamW update, and returns the per-model MSE ``[M]``."""
    return FastStep(model, lr=lr, betas=betas, weight_decay=weight_decay, grad_clip=grad_clip,
                    loss=icl_loss_and_grads)


__all__ = ["icl_loss_and_grads", "ICLFusedLoss", "icl_fast_step"]
