"""Image-to-image translation networks."""

from typing import TYPE_CHECKING

from viscy_models._lazy import lazy_exports

_EXPORTS = {
    "FullyConvolutionalMAE": "viscy_models.unet.fcmae",
    "UNeXt2": "viscy_models.unet.unext2",
    "UNet3DBase": "viscy_models.unet.unet3d_base",
    "Unet25d": "viscy_models.unet.unet25d",
    "Unet2d": "viscy_models.unet.unet2d",
    "Unet3d": "viscy_models.unet.unet3d",
}
__all__ = [
    "FullyConvolutionalMAE",
    "UNeXt2",
    "UNet3DBase",
    "Unet25d",
    "Unet2d",
    "Unet3d",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from viscy_models.unet.fcmae import FullyConvolutionalMAE
    from viscy_models.unet.unet2d import Unet2d
    from viscy_models.unet.unet3d import Unet3d
    from viscy_models.unet.unet3d_base import UNet3DBase
    from viscy_models.unet.unet25d import Unet25d
    from viscy_models.unet.unext2 import UNeXt2
