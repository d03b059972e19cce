"""Fully convolutional masked autoencoder (FCMAE) with a ConvNeXt V2 encoder.

Masked pre-training after ConvNeXt V2 (Woo et al., CVPR 2023): random patches at the
coarsest (1/32) resolution are masked; masked positions are zeroed after the stem, after
every depthwise convolution and after every downsampling, which emulates sparse convolution
on a dense tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, GlobalResponseNormMlp, LayerNorm2d
from torch import Tensor

from viscy_models.components.blocks import linear_rates
from viscy_models.components.decoders import UnetDecoder
from viscy_models.components.heads import (
    PixelToVoxelHead,
    PixelToVoxelShuffleHead,
    voxel_head_channels,
)

__all__ = ["FullyConvolutionalMAE", "generate_mask", "upsample_mask"]


def generate_mask(
    batch: int, grid: tuple[int, int], mask_ratio: float, device: torch.device | None = None
) -> Tensor:
    """Random boolean patch mask ``(B, 1, gy, gx)``; True = masked."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}.")
    n = grid[0] * grid[1]
    n_masked = int(round(n * mask_ratio))
    scores = torch.rand(batch, n, device=device)
    rank = scores.argsort(dim=1).argsort(dim=1)
    return (rank < n_masked).reshape(batch, 1, *grid)


def upsample_mask(mask: Tensor, size: Sequence[int]) -> Tensor:
    """Nearest upsampling of a boolean mask to ``size`` (Y, X)."""
    return F.interpolate(mask.float(), size=tuple(size), mode="nearest").bool()


