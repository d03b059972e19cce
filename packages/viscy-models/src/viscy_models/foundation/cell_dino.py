"""CELL-DINO (a channel-adaptive DINOv2 ViT-L/16 trained on cells) as an encoder of patches."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from viscy_models.foundation._frozen import FrozenBackboneMixin, middle_slice
from viscy_models.foundation._vit import ChunkedViT

__all__ = ["CellDinoModel"]


class CellDinoModel(FrozenBackboneMixin):
    """CELL-DINO returning ``(features, projections)`` for raw ``(B, C, [Z,] Y, X)`` batches.

    Every channel is embedded on its own as a single-channel image and the class tokens are
    averaged over channels: ``features`` has shape ``(B, 1024)``.

    Parameters
    ----------
    weights_path : str
        Local ``.pth`` file holding the ViT's state dict (DINOv2 key layout, e.g.
        ``channel_adaptive_dino_vitl16_pretrain_cells-*.pth``); loaded strictly.
    img_size : int
        Side of the square image the ViT sees; inputs are resized to it.
    patch_size : int
        ViT patch size.
    freeze : bool
        Keep the ViT frozen (eval mode, no gradients).
    projection : nn.Module | None
        Optional projection of the features; without one both outputs are the features.
    """

    def __init__(
        self,
        weights_path: str,
        img_size: int = 224,
        patch_size: int = 16,
        freeze: bool = True,
        projection: nn.Module | None = None,
    ) -> None:
        super().__init__()
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"CELL-DINO weights not found: {path}")
        self.model = ChunkedViT(img_size=img_size, patch_size=patch_size)
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state_dict, strict=True)
        self.target_size = (img_size, img_size)
        self.freeze = freeze
        self.projection = projection
        self._freeze_backbone()

    def preprocess_2d(self, x: Tensor) -> Tensor:
        """``(B, C, Z, Y, X)`` (middle Z slice) or ``(B, C, Y, X)`` -> ``(B, C, *target_size)``,
        resized bilinearly, each image and channel z-scored over its pixels."""
        x = middle_slice(x)
        x = F.interpolate(x, size=self.target_size, mode="bilinear", align_corners=False)
        mean = x.mean(dim=(-2, -1), keepdim=True)
        std = x.std(dim=(-2, -1), keepdim=True, unbiased=False)
        return (x - mean) / std.clamp_min(1e-6)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.preprocess_2d(x)
        b, c, h, w = x.shape
        features = self.model(x.reshape(b * c, 1, h, w)).reshape(b, c, -1).mean(dim=1)
        if self.projection is None:
            return features, features
        return features, self.projection(features)
