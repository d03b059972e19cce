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
    """MONAI ``CenterSpatialCropd`` (per sample, (C, Z, Y, X)).

    Parameters
    ----------
    keys : Sequence[str] or str
        Keys of the sample dict to transform.
    roi_size : Sequence[int] or int
        Spatial size of the centre crop in pixels, one per spatial axis; an int means
        that size on every axis.
    **kwargs : Any
        Passed unchanged to MONAI's ``CenterSpatialCropd``.
    """

    def __init__(self, keys: Sequence[str] | str, roi_size: Sequence[int] | int, **kwargs: Any):
        super().__init__(keys=keys, roi_size=roi_size, **kwargs)


class Decollated(mt.Decollated):
    """MONAI ``Decollated``: split a batch dict into a list of sample dicts.

    Parameters
    ----------
    keys : Sequence[str] or str
        Keys of the sample dict to transform.
    detach : bool
        Default True: convert 0-d tensors to Python numbers while splitting, as MONAI does.
    pad_batch : bool
        Default True: when the keys' values have different batch sizes, pad the shorter
        ones to the longest.
    fill_value : float or None
        Value used to pad the shorter sequences when ``pad_batch`` is True (default None).
    **kwargs : Any
        Passed unchanged to MONAI's ``Decollated``.
    """

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
    """MONAI ``NormalizeIntensityd`` (statistics of the image itself).

    Parameters
    ----------
    keys : Sequence[str] or str
        Keys of the sample dict to transform.
    subtrahend : float or None
        Value subtracted from the image; None (default) uses the image's mean.
    divisor : float or None
        Value the image is divided by; None (default) uses the image's standard deviation.
    nonzero : bool
        Default False; if True, compute the statistics and normalise only non-zero pixels.
    channel_wise : bool
        Default False; if True, compute the statistics of each channel separately.
    **kwargs : Any
        Passed unchanged to MONAI's ``NormalizeIntensityd``.
    """

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
    """MONAI ``RandAdjustContrastd`` (random gamma).

    Parameters
    ----------
    keys : Sequence[str] or str
        Keys of the sample dict to transform.
    prob : float
        Probability of applying the transform to a sample, in [0, 1] (ValueError otherwise).
    gamma : tuple[float, float] or float
        Range ``(low, high)`` the gamma exponent is drawn from; a number is passed to MONAI
        as is (MONAI reads a number ``g`` as the range ``(0.5, g)``).
    **kwargs : Any
        Passed unchanged to MONAI's ``RandAdjustContrastd``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float,
        gamma: tuple[float, float] | float,
        **kwargs: Any,
    ):
        super().__init__(keys=keys, prob=check_prob(prob), gamma=gamma, **kwargs)


class RandAffined(mt.RandAffined):
    """MONAI ``RandAffined``; ranges follow MONAI (``scale_range`` is added to 1).

    Parameters
    ----------
    keys : Sequence[str] or str
        Keys of the sample dict to transform.
    prob : float
        Probability of applying the transform to a sample, in [0, 1] (ValueError otherwise).
    rotate_range : float or Sequence[float or Sequence[float]]
        Rotation angles in radians, one entry per axis; a number ``r`` or an entry ``r``
        means the range ``(-r, r)``, a pair means ``(low, high)``.
    shear_range : float or Sequence[float or Sequence[float]]
        Shear factors, read like ``rotate_range``.
    scale_range : float or Sequence[float or Sequence[float]]
        Scale offsets, read like ``rotate_range``; the drawn value is added to 1.
    translate_range : float or Sequence[float or Sequence[float]] or None
        Translations in pixels, read like ``rotate_range``; None (default) does not translate.
    mode : str
        Interpolation mode, default ``"bilinear"``.
    padding_mode : str
        How pixels outside the input are filled, default ``"reflection"``.
    **kwargs : Any
        Passed unchanged to MONAI's ``RandAffined``.
    """

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
    """MONAI ``RandFlipd`` (all given axes flip together).

    Parameters
    ----------
    keys : Sequence[str] or str
        Keys of the sample dict to transform.
    prob : float
        Probability of applying the transform to a sample, in [0, 1] (ValueError otherwise).
    spatial_axis : Sequence[int] or int
        Spatial axes to flip (0 is the first axis after the channel axis).
    **kwargs : Any
        Passed unchanged to MONAI's ``RandFlipd``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float,
        spatial_axis: Sequence[int] | int,
        **kwargs: Any,
    ):
        super().__init__(keys=keys, prob=check_prob(prob), spatial_axis=spatial_axis, **kwargs)


