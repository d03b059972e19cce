"""0.1.0 module path of :class:`~viscy_models.components.blocks.ConvBlock3D`."""

from viscy_models.components.blocks import ConvBlock3D

__all__ = ["ConvBlock3D"]
