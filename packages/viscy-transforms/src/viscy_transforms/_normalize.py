"""Normalization from precomputed statistics carried in ``sample["norm_meta"]``."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Literal

import torch
from monai.transforms import MapTransform

from viscy_transforms._typing import StatValue

__all__ = ["MinMaxSampled", "NormalizeSampled"]

Level = Literal["fov_statistics", "dataset_statistics", "timepoint_statistics"]
DataRange = Literal["min_max", "p1_p99", "p5_p95"]

_LEVELS = ("fov_statistics", "dataset_statistics", "timepoint_statistics")
_RANGES = {"min_max": ("min", "max"), "p1_p99": ("p1", "p99"), "p5_p95": ("p5", "p95")}
_EPS = 1e-8


def _check_level(level: str) -> str:
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {_LEVELS}, got {level!r}.")
    return level


def _lookup(data: Mapping[Hashable, object], key: Hashable, level: str, stat: str) -> StatValue:
    """``data["norm_meta"][key][level][stat]`` with an error naming what is missing."""
    meta = data.get("norm_meta")
    if meta is None:
        raise KeyError(
            f"sample has no 'norm_meta' to normalize '{key}' with; the dataset must attach "
            "normalization metadata (written by `viscy preprocess`)."
        )
    if key not in meta:
        raise KeyError(f"norm_meta has no statistics for channel '{key}' (has: {sorted(meta)}).")
    levels = meta[key]
    if level not in levels or levels[level] is None:
        raise KeyError(f"norm_meta['{key}'] has no '{level}' (has: {sorted(levels)}).")
    stats = levels[level]
    if stat not in stats:
        raise KeyError(f"norm_meta['{key}']['{level}'] has no '{stat}' (has: {sorted(stats)}).")
    return stats[stat]


def _broadcast(value: StatValue, img: torch.Tensor, dtype: torch.dtype, name: str) -> torch.Tensor:
    """A float, 0-d tensor or per-sample (B,) tensor, shaped to broadcast over ``img``."""
    stat = torch.as_tensor(value).to(device=img.device, dtype=dtype)
    if stat.ndim == 0:
        return stat
    if stat.ndim == 1 and stat.shape[0] in (1, img.shape[0]):
        return stat.reshape((stat.shape[0],) + (1,) * (img.ndim - 1))
    raise ValueError(
        f"statistic {name} has shape {tuple(stat.shape)}; expected a scalar or one value per "
        f"sample for an image of shape {tuple(img.shape)}."
    )


class _StatNormalized(MapTransform):
    """Shared key handling: two statistics read from ``norm_meta`` per key."""

    def __init__(self, keys: str | Iterable[str], level: Level, remove_meta: bool) -> None:
        super().__init__(keys, allow_missing_keys=False)
        self.level = _check_level(level)
        self.remove_meta = remove_meta

    def _stats(self) -> tuple[str, str]:
        raise NotImplementedError

    def _normalize(self, img: torch.Tensor, first: torch.Tensor, second: torch.Tensor):
        raise NotImplementedError

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        first, second = self._stats()
        for key in self.key_iterator(d):
            img = d[key]
            dtype = img.dtype if img.is_floating_point() else torch.float32
            shift = _broadcast(_lookup(d, key, self.level, first), img, dtype, first)
            other = _broadcast(_lookup(d, key, self.level, second), img, dtype, second)
            d[key] = self._normalize(img.to(dtype), shift, other)
        if self.remove_meta:
            d.pop("norm_meta", None)
        return d


class NormalizeSampled(_StatNormalized):
    """``(x - stat[subtrahend]) / (stat[divisor] + eps)`` from ``sample["norm_meta"]``.

    Statistics are read from ``sample["norm_meta"][key][level]`` and may be python floats,
    0-d tensors, or (B,) tensors in a collated batch (one value per sample, broadcast over
    C, Z, Y, X). Statistics are moved to the image's device, never the image.

    Parameters
    ----------
    keys : str | Iterable[str]
        Channel keys to normalize (also the keys of ``norm_meta``).
    level : str
        ``dataset_statistics``, ``fov_statistics`` or ``timepoint_statistics``.
    subtrahend : str
        Statistic subtracted, e.g. ``mean`` or ``median``.
    divisor : str
        Statistic divided by, e.g. ``std`` or ``iqr``.
    remove_meta : bool
        Drop ``norm_meta`` from the sample afterwards (before it reaches the model).
    """

    def __init__(
        self,
        keys: str | Iterable[str],
        level: Level,
        subtrahend: str = "mean",
        divisor: str = "std",
        remove_meta: bool = False,
    ) -> None:
        super().__init__(keys, level, remove_meta)
        self.subtrahend = subtrahend
        self.divisor = divisor

    def _stats(self) -> tuple[str, str]:
        return self.subtrahend, self.divisor

    def _normalize(self, img: torch.Tensor, first: torch.Tensor, second: torch.Tensor):
        return (img - first) / (second + _EPS)


class MinMaxSampled(_StatNormalized):
    """Clip to ``[low, high]`` statistics from ``sample["norm_meta"]`` and map to ``[-1, 1]``.

    ``2 * (clip(x, low, high) - low) / (high - low + eps) - 1`` (the 0.1.0 behaviour); see
    :class:`NormalizeSampled` for where the statistics come from.

    Parameters
    ----------
    keys : str | Iterable[str]
        Channel keys to normalize.
    level : str
        ``dataset_statistics``, ``fov_statistics`` or ``timepoint_statistics``.
    data_range : str
        ``min_max``, ``p1_p99`` or ``p5_p95``: which statistics are ``low`` and ``high``.
    remove_meta : bool
        Drop ``norm_meta`` from the sample afterwards.
    """

    def __init__(
        self,
        keys: str | Iterable[str],
        level: Level,
        data_range: DataRange = "p1_p99",
        remove_meta: bool = False,
    ) -> None:
        super().__init__(keys, level, remove_meta)
        if data_range not in _RANGES:
            raise ValueError(f"data_range must be one of {tuple(_RANGES)}, got {data_range!r}.")
        self.data_range = data_range

    def _stats(self) -> tuple[str, str]:
        return _RANGES[self.data_range]

    def _normalize(self, img: torch.Tensor, low: torch.Tensor, high: torch.Tensor):
        # 0.1.0: clip to the sampled range, then map it to [-1, 1]
        img = torch.minimum(torch.maximum(img, low), high)
        return 2 * (img - low) / (high - low + _EPS) - 1
