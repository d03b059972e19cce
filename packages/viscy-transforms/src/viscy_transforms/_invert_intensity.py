"""Random intensity inversion (negation), per sample and batched."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import torch
from monai.transforms import MapTransform, RandomizableTransform

from viscy_transforms._checks import check_batched
from viscy_transforms._random import BatchedRandomizableMixin, check_prob, per_sample

__all__ = ["BatchedRandInvertIntensityd", "RandInvertIntensityd"]


class RandInvertIntensityd(MapTransform, RandomizableTransform):
    """Negate the intensities of one sample with probability ``prob`` (all keys together).

    Meant for normalized (zero-centered) images, e.g. to make phase contrast polarity-invariant.

    Parameters
    ----------
    keys : str | Iterable[str]
        Keys of the tensors to invert.
    prob : float
        Probability of inverting.
    allow_missing_keys : bool
        Skip keys that are absent instead of raising KeyError.
    """

    def __init__(
        self, keys: str | Iterable[str], prob: float = 0.1, allow_missing_keys: bool = False
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, check_prob(prob))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize(None)
        if self._do_transform:
            for key in self.key_iterator(d):
                d[key] = -d[key]
        return d


class BatchedRandInvertIntensityd(BatchedRandomizableMixin, MapTransform, RandomizableTransform):
    """Negate each sample of a batch with probability ``prob`` (keys of a sample together).

    Parameters
    ----------
    keys : str | Iterable[str]
        Keys of the (B, C, ...) tensors to invert.
    prob : float
        Probability, per sample, of inverting.
    allow_missing_keys : bool
        Skip keys that are absent instead of raising KeyError.
    """

    def __init__(
        self, keys: str | Iterable[str], prob: float = 0.1, allow_missing_keys: bool = False
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, check_prob(prob))

    def randomize(self, batch_size: int) -> torch.Tensor:  # type: ignore[override]
        """Per-sample signs: -1 where the sample is inverted, +1 elsewhere."""
        return 1.0 - 2.0 * self._draw_apply(batch_size, self.prob).double()

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        signs = None
        for key in self.key_iterator(d):
            img = d[key]
            check_batched(img, name=f"'{key}'", ndim=None)
            if signs is None:
                signs = self.randomize(img.shape[0])
            d[key] = img * per_sample(signs, img, img.dtype)
        return d
