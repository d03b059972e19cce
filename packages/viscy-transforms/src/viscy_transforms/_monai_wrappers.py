"""MONAI dictionary transforms with explicit, typed parameters.

jsonargparse (and so LightningCLI YAML configs) builds classes from their signatures; MONAI's
``KeysCollection``/``**kwargs`` signatures leave it guessing. These subclasses spell the
common parameters out and pass everything else through to MONAI unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import monai.transforms as mt
import torch
from monai.config import DtypeLike

from viscy_transforms._random import check_prob

__all__ = [
    "CenterSpatialCropd",
    "Decollated",
    "NormalizeIntensityd",
    "RandAdjustContrastd",
    "RandAffined",
    "RandFlipd",
    "RandGaussianNoised",
    "RandGaussianSmoothd",
    "RandScaleIntensityd",
    "RandSpatialCropd",
    "RandWeightedCropd",
    "ScaleIntensityRangePercentilesd",
    "ToDeviced",
]

RangeArg = Sequence[float | Sequence[float]] | float


class CenterSpatialCropd(mt.CenterSpatialCropd):
    """MONAI ``CenterSpatialCropd`` (per sample, (C, Z, Y, X))."""

    def __init__(self, keys: Sequence[str] | str, roi_size: Sequence[int] | int, **kwargs: Any):
        super().__init__(keys=keys, roi_size=roi_size, **kwargs)


class Decollated(mt.Decollated):
    """MONAI ``Decollated``: split a batch dict into a list of sample dicts."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        detach: bool = True,
        pad_batch: bool = True,
        fill_value: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            keys=keys, detach=detach, pad_batch=pad_batch, fill_value=fill_value, **kwargs
        )


class NormalizeIntensityd(mt.NormalizeIntensityd):
    """MONAI ``NormalizeIntensityd`` (statistics of the image itself)."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        subtrahend: float | None = None,
        divisor: float | None = None,
        nonzero: bool = False,
        channel_wise: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            keys=keys,
            subtrahend=subtrahend,
            divisor=divisor,
            nonzero=nonzero,
            channel_wise=channel_wise,
            **kwargs,
        )


class RandAdjustContrastd(mt.RandAdjustContrastd):
    """MONAI ``RandAdjustContrastd`` (random gamma)."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float,
        gamma: tuple[float, float] | float,
        **kwargs: Any,
    ):
        super().__init__(keys=keys, prob=check_prob(prob), gamma=gamma, **kwargs)


class RandAffined(mt.RandAffined):
    """MONAI ``RandAffined``; ranges follow MONAI (``scale_range`` is added to 1)."""

    #: Y/X read margin factor for readers of a larger window (duck-typed by viscy-data):
    #: sqrt(2) covers a 45 degree rotation without pixels from outside the patch.
    spatial_margin: float = math.sqrt(2)

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float,
        rotate_range: RangeArg,
        shear_range: RangeArg,
        scale_range: RangeArg,
        translate_range: RangeArg | None = None,
        mode: str = "bilinear",
        padding_mode: str = "reflection",
        **kwargs: Any,
    ):
        super().__init__(
            keys=keys,
            prob=check_prob(prob),
            rotate_range=rotate_range,
            shear_range=shear_range,
            scale_range=scale_range,
            translate_range=translate_range,
            mode=mode,
            padding_mode=padding_mode,
            **kwargs,
        )


class RandFlipd(mt.RandFlipd):
    """MONAI ``RandFlipd`` (all given axes flip together)."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float,
        spatial_axis: Sequence[int] | int,
        **kwargs: Any,
    ):
        super().__init__(keys=keys, prob=check_prob(prob), spatial_axis=spatial_axis, **kwargs)


class RandGaussianNoised(mt.RandGaussianNoised):
    """MONAI ``RandGaussianNoised`` (noise drawn with numpy on the CPU)."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float,
        mean: float,
        std: float,
        **kwargs: Any,
    ):
        super().__init__(keys=keys, prob=check_prob(prob), mean=mean, std=std, **kwargs)


def _as_range(value: tuple[float, float] | float) -> tuple[float, float]:
    if isinstance(value, int | float):
        return (float(value), float(value))
    return tuple(value)  # type: ignore[return-value]


class RandGaussianSmoothd(mt.RandGaussianSmoothd):
    """MONAI ``RandGaussianSmoothd``; a number for a sigma means that fixed sigma.

    As in MONAI, ``sigma_x`` applies to the first spatial axis (Z of (C, Z, Y, X) data).
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float,
        sigma_x: tuple[float, float] | float,
        sigma_y: tuple[float, float] | float,
        sigma_z: tuple[float, float] | float,
        **kwargs: Any,
    ):
        super().__init__(
            keys=keys,
            prob=check_prob(prob),
            sigma_x=_as_range(sigma_x),
            sigma_y=_as_range(sigma_y),
            sigma_z=_as_range(sigma_z),
            **kwargs,
        )


class RandScaleIntensityd(mt.RandScaleIntensityd):
    """MONAI ``RandScaleIntensityd`` (``x * (1 + factor)``)."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        factors: tuple[float, float] | float,
        prob: float,
        **kwargs: Any,
    ):
        super().__init__(keys=keys, factors=factors, prob=check_prob(prob), **kwargs)


class RandSpatialCropd(mt.RandSpatialCropd):
    """MONAI ``RandSpatialCropd`` (per sample)."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        roi_size: Sequence[int] | int,
        random_center: bool = True,
        **kwargs: Any,
    ):
        super().__init__(keys=keys, roi_size=roi_size, random_center=random_center, **kwargs)


class RandWeightedCropd(mt.RandWeightedCropd):
    """MONAI ``RandWeightedCropd`` (per sample, returns ``num_samples`` crops)."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        w_key: str,
        spatial_size: Sequence[int],
        num_samples: int = 1,
        **kwargs: Any,
    ):
        super().__init__(
            keys=keys, w_key=w_key, spatial_size=spatial_size, num_samples=num_samples, **kwargs
        )


class ScaleIntensityRangePercentilesd(mt.ScaleIntensityRangePercentilesd):
    """MONAI ``ScaleIntensityRangePercentilesd`` (percentiles of each sample)."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        lower: float,
        upper: float,
        b_min: float | None,
        b_max: float | None,
        clip: bool = False,
        relative: bool = False,
        channel_wise: bool = False,
        dtype: DtypeLike | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(
            keys=keys,
            lower=lower,
            upper=upper,
            b_min=b_min,
            b_max=b_max,
            clip=clip,
            relative=relative,
            channel_wise=channel_wise,
            dtype=dtype,
            allow_missing_keys=allow_missing_keys,
        )


class ToDeviced(mt.ToDeviced):
    """MONAI ``ToDeviced``: move the keys' tensors to ``device``."""

    def __init__(
        self, keys: Sequence[str] | str, device: torch.device | str = "cpu", **kwargs: Any
    ):
        super().__init__(keys=keys, device=device, **kwargs)
