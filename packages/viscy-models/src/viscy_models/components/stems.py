"""Stems that fold the depth (Z) axis of a 3D stack into channels for 2D backbones."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn
from torch import Tensor

__all__ = ["StemDepthtoChannels", "stem_depth_out"]


def stem_depth_out(in_stack_depth: int, kernel_depth: int, stride_depth: int) -> int:
    """Depth left after the stem convolution; ValueError if the stack does not tile."""
    if in_stack_depth < kernel_depth or (in_stack_depth - kernel_depth) % stride_depth:
        raise ValueError(
            f"in_stack_depth={in_stack_depth} is not compatible with stem depth kernel "
            f"{kernel_depth} and stride {stride_depth}: (in_stack_depth - kernel) must be a "
            f"non-negative multiple of the stride. Change in_stack_depth to one of "
            f"{[kernel_depth + i * stride_depth for i in range(4)]} or change "
            "stem_kernel_size[0] / stem_stride[0]."
        )
    return (in_stack_depth - kernel_depth) // stride_depth + 1


class StemDepthtoChannels(nn.Module):
    """3D convolution whose output depth is folded into channels.

    Maps ``(B, in_channels, D, H, W)`` to ``(B, out_channels, H', W')`` with
    ``out_channels = conv_channels * D'``, where ``D'`` is the depth after the convolution.

    Parameters
    ----------
    in_channels : int
        Channels of the input stack.
    in_stack_depth : int
        Depth (Z) of the input stack.
    out_channels : int
        Channels expected by the 2D backbone after folding depth.
    kernel_size : Sequence[int]
        ``(kz, ky, kx)`` kernel of the 3D convolution.
    stride : Sequence[int] | None
        Stride; defaults to ``kernel_size`` (non-overlapping patches).
    backbone_name : str
        Used in error messages only.
    """

    def __init__(
        self,
        in_channels: int,
        in_stack_depth: int,
        out_channels: int,
        kernel_size: Sequence[int] = (5, 4, 4),
        stride: Sequence[int] | None = None,
        backbone_name: str = "backbone",
    ) -> None:
        super().__init__()
        kernel_size = tuple(int(k) for k in kernel_size)
        stride = kernel_size if stride is None else tuple(int(s) for s in stride)
        if len(kernel_size) != 3 or len(stride) != 3:
            raise ValueError(
                f"stem kernel size {kernel_size} and stride {stride} must both have 3 entries "
                "(Z, Y, X)."
            )
        depth_out = stem_depth_out(in_stack_depth, kernel_size[0], stride[0])
        if out_channels % depth_out:
            raise ValueError(
                f"{backbone_name} expects {out_channels} channels after the stem, which is not "
                f"divisible by the {depth_out} depth slices left by the stem "
                f"(in_stack_depth={in_stack_depth}, stem kernel depth {kernel_size[0]}, "
                f"stride {stride[0]}). Choose in_stack_depth / stem depth so that "
                f"{out_channels} is a multiple of the slice count."
            )
        self.in_stack_depth = in_stack_depth
        self.depth_out = depth_out
        self.conv = nn.Conv3d(
            in_channels, out_channels // depth_out, kernel_size=kernel_size, stride=stride
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 5:
            raise ValueError(f"Expected a (B, C, Z, Y, X) tensor, got shape {tuple(x.shape)}.")
        if x.shape[2] != self.in_stack_depth:
            raise ValueError(
                f"Input depth {x.shape[2]} differs from in_stack_depth={self.in_stack_depth}."
            )
        x = self.conv(x)
        b, c, d, h, w = x.shape
        return x.reshape(b, c * d, h, w)


def fold_depth(x: Tensor) -> Tensor:
    """``(B, C, D, H, W) -> (B, C * D, H, W)``."""
    b, c, d, h, w = x.shape
    return x.reshape(b, c * d, h, w)


def unfold_depth(x: Tensor, depth: int) -> Tensor:
    """``(B, C * D, H, W) -> (B, C, D, H, W)``."""
    b, cd, h, w = x.shape
    return x.reshape(b, cd // depth, depth, h, w)
