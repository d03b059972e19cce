"""Batched, GPU-friendly dictionary transforms for microscopy.

Batched transforms act on (B, C, Z, Y, X) tensors in a dict sample, with per-sample random
parameters; MONAI wrappers expose typed parameters for LightningCLI YAML configs.
"""

from viscy_transforms._adjust_contrast import (
    BatchedRandAdjustContrast,
    BatchedRandAdjustContrastd,
)
from viscy_transforms._affine import (
    BatchedRandAffined,
)
from viscy_transforms._crop import (
    BatchedCenterSpatialCrop,
    BatchedCenterSpatialCropd,
    BatchedDivisibleCropd,
    BatchedRandSpatialCrop,
    BatchedRandSpatialCropd,
    BatchedRandWeightedCropd,
)
from viscy_transforms._decollate import (
    Decollate,
)
from viscy_transforms._elastic import (
    BatchedRand3DElasticd,
)
from viscy_transforms._flip import (
    BatchedRandFlip,
    BatchedRandFlipd,
)
from viscy_transforms._gaussian_smooth import (
    BatchedRandGaussianSmooth,
    BatchedRandGaussianSmoothd,
)
from viscy_transforms._histogram_shift import (
    BatchedRandHistogramShiftd,
)
from viscy_transforms._invert_intensity import (
    BatchedRandInvertIntensityd,
    RandInvertIntensityd,
)
from viscy_transforms._monai_wrappers import (
    CenterSpatialCropd,
    Decollated,
    NormalizeIntensityd,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandSpatialCropd,
    RandWeightedCropd,
    ScaleIntensityRangePercentilesd,
    ToDeviced,
)
from viscy_transforms._noise import (
    BatchedRandGaussianNoise,
    BatchedRandGaussianNoised,
    RandGaussianNoiseTensor,
    RandGaussianNoiseTensord,
)
from viscy_transforms._normalize import (
    MinMaxSampled,
    NormalizeSampled,
)
from viscy_transforms._percentile_scale import (
    BatchedScaleIntensityRangePercentiles,
    BatchedScaleIntensityRangePercentilesd,
)
from viscy_transforms._pixel_shuffle import (
    BatchedRandLocalPixelShufflingd,
)
from viscy_transforms._scale_intensity import (
    BatchedRandScaleIntensity,
    BatchedRandScaleIntensityd,
)
from viscy_transforms._sharpen import (
    BatchedRandSharpend,
)
from viscy_transforms._stack_channels import (
    BatchedStackChannelsd,
    StackChannelsd,
)
from viscy_transforms._tiled_crop import (
    TiledSpatialCropSamplesd,
)
from viscy_transforms._typing import (
    ChannelMap,
    ChannelNormStats,
    LevelNormStats,
    NormMeta,
    Sample,
)
from viscy_transforms._z_reduction import (
    BatchedChannelWiseZReduction,
    BatchedChannelWiseZReductiond,
)
from viscy_transforms._zoom import (
    BatchedZoom,
    BatchedZoomd,
)
from viscy_transforms._zstack_shift import (
    BatchedRandZStackShiftd,
)

__all__ = [
    "BatchedCenterSpatialCrop",
    "BatchedCenterSpatialCropd",
    "BatchedChannelWiseZReduction",
    "BatchedChannelWiseZReductiond",
    "BatchedDivisibleCropd",
    "BatchedRand3DElasticd",
    "BatchedRandAdjustContrast",
    "BatchedRandAdjustContrastd",
    "BatchedRandAffined",
    "BatchedRandFlip",
    "BatchedRandFlipd",
    "BatchedRandGaussianNoise",
    "BatchedRandGaussianNoised",
    "BatchedRandGaussianSmooth",
    "BatchedRandGaussianSmoothd",
    "BatchedRandHistogramShiftd",
    "BatchedRandInvertIntensityd",
    "BatchedRandLocalPixelShufflingd",
    "BatchedRandScaleIntensity",
    "BatchedRandScaleIntensityd",
    "BatchedRandSharpend",
    "BatchedRandSpatialCrop",
    "BatchedRandSpatialCropd",
    "BatchedRandWeightedCropd",
    "BatchedRandZStackShiftd",
    "BatchedScaleIntensityRangePercentiles",
    "BatchedScaleIntensityRangePercentilesd",
    "BatchedStackChannelsd",
    "BatchedZoom",
    "BatchedZoomd",
    "CenterSpatialCropd",
    "ChannelMap",
    "ChannelNormStats",
    "Decollate",
    "Decollated",
    "LevelNormStats",
    "MinMaxSampled",
    "NormMeta",
    "NormalizeIntensityd",
    "NormalizeSampled",
    "RandAdjustContrastd",
    "RandAffined",
    "RandFlipd",
    "RandGaussianNoiseTensor",
    "RandGaussianNoiseTensord",
    "RandGaussianNoised",
    "RandGaussianSmoothd",
    "RandInvertIntensityd",
    "RandScaleIntensityd",
    "RandSpatialCropd",
    "RandWeightedCropd",
    "Sample",
    "ScaleIntensityRangePercentilesd",
    "StackChannelsd",
    "TiledSpatialCropSamplesd",
    "ToDeviced",
]
