"""Typed dictionaries shared by the transforms.

This module mirrors the few data types the transforms need so that viscy-transforms does not
import viscy-data. It imports nothing from the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NotRequired, TypedDict

import torch

__all__ = [
    "ChannelMap",
    "ChannelNormStats",
    "LevelNormStats",
    "NormMeta",
    "Sample",
    "StatValue",
]

StatValue = float | torch.Tensor
"""One statistic: a python float, a 0-d tensor, or a (B,) tensor in a collated batch."""


class LevelNormStats(TypedDict, total=False):
    """Statistics of one channel at one level (dataset, FOV or timepoint)."""

    mean: StatValue
    std: StatValue
    median: StatValue
    iqr: StatValue
    min: StatValue
    max: StatValue
    p1: StatValue
    p5: StatValue
    p95: StatValue
    p99: StatValue


class ChannelNormStats(TypedDict, total=False):
    """Normalization statistics of one channel, keyed by level.

    ``timepoint_statistics`` is already resolved to the sample's timepoint.
    """

    dataset_statistics: LevelNormStats
    fov_statistics: LevelNormStats
    timepoint_statistics: LevelNormStats


NormMeta = dict[str, ChannelNormStats]
"""Per-channel normalization metadata: ``{channel_name: ChannelNormStats}``."""


class ChannelMap(TypedDict, total=False):
    """Which channel keys to stack into the ``source`` and ``target`` tensors."""

    source: Sequence[str]
    target: Sequence[str]


class Sample(TypedDict, total=False):
    """A (possibly collated) sample as it travels through the transforms.

    Channel tensors are stored under their channel names before stacking; image tensors are
    ``(C, Z, Y, X)`` per sample or ``(B, C, Z, Y, X)`` per batch.
    """

    index: NotRequired[object]
    source: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor
    norm_meta: NormMeta
