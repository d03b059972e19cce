"""Per-sample random parameters for batched transforms, drawn from a seedable torch generator."""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.utils import MAX_SEED

__all__ = [
    "BatchedRandDictMixin",
    "warn_shared_keys",
    "BatchedRandomizableMixin",
    "check_prob",
    "normalize_range",
    "per_sample",
]


def warn_shared_keys(name: str, keys: Sequence[Hashable]) -> None:
    """Warn that several keys share one draw where 0.1.0 drew them independently."""
    if len(keys) > 1:
        warnings.warn(
            f"{name}(keys={list(keys)}): all keys of a sample share one random draw; 0.1.0 "
            "drew each key independently (see COMPATIBILITY.md, viscy-transforms). Use one "
            "transform per key to keep independent draws.",
            UserWarning,
            stacklevel=3,
        )


def check_prob(prob: float, name: str = "prob") -> float:
    """Return ``prob`` as a float, or raise ValueError if it is not in [0, 1]."""
    prob = float(prob)
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {prob}.")
    return prob


def normalize_range(
    value: float | Sequence[float], name: str, symmetric: bool = True
) -> tuple[float, float]:
    """Turn ``r`` into ``(-r, r)`` (or ``(r, r)`` if not symmetric) and check ``(lo, hi)`` pairs."""
    if isinstance(value, int | float):
        value = float(value)
        return (-abs(value), abs(value)) if symmetric else (value, value)
    values = tuple(float(v) for v in value)
    if len(values) != 2:
        raise ValueError(f"{name} must be a number or a (min, max) pair, got {value!r}.")
    if values[0] > values[1]:
        raise ValueError(f"{name} must satisfy min <= max, got {value!r}.")
    return values


class BatchedRandomizableMixin:
    """Give a transform a ``torch.Generator`` seeded through MONAI's ``set_random_state``.

    Random parameters (one set per sample in the batch) are drawn on the CPU from
    :attr:`generator`, so the same seed gives the same parameters on every device. Large random
    fields (noise) are drawn on the data's device from a generator seeded by :attr:`generator`.
    Without an explicit seed the generator is seeded from torch's global RNG on first use, so
    ``torch.manual_seed`` makes a pipeline reproducible too.
    """

    _generator: torch.Generator | None = None

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> BatchedRandomizableMixin:
        """Seed MONAI's ``R`` and this transform's torch generator (see MONAI ``Randomizable``)."""
        super().set_random_state(seed, state)  # type: ignore[misc]
        generator = torch.Generator()
        if seed is None and state is None:
            generator.seed()
        else:
            generator.manual_seed(int(self.R.randint(MAX_SEED)))  # type: ignore[attr-defined]
        self._generator = generator
        return self

    @property
    def generator(self) -> torch.Generator:
        """The CPU generator all random parameters are drawn from."""
        if self._generator is None:
            self._generator = torch.Generator()
            self._generator.manual_seed(int(torch.randint(0, MAX_SEED, (1,)).item()))
        return self._generator

    def _rand(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) float64 CPU tensor of ``shape``."""
        return torch.rand(shape, generator=self.generator, dtype=torch.float64)

    def _uniform(self, low: float, high: float, *shape: int) -> torch.Tensor:
        """Uniform [low, high) float64 CPU tensor of ``shape``."""
        return low + (high - low) * self._rand(*shape)

    def _draw_apply(self, batch_size: int, prob: float) -> torch.Tensor:
        """Boolean (B,) CPU tensor: which samples the transform applies to."""
        return self._rand(batch_size) < prob

    def _device_generator(self, device: torch.device) -> torch.Generator:
        """A generator on ``device`` seeded from :attr:`generator` (for large random fields)."""
        seed = int(torch.randint(0, MAX_SEED, (1,), generator=self.generator).item())
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        return generator


def per_sample(values: torch.Tensor, img: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B,) or (B, C) CPU parameters -> broadcastable over ``img`` on its device."""
    shape = tuple(values.shape) + (1,) * (img.ndim - values.ndim)
    return values.reshape(shape).to(device=img.device, dtype=dtype)


class BatchedRandDictMixin:
    """Dictionary wrapper around an array transform stored in ``self.transform``.

    The parameters are drawn once per call (from the first key) and shared by all keys, as in
    MONAI's dictionary transforms; ``set_random_state`` seeds the wrapped transform.
    """

    transform: object

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> BatchedRandDictMixin:
        """Seed this transform and the wrapped array transform."""
        super().set_random_state(seed, state)  # type: ignore[misc]
        self.transform.set_random_state(seed, state)  # type: ignore[attr-defined]
        return self

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        """Apply the wrapped transform to every key with one draw of parameters."""
        d = dict(data)
        randomize = True
        for key in self.key_iterator(d):  # type: ignore[attr-defined]
            d[key] = self.transform(d[key], randomize=randomize)  # type: ignore[operator]
            randomize = False
        return d
