"""Helpers shared by the pipelines: normalization metadata, channel lookups, collation."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import default_collate, get_worker_info

from viscy_data._typing import HCSStackIndex, NormMeta, OneOrSeq, Sample

if TYPE_CHECKING:
    from iohub.ngff import Position

__all__ = [
    "ComposeDict",
    "BatchedCenterSpatialCropd",
    "collate_samples",
    "ensure_channel_list",
    "find_normalize_transforms",
    "channel_indices",
    "read_norm_meta",
    "resolve_norm_meta",
]

# ------------------------------------------------------------------ channels


class UnknownStageError(NotImplementedError, ValueError):
    """A Lightning stage a DataModule does not know (0.1.0 raised NotImplementedError; it is
    also a ValueError, so code catching either works)."""


def check_stage(stage: str | None, owner: str, known: Sequence[str | None]) -> None:
    """Raise :class:`UnknownStageError` naming ``owner`` if ``stage`` is not in ``known``."""
    if stage not in known:
        raise UnknownStageError(
            f"{owner}: unknown stage {stage!r}; expected one of {[k for k in known if k]}"
        )


def ensure_channel_list(channels: OneOrSeq[str] | None) -> list[str]:
    """Return channel name(s) as a list (``None`` -> empty list).

    Raises
    ------
    TypeError
        If ``channels`` is neither a string nor a sequence of strings.
    """
    if channels is None:
        return []
    if isinstance(channels, str):
        return [channels]
    if isinstance(channels, Sequence):
        names = list(channels)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"Channel names must be strings, got {name!r} in {names}")
        return names
    raise TypeError(f"Channel must be a name or a sequence of names, got {type(channels)}")


def channel_indices(
    available: Sequence[str], requested: Iterable[str], where: str = "the store"
) -> list[int]:
    """Indices of ``requested`` channel names in ``available``.

    Raises
    ------
    ValueError
        Naming the missing channel(s), ``where`` they were looked up, and the channels
        that are available.
    """
    available = list(available)
    requested = list(requested)
    missing = [name for name in requested if name not in available]
    if missing:
        raise ValueError(
            f"Channel(s) {missing} not found in {where}; available channels: {available}"
        )
    return [available.index(name) for name in requested]


# backwards-compatible private names (used by 0.1.0-era code)
_ensure_channel_list = ensure_channel_list


def _search_int_in_str(pattern: str, file_name: str) -> str:
    """Return the first match of ``pattern`` in ``file_name`` (e.g. a zero-padded index)."""
    match = re.search(pattern, file_name)
    if match is None:
        raise ValueError(f"Cannot find pattern {pattern!r} in '{file_name}'")
    return match.group()


# ------------------------------------------------------------------ normalization metadata


def _to_float(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _to_float(v) for k, v in value.items()}
    if value is None:
        return float("nan")
    return float(value)


def read_norm_meta(fov: Position) -> NormMeta | None:
    """Read a FOV's normalization metadata (``.zattrs["normalization"]``).

    Parameters
    ----------
    fov : Position
        An iohub position.

    Returns
    -------
    NormMeta or None
        Channel name -> ``{"dataset_statistics": {...}, "fov_statistics": {...},
        "timepoint_statistics": {"0": {...}, ...}}`` with float values, or ``None`` when
        the FOV has no normalization metadata.
    """
    norm_meta = fov.zattrs.get("normalization")
    if norm_meta is None:
        return None
    return {str(channel): _to_float(stats) for channel, stats in norm_meta.items()}


def resolve_norm_meta(norm_meta: NormMeta | None, t: int) -> NormMeta | None:
    """Resolve ``timepoint_statistics`` of every channel to the statistics of timepoint ``t``.

    Channels without statistics for ``t`` keep no ``timepoint_statistics`` entry.
    The input is not modified.
    """
    if norm_meta is None:
        return None
    resolved: NormMeta = {}
    for channel, stats in norm_meta.items():
        stats = dict(stats)
        per_t = stats.pop("timepoint_statistics", None)
        if isinstance(per_t, Mapping) and str(t) in per_t:
            stats["timepoint_statistics"] = per_t[str(t)]
        resolved[channel] = stats  # type: ignore[assignment]
    return resolved


def find_normalize_transforms(transforms: Iterable[Callable] | None) -> list[Callable]:
    """Transforms (also inside ``Compose``) that normalize with stored statistics.

    A normalization transform is recognized by having ``keys`` and a ``level`` attribute
    (e.g. ``viscy_transforms.NormalizeSampled``); viscy-data does not import it.
    """
    found: list[Callable] = []
    for transform in transforms or ():
        inner = getattr(transform, "transforms", None)
        if isinstance(inner, Sequence) and not hasattr(transform, "level"):
            found.extend(find_normalize_transforms(inner))
        elif hasattr(transform, "keys") and hasattr(transform, "level"):
            found.append(transform)
    return found


def normalization_channels(transforms: Iterable[Callable] | None) -> list[str]:
    """Channel keys that normalization transforms in ``transforms`` need statistics for."""
    names: list[str] = []
    for transform in find_normalize_transforms(transforms):
        keys = transform.keys  # type: ignore[attr-defined]
        for key in ensure_channel_list(keys if isinstance(keys, str) else list(keys)):
            if key not in names:
                names.append(key)
    return names


class ComposeDict:
    """Apply dictionary transforms in order (picklable; lists of samples pass through)."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, data: Any) -> Any:
        for transform in self.transforms:
            if isinstance(data, list):
                data = [transform(d) for d in data]
            else:
                data = transform(data)
        return data


