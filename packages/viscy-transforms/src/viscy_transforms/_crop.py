"""Batched spatial crops of (B, C, Z, Y, X) tensors."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.transforms import (
    CenterSpatialCrop,
    Cropd,
    MapTransform,
    RandCropd,
    Randomizable,
    RandSpatialCrop,
)
from monai.utils import fall_back_tuple

from viscy_transforms._checks import check_batched, spatial_triple
from viscy_transforms._random import BatchedRandomizableMixin

__all__ = [
    "BatchedCenterSpatialCrop",
    "BatchedCenterSpatialCropd",
    "BatchedDivisibleCropd",
    "BatchedRandSpatialCrop",
    "BatchedRandSpatialCropd",
    "BatchedRandWeightedCropd",
]


def _resolve_roi(
    roi_size: Sequence[int] | int, spatial_shape: Sequence[int], name: str = "roi_size"
) -> tuple[int, ...]:
    """MONAI's rule (non-positive entries take the image size), but too large is an error."""
    if isinstance(roi_size, int):
        roi_size = (roi_size,) * len(spatial_shape)
    if len(roi_size) != len(spatial_shape):
        raise ValueError(
            f"{name} {tuple(roi_size)} must have one entry per spatial dimension "
            f"of the image {tuple(spatial_shape)}."
        )
    roi = fall_back_tuple(roi_size, spatial_shape)
    if any(r > s for r, s in zip(roi, spatial_shape, strict=True)):
        raise ValueError(
            f"{name} {tuple(roi)} is larger than the image's spatial shape {tuple(spatial_shape)}."
        )
    return tuple(int(r) for r in roi)


