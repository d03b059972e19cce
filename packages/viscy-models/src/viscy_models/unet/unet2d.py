"""Classic 2D U-Net (microDL style) for 2D-to-2D translation or segmentation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from viscy_models.components.blocks import ConvBlock2D
from viscy_models.unet._filters import resolve_filters

__all__ = ["Unet2d"]


class Unet2d(nn.Module):
    """2D U-Net: conv blocks with 2x average pooling down and bilinear upsampling up.

    Parameters
    ----------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    kernel_size : Sequence[int]
        Y/X kernel of the convolutions.
    residual : bool
        Add a 1x1-convolved shortcut in every block.
    dropout : float
        Recorded only: 0.1.0's Unet2d does not apply it (its blocks have no dropout).
    num_blocks : int
        Number of down (and up) blocks; Y and X must be multiples of ``2**num_blocks``.
    num_block_layers : int
        Convolutions per block.
    num_filters : Sequence[int]
        Filters per down block plus bottom; () means 16, 32, 64, ...
    task : {"seg", "reg"}
        "seg": the terminal convolution is followed by a ReLU; "reg": linear output.

    Notes
    -----
    Input ``(B, C, Y, X)`` or ``(B, C, 1, Y, X)``; the output has the same layout.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        kernel_size: Sequence[int] = (3, 3),
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
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = tuple(kernel_size)
        self.residual = residual
        self.dropout = dropout
        self.num_blocks = num_blocks
        self.num_block_layers = num_block_layers
        self.num_filters = resolve_filters(num_filters, num_blocks)
        self.task = task
        self.register_modules()

    def _block(self, cin: int, cout: int, **kwargs) -> ConvBlock2D:
        return ConvBlock2D(
            cin,
            cout,
            kernel_size=self.kernel_size,
            num_repeats=kwargs.pop("num_repeats", self.num_block_layers),
            residual=kwargs.pop("residual", self.residual),
            # 0.1.0's Unet2d records ``dropout`` but its blocks do not apply it
            dropout=False,
            filter_steps="first",
            **kwargs,
        )

    def register_modules(self) -> None:
        """Create the blocks (names are part of the checkpoint format)."""
        f = self.num_filters
        for i in range(self.num_blocks):
            self.add_module(
                f"down_conv_block_{i}", self._block(self.in_channels if i == 0 else f[i - 1], f[i])
            )
        self.bottom_transition_block = self._block(f[-2], f[-1])
        for i in range(self.num_blocks):
            j = self.num_blocks - 1 - i
            self.add_module(f"up_conv_block_{i}", self._block(f[j + 1] + f[j], f[j]))
        self.terminal_block = self._block(
            f[0],
            self.out_channels,
            num_repeats=1,
            residual=False,
            norm=None,
            # 0.1.0: the "seg" head ends in a ReLU, the "reg" head is linear
            activation="relu" if self.task == "seg" else "linear",
        )

    def forward(self, x: Tensor) -> Tensor:
        squeeze = x.ndim == 5
        if squeeze:
            if x.shape[2] != 1:
                raise ValueError(f"Unet2d takes depth 1 for 5D input, got shape {tuple(x.shape)}.")
            x = x[:, :, 0]
        m = 2**self.num_blocks
        if x.shape[-1] % m or x.shape[-2] % m:
            raise ValueError(
                f"Unet2d with num_blocks={self.num_blocks} needs Y and X multiples of {m}, "
                f"got {tuple(x.shape[-2:])}."
            )
        skips: list[Tensor] = []
        for i in range(self.num_blocks):
            x = getattr(self, f"down_conv_block_{i}")(x)
            skips.append(x)
            x = F.avg_pool2d(x, 2)
        x = self.bottom_transition_block(x)
        for i in range(self.num_blocks):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = torch.cat([x, skips.pop()], dim=1)
            x = getattr(self, f"up_conv_block_{i}")(x)
        x = self.terminal_block(x)
        return x[:, :, None] if squeeze else x
