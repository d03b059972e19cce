"""Convolution blocks shared by the U-Nets and the decoders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch.nn as nn
from torch import Tensor

__all__ = ["ConvBlock2D", "ConvBlock3D", "linear_rates"]


def linear_rates(max_rate: float, n: int) -> list[float]:
    """Stochastic-depth rates rising linearly from 0 to ``max_rate`` over ``n`` blocks."""
    return [max_rate * i / max(n - 1, 1) for i in range(n)]


class _ConvBlock(nn.Module):
    """``num_repeats`` x (conv -> norm -> activation -> dropout), optional 1x1 residual.

    Attribute names (``batch_norm_i``, ``Conv{2,3}d_i``, ``resid_conv``) are part of the
    checkpoint format of :class:`~viscy_models.Unet2d` and :class:`~viscy_models.Unet25d`.
    The 1x1 ``resid_conv`` always exists (checkpoints carry it); it is only used when
    ``residual=True``.
    """

    _ndim: int

    def __init__(
        self,
        in_filters: int,
        out_filters: int,
        kernel_size: int | Sequence[int] = 3,
        num_repeats: int = 2,
        residual: bool = False,
        dropout: float = 0.0,
        norm: Literal["batch", "none"] = "batch",
        activation: Literal["relu", "linear"] = "relu",
    ) -> None:
        super().__init__()
        conv = nn.Conv2d if self._ndim == 2 else nn.Conv3d
        bn = nn.BatchNorm2d if self._ndim == 2 else nn.BatchNorm3d
        drop = nn.Dropout2d if self._ndim == 2 else nn.Dropout3d
        ks = (kernel_size,) * self._ndim if isinstance(kernel_size, int) else tuple(kernel_size)
        if len(ks) != self._ndim:
            raise ValueError(f"kernel_size {ks} must have {self._ndim} entries.")
        if norm not in ("batch", "none"):
            raise ValueError(f"norm must be 'batch' or 'none', got {norm!r}.")
        self.num_repeats = num_repeats
        self.residual = residual
        self.use_norm = norm == "batch"
        if self.use_norm:
            for i in range(num_repeats):
                self.add_module(f"batch_norm_{i}", bn(out_filters))
        for i in range(num_repeats):
            self.add_module(
                f"Conv{self._ndim}d_{i}",
                conv(
                    in_filters if i == 0 else out_filters,
                    out_filters,
                    kernel_size=ks,
                    padding=tuple(k // 2 for k in ks),
                ),
            )
        self.resid_conv = conv(in_filters, out_filters, kernel_size=1)
        self.act = nn.ReLU() if activation == "relu" else nn.Identity()
        self.drop = drop(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = x
        for i in range(self.num_repeats):
            y = getattr(self, f"Conv{self._ndim}d_{i}")(y)
            if self.use_norm:
                y = getattr(self, f"batch_norm_{i}")(y)
            y = self.drop(self.act(y))
        if self.residual:
            y = y + self.resid_conv(x)
        return y


class ConvBlock2D(_ConvBlock):
    """2D convolution block (see :class:`_ConvBlock`)."""

    _ndim = 2


class ConvBlock3D(_ConvBlock):
    """3D convolution block (see :class:`_ConvBlock`)."""

    _ndim = 3
