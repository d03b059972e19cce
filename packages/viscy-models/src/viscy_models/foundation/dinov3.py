"""DINOv3 (Hugging Face ``transformers``) as a frozen encoder of microscopy patches."""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from viscy_models.foundation._frozen import FrozenBackboneMixin, middle_slice_rgb
from viscy_models.foundation._hub import load_hf_model

__all__ = ["DINOv3Model"]


class DINOv3Model(FrozenBackboneMixin):
    """DINOv3 vision transformer returning ``(features, projections)``.

    Parameters
    ----------
    model_name : str
        Hugging Face model id (e.g. ``facebook/dinov3-vits16-pretrain-lvd1689m``) or a local
        directory. Weights are downloaded on construction; without network access a
        :class:`~viscy_models.PretrainedWeightsUnavailableError` explains what to do.
    freeze : bool
        Keep the backbone frozen (eval mode, no gradients).
    projection : nn.Module | None
        Optional trainable projection of the features; identity if None.
    """

    def __init__(
        self, model_name: str, freeze: bool = True, projection: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.backbone = load_hf_model(model_name)
        self.freeze = freeze
        self.projection = projection if projection is not None else nn.Identity()
        self._freeze_backbone()

    def preprocess_2d(self, x: Tensor) -> Tensor:
        """Middle Z slice as an ImageNet-normalised RGB image."""
        return middle_slice_rgb(x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.backbone(pixel_values=self.preprocess_2d(x))
        features = getattr(out, "pooler_output", None)
        if features is None:
            features = out.last_hidden_state[:, 0]
        return features, self.projection(features)