def _center_slices(spatial_shape: Sequence[int], roi: Sequence[int]) -> tuple[slice, ...]:
    # Same rounding as MONAI's CenterSpatialCrop: center at size // 2.
    starts = [s // 2 - r // 2 for s, r in zip(spatial_shape, roi, strict=True)]
    return tuple(slice(b, b + r) for b, r in zip(starts, roi, strict=True))


def crop_per_sample(img: torch.Tensor, starts: torch.Tensor, roi: Sequence[int]) -> torch.Tensor:
    """Crop a window of size ``roi`` at ``starts[b]`` (B, 3) from every sample of ``img``."""
    rz, ry, rx = roi
    return torch.stack(
        [
            img[b, :, z : z + rz, y : y + ry, x : x + rx]
            for b, (z, y, x) in enumerate(starts.tolist())
        ]
    )


class BatchedCenterSpatialCrop(CenterSpatialCrop):
    """Crop the center ``roi_size`` of every sample of a (B, C, Z, Y, X) batch.

    Parameters
    ----------
    roi_size : Sequence[int] | int
        Spatial size (Z, Y, X) of the crop; non-positive entries keep that axis whole.
        A size larger than the image raises ValueError.
    """

    def __init__(self, roi_size: Sequence[int] | int) -> None:
        super().__init__(roi_size=roi_size, lazy=False)

    def __call__(self, img: torch.Tensor, lazy: bool | None = None) -> torch.Tensor:  # type: ignore[override]
        check_batched(img)
        roi = _resolve_roi(self.roi_size, img.shape[2:])
        return img[(slice(None), slice(None), *_center_slices(img.shape[2:], roi))]


class BatchedCenterSpatialCropd(Cropd):
    """Dictionary version of :class:`BatchedCenterSpatialCrop`.

    Parameters
    ----------
    keys : Sequence[str]
        Keys of the (B, C, Z, Y, X) tensors to crop.
    roi_size : Sequence[int] | int
        Spatial size (Z, Y, X) of the crop.
    allow_missing_keys : bool
        Skip keys that are absent instead of raising KeyError.
    """

    def __init__(
        self,
        keys: Sequence[str],
        roi_size: Sequence[int] | int,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(
            keys, cropper=BatchedCenterSpatialCrop(roi_size), allow_missing_keys=allow_missing_keys
        )


class BatchedDivisibleCropd(MapTransform):
    """Center-crop every spatial axis down to the largest multiple of ``k``.

    Parameters
    ----------
    keys : Sequence[str]
        Keys of the (B, C, Z, Y, X) tensors to crop.
    k : int | Sequence[int]
        Divisor for all spatial axes, or one per axis (Z, Y, X).
    allow_missing_keys : bool
        Skip keys that are absent instead of raising KeyError.
    """

    def __init__(
        self,
        keys: Sequence[str],
        k: int | Sequence[int],
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.k = spatial_triple(k, "k")
        if any(v < 1 for v in self.k):
            raise ValueError(f"k must be positive, got {k!r}.")

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            check_batched(img, name=f"'{key}'")
            roi = [s - s % k for s, k in zip(img.shape[2:], self.k, strict=True)]
            if any(r == 0 for r in roi):
                raise ValueError(
                    f"'{key}' spatial shape {tuple(img.shape[2:])} is smaller than k={self.k}."
                )
            d[key] = img[(slice(None), slice(None), *_center_slices(img.shape[2:], roi))]
        return d


class BatchedRandSpatialCrop(BatchedRandomizableMixin, RandSpatialCrop):
    """Crop a window at a random position, drawn independently for each sample of the batch.

    All samples share one crop size (a batch stays one tensor); with ``random_size`` that size
    is drawn once per call.

    Parameters
    ----------
    roi_size : Sequence[int] | int
        Crop size (Z, Y, X), or the minimum size if ``random_size``.
    max_roi_size : Sequence[int] | int | None
        Maximum size if ``random_size``; None means the image size.
    random_center : bool
        Random position per sample (True) or the image center (False).
    random_size : bool
        Draw the crop size between ``roi_size`` and ``max_roi_size``.
    """

    def __init__(
        self,
        roi_size: Sequence[int] | int,
        max_roi_size: Sequence[int] | int | None = None,
        random_center: bool = True,
        random_size: bool = False,
    ) -> None:
        super().__init__(
            roi_size=roi_size,
            max_roi_size=max_roi_size,
            random_center=random_center,
            random_size=random_size,
            lazy=False,
        )
        self._starts: torch.Tensor | None = None

    def randomize(self, img_size: Sequence[int]) -> None:  # type: ignore[override]
        """Draw the crop size and per-sample starts for a batch of shape ``img_size``."""
        batch_size, spatial = int(img_size[0]), tuple(int(s) for s in img_size[-3:])
        roi = _resolve_roi(self.roi_size, spatial)
        if self.random_size:
            max_roi = (
                spatial
                if self.max_roi_size is None
                else _resolve_roi(self.max_roi_size, spatial, "max_roi_size")
            )
            if any(r > m for r, m in zip(roi, max_roi, strict=True)):
                raise ValueError(f"roi_size {roi} is larger than max_roi_size {max_roi}.")
            roi = tuple(
                int(torch.randint(r, m + 1, (1,), generator=self.generator).item())
                for r, m in zip(roi, max_roi, strict=True)
            )
        self._size = roi
        if self.random_center:
            high = torch.tensor([s - r + 1 for s, r in zip(spatial, roi, strict=True)])
            self._starts = (self._rand(batch_size, 3) * high).floor().long()
        else:
            center = [sl.start for sl in _center_slices(spatial, roi)]
            self._starts = torch.tensor([center] * batch_size, dtype=torch.long)

    def __call__(  # type: ignore[override]
        self, img: torch.Tensor, randomize: bool = True, lazy: bool | None = None
    ) -> torch.Tensor:
        check_batched(img)
        if randomize:
            self.randomize(img.shape)
        if self._starts is None or self._size is None:
            raise RuntimeError("call randomize() before applying the crop with randomize=False.")
        if len(self._starts) != img.shape[0]:
            raise ValueError(
                f"crop positions were drawn for {len(self._starts)} samples, "
                f"the batch has {img.shape[0]}."
            )
        return crop_per_sample(img, self._starts, self._size)


class BatchedRandSpatialCropd(RandCropd):
    """Dictionary version of :class:`BatchedRandSpatialCrop`; all keys share the crop boxes.

    Parameters
    ----------
    keys : Sequence[str]
        Keys of the (B, C, Z, Y, X) tensors to crop.
    roi_size, max_roi_size, random_center, random_size
        See :class:`BatchedRandSpatialCrop`.
    allow_missing_keys : bool
        Skip keys that are absent instead of raising KeyError.
    """

    def __init__(
        self,
        keys: Sequence[str],
        roi_size: Sequence[int] | int,
        max_roi_size: Sequence[int] | int | None = None,
        random_center: bool = True,
        random_size: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        cropper = BatchedRandSpatialCrop(
            roi_size=roi_size,
            max_roi_size=max_roi_size,
            random_center=random_center,
            random_size=random_size,
        )
        super().__init__(keys, cropper=cropper, allow_missing_keys=allow_missing_keys)

    def __call__(  # type: ignore[override]
        self, data: Mapping[Hashable, torch.Tensor], lazy: bool | None = None
    ) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        first = d[keys[0]]
        check_batched(first, name=f"'{keys[0]}'")
        self.cropper.randomize(first.shape)
        for key in keys:
            if d[key].shape[0] != first.shape[0] or d[key].shape[2:] != first.shape[2:]:
                raise ValueError(
                    f"'{key}' shape {tuple(d[key].shape)} does not match "
                    f"'{keys[0]}' shape {tuple(first.shape)} in batch or spatial size."
                )
            d[key] = self.cropper(d[key], randomize=False)
        return d


class BatchedRandWeightedCropd(BatchedRandomizableMixin, MapTransform, Randomizable):
    """Crop each sample at a center drawn with probability proportional to a weight map.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys of the (B, C, Z, Y, X) tensors to crop.
    w_key : str
        Key of the (B, C, Z, Y, X) non-negative weight map (summed over channels).
        Samples whose weights are all zero get a uniformly random center.
    spatial_size : Sequence[int]
        Crop size (Z, Y, X); non-positive entries keep that axis whole.
    allow_missing_keys : bool
        Skip keys that are absent instead of raising KeyError.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        w_key: str,
        spatial_size: Sequence[int],
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.w_key = w_key
        self.spatial_size = (
            tuple(spatial_size) if not isinstance(spatial_size, int) else spatial_size
        )

    def randomize(self, weight: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Draw per-sample crop starts (B, 3) from ``weight`` (B, C, Z, Y, X)."""
        check_batched(weight, name=f"weight map '{self.w_key}'")
        spatial = tuple(weight.shape[2:])
        roi = _resolve_roi(self.spatial_size, spatial, "spatial_size")
        # A crop starting at s has its center voxel at s + r // 2.
        valid = weight.sum(dim=1)[
            (
                slice(None),
                *[slice(r // 2, r // 2 + n - r + 1) for n, r in zip(spatial, roi, strict=True)],
            )
        ]
        counts = valid.shape[1:]
        flat = valid.reshape(valid.shape[0], -1).float().clamp_min(0)
        empty = flat.sum(dim=1, keepdim=True) == 0
        flat = torch.where(empty, torch.ones_like(flat), flat)
        cdf = flat.cumsum(dim=1)
        u = self._rand(flat.shape[0], 1).to(device=cdf.device, dtype=cdf.dtype)
        index = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp_max(flat.shape[1] - 1)
        index = index.squeeze(1).cpu()
        nz, ny, nx = counts
        starts = torch.stack([index // (ny * nx), (index // nx) % ny, index % nx], dim=1)
        return starts, roi

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.w_key not in d:
            raise KeyError(f"weight key '{self.w_key}' is missing from the sample.")
        weight_shape = tuple(d[self.w_key].shape[2:])
        starts, roi = self.randomize(d[self.w_key])
        for key in self.key_iterator(d):
            check_batched(d[key], name=f"'{key}'")
            if tuple(d[key].shape[2:]) != weight_shape:
                raise ValueError(
                    f"'{key}' spatial shape {tuple(d[key].shape[2:])} does not match the weight "
                    f"map's {weight_shape}."
                )
            d[key] = crop_per_sample(d[key], starts, roi)
        return d
