"""Configurable 3D U-Net: residual blocks per level, strided downsampling, a bottleneck module."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
from torch import Tensor

from viscy_models.unet.blocks import ResnetBlock, TimestepEmbedder

__all__ = ["UNet3DBase"]


class UNet3DBase(nn.Module):
    """3D U-Net over levels of widths ``dims``.

    ``inconv`` (3x3x3) lifts the input to ``dims[0]``; encoder level ``i`` runs
    ``num_res_block[i]`` :class:`~viscy_models.unet.blocks.ResnetBlock` s at ``dims[i]`` and
    a stride-2 3x3x3 convolution to ``dims[i + 1]``; ``bottleneck`` runs at ``dims[-1]``;
    the decoder mirrors the encoder with stride-2 transposed convolutions and skip
    concatenation; ``outconv`` (3x3x3) maps to ``out_channels``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels.
    dims : list[int]
        Widths of the levels, finest first (``len(num_res_block) + 1`` entries).
    num_res_block : list[int]
        Residual blocks per encoder (and decoder) level.
    bottleneck : nn.Module
        Module at the coarsest level (``dims[-1]`` channels in and out); called as
        ``bottleneck(x, time_emb)`` when a time embedding is used.
    downsample_z : bool
        Also halve Z at each level (else only Y and X).
    residual, norm, activation, groups
        Passed to the residual blocks.
    time_embed_dim : int | None
        If set, ``forward(x, t)`` embeds timesteps ``t`` with a
        :class:`~viscy_models.unet.blocks.TimestepEmbedder` that modulates every block.
    cond_channels : int | None
        If set, ``forward(x, t, cond)`` concatenates a conditioning image of this many
        channels to the input.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dims: list[int],
        num_res_block: list[int],
        bottleneck: nn.Module,
        downsample_z: bool = False,
        residual: bool = True,
        norm: Literal["group", "batch"] = "group",
        activation: Literal["silu", "relu"] = "silu",
        groups: int = 8,
        time_embed_dim: int | None = None,
        cond_channels: int | None = None,
    ) -> None:
        super().__init__()
        dims = [int(d) for d in dims]
        if len(dims) != len(num_res_block) + 1:
            raise ValueError(
                f"dims needs one more entry than num_res_block, got {len(dims)} and "
                f"{len(num_res_block)}."
            )
        self.depth = len(num_res_block)
        self.downsample_z = downsample_z
        self.cond_channels = cond_channels
        self.time_embed = TimestepEmbedder(time_embed_dim) if time_embed_dim else None
        block_kwargs = {
            "time_emb_dim": time_embed_dim,
            "residual": residual,
            "norm": norm,
            "activation": activation,
            "groups": groups,
        }
        stride = (2, 2, 2) if downsample_z else (1, 2, 2)
        self.inconv = nn.Conv3d(in_channels + (cond_channels or 0), dims[0], 3, padding=1)
        self._encoder_blocks = nn.ModuleList(
            nn.ModuleList(ResnetBlock(dims[i], dims[i], **block_kwargs) for _ in range(n))
            for i, n in enumerate(num_res_block)
        )
        self._downsamples = nn.ModuleList(
            nn.Conv3d(dims[i], dims[i + 1], 3, stride=stride, padding=1) for i in range(self.depth)
        )
        self.bottleneck = bottleneck
        self._upsamples = nn.ModuleList(
            nn.ConvTranspose3d(
                dims[i + 1],
                dims[i],
                3,
                stride=stride,
                padding=1,
                output_padding=tuple(s - 1 for s in stride),
            )
            for i in reversed(range(self.depth))
        )
        self._decoder_blocks = nn.ModuleList(
            nn.ModuleList(
                ResnetBlock(2 * dims[i] if j == 0 else dims[i], dims[i], **block_kwargs)
                for j in range(num_res_block[i])
            )
            for i in reversed(range(self.depth))
        )
        self.outconv = nn.Conv3d(dims[0], out_channels, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        if x.ndim != 5:
            raise ValueError(
                f"{type(self).__name__} expects (B, C, Z, Y, X), got {tuple(x.shape)}."
            )
        if self.cond_channels:
            if cond is None:
                raise ValueError(f"{type(self).__name__} was built with cond_channels: pass cond.")
            x = torch.cat([x, cond], dim=1)
        factor = 2**self.depth
        dims = ("D", "H", "W") if self.downsample_z else ("H", "W")
        for axis, size in zip(dims, x.shape[-len(dims) :], strict=True):
            if size % factor:
                raise ValueError(
                    f"Spatial dim {axis}={size} must be divisible by {factor} "
                    f"(2^{self.depth} levels) for {type(self).__name__}."
                )
        emb = None
        if self.time_embed is not None:
            if t is None:
                raise ValueError(f"{type(self).__name__} was built with time_embed_dim: pass t.")
            emb = self.time_embed(t)
        x = self.inconv(x)
        skips = []
        for blocks, down in zip(self._encoder_blocks, self._downsamples, strict=True):
            for block in blocks:
                x = block(x, emb)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x, emb) if emb is not None else self.bottleneck(x)
        for up, blocks in zip(self._upsamples, self._decoder_blocks, strict=True):
            x = torch.cat([up(x), skips.pop()], dim=1)
            for block in blocks:
                x = block(x, emb)
        return self.outconv(x)
