"""Batched random unsharp masking."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import torch
from monai.transforms import MapTransform, RandomizableTransform

from viscy_transforms._checks import check_batched, compute_dtype
from viscy_transforms._gaussian import gaussian_blur3d
from viscy_transforms._random import (
    BatchedRandomizableMixin,
    check_prob,
    normalize_range,
    per_sample,
)

__all__ = ["BatchedRandSharpend"]

# Blur of the unsharp mask: one voxel in Y and X, none across the (usually coarse) Z axis.
_BLUR_SIGMA_ZYX = (0.0, 1.0, 1.0)


class BatchedRandSharpend(BatchedRandomizableMixin, MapTransform, RandomizableTransform):
    """Sharpen each sample by unsharp masking: ``x + alpha * (x - blur(x))``.

    The blur is Gaussian with sigma 1 voxel in Y and X, applied slice by slice; ``alpha`` is
    drawn per sample and shared by the keys of a sample.

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
            sigmas = torch.tensor(_BLUR_SIGMA_ZYX).expand(len(index), 3)
            blurred = gaussian_blur3d(sub, sigmas, border_type="replicate")
            sharpened = sub + per_sample(alphas[index], sub, sub.dtype) * (sub - blurred)
            d[key] = out.index_copy(0, device_index, sharpened)
        return d
