"""Batched random intensity offset ("histogram shift")."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import torch
from monai.transforms import MapTransform, RandomizableTransform

from viscy_transforms._checks import check_batched, compute_dtype
from viscy_transforms._random import (
    BatchedRandomizableMixin,
    check_prob,
    normalize_range,
    per_sample,
)

__all__ = ["BatchedRandHistogramShiftd"]


class BatchedRandHistogramShiftd(BatchedRandomizableMixin, MapTransform, RandomizableTransform):
    """Shift each sample's intensity histogram by adding a random offset.

    Meant for normalized images, where the offset is in units of the normalization scale.
    All keys of one sample get the same offset.

    Parameters
    ----------
    keys : str | Iterable[str]
        Keys of the (B, C, ...) tensors to shift.
    shift_range : tuple[float, float]
        Range of the offset.
    prob : float
        Probability, per sample, of shifting.
    allow_missing_keys : bool
        Skip keys that are absent instead of raising KeyError.
    """

    def __init__(
        self,
        keys: str | Iterable[str],
        shift_range: tuple[float, float] = (-0.1, 0.1),
        prob: float = 0.1,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, check_prob(prob))
        self.shift_range = normalize_range(shift_range, "shift_range")

    def randomize(self, batch_size: int) -> torch.Tensor:  # type: ignore[override]
        """Per-sample offsets (zero where the transform does not apply)."""
        apply = self._draw_apply(batch_size, self.prob)
        return self._uniform(*self.shift_range, batch_size) * apply

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        shifts = None
        for key in self.key_iterator(d):
            img = d[key]
            check_batched(img, name=f"'{key}'", ndim=None)
            if shifts is None:
                shifts = self.randomize(img.shape[0])
            dtype = compute_dtype(img)
            d[key] = img.to(dtype) + per_sample(shifts, img, dtype)
        return d