# ------------------------------------------------------------------ collation


def _in_worker() -> bool:
    return get_worker_info() is not None


def batch_buffer(shape: Sequence[int], dtype: torch.dtype) -> Tensor:
    """An empty tensor for a batch: in shared memory inside a DataLoader worker, so that
    sending it to the main process copies nothing."""
    if not _in_worker():
        return torch.empty(tuple(shape), dtype=dtype)
    # allocate in shared memory directly (share_memory_() would copy an existing buffer)
    elem = torch.empty(0, dtype=dtype)
    storage = elem._typed_storage()._new_shared(math.prod(shape), device="cpu")
    return elem.new(storage).resize_(tuple(shape))


def _batch_view(values: Sequence[Tensor]) -> Tensor | None:
    """The (B, ...) tensor that ``values`` are consecutive equal-stride views of, if any."""
    first = values[0]
    if len(values) < 2:
        return first.unsqueeze(0) if _in_worker() and first.is_shared() else None
    ptr = first.untyped_storage().data_ptr()
    step = values[1].storage_offset() - first.storage_offset()
    if step <= 0:
        return None
    for i, value in enumerate(values):
        if (
            value.untyped_storage().data_ptr() != ptr
            or value.shape != first.shape
            or value.stride() != first.stride()
            or value.dtype != first.dtype
            or value.storage_offset() != first.storage_offset() + i * step
        ):
            return None
    return torch.as_strided(
        first, (len(values), *first.shape), (step, *first.stride()), first.storage_offset()
    )


def _stack(values: Sequence[Tensor]) -> Tensor:
    """``torch.stack`` without copying when the values are views of one batch tensor; in a
    DataLoader worker, otherwise straight into shared memory (no copy when the batch is
    sent to the main process)."""
    view = _batch_view(values)
    if view is not None:
        return view
    if not _in_worker():
        return torch.stack(list(values))
    first = values[0]
    numel = sum(v.numel() for v in values)
    storage = first._typed_storage()._new_shared(numel, device=first.device)
    out = first.new(storage).resize_(len(values), *first.shape)
    return torch.stack(list(values), out=out)


