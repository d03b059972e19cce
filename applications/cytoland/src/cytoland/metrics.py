"""Image-translation metrics per target channel: Pearson r, SSIM, PSNR and MAE.

Every function takes a prediction and a target of the same shape ``(B, C, [Z,] Y, X)`` and
returns one value per sample and channel, ``(B, C)``. SSIM and PSNR come from MONAI; both
are computed after scaling prediction and target by the target's own intensity range
(min to max per sample and channel), so they do not depend on the normalization of the
data (z-scored images have no fixed range).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["channel_metrics", "mae", "pearson_r", "psnr", "ssim"]

_EPS = 1e-8


def _check(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction shape {tuple(pred.shape)} differs from target {tuple(target.shape)}"
        )
    if pred.ndim not in (4, 5):
        raise ValueError(f"expected (B, C, [Z,] Y, X) images, got shape {tuple(pred.shape)}")


def pearson_r(pred: Tensor, target: Tensor) -> Tensor:
    """Pearson correlation of every sample and channel over its pixels, ``(B, C)``.

    A constant image (zero variance) has r = 0.

    Parameters
    ----------
    pred : Tensor
        Prediction, ``(B, C, Y, X)`` or ``(B, C, Z, Y, X)``.
    target : Tensor
        Target of the same shape as ``pred`` (ValueError otherwise).
    """
    _check(pred, target)
    p = pred.flatten(2).double()
    t = target.flatten(2).double()
    p = p - p.mean(-1, keepdim=True)
    t = t - t.mean(-1, keepdim=True)
    num = (p * t).sum(-1)
    den = (p.square().sum(-1) * t.square().sum(-1)).sqrt()
    return torch.where(den > _EPS, num / den.clamp_min(_EPS), torch.zeros_like(num)).float()


def mae(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error of every sample and channel, ``(B, C)``.

    Parameters
    ----------
    pred : Tensor
        Prediction, ``(B, C, Y, X)`` or ``(B, C, Z, Y, X)``.
    target : Tensor
        Target of the same shape as ``pred`` (ValueError otherwise).
    """
    _check(pred, target)
    return (pred.float() - target.float()).abs().flatten(2).mean(-1)


def _unit_range(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Scale both by the target's per-(sample, channel) min-max range."""
    flat = target.flatten(2)
    shape = (*target.shape[:2], *([1] * (target.ndim - 2)))
    lo = flat.min(-1).values.reshape(shape)
    span = (flat.max(-1).values.reshape(shape) - lo).clamp_min(_EPS)
    return (pred.float() - lo) / span, (target.float() - lo) / span


def _odd_at_most(n: int, cap: int) -> int:
    n = min(n, cap)
    return n if n % 2 else n - 1


def ssim(pred: Tensor, target: Tensor, win_size: int = 11) -> Tensor:
    """Structural similarity of every sample and channel, ``(B, C)`` (MONAI ``SSIMMetric``).

    2-D images (and 3-D stacks of depth 1) use a 2-D Gaussian window; deeper stacks a 3-D
    window whose depth is the largest odd number up to the stack depth (stacks of depth 2
    are scored slice by slice). The window shrinks for images smaller than ``win_size``.

    Parameters
    ----------
    pred : Tensor
        Prediction, ``(B, C, Y, X)`` or ``(B, C, Z, Y, X)``.
    target : Tensor
        Target of the same shape as ``pred`` (ValueError otherwise).
    win_size : int
        Side of the Gaussian window in pixels, default 11 (the largest odd number up to it
        that fits the image is used).
    """
    from monai.metrics import SSIMMetric

    _check(pred, target)
    if pred.ndim == 5 and pred.shape[2] == 1:
        pred, target = pred[:, :, 0], target[:, :, 0]
    if pred.ndim == 5 and pred.shape[2] == 2:
        slices = [ssim(pred[:, :, z], target[:, :, z], win_size) for z in range(2)]
        return torch.stack(slices).mean(0)
    p, t = _unit_range(pred, target)
    yx = _odd_at_most(min(p.shape[-2:]), win_size)
    if yx < 3:
        raise ValueError(f"SSIM needs images of at least 3 x 3 pixels, got {tuple(p.shape[-2:])}")
    if p.ndim == 4:
        metric = SSIMMetric(spatial_dims=2, data_range=1.0, win_size=yx)
    else:
        z = _odd_at_most(p.shape[2], win_size)
        metric = SSIMMetric(
            spatial_dims=3, data_range=1.0, win_size=(z, yx, yx), kernel_sigma=(1.5, 1.5, 1.5)
        )
    out = [metric(p[:, c : c + 1], t[:, c : c + 1])[:, 0] for c in range(p.shape[1])]
    return torch.stack(out, dim=1).float()


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB of every sample and channel, ``(B, C)`` (MONAI).

    The peak is the target's intensity range.

    Parameters
    ----------
    pred : Tensor
        Prediction, ``(B, C, Y, X)`` or ``(B, C, Z, Y, X)``.
    target : Tensor
        Target of the same shape as ``pred`` (ValueError otherwise).
    """
    from monai.metrics import PSNRMetric

    _check(pred, target)
    p, t = _unit_range(pred, target)
    metric = PSNRMetric(max_val=1.0)
    out = [metric(p[:, c : c + 1], t[:, c : c + 1]).reshape(-1) for c in range(p.shape[1])]
    return torch.stack(out, dim=1).float()


def channel_metrics(
    pred: Tensor,
    target: Tensor,
    channel_names: Sequence[str],
    metrics: Sequence[str] = ("pearson", "ssim", "psnr", "mae"),
) -> dict[str, dict[str, float]]:
    """Batch means of each metric for each named target channel.

    Parameters
    ----------
    pred : Tensor
        Prediction, ``(B, C, Y, X)`` or ``(B, C, Z, Y, X)``.
    target : Tensor
        Target of the same shape as ``pred``.
    channel_names : Sequence[str]
        Name of each of the C channels, in order (ValueError if the count differs).
    metrics : Sequence[str]
        Metrics to compute, any of ``"pearson"``, ``"ssim"``, ``"psnr"``, ``"mae"``
        (default all four); an unknown name raises ValueError.

    Returns
    -------
    dict
        ``{channel: {"pearson": r, "ssim": s, "psnr": db, "mae": e}}``.
    """
    if len(channel_names) != pred.shape[1]:
        raise ValueError(
            f"{len(channel_names)} channel names {list(channel_names)} for a prediction "
            f"with {pred.shape[1]} channels"
        )
    functions = {"pearson": pearson_r, "ssim": ssim, "psnr": psnr, "mae": mae}
    unknown = set(metrics) - set(functions)
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}; choose from {sorted(functions)}")
    pred, target = pred.detach(), target.detach()
    values = {name: functions[name](pred, target).mean(0) for name in metrics}
    return {
        channel: {name: float(values[name][c]) for name in metrics}
        for c, channel in enumerate(channel_names)
    }
