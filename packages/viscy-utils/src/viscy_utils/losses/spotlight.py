"""Foreground-aware virtual-staining loss: masked MSE plus a soft Dice term.

The Dice term compares a soft foreground of the prediction (a normalized tunable sigmoid of
the prediction clipped to [0, 1]) with the target's foreground mask, so that the predicted
stain keeps the shape of the structures while the MSE term is spent on the foreground only.
"""

from __future__ import annotations

import logging

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["SpotlightLoss", "otsu_threshold"]

_logger = logging.getLogger(__name__)


def otsu_threshold(values: Tensor, bins: int = 256) -> Tensor:
    """Otsu's threshold of each row of ``values`` (N, M), from a ``bins``-bin histogram.

    The threshold is the centre of the histogram bin that maximizes the between-class
    variance; foreground is ``values > threshold``. Rows with a single value return it.
    """
    values = values.detach().float()
    lo = values.min(dim=1, keepdim=True).values
    hi = values.max(dim=1, keepdim=True).values
    width = (hi - lo).clamp(min=torch.finfo(values.dtype).tiny) / bins
    idx = ((values - lo) / width).long().clamp_(0, bins - 1)
    hist = torch.zeros(values.shape[0], bins, device=values.device).scatter_add_(
        1, idx, torch.ones_like(values)
    )
    centers = lo + width * (torch.arange(bins, device=values.device) + 0.5)
    w0 = hist.cumsum(1)
    w1 = hist.sum(1, keepdim=True) - w0
    s0 = (hist * centers).cumsum(1)
    m0 = s0 / w0.clamp(min=1)
    m1 = ((hist * centers).sum(1, keepdim=True) - s0) / w1.clamp(min=1)
    between = w0 * w1 * (m0 - m1) ** 2
    best = between[:, :-1].argmax(dim=1, keepdim=True)
    return torch.where(hi == lo, lo, centers.gather(1, best)).squeeze(1)


class SpotlightLoss(nn.Module):
    """``lambda_mse * masked MSE + (1 - lambda_mse) * soft Dice`` against the foreground.

    Per sample and channel the foreground mask is ``fg_mask`` when given, else
    ``target >= fg_threshold``, else ``target > otsu_threshold(target)``. Where a mask is
    all foreground or all background the MSE covers the whole stack and the stack is left
    out of the Dice term (with no real mask at all, the Dice term is 0 and a message is
    logged).

    Parameters
    ----------
    lambda_mse : float
        Weight of the masked MSE, in (0, 1); the Dice weight is ``1 - lambda_mse``.
    sigmoid_k : float
        Sharpness of the normalized tunable sigmoid, in (-1, 0); more negative is sharper.
    eps : float
        Smoothing of the Dice ratio ``(2 |S M| + eps) / (|S| + |M| + eps)``.
    fg_threshold : float or None
        Fixed foreground threshold on the target (e.g. 0.0 for targets normalized with the
        Otsu threshold as subtrahend); None: Otsu's threshold per sample and channel.
    """

    def __init__(
        self,
        lambda_mse: float = 0.5,
        sigmoid_k: float = -0.95,
        eps: float = 1e-6,
        fg_threshold: float | None = None,
    ) -> None:
        super().__init__()
        if not 0 < lambda_mse < 1:
            raise ValueError(f"lambda_mse must be in (0, 1), got {lambda_mse}")
        if not -1 < sigmoid_k < 0:
            raise ValueError(f"sigmoid_k must be in (-1, 0), got {sigmoid_k}")
        self.lambda_mse = lambda_mse
        self.sigmoid_k = sigmoid_k
        self.eps = eps
        self.fg_threshold = fg_threshold

    def soft_foreground(self, pred: Tensor) -> Tensor:
        """Tunable sigmoid ``(x - kx) / (k - 2k|x| + 1)`` of ``pred`` clipped to [0, 1]."""
        x = pred.clamp(0, 1)
        k = self.sigmoid_k
        return (x - k * x) / (k - 2 * k * x.abs() + 1)

    def foreground_mask(self, target: Tensor) -> Tensor:
        """Boolean foreground of ``target`` (B, C, ...), per sample and channel."""
        if self.fg_threshold is not None:
            return target >= self.fg_threshold
        flat = target.flatten(2)
        thr = otsu_threshold(flat.flatten(0, 1)).view(*flat.shape[:2], 1)
        return (flat > thr).view_as(target)

    def forward(self, pred: Tensor, target: Tensor, fg_mask: Tensor | None = None) -> Tensor:
        """Loss of ``pred`` against ``target`` (B, C, ...) with an optional foreground mask."""
        if pred.shape != target.shape:
            raise ValueError(
                f"pred and target must have the same shape, got {tuple(pred.shape)} and "
                f"{tuple(target.shape)}."
            )
        mask = self.foreground_mask(target) if fg_mask is None else fg_mask.bool()
        mask = mask.expand_as(target).flatten(2).float()
        p, t = pred.flatten(2), target.flatten(2)
        n_fg = mask.sum(-1)
        real = (n_fg > 0) & (n_fg < mask.shape[-1])
        sq = (p - t) ** 2
        masked = (sq * mask).sum(-1) / n_fg.clamp(min=1)
        mse = torch.where(real, masked, sq.mean(-1)).mean()
        if not real.any():
            _logger.info("SpotlightLoss: no sample has both foreground and background; Dice is 0.")
            return self.lambda_mse * mse
        soft = self.soft_foreground(p)
        inter = (soft * mask).sum(-1)
        dice = 1 - (2 * inter + self.eps) / (soft.sum(-1) + n_fg + self.eps)
        dice = dice[real].mean()
        return self.lambda_mse * mse + (1 - self.lambda_mse) * dice
