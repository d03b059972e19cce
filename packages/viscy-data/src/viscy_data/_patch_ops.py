"""Batch operations shared by the pipelines (HCS, triplet, cell-division triplet, multi-experiment).

Kept free of viscy-transforms: any dictionary transform (a callable on a dict) plugs in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, cat

__all__ = ["apply_channel_wise", "center_crop_yx"]


def apply_channel_wise(
    transforms: Sequence[Callable[[dict], dict]],
    channel_names: Sequence[str],
    patch: Tensor,
    norm_meta: dict | None = None,
) -> Tensor:
    """Run dictionary transforms on a (B, C, ...) batch with one key per channel.

    The batch is split into ``{channel_name: (B, 1, ...)}`` (plus ``"norm_meta"`` when
    given), passed through ``transforms`` in order, and the channels are concatenated back in
    ``channel_names`` order. ``norm_meta`` is dropped from the result.
    """
    if patch.shape[1] != len(channel_names):
        raise ValueError(
            f"Batch has {patch.shape[1]} channels but {len(channel_names)} names {channel_names}"
        )
    sample: dict[str, Any] = {name: patch[:, i : i + 1] for i, name in enumerate(channel_names)}
    if norm_meta is not None:
        sample["norm_meta"] = norm_meta
    for transform in transforms:
        sample = transform(sample)
    return cat([sample[name] for name in channel_names], dim=1)


def center_crop_yx(patch: Tensor, size: Sequence[int]) -> Tensor:
    """Center-crop the last two (Y, X) dimensions of ``patch`` to ``size``.

    Raises
    ------
    ValueError
        If ``size`` is larger than the patch.
    """
    out_y, out_x = int(size[0]), int(size[1])
    in_y, in_x = patch.shape[-2], patch.shape[-1]
    if out_y > in_y or out_x > in_x:
        raise ValueError(f"Cannot center-crop a {in_y}x{in_x} patch to {out_y}x{out_x}")
    if (out_y, out_x) == (in_y, in_x):
        return patch
    y0 = (in_y - out_y) // 2
    x0 = (in_x - out_x) // 2
    return patch[..., y0 : y0 + out_y, x0 : x0 + out_x]
