"""Fully 3D ResNet encoder (MONAI) with a projection MLP."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from viscy_models._pretrained import build_with_weights
from viscy_models.components.heads import projection_mlp

__all__ = ["ResNet3dEncoder"]

_BACKBONES = ("resnet10", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet200")


class ResNet3dEncoder(nn.Module):
    """3D ResNet (MONAI ``ResNetFeatures``, MedicalNet layout) for contrastive learning.

    Parameters
    ----------
    backbone : str
        One of resnet10, resnet18, resnet34, resnet50, resnet101, resnet152, resnet200.
    in_channels : int
        Input channels.
    embedding_dim : int
        Feature dimension; must equal the backbone's (512 up to resnet34, 2048 from resnet50).
    projection_dim : int
        Projection dimension.
    pretrained : bool
        Load MedicalNet weights (needs network access or a filled cache).

    Notes
    -----
    ``forward(x)`` maps ``(B, C, Z, Y, X)`` to ``(features, projections)``.
    """

    def __init__(
        self,
        backbone: str,
        in_channels: int = 1,
        embedding_dim: int = 512,
        projection_dim: int = 128,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        if backbone not in _BACKBONES:
            raise ValueError(f"backbone must be one of {_BACKBONES}, got {backbone!r}.")
        from monai.networks.nets import ResNetFeatures

        self.encoder = build_with_weights(
            "MONAI",
            backbone,
            pretrained,
            lambda: ResNetFeatures(
                backbone, pretrained=pretrained, spatial_dims=3, in_channels=in_channels
            ),
        )
        out_dim = [m for m in self.encoder.layer4.modules() if isinstance(m, nn.BatchNorm3d)][
            -1
        ].num_features
        if out_dim != embedding_dim:
            raise ValueError(
                f"embedding_dim={embedding_dim} does not match backbone '{backbone}', whose "
                f"features have {out_dim} channels; set embedding_dim={out_dim}."
            )
        self.projection = projection_mlp(embedding_dim, embedding_dim, projection_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feature_map = self.encoder(x)[-1]
        features = F.adaptive_avg_pool3d(feature_map, 1).flatten(1)
        return features, self.projection(features)
