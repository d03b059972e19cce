"""Contrastive encoder: 3D stem + 2D timm backbone + projection MLP."""

from __future__ import annotations

from typing import Literal

import torch.nn as nn
from torch import Tensor

from viscy_models._pretrained import create_timm_model
from viscy_models.components.heads import projection_mlp
from viscy_models.components.stems import StemDepthtoChannels

__all__ = ["ContrastiveEncoder", "projection_mlp"]

_BACKBONES = ("convnext_tiny", "convnextv2_tiny", "resnet50")


def _strip_patchify(encoder: nn.Module, backbone: str) -> int:
    """Replace the backbone's first 2D convolution with identity; return its out channels."""
    if backbone.startswith("convnext"):
        first = encoder.stem[0]
        encoder.stem[0] = nn.Identity()
    elif backbone.startswith("resnet"):
        first = encoder.conv1
        encoder.conv1 = nn.Identity()
    else:
        raise ValueError(f"backbone must be one of {_BACKBONES}, got {backbone!r}.")
    return first.out_channels


class ContrastiveEncoder(nn.Module):
    """Encoder of 3D patches into embeddings for contrastive learning.

    A :class:`~viscy_models.components.StemDepthtoChannels` stem replaces the backbone's
    patchify convolution; the backbone's pooled features are the embedding and a
    Linear-BN-ReLU-Linear-BN MLP gives the projection.

    Parameters
    ----------
    backbone : {"convnext_tiny", "convnextv2_tiny", "resnet50"}
        timm backbone.
    in_channels : int
        Input channels.
    in_stack_depth : int
        Input depth (Z).
    stem_kernel_size : tuple[int, int, int]
        Stem kernel ``(kz, ky, kx)``.
    stem_stride : tuple[int, int, int]
        Stem stride; Y/X stride 4 keeps the backbone's native resolution schedule.
    embedding_dim : int
        Feature dimension; must equal the backbone's (768 for ConvNeXt tiny, 2048 for ResNet-50).
    projection_dim : int
        Projection dimension.
    drop_path_rate : float
        Stochastic depth of the backbone.
    pretrained : bool
        Load ImageNet weights (needs network access or a filled cache).

    Notes
    -----
    ``forward(x)`` maps ``(B, C, Z, Y, X)`` to ``(features (B, embedding_dim),
    projections (B, projection_dim))``.
    """

    def __init__(
        self,
        backbone: Literal["convnext_tiny", "convnextv2_tiny", "resnet50"],
        in_channels: int,
        in_stack_depth: int,
        stem_kernel_size: tuple[int, int, int] = (5, 4, 4),
        stem_stride: tuple[int, int, int] = (5, 4, 4),
        embedding_dim: int = 768,
        projection_dim: int = 128,
        drop_path_rate: float = 0.0,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        if backbone not in _BACKBONES:
            raise ValueError(f"backbone must be one of {_BACKBONES}, got {backbone!r}.")
        encoder = create_timm_model(
            backbone, pretrained=pretrained, num_classes=0, drop_path_rate=drop_path_rate
        )
        if encoder.num_features != embedding_dim:
            raise ValueError(
                f"embedding_dim={embedding_dim} does not match backbone '{backbone}', whose "
                f"features have {encoder.num_features} channels; set embedding_dim="
                f"{encoder.num_features}."
            )
        stem_channels = _strip_patchify(encoder, backbone)
        self.stem = StemDepthtoChannels(
            in_channels,
            in_stack_depth,
            stem_channels,
            stem_kernel_size=stem_kernel_size,
            stem_stride=stem_stride,
            backbone_name=backbone,
        )
        self.encoder = encoder
        self.projection = projection_mlp(embedding_dim, embedding_dim, projection_dim)
        self.backbone = backbone
        self.in_stack_depth = in_stack_depth

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.encoder(self.stem(x))
        return features, self.projection(features)
