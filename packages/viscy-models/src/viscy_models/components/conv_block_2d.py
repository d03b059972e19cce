"""0.1.0 module path of :class:`~viscy_models.components.blocks.ConvBlock2D`."""

from viscy_models.components.blocks import ConvBlock2D

__all__ = ["ConvBlock2D"]
