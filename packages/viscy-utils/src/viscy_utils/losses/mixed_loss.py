"""Mixed reconstruction loss (L1, L2 and multi-scale structural dissimilarity).

After Zhao et al., "Loss Functions for Image Restoration with Neural Networks" (2017,
arXiv:1511.08861): a weighted sum of distances, each term used only when its weight is
non-zero.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["MixedLoss", "ms_ssim_25d"]

# scale weights of Wang, Simoncelli & Bovik (2003), finest scale first
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_K1, _K2 = 0.01, 0.03


def _gaussian_1d(size: int, sigma: float, like: Tensor) -> Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _blur(x: Tensor, kz: Tensor, kyx: Tensor) -> Tensor:
    """Separable valid filtering of (N, 1, D, H, W): full depth in z, ``kyx`` in-plane."""
    x = F.conv3d(x, kz.view(1, 1, -1, 1, 1))
    x = F.conv3d(x, kyx.view(1, 1, 1, -1, 1))
    return F.conv3d(x, kyx.view(1, 1, 1, 1, -1))


def _ssim_and_cs(x: Tensor, y: Tensor, kz: Tensor, kyx: Tensor, c1: Tensor, c2: Tensor):
    mu_x, mu_y = _blur(x, kz, kyx), _blur(y, kz, kyx)
    var_x = _blur(x * x, kz, kyx) - mu_x**2
    var_y = _blur(y * y, kz, kyx) - mu_y**2
    cov = _blur(x * y, kz, kyx) - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ms_ssim_25d(
    preds: Tensor,
    target: Tensor,
    window_size: int = 11,
    sigma: float = 1.5,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
) -> Tensor:
    """Multi-scale SSIM of 2.5D stacks, averaged over batch and channels.

    Each (sample, channel) stack of shape (D, H, W) is compared with a window spanning the
    whole depth (Gaussian in z, ``sigma`` in voxels) and ``window_size`` pixels in-plane; the
    in-plane resolution is halved between scales. The dynamic range for the stability
    constants is the range of ``target`` over the batch, so the value does not change when
    both inputs are shifted or scaled together.

    Parameters
    ----------
    preds, target : Tensor
        (B, C, D, H, W) floating-point tensors of the same shape. H and W must be at least
        ``window_size * 2 ** (len(weights) - 1)`` (176 at the defaults).
    window_size : int
        In-plane window width.
    sigma : float
        Gaussian window standard deviation in pixels (voxels in z).
    weights : tuple of float
        Exponent per scale, finest first.

    Returns
    -------
    Tensor
        Scalar in [0, 1] (1: identical structure).
    """
    if preds.ndim != 5 or preds.shape != target.shape:
        raise ValueError(
            "ms_ssim_25d expects preds and target of the same shape (B, C, D, H, W), got "
            f"{tuple(preds.shape)} and {tuple(target.shape)}."
        )
    min_size = window_size * 2 ** (len(weights) - 1)
    if min(preds.shape[-2:]) < min_size:
        raise ValueError(
            f"ms_ssim_25d needs H and W >= {min_size} for {len(weights)} scales with an "
            f"{window_size}-pixel window, got shape {tuple(preds.shape)}."
        )
    b, c, d = preds.shape[:3]
    x = preds.reshape(b * c, 1, *preds.shape[2:]).float()
    y = target.reshape(b * c, 1, *target.shape[2:]).float()
    data_range = (y.max() - y.min()).detach().clamp(min=torch.finfo(y.dtype).eps)
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    kz = _gaussian_1d(d, sigma, x)
    kyx = _gaussian_1d(window_size, sigma, x)
    factors = []
    for level, weight in enumerate(weights):
        ssim, cs = _ssim_and_cs(x, y, kz, kyx, c1, c2)
        last = level == len(weights) - 1
        # relu: a negative correlation counts as no similarity (and keeps the power real)
        factors.append(torch.relu(ssim if last else cs) ** weight)
        if not last:
            x, y = F.avg_pool3d(x, (1, 2, 2)), F.avg_pool3d(y, (1, 2, 2))
    return torch.stack(factors).prod(0).mean()


class MixedLoss(nn.Module):
    """Weighted sum of L1, L2 (MSE) and MS-DSSIM (``1 - ms_ssim_25d``).

    Reduces to a single distance when only one weight is non-zero; terms with weight 0
    are not computed, so L1/L2-only losses accept inputs of any shape.

    Parameters
    ----------
    l1_alpha : float
        Weight of the mean absolute error.
    l2_alpha : float
        Weight of the mean squared error.
    ms_dssim_alpha : float
        Weight of the multi-scale structural dissimilarity (inputs (B, C, D, H, W),
        H and W >= 176).
    """

    def __init__(self, l1_alpha: float = 0.5, l2_alpha: float = 0.0, ms_dssim_alpha: float = 0.5):
        super().__init__()
        if not any((l1_alpha, l2_alpha, ms_dssim_alpha)):
            raise ValueError(
                "MixedLoss weights l1_alpha, l2_alpha and ms_dssim_alpha cannot all be zero."
            )
        self.l1_alpha = l1_alpha
        self.l2_alpha = l2_alpha
        self.ms_dssim_alpha = ms_dssim_alpha

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        """Loss between ``preds`` and ``target`` (a scalar)."""
        loss = preds.new_zeros(())
        if self.l1_alpha:
            loss = loss + self.l1_alpha * F.l1_loss(preds, target)
        if self.l2_alpha:
            loss = loss + self.l2_alpha * F.mse_loss(preds, target)
        if self.ms_dssim_alpha:
            loss = loss + self.ms_dssim_alpha * (1 - ms_ssim_25d(preds, target))
        return loss