def _apply_mask(x: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return x
    return x * (~upsample_mask(mask, x.shape[-2:])).to(x.dtype)


class MaskedConvNeXtV2Block(nn.Module):
    """ConvNeXt V2 block (channels-last MLP with GRN) that re-applies the patch mask."""

    def __init__(self, channels: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(
            channels, channels, kernel_size=7, padding=3, groups=channels, bias=False
        )
        self.layernorm = nn.LayerNorm(channels)  # eps 1e-5, as in 0.1.0
        self.mlp = GlobalResponseNormMlp(channels, 4 * channels)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        shortcut = x
        x = _apply_mask(self.dwconv(x), mask)
        x = self.mlp(self.layernorm(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return _apply_mask(shortcut + self.drop_path(x), mask)


class MaskedConvNeXtV2Stage(nn.Module):
    """Optional (norm, 2x2 conv) downsampling followed by masked blocks."""

    def __init__(
        self, in_channels: int, out_channels: int, depth: int, drop_path_rates: Sequence[float]
    ) -> None:
        super().__init__()
        if in_channels != out_channels:
            self.downsample = nn.Sequential(
                LayerNorm2d(in_channels), nn.Conv2d(in_channels, out_channels, 2, stride=2)
            )
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.ModuleList(
            MaskedConvNeXtV2Block(out_channels, drop_path_rates[i]) for i in range(depth)
        )

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = _apply_mask(self.downsample(x), mask)
        for block in self.blocks:
            x = block(x, mask)
        return x


class MaskedAdaptiveProjection(nn.Module):
    """Stem for 3D stacks (3D conv, depth folded into channels) or 2D images (2D conv)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size_2d: int = 4,
        kernel_depth: int = 5,
        in_stack_depth: int = 5,
    ) -> None:
        super().__init__()
        if in_stack_depth % kernel_depth:
            raise ValueError(
                f"in_stack_depth={in_stack_depth} is not divisible by the stem depth kernel "
                f"stem_kernel_size[0]={kernel_depth}; use a multiple of {kernel_depth}."
            )
        depth_out = in_stack_depth // kernel_depth
        if out_channels % depth_out:
            raise ValueError(
                f"dims[0]={out_channels} is not divisible by in_stack_depth / stem depth = "
                f"{depth_out}; change dims[0], in_stack_depth or stem_kernel_size[0]."
            )
        self.conv3d = nn.Conv3d(
            in_channels,
            out_channels // depth_out,
            kernel_size=(kernel_depth, kernel_size_2d, kernel_size_2d),
            stride=(kernel_depth, kernel_size_2d, kernel_size_2d),
        )
        self.conv2d = nn.Conv2d(
            in_channels, out_channels, kernel_size=kernel_size_2d, stride=kernel_size_2d
        )
        self.norm = nn.LayerNorm(out_channels)  # eps 1e-5, as in 0.1.0

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if x.ndim == 5 and x.shape[2] == 1:
            x = x[:, :, 0]
        if x.ndim == 4:
            x = self.conv2d(x)
        else:
            x = self.conv3d(x)
            b, c, d, h, w = x.shape
            x = x.reshape(b, c * d, h, w)
        x = _apply_mask(x, mask)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class MaskedMultiscaleEncoder(nn.Module):
    """Masked ConvNeXt V2 encoder returning features at 1/4 .. 1/32 resolution."""

    def __init__(
        self,
        in_channels: int,
        stage_blocks: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        drop_path_rate: float = 0.0,
        stem_kernel_size: Sequence[int] = (5, 4, 4),
        in_stack_depth: int = 5,
    ) -> None:
        super().__init__()
        if len(stage_blocks) != len(dims):
            raise ValueError(
                f"encoder_blocks {tuple(stage_blocks)} and dims {tuple(dims)} need the same length."
            )
        if stem_kernel_size[1] != stem_kernel_size[2]:
            raise ValueError(f"stem_kernel_size Y and X must match, got {tuple(stem_kernel_size)}.")
        self.stem = MaskedAdaptiveProjection(
            in_channels,
            dims[0],
            kernel_size_2d=stem_kernel_size[-1],
            kernel_depth=stem_kernel_size[0],
            in_stack_depth=in_stack_depth,
        )
        rates = linear_rates(drop_path_rate, sum(stage_blocks))
        self.stages = nn.ModuleList()
        start = 0
        for i, (depth, dim) in enumerate(zip(stage_blocks, dims, strict=True)):
            self.stages.append(
                MaskedConvNeXtV2Stage(
                    dims[i - 1] if i else dim, dim, depth, rates[start : start + depth]
                )
            )
            start += depth
        self.total_stride = stem_kernel_size[-1] * 2 ** (len(dims) - 1)

    def forward(self, x: Tensor, mask_ratio: float = 0.0) -> tuple[list[Tensor], Tensor | None]:
        mask = None
        if mask_ratio > 0:
            grid = (x.shape[-2] // self.total_stride, x.shape[-1] // self.total_stride)
            mask = generate_mask(x.shape[0], grid, mask_ratio, device=x.device)
        x = self.stem(x, mask)
        features = []
        for stage in self.stages:
            x = stage(x, mask)
            features.append(x)
        return features, mask


class FullyConvolutionalMAE(nn.Module):
    """Fully convolutional masked autoencoder for 3D-to-3D translation and pre-training.

    Parameters
    ----------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    encoder_blocks : Sequence[int]
        Blocks per encoder stage.
    dims : Sequence[int]
        Channels per encoder stage.
    encoder_drop_path_rate : float
        Stochastic depth of encoder blocks.
    stem_kernel_size : Sequence[int]
        ``(kz, ky, kx)`` of the stem.
    in_stack_depth : int
        Input (and output) depth; 2D inputs (depth 1) use the 2D stem.
    decoder_conv_blocks : int
        ConvNeXt V2 blocks per decoder stage.
    pretraining : bool
        If True, :meth:`forward` returns ``(prediction, mask)``; if False only the prediction.
    head_conv : bool
        Use a convolutional :class:`PixelToVoxelHead` (else a parameter-free pixel shuffle
        followed by a 4x4 blur).
    head_conv_expansion_ratio : int
        Width of the convolutional head.
    head_conv_pool : bool
        Blur in the convolutional head (the parameter-free head always blurs, as in 0.1.0).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        encoder_blocks: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        encoder_drop_path_rate: float = 0.0,
        stem_kernel_size: Sequence[int] = (5, 4, 4),
        in_stack_depth: int = 5,
        decoder_conv_blocks: int = 1,
        pretraining: bool = True,
        head_conv: bool = False,
        head_conv_expansion_ratio: int = 4,
        head_conv_pool: bool = True,
    ) -> None:
        super().__init__()
        dims = list(dims)
        self.encoder = MaskedMultiscaleEncoder(
            in_channels,
            stage_blocks=encoder_blocks,
            dims=dims,
            drop_path_rate=encoder_drop_path_rate,
            stem_kernel_size=stem_kernel_size,
            in_stack_depth=in_stack_depth,
        )
        if head_conv:
            # 0.1.0 layout: the decoder's width does not scale with out_channels here
            head_in = voxel_head_channels(1, in_stack_depth, head_conv_expansion_ratio)
        else:
            head_in = out_channels * in_stack_depth * 16
        self.decoder = UnetDecoder(
            num_channels=[dims[-1], *dims[-2:0:-1], head_in],
            skip_channels=dims[-2::-1],
            mode="pixelshuffle",
            conv_blocks=decoder_conv_blocks,
            block="convnext",
        )
        if head_conv:
            self.head: nn.Module = PixelToVoxelHead(
                head_in,
                out_channels,
                in_stack_depth,
                expansion_ratio=head_conv_expansion_ratio,
                pool=head_conv_pool,
            )
        else:
            # 0.1.0: the parameter-free head always blurs (head_conv_pool is for head_conv)
            self.head = PixelToVoxelShuffleHead(head_in, out_channels, in_stack_depth, pool=True)
        self.pretraining = pretraining
        self.out_stack_depth = in_stack_depth
        self.num_blocks = 5

    def forward(self, x: Tensor, mask_ratio: float = 0.0) -> Tensor | tuple[Tensor, Tensor | None]:
        """Predict ``(B, C_out, Z, Y, X)``; Y and X must be multiples of 32.

        With ``pretraining=True`` returns ``(prediction, mask)``, where ``mask`` is a boolean
        ``(B, 1, Y, X)`` tensor (True = masked) or None when ``mask_ratio == 0``.
        """
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(
                f"FullyConvolutionalMAE needs Y and X to be multiples of 32, got "
                f"{tuple(x.shape[-2:])}."
            )
        if mask_ratio > 0 and not self.pretraining:
            raise ValueError("mask_ratio > 0 needs pretraining=True (the mask is returned).")
        features, mask = self.encoder(x, mask_ratio)
        out = self.head(self.decoder(features[::-1]))
        if x.ndim == 4:
            out = out[:, :, 0] if out.shape[2] == 1 else out
        if not self.pretraining:
            return out
        full_mask = None if mask is None else upsample_mask(mask, x.shape[-2:])
        return out, full_mask
