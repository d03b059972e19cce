"""DINOv3 (Hugging Face ``transformers``) as a frozen encoder of microscopy patches."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from viscy_models.foundation._frozen import FrozenBackboneMixin, middle_slice
from viscy_models.foundation._hub import load_hf_image_processor, load_hf_model

__all__ = ["DINOv3Model"]


def _processor_size(processor) -> tuple[int, int]:
    size = getattr(processor, "size", None) or {}
    if "height" in size and "width" in size:
        return int(size["height"]), int(size["width"])
    edge = int(size.get("shortest_edge", 224))
    return edge, edge


class DINOv3Model(FrozenBackboneMixin):
    """DINOv3 vision transformer returning ``(features, projections)``.

    The model's image processor (``preprocessor_config.json``) gives the input size and the
    normalisation: patches, assumed z-scored, are mapped from [-3, 3] to [0, 1] (clipped),
    resized bilinearly and normalised with the processor's mean and std, as in 0.1.0.

    Parameters
    ----------
    model_name : str
        Hugging Face model id (e.g. ``facebook/dinov3-vits16-pretrain-lvd1689m``) or a local
        directory. Weights are downloaded on construction; without network access a
        :class:`~viscy_models.PretrainedWeightsUnavailableError` explains what to do.
    freeze : bool
        Keep the backbone frozen (eval mode, no gradients).
    projection : nn.Module | None
        Optional trainable projection of the features; without one both outputs are the
        features.
    """

    def __init__(
        self, model_name: str, freeze: bool = True, projection: nn.Module | None = None
    ) -> None:
        super().__init__()
        processor = load_hf_image_processor(model_name)
        self.model = load_hf_model(model_name)
        self.register_buffer(
            "image_mean", torch.tensor(processor.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        )
        self.register_buffer(
            "image_std", torch.tensor(processor.image_std, dtype=torch.float32).view(1, 3, 1, 1)
        )
        self.target_size = _processor_size(processor)
        self.freeze = freeze
        self.projection = projection
        self._freeze_backbone()

    def preprocess_2d(self, x: Tensor) -> Tensor:
        """``(B, C, Z, Y, X)`` or ``(B, C, Y, X)`` -> normalised ``(B, 3, H, W)`` RGB."""
        x = middle_slice(x)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 2:
            x = torch.cat([x, x[:, :1]], dim=1)
        else:
            x = x[:, :3]
        if tuple(x.shape[-2:]) != self.target_size:
            x = F.interpolate(x, size=self.target_size, mode="bilinear", align_corners=False)
        x = ((x + 3.0) / 6.0).clamp(0.0, 1.0)
        return (x - self.image_mean) / self.image_std

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.model(pixel_values=self.preprocess_2d(x))
        features = getattr(out, "pooler_output", None)
        if features is None:
            features = out.last_hidden_state[:, 0]
        projections = self.projection(features) if self.projection is not None else features
        return features, projections
