"""Residual 3D convolution blocks of the 3D U-Net family (with optional time embedding)."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["Block", "ConvBottleneck3D", "ResnetBlock", "TimestepEmbedder"]


def _norm(kind: Literal["group", "batch"], channels: int, groups: int) -> nn.Module:
    if kind == "group":
        if channels % groups:
            raise ValueError(
                f"GroupNorm needs channels ({channels}) divisible by groups ({groups})."
            )
        return nn.GroupNorm(groups, channels)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    raise ValueError(f"norm must be 'group' or 'batch', got {kind!r}.")


def _activation(kind: Literal["silu", "relu"]) -> nn.Module:
    if kind == "silu":
        return nn.SiLU()
    if kind == "relu":
        return nn.ReLU()
    raise ValueError(f"activation must be 'silu' or 'relu', got {kind!r}.")


class Block(nn.Module):
    """3x3x3 convolution (``proj``), normalisation (``norm``), optional FiLM, activation."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        norm: Literal["group", "batch"] = "group",
        activation: Literal["silu", "relu"] = "silu",
        groups: int = 8,
    ) -> None:
        super().__init__()
        self.proj = nn.Conv3d(dim, dim_out, kernel_size=3, padding=1)
        self.norm = _norm(norm, dim_out, groups)
        self.act = _activation(activation)

    def forward(self, x: Tensor, scale_shift: tuple[Tensor, Tensor] | None = None) -> Tensor:
        x = self.norm(self.proj(x))
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return self.act(x)


class ResnetBlock(nn.Module):
    """Two :class:`Block` s; the time embedding (if any) modulates the first one.

    With ``residual`` the input is added back (through a 1x1x1 convolution ``res_conv`` when
    the channel count changes).
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        *,
        time_emb_dim: int | None = None,
        residual: bool = True,
        norm: Literal["group", "batch"] = "group",
        activation: Literal["silu", "relu"] = "silu",
        groups: int = 8,
    ) -> None:
        super().__init__()
        self.mlp = (
            nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out * 2))
            if time_emb_dim is not None
            else None
        )
        self.block1 = Block(dim, dim_out, norm, activation, groups)
        self.block2 = Block(dim_out, dim_out, norm, activation, groups)
        self.residual = residual
        self.res_conv = (
            nn.Conv3d(dim, dim_out, kernel_size=1) if residual and dim != dim_out else nn.Identity()
        )

    def forward(self, x: Tensor, time_emb: Tensor | None = None) -> Tensor:
        scale_shift = None
        if self.mlp is not None and time_emb is not None:
            emb = self.mlp(time_emb)[:, :, None, None, None]
            scale_shift = tuple(emb.chunk(2, dim=1))
        h = self.block2(self.block1(x, scale_shift))
        return h + self.res_conv(x) if self.residual else h


class ConvBottleneck3D(nn.Module):
    """Bottleneck of :class:`~viscy_models.unet.unet3d_base.UNet3DBase`: one ResnetBlock."""

    def __init__(
        self,
        channels: int,
        *,
        time_emb_dim: int | None = None,
        residual: bool = True,
        norm: Literal["group", "batch"] = "group",
        activation: Literal["silu", "relu"] = "silu",
        groups: int = 8,
    ) -> None:
        super().__init__()
        self.block = ResnetBlock(
            channels,
            channels,
            time_emb_dim=time_emb_dim,
            residual=residual,
            norm=norm,
            activation=activation,
            groups=groups,
        )

    def forward(self, x: Tensor, time_emb: Tensor | None = None) -> Tensor:
        return self.block(x, time_emb)


class TimestepEmbedder(nn.Module):
    """Sinusoidal embedding of (diffusion) timesteps followed by a two-layer MLP."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256) -> None:
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        half = frequency_embedding_size // 2
        # a buffer, as in 0.1.0 checkpoints (key ``freqs``)
        self.register_buffer(
            "freqs", torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        )
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size),
        )

    @staticmethod
    def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
        """(N,) timesteps -> (N, dim) [cos | sin] features at geometric frequencies."""
        half = dim // 2
        freqs = torch.exp(
            -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
        )
        args = t[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb

    def forward(self, t: Tensor) -> Tensor:
        args = t[:, None].float() * self.freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if self.frequency_embedding_size % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return self.mlp(emb)
