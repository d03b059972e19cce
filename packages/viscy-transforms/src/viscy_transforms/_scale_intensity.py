"""Batched random intensity scaling: ``x * (1 + factor)`` with a factor per sample."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from monai.transforms import MapTransform, RandomizableTransform

from viscy_transforms._checks import check_batched, compute_dtype
from viscy_transforms._random import (
    BatchedRandDictMixin,
    BatchedRandomizableMixin,
    check_prob,
    normalize_range,
    per_sample,
)

__all__ = ["BatchedRandScaleIntensity", "BatchedRandScaleIntensityd"]


class BatchedRandScaleIntensity(BatchedRandomizableMixin, RandomizableTransform):
    """Multiply each sample by ``1 + factor``, as MONAI ``RandScaleIntensity``, per sample.

    Parameters
    ----------
    factors : tuple[float, float] | float
        Range of ``factor``; a number ``f`` means ``(-f, f)``.
    prob : float
        Probability, per sample, of applying the scaling.
    channel_wise : bool
        Draw one factor per channel instead of one per sample.
    """

    def __init__(
        self,
        factors: tuple[float, float] | float = 0.1,
        prob: float = 0.1,
        channel_wise: bool = False,
    ) -> None:
        RandomizableTransform.__init__(self, check_prob(prob))
        self.factors = normalize_range(factors, "factors")
        self.channel_wise = channel_wise
        self._scales: torch.Tensor | None = None

    def randomize(self, img: torch.Tensor) -> None:  # type: ignore[override]
        """Draw per-sample (or per-channel) scales for the batch ``img``."""
        batch, channels = img.shape[0], img.shape[1] if self.channel_wise else 1
        apply = self._draw_apply(batch, self.prob)[:, None]
        factors = self._uniform(*self.factors, batch, channels)
        self._scales = torch.where(apply, 1.0 + factors, torch.ones_like(factors))

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:  # type: ignore[override]
        check_batched(img, ndim=None)
        if randomize:
            self.randomize(img)
        if self._scales is None:
            raise RuntimeError("call randomize() before applying with randomize=False.")
        dtype = compute_dtype(img)
        return img.to(dtype) * per_sample(self._scales, img, dtype)


class BatchedRandScaleIntensityd(BatchedRandDictMixin, MapTransform, RandomizableTransform):
    """Dictionary version of :class:`BatchedRandScaleIntensity` (keys share the factors).

    Parameters
    ----------
    keys : str or Iterable[str]
        Keys of the batch dict to transform.
    factors : tuple[float, float] or float
        Range of ``factor``, default 0.1; a number ``f`` means ``(-f, f)``.
    prob : float
        Probability, per sample, of applying the scaling, default 0.1.
    channel_wise : bool
        Default False; if True, draw one factor per channel instead of one per sample.
    allow_missing_keys : bool
        Default False; if True, keys absent from the batch are skipped instead of raising.
    """

    def __init__(
        self,
        keys: str | Iterable[str],
        factors: tuple[float, float] | float = 0.1,
        prob: float = 0.1,
        channel_wise: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, check_prob(prob))
        self.transform = BatchedRandScaleIntensity(factors, prob=prob, channel_wise=channel_wise)
