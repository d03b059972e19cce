"""Worker-side pieces of the cached pipelines: a shared volume cache and the cached datasets.

Everything here is what a DataLoader worker unpickles, so this module imports only numpy and
torch (no lightning, no monai, no iohub at import time): a worker started with ``spawn``
re-imports it quickly. The DataModules live in :mod:`viscy_data.gpu_aug` and
:mod:`viscy_data.mmap_cache`, which re-export the datasets.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Hashable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from viscy_data._utils import resolve_norm_meta

if TYPE_CHECKING:
    from iohub.ngff import Position

    from viscy_data._reader import PatchReader

__all__ = [
    "CachedOmeZarrDataset",
    "FilledFlags",
    "MmappedDataset",
    "VolumeCache",
    "make_caches",
]

_ALIGN = 64  # byte alignment of each cached volume inside the cache file


def _remove_if_owner(path: str, owner_pid: int) -> None:
    # Forked workers inherit the finalizer; only the creating process may delete the file.
    if os.getpid() == owner_pid:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def default_cache_dir() -> Path:
    """Directory for cache files: ``/dev/shm`` (RAM) when present, else the temp directory."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir())


def free_bytes(directory: str | Path) -> int:
    """Free space in bytes of the file system holding ``directory``."""
    return shutil.disk_usage(directory).free


@dataclass(frozen=True, slots=True)
class _Slot:
    flag: int  # index of the "filled" byte
    offset: int  # byte offset of the data in the file
    shape: tuple[int, ...]
    dtype: str


