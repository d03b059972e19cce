"""Batched random sharpening with a 3D Laplacian."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, RandomizableTransform

from viscy_transforms._checks import check_batched, compute_dtype
from viscy_transforms._random import (
    BatchedRandomizableMixin,
    check_prob,
    normalize_range,
    per_sample,
    warn_shared_keys,
)

__all__ = ["BatchedRandSharpend"]


def _laplacian(img: torch.Tensor) -> torch.Tensor:
    """``6 x - (sum of the 6 face neighbours)`` per channel, zero outside the volume."""
    n, c = img.shape[:2]
    kernel = torch.zeros(3, 3, 3, dtype=img.dtype, device=img.device)
    kernel[1, 1, 1] = 6.0
    for axis in range(3):
        for side in (0, 2):
            index = [1, 1, 1]
            index[axis] = side
            kernel[tuple(index)] = -1.0
    flat = img.reshape(n * c, 1, *img.shape[2:])
    return F.conv3d(flat, kernel[None, None], padding=1).reshape(img.shape)


class BatchedRandSharpend(BatchedRandomizableMixin, MapTransform, RandomizableTransform):
    """Sharpen each sample with a 3D Laplacian: ``x + alpha * (6 x - sum of face neighbours)``.

    The kernel is 0.1.0's: ``1 + 6 alpha`` at the centre and ``-alpha`` at the six face
    neighbours in Z, Y and X, with zeros outside the volume (so edges brighten). ``alpha``
    is drawn uniformly from ``alpha_range`` per sample and shared by the keys of a sample;
    channels are sharpened independently.

    Parameters
    ----------
    keys : str | Iterable[str]
        Keys of the (B, C, Z, Y, X) tensors to sharpen.
    alpha_range : tuple[float, float]
        Range of the sharpening strength ``alpha``.
    prob : float
        Probability, per sample, of sharpening.
    allow_missing_keys : bool
        Skip keys that are absent instead of raising KeyError.
    """

    def __init__(
        self,
        keys: str | Iterable[str],
        alpha_range: tuple[float, float] = (0.1, 0.5),
        prob: float = 0.1,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        warn_shared_keys(type(self).__name__, self.keys)
        RandomizableTransform.__init__(self, check_prob(prob))
        self.alpha_range = normalize_range(alpha_range, "alpha_range", symmetric=False)

    def randomize(self, batch_size: int) -> torch.Tensor:  # type: ignore[override]
        """Per-sample alphas, zero where the transform does not apply."""
        apply = self._draw_apply(batch_size, self.prob)
        return self._uniform(*self.alpha_range, batch_size) * apply

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        alphas = None
        for key in self.key_iterator(d):
            img = d[key]
            check_batched(img, name=f"'{key}'")
            if alphas is None:
                alphas = self.randomize(img.shape[0])
            out = img.to(compute_dtype(img))
            index = alphas.nonzero().squeeze(1)
            if len(index) == 0:
                d[key] = out
                continue
            device_index = index.to(img.device)
            sub = out.index_select(0, device_index)
            sharpened = sub + per_sample(alphas[index], sub, sub.dtype) * _laplacian(sub)
            d[key] = out.index_copy(0, device_index, sharpened)
        return d
