"""Batched percentile-based intensity range scaling."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import numpy as np
import torch
from monai.config import DtypeLike
from monai.transforms import MapTransform, ScaleIntensityRangePercentiles
from monai.utils.type_conversion import get_equivalent_dtype

from viscy_transforms._checks import check_batched

__all__ = [
    "BatchedScaleIntensityRangePercentiles",
    "BatchedScaleIntensityRangePercentilesd",
    "batched_quantile",
]


def batched_quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """Linear-interpolation quantile of each row of (N, M) ``values`` (as numpy/torch default).

    Uses ``kthvalue`` so rows larger than ``torch.quantile``'s size limit work too.
    """
    m = values.shape[1]
    position = q * (m - 1)
    low, frac = int(np.floor(position)), position - np.floor(position)
    low_value = values.kthvalue(low + 1, dim=1).values
    if frac == 0:
        return low_value
    high_value = values.kthvalue(min(low + 2, m), dim=1).values
    return low_value + (high_value - low_value) * frac


class BatchedScaleIntensityRangePercentiles(ScaleIntensityRangePercentiles):
    """MONAI ``ScaleIntensityRangePercentiles`` with percentiles taken per sample of a batch.

    Maps ``[p_lower, p_upper]`` of each sample (or each sample and channel if
    ``channel_wise``) to ``[b_min, b_max]``. Floating inputs keep their dtype; ``dtype``
    applies to other inputs.

    Parameters
    ----------
    lower, upper : float
        Percentiles in [0, 100].
    b_min, b_max : float | None
        Output range; if either is None the result is ``(x - p_lower) / (p_upper - p_lower)``.
    clip : bool
        Clip the output to ``[b_min, b_max]``.
    relative : bool
        Map to the corresponding percentiles of ``[b_min, b_max]`` instead.
    channel_wise : bool
        Percentiles per channel instead of per sample.
    dtype : DtypeLike
        Output dtype for non-floating inputs.
    """

    def __init__(
        self,
        lower: float,
        upper: float,
        b_min: float | None,
        b_max: float | None,
        clip: bool = False,
        relative: bool = False,
        channel_wise: bool = False,
        dtype: DtypeLike = np.float32,
    ) -> None:
        super().__init__(lower, upper, b_min, b_max, clip, relative, channel_wise, dtype)
        if lower > upper:
            raise ValueError(f"lower percentile {lower} is above upper percentile {upper}.")
        if relative and (b_min is None or b_max is None):
            raise ValueError("relative=True needs both b_min and b_max.")

    def __call__(self, img: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        check_batched(img, ndim=None)
        if img.is_floating_point():
            dtype = img.dtype
        else:
            dtype = (
                torch.float32
                if self.dtype is None
                else get_equivalent_dtype(self.dtype, torch.Tensor)
            )
        work = img.to(torch.float32) if img.dtype in (torch.float16, torch.bfloat16) else img
        work = work if work.is_floating_point() else work.to(torch.float32)
        groups = work.shape[0] * (work.shape[1] if self.channel_wise else 1)
        rows = work.reshape(groups, -1)
        view = (work.shape[0], work.shape[1] if self.channel_wise else 1) + (1,) * (work.ndim - 2)
        a_min = batched_quantile(rows, self.lower / 100.0).view(view)
        a_max = batched_quantile(rows, self.upper / 100.0).view(view)
        b_min, b_max = self.b_min, self.b_max
        if self.relative:
            b_min = (self.b_max - self.b_min) * (self.lower / 100.0) + self.b_min
            b_max = (self.b_max - self.b_min) * (self.upper / 100.0) + self.b_min
        span = a_max - a_min
        flat = span == 0
        out = (work - a_min) / torch.where(flat, torch.ones_like(span), span)
        if b_min is not None and b_max is not None:
            scaled = out * (b_max - b_min) + b_min
            # MONAI's rule for a constant image: shift by a_min (and b_min), do not scale.
            out = torch.where(flat, work - a_min + b_min, scaled)
            if self.clip:
                out = out.clamp(b_min, b_max)
        else:
            out = torch.where(flat, work - a_min, out)
        return out.to(dtype)


class BatchedScaleIntensityRangePercentilesd(MapTransform):
    """Dictionary version of :class:`BatchedScaleIntensityRangePercentiles`.

    Parameters
    ----------
    keys : str or Iterable[str]
        Keys of the batch dict to transform.
    lower, upper : float
        Percentiles in [0, 100].
    b_min, b_max : float or None
        Output range; if either is None the result is ``(x - p_lower) / (p_upper - p_lower)``.
    clip : bool
        Default False; if True, clip the output to ``[b_min, b_max]``.
    relative : bool
        Default False; if True, map to the corresponding percentiles of ``[b_min, b_max]``.
    channel_wise : bool
        Default False; if True, take percentiles per channel instead of per sample.
    dtype : DtypeLike
        Output dtype for non-floating inputs, default float32.
    allow_missing_keys : bool
        Default False; if True, keys absent from the batch are skipped instead of raising.
    """

    def __init__(
        self,
        keys: str | Iterable[str],
        lower: float,
        upper: float,
        b_min: float | None,
        b_max: float | None,
        clip: bool = False,
        relative: bool = False,
        channel_wise: bool = False,
        dtype: DtypeLike = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.scaler = BatchedScaleIntensityRangePercentiles(
            lower, upper, b_min, b_max, clip, relative, channel_wise, dtype
        )

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.scaler(d[key])
        return d
