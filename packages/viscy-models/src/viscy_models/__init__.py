"""Neural network architectures for microscopy.

Public names are imported lazily (PEP 562): ``import viscy_models`` is cheap and a model's
backbone libraries (timm, MONAI) load on first use.
"""

from typing import TYPE_CHECKING

from viscy_models._lazy import lazy_exports

_EXPORTS = {
    # image translation
    "UNeXt2": "viscy_models.unet.unext2",
    "FullyConvolutionalMAE": "viscy_models.unet.fcmae",
    "Unet2d": "viscy_models.unet.unet2d",
    "Unet25d": "viscy_models.unet.unet25d",
    "Unet3d": "viscy_models.unet.unet3d",
    "UNet3DBase": "viscy_models.unet.unet3d_base",
    # representation learning
    "ContrastiveEncoder": "viscy_models.contrastive.encoder",
    "ResNet3dEncoder": "viscy_models.contrastive.resnet3d",
    "NTXentLoss": "viscy_models.contrastive.loss",
    "NTXentHCL": "viscy_models.contrastive.loss",
    # variational autoencoders
    "BetaVae25D": "viscy_models.vae.beta_vae_25d",
    "BetaVaeMonai": "viscy_models.vae.beta_vae_monai",
    # heads
    "MLP": "viscy_models.components.heads",
    "CosineClassifier": "viscy_models.components.heads",
    # foundation model wrappers
    "DINOv3Model": "viscy_models.foundation.dinov3",
    "OpenPhenomModel": "viscy_models.foundation.openphenom",
    # errors
    "PretrainedWeightsUnavailableError": "viscy_models._pretrained",
}
__all__ = [
    "BetaVae25D",
    "BetaVaeMonai",
    "ContrastiveEncoder",
    "CosineClassifier",
    "DINOv3Model",
    "FullyConvolutionalMAE",
    "MLP",
    "NTXentHCL",
    "NTXentLoss",
    "OpenPhenomModel",
    "PretrainedWeightsUnavailableError",
    "ResNet3dEncoder",
    "UNeXt2",
    "UNet3DBase",
    "Unet25d",
    "Unet2d",
    "Unet3d",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from viscy_models._pretrained import PretrainedWeightsUnavailableError
    from viscy_models.components.heads import MLP, CosineClassifier
    from viscy_models.contrastive.encoder import ContrastiveEncoder
    from viscy_models.contrastive.loss import NTXentHCL, NTXentLoss
    from viscy_models.contrastive.resnet3d import ResNet3dEncoder
    from viscy_models.foundation.dinov3 import DINOv3Model
    from viscy_models.foundation.openphenom import OpenPhenomModel
    from viscy_models.unet.fcmae import FullyConvolutionalMAE
    from viscy_models.unet.unet2d import Unet2d
    from viscy_models.unet.unet3d import Unet3d
    from viscy_models.unet.unet3d_base import UNet3DBase
    from viscy_models.unet.unet25d import Unet25d
    from viscy_models.unet.unext2 import UNeXt2
    from viscy_models.vae.beta_vae_25d import BetaVae25D
    from viscy_models.vae.beta_vae_monai import BetaVaeMonai
