"""Batched random Gaussian smoothing with per-sample sigmas."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from monai.transforms import MapTransform, RandomizableTransform

from viscy_transforms._checks import check_batched, compute_dtype
from viscy_transforms._gaussian import gaussian_blur3d
from viscy_transforms._random import (
    BatchedRandDictMixin,
    BatchedRandomizableMixin,
    check_prob,
    normalize_range,
)

__all__ = ["BatchedRandGaussianSmooth", "BatchedRandGaussianSmoothd"]

_BORDERS = ("constant", "reflect", "replicate", "circular")


class BatchedRandGaussianSmooth(BatchedRandomizableMixin, RandomizableTransform):
    """Gaussian-smooth each sample of a (B, C, Z, Y, X) batch with its own sigmas.

    Unlike MONAI ``RandGaussianSmooth`` (whose ``sigma_x`` acts on the first spatial axis),
    ``sigma_x``, ``sigma_y`` and ``sigma_z`` act on the X, Y and Z axes of (Z, Y, X) data.
    The kernels are MONAI's (``erf`` approximation, ``truncated`` sigmas wide).

    Parameters
    ----------
    sigma_x, sigma_y, sigma_z : tuple[float, float] | float
        Range of sigma (voxels) along X, Y, Z; a number is a fixed sigma.
    truncated : float
        Kernel half-width in units of sigma.
    prob : float
        Probability, per sample, of smoothing.
    border_type : str
        Border padding: constant (zeros), reflect, replicate or circular.
    """

    def __init__(
        self,
        sigma_x: tuple[float, float] | float = (1.0, 3.0),
        sigma_y: tuple[float, float] | float = (1.0, 3.0),
        sigma_z: tuple[float, float] | float = (1.0, 3.0),
        truncated: float = 4.0,
        prob: float = 0.5,
        border_type: str = "constant",
    ) -> None:
        RandomizableTransform.__init__(self, check_prob(prob))
        self.sigma_zyx = tuple(
            normalize_range(s, f"sigma_{n}", symmetric=False)
            for s, n in ((sigma_z, "z"), (sigma_y, "y"), (sigma_x, "x"))
        )
        if any(lo < 0 for lo, _ in self.sigma_zyx):
            raise ValueError(f"sigmas must be non-negative, got {self.sigma_zyx} (Z, Y, X).")
        if truncated <= 0:
            raise ValueError(f"truncated must be positive, got {truncated}.")
        if border_type not in _BORDERS:
            raise ValueError(f"border_type must be one of {_BORDERS}, got {border_type!r}.")
        self.truncated = truncated
        self.border_type = border_type
        self._apply: torch.Tensor | None = None
        self._sigmas: torch.Tensor | None = None

    def randomize(self, img: torch.Tensor) -> None:  # type: ignore[override]
        """Draw which samples to smooth and their (B, 3) sigmas (Z, Y, X)."""
        batch = img.shape[0]
        self._apply = self._draw_apply(batch, self.prob)
        self._sigmas = torch.stack([self._uniform(lo, hi, batch) for lo, hi in self.sigma_zyx], 1)

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:  # type: ignore[override]
        check_batched(img)
        if randomize:
            self.randomize(img)
        if self._apply is None or self._sigmas is None:
            raise RuntimeError("call randomize() before applying with randomize=False.")
        out = img.to(compute_dtype(img))
        if not self._apply.any():
            return out
        if self._apply.all():
            return gaussian_blur3d(out, self._sigmas, self.truncated, self.border_type)
        index = self._apply.nonzero().squeeze(1)
        blurred = gaussian_blur3d(
            out.index_select(0, index.to(img.device)),
            self._sigmas[index],
            self.truncated,
            self.border_type,
        )
        return out.index_copy(0, index.to(img.device), blurred)


class BatchedRandGaussianSmoothd(BatchedRandDictMixin, MapTransform, RandomizableTransform):
    """Dictionary version of :class:`BatchedRandGaussianSmooth` (keys share the sigmas).

    Parameters
    ----------
    keys : str or Iterable[str]
        Keys of the batch dict to transform.
    sigma_x, sigma_y, sigma_z : tuple[float, float] or float
        Range of sigma (voxels) along X, Y, Z, default ``(1.0, 3.0)``; a number is a fixed
        sigma.
    truncated : float
        Kernel half-width in units of sigma, default 4.0.
    prob : float
        Probability, per sample, of smoothing, default 0.5.
    border_type : str
        Border padding: constant (zeros, the default), reflect, replicate or circular.
    allow_missing_keys : bool
        Default False; if True, keys absent from the batch are skipped instead of raising.
    """

    def __init__(
        self,
        keys: str | Iterable[str],
        sigma_x: tuple[float, float] | float = (1.0, 3.0),
        sigma_y: tuple[float, float] | float = (1.0, 3.0),
        sigma_z: tuple[float, float] | float = (1.0, 3.0),
        truncated: float = 4.0,
        prob: float = 0.5,
        border_type: str = "constant",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, check_prob(prob))
        self.transform = BatchedRandGaussianSmooth(
            sigma_x, sigma_y, sigma_z, truncated=truncated, prob=prob, border_type=border_type
        )
