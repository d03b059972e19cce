"""Output heads: voxel heads for image-to-image models, projection and classifier heads."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "UnsqueezeHead",
    "MLP",
    "Conv3dPReLU",
    "CosineClassifier",
    "PixelShuffleUpsample",
    "PixelToVoxelHead",
    "PixelToVoxelShuffleHead",
    "projection_mlp",
    "voxel_head_channels",
]


class PixelShuffleUpsample(nn.Module):
    """Parameter-free pixel shuffle, optionally followed by a replicate-pad + average-pool blur
    that suppresses checkerboard artefacts."""

    def __init__(self, scale: int, pool: bool = False) -> None:
        super().__init__()
        self.shuffle = nn.PixelShuffle(scale)
        self.pool = (
            nn.Sequential(
                nn.ReplicationPad2d((scale - 1, 0, scale - 1, 0)), nn.AvgPool2d(scale, stride=1)
            )
            if pool
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.shuffle(x))


class Conv3dPReLU(nn.Module):
    """3D convolution, instance norm (no affine parameters) and PReLU.

    The ``conv`` / ``adn.N`` / ``adn.A`` names follow MONAI's ``Convolution`` so the
    checkpoint keys stay ``conv.weight``, ``conv.bias`` and ``adn.A.weight``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, padding: Sequence[int]
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, padding=tuple(padding))
        self.adn = nn.Sequential(OrderedDict(N=nn.InstanceNorm3d(out_channels), A=nn.PReLU()))

    def forward(self, x: Tensor) -> Tensor:
        return self.adn(self.conv(x))


def voxel_head_channels(out_channels: int, out_stack_depth: int, expansion_ratio: int) -> int:
    """Channels a decoder must hand to :class:`PixelToVoxelHead`."""
    return out_channels * expansion_ratio * (out_stack_depth + 2) * 4


class PixelToVoxelHead(nn.Module):
    """Turn a 2D feature map at 1/4 resolution into a 3D stack at full resolution.

    Pixel-shuffle x2, split channels into ``out_stack_depth + 2`` slices, a 3x3x3
    convolution without depth padding (so two slices are consumed), a 1x1x1 projection,
    then pixel-shuffle x2 in Y/X.

    Parameters
    ----------
    in_channels : int
        A multiple of ``(out_stack_depth + 2) * 4``; each of the ``out_stack_depth + 2``
        slices gets ``in_channels / ((out_stack_depth + 2) * 4)`` channels. Decoders hand
        ``voxel_head_channels(out_channels, out_stack_depth, expansion_ratio)``.
    out_channels : int
        Output channels.
    out_stack_depth : int
        Output depth (Z).
    expansion_ratio : int
        Width of the 3D convolution relative to ``out_channels * 4``.
    pool : bool
        Blur (pad + average pool) after the first pixel shuffle.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        out_stack_depth: int,
        expansion_ratio: int,
        pool: bool,
    ) -> None:
        super().__init__()
        slices = (out_stack_depth + 2) * 4
        if in_channels % slices:
            raise ValueError(
                f"PixelToVoxelHead got {in_channels} input channels; it needs a multiple of "
                f"(out_stack_depth + 2) * 4 = {slices} (usually "
                f"voxel_head_channels(out_channels, out_stack_depth, expansion_ratio))."
            )
        self.upsample = PixelShuffleUpsample(2, pool=pool)
        self.out_stack_depth = out_stack_depth
        conv_in = in_channels // slices
        mid_channels = out_channels * expansion_ratio * 4
        self.conv = nn.Sequential(
            Conv3dPReLU(conv_in, mid_channels, kernel_size=3, padding=(0, 1, 1)),
            nn.Conv3d(mid_channels, out_channels * 4, kernel_size=1),
        )
        self.out = nn.PixelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.upsample(x)
        b, c, h, w = x.shape
        x = x.reshape(b, c // (self.out_stack_depth + 2), self.out_stack_depth + 2, h, w)
        x = self.conv(x)
        # pixel shuffle per slice: move depth into the batch axis
        b, c, d, h, w = x.shape
        x = x.transpose(1, 2).reshape(b * d, c, h, w)
        x = self.out(x)
        return x.reshape(b, d, c // 4, h * 2, w * 2).transpose(1, 2)


class UnsqueezeHead(nn.Module):
    """Add a depth axis of size 1: ``(B, C, Y, X) -> (B, C, 1, Y, X)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.unsqueeze(2)


