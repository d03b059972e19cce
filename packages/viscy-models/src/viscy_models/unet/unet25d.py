"""2.5D U-Net: 3D encoder on a Z-stack, skips and bottleneck compressed to the output depth."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from viscy_models.components.blocks import ConvBlock3D
from viscy_models.unet._filters import resolve_filters

__all__ = ["Unet25d"]


class Unet25d(nn.Module):
    """2.5D U-Net: ``(B, C, Z_in, Y, X) -> (B, C_out, Z_out, Y, X)``.

    Down blocks use 3x3x3 convolutions and pool only in Y/X; each skip and the bottleneck
    are compressed from ``in_stack_depth`` to ``out_stack_depth`` slices by a valid
    convolution along Z; up blocks use 1x3x3 convolutions.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels.
    in_stack_depth : int
        Input depth.
    out_stack_depth : int
        Output depth (<= in_stack_depth).
    xy_kernel_size : Sequence[int]
        Y/X kernel of the convolutions.
    residual : bool
        Add a 1x1-convolved shortcut in every block.
    dropout : float
        Channel dropout after each convolution.
    num_blocks : int
        Number of down (and up) blocks; Y and X must be multiples of ``2**num_blocks``.
    num_block_layers : int
        Convolutions per block.
    num_filters : Sequence[int]
        Filters per down block plus bottom; () means 16, 32, 64, ...
    task : {"seg", "reg"}
        Recorded for configuration compatibility; the output is linear.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        in_stack_depth: int = 5,
        out_stack_depth: int = 1,
        xy_kernel_size: Sequence[int] = (3, 3),
        residual: bool = False,
        dropout: float = 0.2,
        num_blocks: int = 4,
        num_block_layers: int = 2,
        num_filters: Sequence[int] = (),
        task: Literal["seg", "reg"] = "seg",
    ) -> None:
        super().__init__()
        if task not in ("seg", "reg"):
            raise ValueError(f"task must be 'seg' or 'reg', got {task!r}.")
        if not 1 <= out_stack_depth <= in_stack_depth:
            raise ValueError(
                f"out_stack_depth={out_stack_depth} must be between 1 and "
                f"in_stack_depth={in_stack_depth}."
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.in_stack_depth = in_stack_depth
        self.out_stack_depth = out_stack_depth
        self.xy_kernel_size = tuple(xy_kernel_size)
        self.residual = residual
        self.dropout = dropout
        self.num_blocks = num_blocks
        self.num_block_layers = num_block_layers
        self.num_filters = resolve_filters(num_filters, num_blocks)
        self.task = task
        self.register_modules()

    def _block(self, cin: int, cout: int, kz: int, **kwargs) -> ConvBlock3D:
        return ConvBlock3D(
            cin,
            cout,
            kernel_size=(kz, *self.xy_kernel_size),
            num_repeats=kwargs.pop("num_repeats", self.num_block_layers),
            residual=kwargs.pop("residual", self.residual),
            dropout=kwargs.pop("dropout", self.dropout),
            filter_steps="first",
            **kwargs,
        )

    def register_modules(self) -> None:
        """Create the blocks (names are part of the checkpoint format)."""
        f = self.num_filters
        kz = self.in_stack_depth - self.out_stack_depth + 1
        for i in range(self.num_blocks):
            self.add_module(
                f"down_conv_block_{i}",
                self._block(self.in_channels if i == 0 else f[i - 1], f[i], 3),
            )
        self.bottom_transition_block = nn.Conv3d(f[-2], f[-1], kernel_size=(kz, 1, 1))
        for i in range(self.num_blocks):
            j = self.num_blocks - 1 - i
            self.add_module(f"up_conv_block_{i}", self._block(f[j + 1] + f[j], f[j], 1))
        for i in range(self.num_blocks):
            self.add_module(f"skip_conv_layer_{i}", nn.Conv3d(f[i], f[i], kernel_size=(kz, 1, 1)))
        self.terminal_block = self._block(
            f[0],
            self.out_channels,
            1,
            num_repeats=1,
            residual=False,
            # 0.1.0: the "seg" head ends in a ReLU, the "reg" head is linear
            activation="relu" if self.task == "seg" else "linear",
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 5 or x.shape[2] != self.in_stack_depth:
            raise ValueError(
                f"Unet25d expects (B, C, {self.in_stack_depth}, Y, X), got {tuple(x.shape)}."
            )
        m = 2**self.num_blocks
        if x.shape[-1] % m or x.shape[-2] % m:
            raise ValueError(
                f"Unet25d with num_blocks={self.num_blocks} needs Y and X multiples of {m}, "
                f"got {tuple(x.shape[-2:])}."
            )
        skips: list[Tensor] = []
        for i in range(self.num_blocks):
            x = getattr(self, f"down_conv_block_{i}")(x)
            skips.append(getattr(self, f"skip_conv_layer_{i}")(x))
            x = F.avg_pool3d(x, kernel_size=(1, 2, 2))
        x = self.bottom_transition_block(x)  # 0.1.0: no activation here
        for i in range(self.num_blocks):
            x = F.interpolate(x, scale_factor=(1, 2, 2), mode="trilinear", align_corners=False)
            x = torch.cat([x, skips.pop()], dim=1)
            x = getattr(self, f"up_conv_block_{i}")(x)
        return self.terminal_block(x)
