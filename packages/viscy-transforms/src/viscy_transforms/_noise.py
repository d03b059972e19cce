"""Gaussian noise drawn with torch on the image's device (per sample and batched)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import numpy as np
import torch
from monai.config import DtypeLike
from monai.transforms import RandGaussianNoise, RandGaussianNoised, RandomizableTransform
from monai.utils import MAX_SEED
from monai.utils.type_conversion import get_equivalent_dtype

from viscy_transforms._checks import check_batched
from viscy_transforms._random import BatchedRandomizableMixin, check_prob, per_sample

__all__ = [
    "BatchedRandGaussianNoise",
    "BatchedRandGaussianNoised",
    "RandGaussianNoiseTensor",
    "RandGaussianNoiseTensord",
]


def _output_dtype(img: torch.Tensor, dtype: DtypeLike) -> torch.dtype:
    """Floating inputs keep their dtype; others become ``dtype`` (float32 if None)."""
    if img.is_floating_point():
        return img.dtype
    return torch.float32 if dtype is None else get_equivalent_dtype(dtype, torch.Tensor)


class RandGaussianNoiseTensor(RandGaussianNoise):
    """MONAI ``RandGaussianNoise`` that draws the noise with torch, on the image's device.

    MONAI draws the noise with numpy on the CPU and copies it to the image's device; this
    draws it where the image is. Floating inputs keep their dtype; ``dtype`` applies to others.

    Parameters
    ----------
    prob : float
        Probability of adding noise.
    mean : float
        Mean of the noise.
    std : float
        Standard deviation of the noise (upper bound if ``sample_std``).
    dtype : DtypeLike
        Output dtype for non-floating inputs.
    sample_std : bool
        Draw the standard deviation uniformly from ``[0, std)``.
    """

    def __init__(
        self,
        prob: float = 0.1,
        mean: float = 0.0,
        std: float = 0.1,
        dtype: DtypeLike = np.float32,
        sample_std: bool = True,
    ) -> None:
        super().__init__(
            prob=check_prob(prob), mean=mean, std=std, dtype=dtype, sample_std=sample_std
        )
        if std < 0:
            raise ValueError(f"std must be non-negative, got {std}.")

    def randomize(self, img: torch.Tensor, mean: float | None = None) -> None:  # type: ignore[override]
        """Draw whether to apply and the noise, shaped like ``img`` on its device."""
        RandomizableTransform.randomize(self, None)
        if not self._do_transform:
            return
        img = torch.as_tensor(img)
        std = self.R.uniform(0, self.std) if self.sample_std else self.std
        generator = torch.Generator(device=img.device)
        generator.manual_seed(int(self.R.randint(MAX_SEED)))
        dtype = _output_dtype(img, self.dtype)
        noise = torch.randn(img.shape, generator=generator, device=img.device, dtype=dtype)
        self.noise = noise * std + (self.mean if mean is None else mean)

    def __call__(  # type: ignore[override]
        self, img: torch.Tensor, mean: float | None = None, randomize: bool = True
    ) -> torch.Tensor:
        img = torch.as_tensor(img)
        if randomize:
            self.randomize(img, mean=mean)
        if not self._do_transform:
            return img
        if self.noise is None:
            raise RuntimeError("call randomize() before applying with randomize=False.")
        if self.noise.shape != img.shape:
            raise ValueError(
                f"noise was drawn for shape {tuple(self.noise.shape)}, got {tuple(img.shape)}."
            )
        return img.to(self.noise.dtype) + self.noise


class RandGaussianNoiseTensord(RandGaussianNoised):
    """Dictionary version of :class:`RandGaussianNoiseTensor` (all keys share the noise).

    Parameters
    ----------
    keys : str or Iterable[str]
        Keys of the batch dict to transform.
    prob : float
        Probability of adding noise, default 0.1.
    mean : float
        Mean of the noise, in image intensity units, default 0.0.
    std : float
        Standard deviation of the noise (upper bound if ``sample_std``), default 0.1.
    dtype : type
        Output dtype for non-floating inputs, default float32.
    allow_missing_keys : bool
        Default False; if True, keys absent from the batch are skipped instead of raising.
    sample_std : bool
        Default True: draw the standard deviation uniformly from ``[0, std)``.
    """

    def __init__(
        self,
        keys: str | Iterable[str],
        prob: float = 0.1,
        mean: float = 0.0,
        std: float = 0.1,
        dtype: type = np.float32,
        allow_missing_keys: bool = False,
        sample_std: bool = True,
    ) -> None:
        super().__init__(
            keys,
            prob=check_prob(prob),
            mean=mean,
            std=std,
            dtype=dtype,
            allow_missing_keys=allow_missing_keys,
            sample_std=sample_std,
        )
        self.rand_gaussian_noise = RandGaussianNoiseTensor(
            prob=1.0, mean=mean, std=std, dtype=dtype, sample_std=sample_std
        )


class BatchedRandGaussianNoise(BatchedRandomizableMixin, RandGaussianNoiseTensor):
    """Add Gaussian noise to each sample of a (B, C, ...) batch with its own std and coin flip.

    As in :class:`RandGaussianNoiseTensor`, but ``prob`` and the sampled std are per sample.

    Parameters
    ----------
    prob : float
        Probability of adding noise to a sample, default 0.1.
    mean : float
        Mean of the noise, in image intensity units, default 0.0.
    std : float
        Standard deviation of the noise (upper bound if ``sample_std``), default 0.1.
    dtype : DtypeLike
        Output dtype for non-floating inputs, default float32.
    sample_std : bool
        Default True: draw the standard deviation uniformly from ``[0, std)``, per sample.
    """

    def __init__(
        self,
        prob: float = 0.1,
        mean: float = 0.0,
        std: float = 0.1,
        dtype: DtypeLike = np.float32,
        sample_std: bool = True,
    ) -> None:
        super().__init__(prob=prob, mean=mean, std=std, dtype=dtype, sample_std=sample_std)
        self._index: torch.Tensor | None = None

    def randomize(self, img: torch.Tensor, mean: float | None = None) -> None:  # type: ignore[override]
        """Draw which samples get noise, their std, and the noise (on ``img``'s device)."""
        check_batched(img, ndim=None)
        batch = img.shape[0]
        apply = self._draw_apply(batch, self.prob)
        stds = (
            self._uniform(0.0, self.std, batch)
            if self.sample_std
            else torch.full((batch,), self.std)
        )
        self._index = apply.nonzero().squeeze(1)
        self._do_transform = bool(apply.any())
        if not self._do_transform:
            self.noise = None
            return
        dtype = _output_dtype(img, self.dtype)
        shape = (len(self._index), *img.shape[1:])
        noise = torch.randn(
            shape, generator=self._device_generator(img.device), device=img.device, dtype=dtype
        )
        std = per_sample(stds[apply], noise, dtype)
        self.noise = noise * std + (self.mean if mean is None else mean)

    def __call__(  # type: ignore[override]
        self, img: torch.Tensor, mean: float | None = None, randomize: bool = True
    ) -> torch.Tensor:
        check_batched(img, ndim=None)
        if randomize:
            self.randomize(img, mean=mean)
        dtype = _output_dtype(img, self.dtype)
        if not self._do_transform:
            return img.to(dtype)
        if self.noise is None or self._index is None:
            raise RuntimeError("call randomize() before applying with randomize=False.")
        if self.noise.shape[1:] != img.shape[1:]:
            raise ValueError(
                f"noise was drawn for shape {tuple(self.noise.shape[1:])} per sample, "
                f"got {tuple(img.shape[1:])}."
            )
        out = img.to(dtype)
        if len(self._index) == img.shape[0]:
            return out + self.noise
        index = self._index.to(img.device)
        return out.index_add(0, index, self.noise)


class BatchedRandGaussianNoised(RandGaussianNoiseTensord):
    """Dictionary version of :class:`BatchedRandGaussianNoise` (keys share the noise).

    Parameters
    ----------
    keys : str or Iterable[str]
        Keys of the batch dict to transform.
    prob : float
        Probability of adding noise to a sample, default 0.1.
    mean : float
        Mean of the noise, in image intensity units, default 0.0.
    std : float
        Standard deviation of the noise (upper bound if ``sample_std``), default 0.1.
    dtype : type
        Output dtype for non-floating inputs, default float32.
    allow_missing_keys : bool
        Default False; if True, keys absent from the batch are skipped instead of raising.
    sample_std : bool
        Default True: draw the standard deviation uniformly from ``[0, std)``, per sample.
    """

    def __init__(
        self,
        keys: str | Iterable[str],
        prob: float = 0.1,
        mean: float = 0.0,
        std: float = 0.1,
        dtype: type = np.float32,
        allow_missing_keys: bool = False,
        sample_std: bool = True,
    ) -> None:
        super().__init__(
            keys,
            prob=prob,
            mean=mean,
            std=std,
            dtype=dtype,
            allow_missing_keys=allow_missing_keys,
            sample_std=sample_std,
        )
        self.rand_gaussian_noise = BatchedRandGaussianNoise(
            prob=prob, mean=mean, std=std, dtype=dtype, sample_std=sample_std
        )

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        randomize = True
        for key in self.key_iterator(d):
            d[key] = self.rand_gaussian_noise(d[key], randomize=randomize)
            randomize = False
        return d
