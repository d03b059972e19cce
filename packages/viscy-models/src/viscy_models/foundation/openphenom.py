"""OpenPhenom (Recursion, Hugging Face) as a frozen encoder of microscopy patches."""

from __future__ import annotations

import torch
from torch import Tensor

from viscy_models.foundation._frozen import FrozenBackboneMixin
from viscy_models.foundation._hub import load_hf_model

__all__ = ["OpenPhenomModel"]


class OpenPhenomModel(FrozenBackboneMixin):
    """OpenPhenom masked-autoencoder ViT returning ``(features, features)``.

    Parameters
    ----------
    model_name : str
        Hugging Face model id (``recursionpharma/OpenPhenom``) or a local directory; loaded
        with ``trust_remote_code=True``. Without network access a
        :class:`~viscy_models.PretrainedWeightsUnavailableError` explains what to do.
    freeze : bool
        Keep the backbone frozen (eval mode, no gradients).
    """

    def __init__(self, model_name: str, freeze: bool = True) -> None:
        super().__init__()
        self.backbone = load_hf_model(model_name, trust_remote_code=True)
        self.freeze = freeze
        self._freeze_backbone()

    def preprocess_2d(self, x: Tensor) -> Tensor:
        """Middle Z slice, each channel scaled to 0..255 (OpenPhenom expects uint8-like input)."""
        if x.ndim == 5:
            x = x[:, :, x.shape[2] // 2]
        lo = x.amin(dim=(2, 3), keepdim=True)
        hi = x.amax(dim=(2, 3), keepdim=True)
        return (x - lo) / (hi - lo).clamp_min(1e-6) * 255.0

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.preprocess_2d(x)
        if hasattr(self.backbone, "predict"):
            features = self.backbone.predict(x)
        else:
            features = self.backbone(x)
        features = torch.as_tensor(features)
        return features, features
