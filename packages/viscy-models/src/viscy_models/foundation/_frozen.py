"""Shared behaviour of frozen 2D foundation backbones applied to 3D microscopy patches."""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor


class FrozenBackboneMixin(nn.Module):
    """``freeze`` keeps the backbone (submodule ``model``, as in 0.1.0) in eval mode without
    gradients."""

    model: nn.Module
    freeze: bool

    @property
    def backbone(self) -> nn.Module:
        """The wrapped foundation model (read-only alias of ``model``)."""
        return self.model

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
