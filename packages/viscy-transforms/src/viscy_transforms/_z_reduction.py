"""Reduce the Z axis of batched channels: max projection or center slice."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.transforms import MapTransform

from viscy_transforms._checks import check_batched

__all__ = ["BatchedChannelWiseZReduction", "BatchedChannelWiseZReductiond"]

_STRATEGIES = ("mip", "center", "mean")


def _check_strategy(strategy: str) -> str:
    if strategy not in _STRATEGIES:
        raise ValueError(f"z reduction strategy must be one of {_STRATEGIES}, got {strategy!r}.")
    return strategy


class BatchedChannelWiseZReduction:
    """Collapse the Z axis of a (B, C, Z, Y, X) batch to a single slice (Z = 1 is kept).

    Parameters
    ----------
    default_strategy : str
        ``mip`` (maximum intensity projection), ``center`` (the middle slice, ``Z // 2``) or
        ``mean`` (average projection).
    """

    def __init__(self, default_strategy: str = "mip") -> None:
        self.default_strategy = _check_strategy(default_strategy)

    def __call__(self, img: torch.Tensor, strategy: str | None = None) -> torch.Tensor:
        """Reduce ``img`` with ``strategy`` (default: ``default_strategy``)."""
        check_batched(img)
        strategy = _check_strategy(strategy or self.default_strategy)
        if strategy == "mip":
            return img.amax(dim=2, keepdim=True)
        if strategy == "mean":
            return img.float().mean(dim=2, keepdim=True).to(img.dtype)
        center = img.shape[2] // 2
        return img[:, :, center : center + 1]


class BatchedChannelWiseZReductiond(MapTransform):
    """Z reduction per key: center slice for label-free channels, a projection for the rest.

    Label-free (e.g. phase) stacks are not meaningful as a maximum projection; fluorescence
    stacks are.

    Parameters
    ----------
    keys : KeysCollection
        Keys of the (B, C, Z, Y, X) tensors to reduce.
    labelfree_keys : list[str] | None
        Keys reduced with the center slice.
    default_strategy : str
        Strategy for the other keys: ``mip``, ``center`` or ``mean``.
    allow_missing_keys : bool
        Skip keys that are absent instead of raising KeyError.
    """

    def __init__(
        self,
        keys: str | list[str] | tuple[str, ...],
        labelfree_keys: list[str] | None = None,
        default_strategy: str = "mip",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.labelfree_keys = tuple(labelfree_keys or ())
        self.reduction = BatchedChannelWiseZReduction(default_strategy)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            strategy = "center" if key in self.labelfree_keys else None
            d[key] = self.reduction(d[key], strategy)
        return d
