"""Fully 3D U-Net (after the label-free prediction U-Net of Ounkomol et al., 2018)."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["UNet3DBase", "Unet3d"]


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, kernel_size=3, padding=1),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
        nn.Conv3d(cout, cout, kernel_size=3, padding=1),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


class UNet3DBase(nn.Module):
    """3D U-Net with strided-convolution downsampling and transposed-convolution upsampling.

    Level ``i`` has ``mult_chan * 2**i`` channels; Z, Y and X must be multiples of
    ``2**depth``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels.
    depth : int
        Number of downsamplings.
    mult_chan : int
        Channels of the first level.
    in_stack_depth : int | None
        If given, checked against ``2**depth`` at construction and against inputs.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 4,
        mult_chan: int = 32,
        in_stack_depth: int | None = None,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}.")
        if in_stack_depth is not None and in_stack_depth % 2**depth:
            raise ValueError(
                f"in_stack_depth={in_stack_depth} must be a multiple of 2**depth={2**depth}; "
                "change in_stack_depth or depth."
            )
        self.depth = depth
        self.in_stack_depth = in_stack_depth
        self.out_stack_depth = in_stack_depth
        chans = [mult_chan * 2**i for i in range(depth + 1)]
        self.input_block = _double_conv(in_channels, chans[0])
        self.down = nn.ModuleList(
            nn.Sequential(
                nn.Conv3d(chans[i], chans[i], kernel_size=2, stride=2),
                nn.BatchNorm3d(chans[i]),
                nn.ReLU(inplace=True),
            )
            for i in range(depth)
        )
        self.encoder_blocks = nn.ModuleList(
            _double_conv(chans[i], chans[i + 1]) for i in range(depth)
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose3d(chans[i + 1], chans[i], kernel_size=2, stride=2)
            for i in reversed(range(depth))
        )
        self.decoder_blocks = nn.ModuleList(
            _double_conv(2 * chans[i], chans[i]) for i in reversed(range(depth))
        )
        self.output_conv = nn.Conv3d(chans[0], out_channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        m = 2**self.depth
        if x.ndim != 5 or any(s % m for s in x.shape[2:]):
            raise ValueError(
                f"Unet3d with depth={self.depth} expects (B, C, Z, Y, X) with Z, Y, X multiples "
                f"of {m}; got {tuple(x.shape)}."
            )
        x = self.input_block(x)
        skips = [x]
        for down, block in zip(self.down, self.encoder_blocks, strict=True):
            x = block(down(x))
            skips.append(x)
        skips.pop()
        for up, block in zip(self.up, self.decoder_blocks, strict=True):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        return self.output_conv(x)


class Unet3d(UNet3DBase):
    """3D U-Net for volumetric image translation; see :class:`UNet3DBase`."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 4,
        mult_chan: int = 32,
        in_stack_depth: int | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, depth, mult_chan, in_stack_depth)