def _leaves(tree: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(tree, Mapping):
        return [leaf for k, v in tree.items() for leaf in _leaves(v, (*prefix, k))]
    return [prefix]


def _get(tree: Any, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _collate_norm_meta(values: Sequence[Any]) -> Any:
    """Nested statistics -> tensors of shape (B,), all views of one float32 tensor (one
    shared-memory transfer per batch instead of one per statistic)."""
    if any(v is None for v in values):
        return None
    paths = _leaves(values[0])
    try:
        matrix = np.array([[float(_get(v, path)) for v in values] for path in paths], np.float32)
    except (KeyError, TypeError, ValueError):
        return default_collate(values)
    if any(_leaves(v) != paths for v in values[1:]):
        return default_collate(values)
    table = torch.from_numpy(matrix)
    out: dict = {}
    for row, path in enumerate(paths):
        _set(out, path, table[row])
    return out


def _collate_index(indices: Sequence[Any]) -> Any:
    if all(isinstance(i, HCSStackIndex) for i in indices):
        time_z = torch.tensor([[int(i.time) for i in indices], [int(i.z) for i in indices]])
        return HCSStackIndex(image=[i.image for i in indices], time=time_z[0], z=time_z[1])
    if all(isinstance(i, Mapping) for i in indices):
        return {key: [i[key] for i in indices] for key in indices[0]}
    return list(indices)


def collate_samples(batch: Sequence[Sample | Sequence[Sample]]) -> Sample:
    """Collate samples (or lists of samples, e.g. several crops per item) into a batch.

    Tensors are stacked; ``index`` keeps one entry per sample in order (an
    :class:`HCSStackIndex` of a list of FOV names and tensors of t and z); ``norm_meta``
    statistics become tensors of shape (B,); anything else becomes a list.
    """
    samples: list[Mapping[str, Any]] = []
    for item in batch:
        if isinstance(item, Mapping):
            samples.append(item)
        else:
            samples.extend(item)
    if not samples:
        raise ValueError("Cannot collate an empty batch")
    collated: dict[str, Any] = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        if key == "index":
            collated[key] = _collate_index(values)
        elif all(isinstance(v, Tensor) for v in values):
            collated[key] = _stack(values)
        elif key.endswith("norm_meta"):
            collated[key] = _collate_norm_meta(values)
        elif all(isinstance(v, Sequence) and not isinstance(v, str) for v in values) and all(
            all(isinstance(x, Tensor) for x in v) for v in values
        ):
            # a sequence of tensors per sample (e.g. one tensor per channel)
            collated[key] = [_stack(parts) for parts in zip(*values, strict=True)]
        else:
            collated[key] = values
    return collated  # type: ignore[return-value]


# backwards-compatible private name
_collate_samples = collate_samples


# ------------------------------------------------------------------ batched center crop


class BatchedCenterSpatialCropd:
    """Center-crop the trailing spatial axes of batched tensors under ``keys``.

    A small stand-in for viscy-transforms' batched crop, so viscy-data does not import
    viscy-transforms. Works on (B, C, *spatial) tensors; ``roi_size`` covers the trailing
    spatial axes (a size of -1 or larger than the axis keeps the axis whole).

    Parameters
    ----------
    keys : str or Sequence[str]
        Dictionary keys to crop.
    roi_size : Sequence[int]
        Output size of the trailing spatial axes.
    allow_missing_keys : bool
        Skip keys absent from the input instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: OneOrSeq[str],
        roi_size: Sequence[int],
        allow_missing_keys: bool = False,
    ) -> None:
        self.keys = ensure_channel_list(keys)
        self.roi_size = tuple(int(s) for s in roi_size)
        self.allow_missing_keys = allow_missing_keys

    def _crop(self, tensor: Tensor) -> Tensor:
        n = len(self.roi_size)
        slices: list[slice] = [slice(None)] * (tensor.ndim - n)
        for size, roi in zip(tensor.shape[-n:], self.roi_size, strict=True):
            if roi < 0 or roi >= size:
                slices.append(slice(None))
            else:
                start = (size - roi) // 2
                slices.append(slice(start, start + roi))
        return tensor[tuple(slices)]

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(data)
        for key in self.keys:
            if key not in out:
                if self.allow_missing_keys:
                    continue
                raise KeyError(f"Key '{key}' not in data (keys: {list(out)})")
            out[key] = self._crop(out[key])
        return out
