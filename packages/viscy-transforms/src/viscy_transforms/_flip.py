"""Batched random flips along spatial axes, decided per sample and per axis."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from monai.transforms import MapTransform, RandomizableTransform

from viscy_transforms._checks import check_batched
from viscy_transforms._random import BatchedRandDictMixin, BatchedRandomizableMixin, check_prob

__all__ = ["BatchedRandFlip", "BatchedRandFlipd"]


class BatchedRandFlip(BatchedRandomizableMixin, RandomizableTransform):
    """Flip each sample along each of ``spatial_axes`` independently with probability ``prob``.

    With ``prob=1`` every sample is flipped along all axes, as MONAI ``RandFlip(prob=1)``.

    Parameters
    ----------
    spatial_axes : int | Sequence[int]
        Spatial axes to flip, 0 = Z, 1 = Y, 2 = X (tensor dims 2, 3, 4).
    prob : float
        Probability of flipping a sample along one axis.
    """

    def __init__(self, spatial_axes: int | Sequence[int], prob: float = 0.5) -> None:
        RandomizableTransform.__init__(self, check_prob(prob))
        axes = (spatial_axes,) if isinstance(spatial_axes, int) else tuple(spatial_axes)
        if any(a not in (0, 1, 2) for a in axes):
            raise ValueError(
                f"spatial_axes must be in (0, 1, 2) for (Z, Y, X), got {spatial_axes!r}."
            )
        self.spatial_axes = axes
        self._flips: torch.Tensor | None = None

    def randomize(self, img: torch.Tensor) -> None:  # type: ignore[override]
        """Draw a (B, n_axes) boolean table of flips."""
        self._flips = self._rand(img.shape[0], len(self.spatial_axes)) < self.prob

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:  # type: ignore[override]
        check_batched(img)
        if randomize:
            self.randomize(img)
        if self._flips is None:
            raise RuntimeError("call randomize() before applying with randomize=False.")
        flips = self._flips.tolist()
        if all(row == flips[0] for row in flips):  # the whole batch flips alike
            dims = [axis + 2 for axis, f in zip(self.spatial_axes, flips[0], strict=True) if f]
            return img.flip(dims) if dims else img
        samples = []
        for sample, row in zip(img, flips, strict=True):
            dims = [axis + 1 for axis, f in zip(self.spatial_axes, row, strict=True) if f]
            samples.append(sample.flip(dims) if dims else sample)
        return torch.stack(samples)


class BatchedRandFlipd(BatchedRandDictMixin, MapTransform, RandomizableTransform):
    """Dictionary version of :class:`BatchedRandFlip` (keys of a sample flip together).

    Parameters
    ----------
    keys : str or Iterable[str]
        Keys of the batch dict to transform.
    spatial_axes : int or Sequence[int]
        Spatial axes to flip, 0 = Z, 1 = Y, 2 = X (tensor dims 2, 3, 4), default all three.
    prob : float
        Probability of flipping a sample along one axis, default 0.5.
    allow_missing_keys : bool
        Default False; if True, keys absent from the batch are skipped instead of raising.
    """

    def __init__(
        self,
        keys: str | Iterable[str],
        spatial_axes: int | Sequence[int] = (0, 1, 2),
        prob: float = 0.5,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, check_prob(prob))
        self.transform = BatchedRandFlip(spatial_axes, prob=prob)
