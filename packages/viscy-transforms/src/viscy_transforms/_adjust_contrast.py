"""Batched random gamma contrast adjustment."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from monai.transforms import MapTransform, RandomizableTransform

from viscy_transforms._checks import check_batched, compute_dtype
from viscy_transforms._random import (
    BatchedRandDictMixin,
    BatchedRandomizableMixin,
    check_prob,
    per_sample,
)

__all__ = ["BatchedRandAdjustContrast", "BatchedRandAdjustContrastd"]


def _gamma_range(gamma: tuple[float, float] | float) -> tuple[float, float]:
    # 0.1.0: a number is a fixed gamma (not MONAI's (0.5, gamma) range)
    if isinstance(gamma, int | float):
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}.")
        return (float(gamma), float(gamma))
    values = tuple(float(g) for g in gamma)
    if len(values) != 2 or min(values) <= 0:
        raise ValueError(f"gamma must be a number or a pair of positive numbers, got {gamma!r}.")
    return (min(values), max(values))


class BatchedRandAdjustContrast(BatchedRandomizableMixin, RandomizableTransform):
    """Gamma contrast per sample: ``((x - min) / range) ** gamma * range + min``.

    Same formula as MONAI ``AdjustContrast`` with min, range, mean and std taken per sample.

    Parameters
    ----------
    gamma : tuple[float, float] | float
        Range of gamma; a number ``g`` applies that fixed gamma (as in 0.1.0).
    prob : float
        Probability, per sample, of applying the adjustment.
    invert_image : bool
        Negate before and after the adjustment (acts on the dark end).
    retain_stats : bool
        Restore each sample's mean and standard deviation afterwards.
    """

    def __init__(
        self,
        gamma: tuple[float, float] | float = (0.5, 4.5),
        prob: float = 0.1,
        invert_image: bool = False,
        retain_stats: bool = False,
    ) -> None:
        RandomizableTransform.__init__(self, check_prob(prob))
        self.gamma = _gamma_range(gamma)
        self.invert_image = invert_image
        self.retain_stats = retain_stats
        self._apply: torch.Tensor | None = None
        self._gammas: torch.Tensor | None = None

    def randomize(self, img: torch.Tensor) -> None:  # type: ignore[override]
        """Draw which samples to adjust and their gammas."""
        self._apply = self._draw_apply(img.shape[0], self.prob)
        self._gammas = self._uniform(*self.gamma, img.shape[0])

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:  # type: ignore[override]
        check_batched(img, ndim=None)
        if randomize:
            self.randomize(img)
        if self._apply is None or self._gammas is None:
            raise RuntimeError("call randomize() before applying with randomize=False.")
        dtype = compute_dtype(img)
        if not self._apply.any():
            return img.to(dtype)
        everyone = bool(self._apply.all())
        index = self._apply.nonzero().squeeze(1).to(img.device)
        sub = img.to(dtype) if everyone else img.index_select(0, index).to(dtype)
        gamma = per_sample(self._gammas[self._apply], sub, dtype)
        dims = tuple(range(1, sub.ndim))
        if self.invert_image:
            sub = -sub
        if self.retain_stats:
            mean, std = sub.mean(dim=dims, keepdim=True), sub.std(dim=dims, keepdim=True)
        low = sub.amin(dim=dims, keepdim=True)
        span = sub.amax(dim=dims, keepdim=True) - low
        # in-place chain: one temporary instead of five on large batches
        out = (sub - low).div_(span + 1e-7).pow_(gamma).mul_(span).add_(low)
        if self.retain_stats:
            out = out - out.mean(dim=dims, keepdim=True)
            out = out / (out.std(dim=dims, keepdim=True) + 1e-8) * std + mean
        if self.invert_image:
            out = -out
        return out if everyone else img.to(dtype).index_copy(0, index, out)


class BatchedRandAdjustContrastd(BatchedRandDictMixin, MapTransform, RandomizableTransform):
    """Dictionary version of :class:`BatchedRandAdjustContrast` (keys share the gammas).

    Parameters
    ----------
    keys : str or Iterable[str]
        Keys of the batch dict to transform.
    gamma : tuple[float, float] or float
        Range of gamma, default ``(0.5, 4.5)``; a number ``g`` applies that fixed gamma.
    prob : float
        Probability, per sample, of applying the adjustment, default 0.1.
    invert_image : bool
        Default False; if True, negate before and after the adjustment (acts on the dark end).
    retain_stats : bool
        Default False; if True, restore each sample's mean and standard deviation afterwards.
    allow_missing_keys : bool
        Default False; if True, keys absent from the batch are skipped instead of raising.
    """

    def __init__(
        self,
        keys: str | Iterable[str],
        gamma: tuple[float, float] | float = (0.5, 4.5),
        prob: float = 0.1,
        invert_image: bool = False,
        retain_stats: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, check_prob(prob))
        self.transform = BatchedRandAdjustContrast(
            gamma, prob=prob, invert_image=invert_image, retain_stats=retain_stats
        )
