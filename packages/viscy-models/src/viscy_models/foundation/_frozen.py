"""Shared behaviour of frozen 2D foundation backbones applied to 3D microscopy patches."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class FrozenBackboneMixin(nn.Module):
    """``freeze`` keeps the backbone in eval mode without gradients."""

    backbone: nn.Module
    freeze: bool

    def _freeze_backbone(self) -> None:
        if self.freeze:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> FrozenBackboneMixin:
        super().train(mode)
        if self.freeze:
            self.backbone.eval()
        return self


def middle_slice(x: Tensor) -> Tensor:
    """``(B, C, Z, Y, X)`` -> its middle Z slice ``(B, C, Y, X)``; 4D input unchanged."""
    if x.ndim == 5:
        x = x[:, :, x.shape[2] // 2]
    if x.ndim != 4:
        raise ValueError(f"Expected (B, C, Z, Y, X) or (B, C, Y, X), got {tuple(x.shape)}.")
    return x


def middle_slice_rgb(x: Tensor, size: int | None = None, normalize: bool = True) -> Tensor:
    """``(B, C, Z, Y, X)`` or ``(B, C, Y, X)`` -> ``(B, 3, Y, X)``: middle Z slice, channels
    repeated/truncated to RGB, min-max scaled per image then ImageNet-normalised."""
    x = middle_slice(x)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] == 2:
        x = torch.cat([x, x.mean(dim=1, keepdim=True)], dim=1)
    else:
        x = x[:, :3]
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if normalize:
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
        x = (x - lo) / (hi - lo).clamp_min(1e-6)
        mean = x.new_tensor(_IMAGENET_MEAN)[None, :, None, None]
        std = x.new_tensor(_IMAGENET_STD)[None, :, None, None]
        x = (x - mean) / std
    return x
