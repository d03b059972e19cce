"""OpenPhenom (Recursion, Hugging Face) as a frozen encoder of microscopy patches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from viscy_models.foundation._frozen import FrozenBackboneMixin, middle_slice
from viscy_models.foundation._hub import load_hf_model

__all__ = ["OpenPhenomModel"]


class OpenPhenomModel(FrozenBackboneMixin):
    """OpenPhenom masked-autoencoder ViT returning ``(features, features)``.

    As in 0.1.0, :meth:`forward` hands its input unchanged to the model's ``predict``; call
    :meth:`preprocess_2d` first to turn z-scored patches into the 256 x 256 uint8 images
    OpenPhenom expects.

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
        self.model = load_hf_model(model_name, trust_remote_code=True)
        self.target_size = (256, 256)
        self.freeze = freeze
        self._freeze_backbone()

    def preprocess_2d(self, x: Tensor) -> Tensor:
        """Middle Z slice resized bilinearly to 256 x 256, each image min-max scaled over all
        its channels to 0..255 and truncated to ``uint8``."""
        x = middle_slice(x)
        if tuple(x.shape[-2:]) != self.target_size:
            x = F.interpolate(x, size=self.target_size, mode="bilinear", align_corners=False)
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
        return ((x - lo) / (hi - lo).clamp_min(1e-8) * 255.0).to(torch.uint8)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.model.predict(x)
        return features, features
