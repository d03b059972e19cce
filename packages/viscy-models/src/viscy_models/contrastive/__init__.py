"""Encoders and losses for contrastive representation learning."""

from typing import TYPE_CHECKING

from viscy_models._lazy import lazy_exports

_EXPORTS = {
    "ContrastiveEncoder": "viscy_models.contrastive.encoder",
    "NTXentHCL": "viscy_models.contrastive.loss",
    "NTXentLoss": "viscy_models.contrastive.loss",
    "ResNet3dEncoder": "viscy_models.contrastive.resnet3d",
    "projection_mlp": "viscy_models.contrastive.encoder",
}
__all__ = [
    "ContrastiveEncoder",
    "NTXentHCL",
    "NTXentLoss",
    "ResNet3dEncoder",
    "projection_mlp",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from viscy_models.contrastive.encoder import ContrastiveEncoder, projection_mlp
    from viscy_models.contrastive.loss import NTXentHCL, NTXentLoss
    from viscy_models.contrastive.resnet3d import ResNet3dEncoder
