"""Fully 3D U-Net for volumetric image translation (the 0.1.0 ``Unet3d`` layout)."""

from __future__ import annotations

from viscy_models.unet.blocks import ConvBottleneck3D
from viscy_models.unet.unet3d_base import UNet3DBase

__all__ = ["UNet3DBase", "Unet3d"]


class Unet3d(UNet3DBase):
    """3D U-Net: level ``i`` has ``mult_chan * 2**i`` channels and one residual-free block.

    BatchNorm and ReLU; Z, Y and X are all halved at each of the ``depth`` levels, so each
    must be a multiple of ``2**depth``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels.
    depth : int
        Number of downsamplings.
    mult_chan : int
        Channels of the first level.
    in_stack_depth : int | None
        Recorded as ``in_stack_depth`` / ``out_stack_depth`` (Z is checked in ``forward``).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 4,
        mult_chan: int = 32,
        in_stack_depth: int | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}.")
        dims = [mult_chan * 2**i for i in range(depth + 1)]
        block = {"residual": False, "norm": "batch", "activation": "relu"}
        super().__init__(
            in_channels,
            out_channels,
            dims=dims,
            num_res_block=[1] * depth,
            bottleneck=ConvBottleneck3D(dims[-1], **block),
            downsample_z=True,
            **block,
        )
        self.in_stack_depth = in_stack_depth
        self.out_stack_depth = in_stack_depth
