"""Building blocks shared by the models: stems, decoder stages, conv blocks and heads."""

from viscy_models.components.blocks import ConvBlock2D, ConvBlock3D
from viscy_models.components.decoders import (
    UnetDecoder,
    UnetDecoderStage,
    UNeXt2Decoder,
    UNeXt2UpStage,
    icnr_init,
)
from viscy_models.components.heads import (
    MLP,
    BaseHead,
    ClassificationHead,
    CosineClassifier,
    CrossModalContrastiveHead,
    PixelToVoxelHead,
    PixelToVoxelShuffleHead,
    UnsqueezeHead,
    projection_mlp,
    voxel_head_channels,
)
from viscy_models.components.stems import StemDepthtoChannels, UNeXt2Stem

__all__ = [
    "MLP",
    "BaseHead",
    "ClassificationHead",
    "CrossModalContrastiveHead",
    "UNeXt2Decoder",
    "UNeXt2UpStage",
    "icnr_init",
    "ConvBlock2D",
    "ConvBlock3D",
    "CosineClassifier",
    "PixelToVoxelHead",
    "PixelToVoxelShuffleHead",
    "StemDepthtoChannels",
    "UNeXt2Stem",
    "UnetDecoder",
    "UnetDecoderStage",
    "UnsqueezeHead",
    "projection_mlp",
    "voxel_head_channels",
]
