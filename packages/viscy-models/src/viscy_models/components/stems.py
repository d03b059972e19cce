"""Stems that fold the depth (Z) axis of a 3D stack into channels for 2D backbones."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch.nn as nn
from torch import Tensor

__all__ = ["StemDepthtoChannels", "UNeXt2Stem", "stem_depth_out"]


def stem_depth_out(in_stack_depth: int, kernel_depth: int, stride_depth: int) -> int:
    """Depth left after the stem convolution (floor, like the convolution itself).

    A stack shorter than the kernel is a ValueError; one that does not tile is accepted (as
    in 0.1.0) with a warning that its last slices are never seen.
    """
    if in_stack_depth < kernel_depth:
        raise ValueError(
            f"in_stack_depth={in_stack_depth} is smaller than the stem depth kernel "
            f"{kernel_depth}; change in_stack_depth or stem_kernel_size[0]."
        )
    unused = (in_stack_depth - kernel_depth) % stride_depth
    if unused:
        warnings.warn(
            f"in_stack_depth={in_stack_depth} does not tile with stem depth kernel "
            f"{kernel_depth} and stride {stride_depth}: the last {unused} slice(s) of each "
            f"stack are ignored. Use in_stack_depth in "
            f"{[kernel_depth + i * stride_depth for i in range(4)]} or change "
            "stem_kernel_size[0] / stem_stride[0].",
            UserWarning,
            stacklevel=3,
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
    in_channels_encoder : int
        Channels expected by the 2D backbone after folding depth.
    stem_kernel_size : Sequence[int]
        ``(kz, ky, kx)`` kernel of the 3D convolution.
    stem_stride : Sequence[int] | None
        Stride (None: ``stem_kernel_size``, non-overlapping patches).
    backbone_name : str
        Used in error messages only (keyword-only).
    """

    def __init__(
        self,
        in_channels: int,
        in_stack_depth: int,
        in_channels_encoder: int,
        stem_kernel_size: Sequence[int] = (5, 4, 4),
        stem_stride: Sequence[int] | None = (5, 4, 4),
        *,
        backbone_name: str = "backbone",
    ) -> None:
        super().__init__()
        out_channels = in_channels_encoder
        kernel_size = tuple(int(k) for k in stem_kernel_size)
        stride = kernel_size if stem_stride is None else tuple(int(s) for s in stem_stride)
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


class UNeXt2Stem(StemDepthtoChannels):
    """The stem of :class:`~viscy_models.UNeXt2`: non-overlapping 3D patches folded into
    ``out_channels`` 2D channels (``kernel_size`` is also the stride)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int],
        in_stack_depth: int,
    ) -> None:
        super().__init__(
            in_channels,
            in_stack_depth,
            out_channels,
            stem_kernel_size=kernel_size,
            stem_stride=kernel_size,
            backbone_name="UNeXt2",
        )
