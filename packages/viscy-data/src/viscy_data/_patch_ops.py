"""Batch operations shared by the pipelines (HCS, triplet, cell-division triplet, multi-experiment).

Kept free of viscy-transforms: any dictionary transform (a callable on a dict) plugs in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, overload

from torch import Tensor, cat

__all__ = ["ChannelWiseBatchTransform", "apply_channel_wise", "center_crop_yx"]


@overload
def apply_channel_wise(
    transforms: Sequence[Callable[[dict], dict]],
    channel_names: Sequence[str],
    patch: Tensor,
    norm_meta: dict | None = None,
) -> Tensor: ...


@overload
def apply_channel_wise(
    transforms: Sequence[Callable[[dict], dict]],
    channel_names: Sequence[Sequence[str]],
    patch: Sequence[Tensor],
    norm_meta: dict | None = None,
) -> list[Tensor]: ...


def apply_channel_wise(
    transforms: Sequence[Callable[[dict], dict]],
    channel_names: Sequence[str] | Sequence[Sequence[str]],
    patch: Tensor | Sequence[Tensor],
    norm_meta: dict | None = None,
) -> Tensor | list[Tensor]:
    """Run dictionary transforms on (B, C, ...) batches with one key per channel.

    The batch is split into ``{channel_name: (B, 1, ...)}`` (plus ``"norm_meta"`` when
    given), passed through ``transforms`` in order, and the channels are concatenated back in
    ``channel_names`` order. ``norm_meta`` is dropped from the result.

    Parameters
    ----------
    transforms : sequence of callables on dicts
        MONAI-style dictionary transforms whose keys are channel names.
    channel_names : sequence of str, or a sequence of them
        Names of the channels of ``patch`` in order; one sequence per tensor when ``patch``
        is a sequence of tensors (e.g. HCS source and target, whose Z sizes may differ).
    patch : Tensor or sequence of Tensor
        ``(B, C, ...)`` batch(es); all tensors go through the same transform call, so random
        transforms draw the same parameters for all of them.
    norm_meta : dict, optional
        Normalization statistics handed to the transforms as ``sample["norm_meta"]``.

    Returns
    -------
    Tensor or list of Tensor
        The transformed batch, or one per input tensor.

    Raises
    ------
    ValueError
        If a tensor's channel count differs from its number of names.
    """
    single = isinstance(patch, Tensor)
    patches = [patch] if single else list(patch)
    groups = [list(channel_names)] if single else [list(names) for names in channel_names]
    if len(groups) != len(patches):
        raise ValueError(f"Got {len(patches)} tensors but {len(groups)} channel name lists")
    sample: dict[str, Any] = {}
    for tensor, names in zip(patches, groups, strict=True):
        if tensor.shape[1] != len(names):
            raise ValueError(f"Batch has {tensor.shape[1]} channels but {len(names)} names {names}")
        sample.update({name: tensor[:, i : i + 1] for i, name in enumerate(names)})
    if norm_meta is not None:
        sample["norm_meta"] = norm_meta
    for transform in transforms:
        sample = transform(sample)
    out = [cat([sample[name] for name in names], dim=1) for names in groups]
    return out[0] if single else out


def center_crop_yx(patch: Tensor, size: Sequence[int]) -> Tensor:
    """Center-crop the last two (Y, X) dimensions of ``patch`` to ``size``.

    Parameters
    ----------
    patch : Tensor
        Any tensor whose last two dimensions are Y and X.
    size : sequence of int
        Output ``(Y, X)``.

    Returns
    -------
    Tensor
        A view of ``patch`` (``patch`` itself when it already has that size).

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


class ChannelWiseBatchTransform:
    """The device transform of the single-cell pipelines, built once per stage.

    For each of ``keys`` present in the batch: pop ``<key>_norm_meta``, convert the patch to
    float32, run ``transforms`` channel by channel (:func:`apply_channel_wise`), center-crop
    Y/X to ``final_yx_patch_size`` and, when given, apply ``after`` (e.g. channel dropout).

    Parameters
    ----------
    transforms : sequence of callables on dicts
        Normalizations (and augmentations) keyed by channel name.
    channel_names : sequence of str
        Channels of every patch, in order.
    keys : sequence of str
        Batch keys holding (B, C, ...) patches (e.g. ``anchor``, ``positive``, ``negative``).
    final_yx_patch_size : sequence of int
        Y/X size after the center crop.
    after : callable on a Tensor, optional
        Applied to each cropped patch last.
    """

    def __init__(
        self,
        transforms: Sequence[Callable[[dict], dict]],
        channel_names: Sequence[str],
        keys: Sequence[str],
        final_yx_patch_size: Sequence[int],
        after: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.transforms = list(transforms)
        self.channel_names = list(channel_names)
        self.keys = tuple(keys)
        self.final_yx_patch_size = (int(final_yx_patch_size[0]), int(final_yx_patch_size[1]))
        self.after = after

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        for key in self.keys:
            if key not in batch:
                continue
            norm_meta = batch.pop(f"{key}_norm_meta", None)
            patch = batch[key]
            if not patch.is_floating_point():
                patch = patch.float()
            if self.transforms:
                patch = apply_channel_wise(self.transforms, self.channel_names, patch, norm_meta)
            patch = center_crop_yx(patch, self.final_yx_patch_size)
            batch[key] = patch if self.after is None else self.after(patch)
        return batch

    def __repr__(self) -> str:
        names = [type(t).__name__ for t in self.transforms]
        return (
            f"ChannelWiseBatchTransform(transforms={names}, keys={self.keys}, "
            f"final_yx_patch_size={self.final_yx_patch_size})"
        )