class VolumeCache:
    """A byte-bounded cache of arrays shared by every process through one memory-mapped file.

    The layout (which keys are cached, their shapes and dtypes) is fixed when the cache is made,
    in the main process: keys are given slots in order until ``max_bytes`` is used up; later
    keys are simply never cached. Each slot has a "filled" byte that is set only after the
    slot's data has been written, so a reader never sees a half-written volume. The object
    pickles as a path plus the layout and maps the file lazily in each process, so it works
    with DataLoader workers started by ``fork`` or ``spawn``. Each dataset owns its own cache,
    so keys of two datasets (e.g. train and validation) can never collide.

    Parameters
    ----------
    layout : Iterable[tuple[Hashable, tuple[int, ...], np.dtype | str]]
        ``(key, shape, dtype)`` of each array that may be cached, in priority order.
    max_bytes : int
        Upper bound of the cached data in bytes; 0 disables caching.
    directory : str | Path | None
        Where to create the cache file; None uses :func:`default_cache_dir`.
    name : str
        Label used in the file name (e.g. ``"train"``), for humans looking at the directory.
    """

    def __init__(
        self,
        layout: Iterable[tuple[Hashable, tuple[int, ...], np.dtype | str]],
        max_bytes: int,
        directory: str | Path | None = None,
        name: str = "volumes",
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        layout = list(layout)
        self.name = name
        self.max_bytes = int(max_bytes)
        self._slots: dict[Hashable, _Slot] = {}
        data_bytes = 0
        for key, shape, dtype in layout:
            nbytes = math.prod(shape) * np.dtype(dtype).itemsize
            padded = -(-nbytes // _ALIGN) * _ALIGN
            if data_bytes + padded > self.max_bytes:
                break
            self._slots[key] = _Slot(
                len(self._slots), data_bytes, tuple(shape), np.dtype(dtype).str
            )
            data_bytes += padded
        self.num_keys = len(layout)
        self.nbytes = data_bytes
        header = -(-len(self._slots) // _ALIGN) * _ALIGN
        self._header = header
        self.path: str | None = None
        self._map: np.memmap | None = None
        self._map_pid: int | None = None
        if not self._slots:
            return
        directory = Path(directory) if directory is not None else default_cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f"viscy-cache-{name}-", suffix=".bin", dir=directory)
        try:
            os.ftruncate(fd, header + data_bytes)  # sparse: zero flags, no pages used yet
        finally:
            os.close(fd)
        self.path = path
        self._finalizer = weakref.finalize(self, _remove_if_owner, path, os.getpid())

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_map", "_finalizer")}
        state["_map"] = None
        state["_map_pid"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _mapped(self) -> np.memmap:
        if self._map is None or self._map_pid != os.getpid():
            if self.path is None or not os.path.exists(self.path):
                raise RuntimeError(
                    f"cache file {self.path} of the {self.name!r} cache is gone (closed?)"
                )
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r+")
            self._map_pid = os.getpid()
        return self._map

    def __contains__(self, key: Hashable) -> bool:
        slot = self._slots.get(key)
        return slot is not None and bool(self._mapped()[slot.flag])

    def __len__(self) -> int:
        """Number of filled slots."""
        if not self._slots:
            return 0
        return int(np.count_nonzero(self._mapped()[: len(self._slots)]))

    @property
    def capacity(self) -> int:
        """Number of keys that have a slot."""
        return len(self._slots)

    def _view(self, slot: _Slot) -> np.ndarray:
        dtype = np.dtype(slot.dtype)
        start = self._header + slot.offset
        stop = start + math.prod(slot.shape) * dtype.itemsize
        return self._mapped()[start:stop].view(dtype).reshape(slot.shape)

    def get(self, key: Hashable) -> np.ndarray | None:
        """A copy of the cached array, or None if the key has no slot or is not filled yet."""
        slot = self._slots.get(key)
        if slot is None or not self._mapped()[slot.flag]:
            return None
        return np.array(self._view(slot))

    def put(self, key: Hashable, array: np.ndarray) -> bool:
        """Store ``array`` under ``key`` if the key has a slot; returns whether it was stored."""
        slot = self._slots.get(key)
        if slot is None:
            return False
        if tuple(array.shape) != slot.shape or np.dtype(array.dtype).str != slot.dtype:
            raise ValueError(
                f"cache {self.name!r}: key {key!r} expects shape {slot.shape} dtype "
                f"{np.dtype(slot.dtype)}, got {tuple(array.shape)} {array.dtype}"
            )
        mapped = self._mapped()
        if mapped[slot.flag]:
            return True
        self._view(slot)[...] = array
        mapped[slot.flag] = 1  # mark filled only once the data is in place
        return True

    def close(self) -> None:
        """Unmap and (in the creating process) delete the cache file."""
        self._map = None
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()

    def __repr__(self) -> str:
        return (
            f"VolumeCache(name={self.name!r}, slots={self.capacity}/{self.num_keys}, "
            f"nbytes={self.nbytes}, path={self.path!r})"
        )


def make_caches(
    layouts: dict[str, list[tuple[Hashable, tuple[int, ...], np.dtype | str]]],
    cache_bytes: int | None = None,
    directory: str | Path | None = None,
    source: str = "the data set",
) -> dict[str, VolumeCache]:
    """One :class:`VolumeCache` per named layout (e.g. ``"train"``, ``"val"``).

    The budget ``cache_bytes`` is split between the layouts in proportion to their sizes;
    None caches everything, but at most a quarter of the free space in ``directory``.
    """
    import logging

    sizes = {
        name: sum(math.prod(shape) * np.dtype(dtype).itemsize for _, shape, dtype in layout)
        for name, layout in layouts.items()
    }
    total = sum(sizes.values())
    directory = Path(directory) if directory is not None else default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    budget = min(total, free_bytes(directory) // 4) if cache_bytes is None else int(cache_bytes)
    if budget < total:
        logging.getLogger(__name__).warning(
            "volume caches hold %d of %d bytes; other volumes are read from %s each time",
            budget,
            total,
            source,
        )
    return {
        name: VolumeCache(
            layout, budget * sizes[name] // max(total, 1), directory=directory, name=name
        )
        for name, layout in layouts.items()
    }


class _MappingCache:
    """Adapts a user-supplied mapping (a dict, a ``Manager().dict()`` proxy) to get/put."""

    def __init__(self, mapping: MutableMapping) -> None:
        self.mapping = mapping

    def get(self, key: Hashable) -> np.ndarray | None:
        value = self.mapping.get(key)
        return None if value is None else np.asarray(value)

    def put(self, key: Hashable, array: np.ndarray) -> bool:
        self.mapping[key] = array
        return True

    def close(self) -> None:
        pass


def _as_cache(cache_map: VolumeCache | MutableMapping | None) -> VolumeCache | _MappingCache | None:
    if cache_map is None or isinstance(cache_map, VolumeCache):
        return cache_map
    if isinstance(cache_map, _MappingCache):
        return cache_map
    if hasattr(cache_map, "get") and hasattr(cache_map, "__setitem__"):
        return _MappingCache(cache_map)
    raise TypeError(
        f"cache_map must be a VolumeCache, a mutable mapping or None, got {type(cache_map)}"
    )


def position_address(position: Position) -> tuple[str, str]:
    """``(store path, FOV name)`` of an iohub position, for the patch reader."""
    group = position.zgroup
    store = group.store
    root = getattr(store, "root", None) or getattr(store, "path", None)
    if root is None:
        raise ValueError(f"FOV {group.name!r} is not in a local store; cannot read it by path")
    return str(root), group.name.strip("/")


def _process_copy(reader: PatchReader) -> PatchReader:
    """A copy of ``reader`` without open handles, safe to use in this process."""
    # pickling protocol: handles are dropped; a forked worker settles its backend at its
    # first read (zarr-python if the parent had started tensorstore, see viscy_data._reader)
    return copy.copy(reader)


class _VolumeIndex:
    """Maps a flat index to ``(position number, t)`` over FOVs with different numbers of T."""

    def __init__(self, num_timepoints: Sequence[int]) -> None:
        self.num_timepoints = list(num_timepoints)
        self.starts = np.concatenate([[0], np.cumsum(self.num_timepoints)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, index: int) -> tuple[int, int]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} volumes")
        pos = int(np.searchsorted(self.starts, index, side="right") - 1)
        return pos, int(index - self.starts[pos])


class _PositionVolumes:
    """Shared setup of the cached datasets: reader, channel indices, shapes, norm metadata."""

    def _init_positions(
        self,
        positions: Sequence[Position],
        channel_names: Sequence[str],
        array_key: str,
        load_normalization_metadata: bool,
    ) -> None:
        from viscy_data._reader import PatchReader

        if len(positions) == 0:
            raise ValueError(f"{type(self).__name__} needs at least one FOV, got none")
        self.channel_names = list(channel_names)
        self.array_key = array_key
        self._readers: dict[str, PatchReader] = {}
        self._fovs: list[tuple[str, str]] = []  # (store path, FOV name)
        self._channel_indices: list[tuple[int, ...]] = []
        self._volume_shapes: list[tuple[int, int, int, int]] = []  # (C, Z, Y, X)
        self._dtypes: list[np.dtype] = []
        self._norm_meta: list[dict | None] = []
        num_timepoints = []
        for position in positions:
            store_path, fov = position_address(position)
            missing = [c for c in self.channel_names if c not in position.channel_names]
            if missing:
                raise ValueError(
                    f"FOV {fov!r} in {store_path} has no channel(s) {missing}; "
                    f"it has {list(position.channel_names)}"
                )
            if array_key not in position.array_keys():
                raise ValueError(
                    f"FOV {fov!r} in {store_path} has no image {array_key!r}; "
                    f"it has {list(position.array_keys())}"
                )
            if store_path not in self._readers:
                # whole volumes are kept by the dataset cache: no chunk cache needed
                self._readers[store_path] = PatchReader(
                    store_path, array_key=array_key, cache_bytes=0
                )
            reader = self._readers[store_path]
            t, _, z, y, x = reader.shape(fov)
            self._fovs.append((store_path, fov))
            self._channel_indices.append(
                tuple(position.get_channel_index(c) for c in self.channel_names)
            )
            self._volume_shapes.append((len(self.channel_names), z, y, x))
            self._dtypes.append(np.dtype(reader.dtype(fov)))
            num_timepoints.append(t)
            if load_normalization_metadata:
                from viscy_data._utils import read_norm_meta

                self._norm_meta.append(read_norm_meta(position))
            else:
                self._norm_meta.append(None)
        self._index = _VolumeIndex(num_timepoints)

    @property
    def fov_names(self) -> list[str]:
        return [fov for _, fov in self._fovs]

    def volume_key(self, index: int) -> tuple[str, int]:
        """``(FOV name, t)`` of a flat index: the cache key of that volume."""
        pos, t = self._index.locate(index)
        return self._fovs[pos][1], t

    def cache_layout(self) -> list[tuple[Hashable, tuple[int, ...], np.dtype]]:
        """``(key, shape, dtype)`` of every volume, in index order, for a :class:`VolumeCache`."""
        layout = []
        for pos, n_t in enumerate(self._index.num_timepoints):
            for t in range(n_t):
                layout.append(
                    ((self._fovs[pos][1], t), self._volume_shapes[pos], self._dtypes[pos])
                )
        return layout

    def _reader(self, store_path: str) -> PatchReader:
        # A forked worker inherits the parent's readers with their open handles and thread
        # pools, which are not fork-safe: give each process its own handle-free copies.
        if getattr(self, "_readers_pid", None) != os.getpid():
            self._readers = {path: _process_copy(reader) for path, reader in self._readers.items()}
            self._readers_pid = os.getpid()
        return self._readers[store_path]

    def _read_volume(self, pos: int, t: int) -> np.ndarray:
        from viscy_data._reader import PatchBox

        store_path, fov = self._fovs[pos]
        _, z, y, x = self._volume_shapes[pos]
        box = PatchBox(fov, t, self._channel_indices[pos], (0, z), (0, y), (0, x))
        return self._reader(store_path).read_patch(box)

    def _sample(self, volume: np.ndarray | torch.Tensor, pos: int, t: int) -> dict:
        volume = torch.as_tensor(np.asarray(volume, dtype=np.float32))
        sample: dict[str, Any] = {
            name: volume[i : i + 1] for i, name in enumerate(self.channel_names)
        }
        norm_meta = resolve_norm_meta(self._norm_meta[pos], t)
        if norm_meta is not None:
            sample["norm_meta"] = norm_meta
        return sample

    def __len__(self) -> int:
        return len(self._index)


class CachedOmeZarrDataset(_PositionVolumes, Dataset):
    """Whole (C, Z, Y, X) volumes of OME-Zarr FOVs, one per (FOV, t), kept in a volume cache.

    Each item is a dict with one ``(1, Z, Y, X)`` float32 tensor per channel name and, when
    available, ``"norm_meta"`` resolved to the item's timepoint; ``transform`` (CPU, in the
    worker) is applied to it and may return a list of dicts (several crops).

    Parameters
    ----------
    positions : list[Position]
        FOVs to serve; they may differ in T and in Z/Y/X size.
    channel_names : list[str]
        Channels to read, in this order.
    cache_map : VolumeCache | MutableMapping | None
        Where volumes are kept between epochs. A :class:`VolumeCache` is shared by all workers
        under ``fork`` and ``spawn``; a mapping (``dict``, ``Manager().dict()``) is used as is
        with keys ``(FOV name, t)``; None disables caching. Use one cache per dataset.
    transform : Callable | None
        CPU transform applied to each sample.
    array_key : str
        Image array in each FOV.
    load_normalization_metadata : bool
        Attach the FOV's normalization metadata as ``"norm_meta"``.
    skip_cache : bool
        Always read from the store (the cache is neither read nor filled).
    """

    def __init__(
        self,
        positions: list[Position],
        channel_names: list[str],
        cache_map: VolumeCache | MutableMapping | None,
        transform: Callable | None = None,
        array_key: str = "0",
        load_normalization_metadata: bool = True,
        skip_cache: bool = False,
    ) -> None:
        super().__init__()
        self._init_positions(positions, channel_names, array_key, load_normalization_metadata)
        self.cache = None if skip_cache else _as_cache(cache_map)
        self.transform = transform

    def __getitem__(self, index: int) -> dict | list[dict]:
        pos, t = self._index.locate(index)
        key = (self._fovs[pos][1], t)
        volume = self.cache.get(key) if self.cache is not None else None
        if volume is None:
            volume = self._read_volume(pos, t)
            if self.cache is not None:
                self.cache.put(key, volume)
        sample = self._sample(volume, pos, t)
        return self.transform(sample) if self.transform is not None else sample


class FilledFlags:
    """Per-volume "filled" markers backed by a tensor in shared or mapped memory.

    A buffer slot is marked filled only after its data is written. Wraps either a 1-D uint8
    tensor (shared memory or a tensordict ``MemoryMappedTensor``) or, for user code from
    0.1.0 that passes a ``Manager().dict()``, a mutable mapping.
    """

    def __init__(self, flags: torch.Tensor | MutableMapping) -> None:
        self.flags = flags

    def __contains__(self, index: int) -> bool:
        if isinstance(self.flags, torch.Tensor):
            return bool(self.flags[index])
        return bool(self.flags.get(index, False))

    def mark(self, index: int) -> None:
        if isinstance(self.flags, torch.Tensor):
            self.flags[index] = 1
        else:
            self.flags[index] = True

    def count(self) -> int:
        if isinstance(self.flags, torch.Tensor):
            return int(torch.count_nonzero(self.flags))
        return sum(bool(v) for v in self.flags.values())


class MmappedDataset(_PositionVolumes, Dataset):
    """Volumes of OME-Zarr FOVs preprocessed once into one memory-mapped buffer.

    The buffer holds every (FOV, t) volume as float32 ``(C, Z, Y, X)`` after
    ``preprocess_transforms``; a volume is read and preprocessed the first time it is asked
    for, written to its row, and only then marked filled in ``cache_map``. All FOVs must share
    C, Z, Y and X (T may differ).

    Parameters
    ----------
    positions : list[Position]
        FOVs to serve.
    channel_names : list[str]
        Channels to read, in this order.
    cache_map : torch.Tensor | FilledFlags | MutableMapping | None
        Filled markers, one per buffer row: a 1-D uint8 tensor in shared or mapped memory
        (works under ``fork`` and ``spawn``) or a mapping such as a ``Manager().dict()``.
        None (with ``buffer=None``): attach both later with :meth:`attach`.
    buffer : MemoryMappedTensor | torch.Tensor | None
        ``(N, C, Z, Y, X)`` float32 rows (:attr:`buffer_shape`), N = number of (FOV, t)
        volumes.
    preprocess_transforms : Callable | None
        Applied once to a sample before it is stored (e.g. normalization).
    cpu_transform : Callable | None
        Applied to every sample read from the buffer, in the worker.
    array_key : str
        Image array in each FOV.
    load_normalization_metadata : bool
        Attach normalization metadata for ``preprocess_transforms``.
    """

    def __init__(
        self,
        positions: list[Position],
        channel_names: list[str],
        cache_map: torch.Tensor | FilledFlags | MutableMapping | None,
        buffer: torch.Tensor | None,
        preprocess_transforms: Callable | None = None,
        cpu_transform: Callable | None = None,
        array_key: str = "0",
        load_normalization_metadata: bool = True,
    ) -> None:
        super().__init__()
        self._init_positions(positions, channel_names, array_key, load_normalization_metadata)
        first = self._volume_shapes[0]
        for fov, shape in zip(self.fov_names, self._volume_shapes, strict=True):
            if shape != first:
                raise ValueError(
                    f"MmappedDataset needs FOVs of one (C, Z, Y, X) shape: FOV "
                    f"{self.fov_names[0]!r} is {first} but FOV {fov!r} is {shape}"
                )
        self.preprocess_transforms = preprocess_transforms
        self.cpu_transform = cpu_transform
        self.buffer: torch.Tensor | None = None
        self.filled: FilledFlags | None = None
        if buffer is not None or cache_map is not None:
            self.attach(buffer, cache_map)

    @property
    def buffer_shape(self) -> tuple[int, ...]:
        """``(N, C, Z, Y, X)``: the shape ``buffer`` must have."""
        return (len(self), *self._volume_shapes[0])

    def attach(
        self, buffer: torch.Tensor, cache_map: torch.Tensor | FilledFlags | MutableMapping
    ) -> None:
        """Give the dataset its buffer and filled markers (e.g. once sized by ``buffer_shape``)."""
        if buffer is None or cache_map is None:
            raise ValueError("MmappedDataset needs both a buffer and cache_map (filled markers)")
        if tuple(buffer.shape) != self.buffer_shape:
            raise ValueError(
                f"buffer shape {tuple(buffer.shape)} != expected {self.buffer_shape} "
                f"for FOVs {self.fov_names}"
            )
        self.buffer = buffer
        self.filled = cache_map if isinstance(cache_map, FilledFlags) else FilledFlags(cache_map)

    def _fill(self, index: int, pos: int, t: int) -> torch.Tensor:
        sample = self._sample(self._read_volume(pos, t), pos, t)
        if self.preprocess_transforms is not None:
            sample = self.preprocess_transforms(sample)
        volume = torch.cat([torch.as_tensor(sample[c]) for c in self.channel_names], dim=0)
        self.buffer[index] = volume.to(self.buffer.dtype)
        self.filled.mark(index)  # only after the row is written
        return volume

    def __getitem__(self, index: int) -> dict | list[dict]:
        if self.buffer is None:
            raise RuntimeError("MmappedDataset has no buffer: pass one or call attach() first")
        if index < 0:
            index += len(self)
        pos, t = self._index.locate(index)
        if index in self.filled:
            volume = self.buffer[index].as_subclass(torch.Tensor).clone()
        else:
            volume = self._fill(index, pos, t)
        sample: dict[str, Any] = {
            name: volume[i : i + 1] for i, name in enumerate(self.channel_names)
        }
        return self.cpu_transform(sample) if self.cpu_transform is not None else sample