class PixelToVoxelShuffleHead(nn.Module):
    """Parameter-free head: pixel-shuffle x4 then split channels into (C, Z)."""

    def __init__(
        self, in_channels: int, out_channels: int, out_stack_depth: int, pool: bool = False
    ) -> None:
        super().__init__()
        if in_channels != out_channels * out_stack_depth * 16:
            raise ValueError(
                f"PixelToVoxelShuffleHead got {in_channels} channels; it needs "
                f"out_channels * out_stack_depth * 16 = {out_channels * out_stack_depth * 16}."
            )
        self.out_channels = out_channels
        self.out_stack_depth = out_stack_depth
        self.upsample = PixelShuffleUpsample(4, pool=pool)

    def forward(self, x: Tensor) -> Tensor:
        x = self.upsample(x)
        b, _, h, w = x.shape
        return x.reshape(b, self.out_channels, self.out_stack_depth, h, w)


def projection_mlp(in_dims: int, hidden_dims: int, out_dims: int) -> nn.Sequential:
    """Linear-BN-ReLU-Linear-BN projection used by contrastive encoders.

    Indices (0, 1, 3, 4) are part of the checkpoint format; do not reorder.
    """
    return nn.Sequential(
        nn.Linear(in_dims, hidden_dims),
        nn.BatchNorm1d(hidden_dims),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dims, out_dims),
        nn.BatchNorm1d(out_dims),
    )


class CosineClassifier(nn.Module):
    """Linear classifier on L2-normalised features and weights, times a (learnable) scale.

    Parameters
    ----------
    in_dim : int
        Feature dimension.
    num_classes : int
        Number of classes.
    init_scale : float
        Initial logit scale (inverse temperature).
    learn_scale : bool
        Whether the scale is a trainable parameter.
    """

    def __init__(
        self, in_dim: int, num_classes: int, init_scale: float = 20.0, learn_scale: bool = True
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_dim))
        nn.init.normal_(self.weight, std=in_dim**-0.5)
        scale = torch.tensor(float(init_scale))
        if learn_scale:
            self.scale = nn.Parameter(scale)
        else:
            self.register_buffer("scale", scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * F.linear(F.normalize(x, dim=-1), F.normalize(self.weight, dim=-1))


_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
_NORMS = {"bn": nn.BatchNorm1d, "ln": nn.LayerNorm}


class MLP(nn.Module):
    """Multi-layer perceptron with optional classifier on top.

    Parameters
    ----------
    in_dims : int
        Input features.
    hidden_dims : int | Sequence[int]
        Width of each hidden layer (Linear-norm-activation-dropout).
    out_dims : int | None
        If set, a final Linear to this many features; :meth:`encode` returns its output.
    norm : {"bn", "ln"}
        Batch or layer normalisation in hidden layers.
    activation : {"relu", "gelu", "silu"}
        Activation in hidden layers.
    dropout : float
        Dropout after each hidden layer.
    num_classes : int | None
        If set, :meth:`forward` returns class logits.
    cosine_classifier : bool
        Use :class:`CosineClassifier` (else a Linear layer) for the logits.
    """

    def __init__(
        self,
        in_dims: int,
        hidden_dims: int | Sequence[int],
        out_dims: int | None = None,
        norm: Literal["bn", "ln"] = "bn",
        activation: Literal["relu", "gelu", "silu"] = "relu",
        dropout: float = 0.0,
        num_classes: int | None = None,
        cosine_classifier: bool = True,
    ) -> None:
        super().__init__()
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {sorted(_NORMS)}, got {norm!r}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}."
            )
        hidden = [hidden_dims] if isinstance(hidden_dims, int) else list(hidden_dims)
        layers: list[nn.Module] = []
        prev = in_dims
        for width in hidden:
            layers += [nn.Linear(prev, width), _NORMS[norm](width), _ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = width
        if out_dims is not None:
            layers.append(nn.Linear(prev, out_dims))
            prev = out_dims
        self.layers = nn.Sequential(*layers)
        self.out_features = prev
        self.classifier: nn.Module | None = None
        if num_classes is not None:
            self.classifier = (
                CosineClassifier(prev, num_classes)
                if cosine_classifier
                else nn.Linear(prev, num_classes)
            )

    def encode(self, x: Tensor) -> Tensor:
        """Features before the classifier."""
        return self.layers(x)

    def forward(self, x: Tensor) -> Tensor:
        x = self.encode(x)
        return x if self.classifier is None else self.classifier(x)