class RandGaussianNoised(mt.RandGaussianNoised):
    """MONAI ``RandGaussianNoised`` (noise drawn with numpy on the CPU).

    Parameters
    ----------
    keys : Sequence[str] or str
        Keys of the sample dict to transform.
    prob : float
        Probability of applying the transform to a sample, in [0, 1] (ValueError otherwise).
    mean : float
        Mean of the Gaussian noise, in image intensity units.
    std : float
        Standard deviation of the noise, in image intensity units (MONAI draws the
        standard deviation uniformly from ``[0, std]`` unless ``sample_std=False``).
    **kwargs : Any
        Passed unchanged to MONAI's ``RandGaussianNoised``.
    """

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

    Parameters
    ----------
    keys : Sequence[str] or str
        Keys of the sample dict to transform.
    prob : float
        Probability of applying the transform to a sample, in [0, 1] (ValueError otherwise).
    sigma_x : tuple[float, float] or float
        Range ``(low, high)`` of the Gaussian sigma in pixels along the first spatial axis;
        a number means that fixed sigma.
    sigma_y : tuple[float, float] or float
        Same for the second spatial axis.
    sigma_z : tuple[float, float] or float
        Same for the third spatial axis.
    **kwargs : Any
        Passed unchanged to MONAI's ``RandGaussianSmoothd``.
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
    """MONAI ``RandScaleIntensityd`` (``x * (1 + factor)``).

    Parameters
    ----------
    keys : Sequence[str] or str
        Keys of the sample dict to transform.
    factors : tuple[float, float] or float
        Range ``(low, high)`` ``factor`` is drawn from; a number ``f`` means ``(-f, f)``.
    prob : float
        Probability of applying the transform to a sample, in [0, 1] (ValueError otherwise).
    **kwargs : Any
        Passed unchanged to MONAI's ``RandScaleIntensityd``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        factors: tuple[float, float] | float,
        prob: float,
        **kwargs: Any,
    ):
        super().__init__(keys=keys, factors=factors, prob=check_prob(prob), **kwargs)


class RandSpatialCropd(mt.RandSpatialCropd):
    """MONAI ``RandSpatialCropd`` (per sample).

    Parameters
    ----------
    keys : Sequence[str] or str
        Keys of the sample dict to transform.
    roi_size : Sequence[int] or int
        Spatial size of the crop in pixels, one per spatial axis; an int means that size on
        every axis.
    random_center : bool
        Default True: the crop centre is random; False crops the centre.
    **kwargs : Any
        Passed unchanged to MONAI's ``RandSpatialCropd``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        roi_size: Sequence[int] | int,
        random_center: bool = True,
        **kwargs: Any,
    ):
        super().__init__(keys=keys, roi_size=roi_size, random_center=random_center, **kwargs)


class RandWeightedCropd(mt.RandWeightedCropd):
    """MONAI ``RandWeightedCropd`` (per sample, returns ``num_samples`` crops).

    Parameters
    ----------
    keys : Sequence[str] or str
        Keys of the sample dict to transform.
    w_key : str
        Key of the weight map; crop centres are drawn with probability proportional to it.
    spatial_size : Sequence[int]
        Spatial size of each crop in pixels, one per spatial axis.
    num_samples : int
        Number of crops returned per sample, default 1.
    **kwargs : Any
        Passed unchanged to MONAI's ``RandWeightedCropd``.
    """

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
    """MONAI ``ScaleIntensityRangePercentilesd`` (percentiles of each sample).

    Parameters
    ----------
    keys : Sequence[str] or str
        Keys of the sample dict to transform.
    lower : float
        Lower percentile of the input, in [0, 100], mapped to ``b_min``.
    upper : float
        Upper percentile of the input, in [0, 100], mapped to ``b_max``.
    b_min : float or None
        Output value of the lower percentile; with None for ``b_min`` or ``b_max`` the
        output is ``(x - lower value) / (upper value - lower value)``, not rescaled further.
    b_max : float or None
        Output value of the upper percentile (see ``b_min``).
    clip : bool
        Default False; if True, clip the output to ``[b_min, b_max]``.
    relative : bool
        Default False; if True, map to ``b_min``/``b_max`` scaled by the input's
        percentile range, as MONAI defines it.
    channel_wise : bool
        Default False; if True, compute the percentiles of each channel separately.
    dtype : DtypeLike or None
        Output dtype; None (default) keeps the input's dtype.
    allow_missing_keys : bool
        Default False; if True, keys absent from the sample are skipped instead of raising.
    """

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
    """MONAI ``ToDeviced``: move the keys' tensors to ``device``.

    Parameters
    ----------
    keys : Sequence[str] or str
        Keys of the sample dict to transform.
    device : torch.device or str
        Target device, default ``"cpu"``.
    **kwargs : Any
        Passed unchanged to MONAI's ``ToDeviced``.
    """

    def __init__(
        self, keys: Sequence[str] | str, device: torch.device | str = "cpu", **kwargs: Any
    ):
        super().__init__(keys=keys, device=device, **kwargs)
