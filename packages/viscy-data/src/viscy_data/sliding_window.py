"""Sliding Z-window datasets over the FOVs of an HCS plate (image translation)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from viscy_data._patch_ops import center_crop_yx
from viscy_data._reader import PatchBox, PatchReader
from viscy_data._typing import ChannelMap, HCSStackIndex, NormMeta, Sample
from viscy_data._utils import (
    _search_int_in_str,
    batch_buffer,
    channel_indices,
    ensure_channel_list,
    read_norm_meta,
    resolve_norm_meta,
)

if TYPE_CHECKING:
    from iohub.ngff import Position

__all__ = ["MaskTestDataset", "SlidingWindowDataset"]

DictTransform = Callable[[dict[str, Tensor | dict]], dict[str, Tensor]]


def _position_store_and_name(position: Position) -> tuple[Path, str]:
    """Store root and FOV name of an iohub position (name ``""`` for a position store)."""
    root = Path(position.zgroup.store.root)
    return root, position.zgroup.path.strip("/")


class SlidingWindowDataset(Dataset):
    """Samples of ``z_window_size`` consecutive Z slices at every (FOV, t, z) of a plate.

    Each item reads a box through :class:`~viscy_data._reader.PatchReader`; with
    ``__getitems__`` a whole batch is read in one call. The sample dict given to
    ``transform`` maps each channel name to a ``(1, Z, Y, X)`` float tensor and carries
    ``norm_meta`` (resolved to the sample's timepoint); afterwards channels are stacked
    into ``source`` (C, Z, Y, X) and ``target`` (C, Z or 1, Y, X).

    Parameters
    ----------
    positions : list of iohub Position
        FOVs to sample (all from one store).
    channels : ChannelMap
        ``{"source": [...], "target": [...]}`` channel names (target optional).
    z_window_size : int
        Number of Z slices per sample.
    array_key : str
        Image array in each position.
    transform : callable, optional
        Dictionary transform applied to each sample (may return a list of samples).
    load_normalization_metadata : bool
        Attach ``norm_meta`` read from each FOV.
    min_nonzero_fraction : float
        Resample (a random other window) while the fraction of pixels above
        ``nonzero_threshold`` in ``nonzero_channel`` is below this (0 disables).
    nonzero_threshold : float
        Raw intensity threshold for the check above.
    nonzero_channel : str, optional
        Channel of the check; the first target (or source) channel by default.
    max_nonzero_retries : int
        Give up resampling after this many tries and keep the last window.
    fg_mask_key : str, optional
        Image array holding foreground masks; adds ``fg_mask`` (target-shaped) to samples.
    preloaded_fovs : list of Tensor, optional
        One (T, C, Z, Y, X) tensor per position (e.g. memory-mapped) read instead of the
        store, holding the source then the target channels (in that order).
    yx_window : tuple of int, optional
        Read only this Y/X window (crop on read) instead of the whole FOV.
    yx_placement : {"center", "random"}
        Where the window is placed: the FOV center, or uniformly at random.
    output_yx : tuple of int, optional
        Center-crop source/target to this Y/X size after ``transform``.
    target_2d : bool
        Keep only the center Z slice of the target.
    reader : PatchReader, optional
        Reader of the positions' store (one is created when not given).
    cache_bytes : int, optional
        Chunk-cache size of a reader created here (see :class:`PatchReader`).
    float_output : bool
        Convert patches to float32 in the dataset. With ``False`` and no ``transform``,
        ``source``/``target`` keep the store's dtype (e.g. uint16: half the bytes to
        collate and transfer) and the consumer converts them (``HCSDataModule`` does so
        on the device in ``on_after_batch_transfer``).
    patches_per_stack : int
        Boxes read from each (FOV, t, z) window per item, each at its own Y/X place; with
        more than one, an item is a list of that many samples. All boxes of a batch are
        read in one call, so a stack's chunks are decoded once for all its patches.
    first_sample_only : bool
        Keep only the first sample when ``transform`` returns several for one patch (a
        ``num_samples`` crop as large as the patch repeats it; ``HCSDataModule`` reads
        ``num_samples`` boxes per window instead, see ``patches_per_stack``).
    """

    def __init__(
        self,
        positions: list[Position],
        channels: ChannelMap,
        z_window_size: int,
        array_key: str = "0",
        transform: DictTransform | None = None,
        load_normalization_metadata: bool = True,
        min_nonzero_fraction: float = 0.0,
        nonzero_threshold: float = 0.0,
        nonzero_channel: str | None = None,
        max_nonzero_retries: int = 100,
        fg_mask_key: str | None = None,
        preloaded_fovs: list[Tensor] | None = None,
        yx_window: tuple[int, int] | None = None,
        yx_placement: Literal["center", "random"] = "center",
        output_yx: tuple[int, int] | None = None,
        target_2d: bool = False,
        reader: PatchReader | None = None,
        cache_bytes: int | None = None,
        float_output: bool = True,
        patches_per_stack: int = 1,
        first_sample_only: bool = False,
    ) -> None:
        super().__init__()
        self.float_output = float_output
        if int(patches_per_stack) < 1:
            raise ValueError(f"patches_per_stack must be >= 1, got {patches_per_stack}")
        self.patches_per_stack = int(patches_per_stack)
        self.first_sample_only = bool(first_sample_only)
        if not positions:
            raise ValueError("SlidingWindowDataset needs at least one position")
        stores = {_position_store_and_name(p)[0] for p in positions}
        if len(stores) != 1:
            raise ValueError(f"All positions must come from one store, got {sorted(stores)}")
        store = stores.pop()
        self.reader = reader or PatchReader(store, array_key=array_key, cache_bytes=cache_bytes)
        self.position_names = [_position_store_and_name(p)[1] for p in positions]
        self.source_channels = ensure_channel_list(channels["source"])
        self.target_channels = ensure_channel_list(channels.get("target"))
        where = f"'{store}'"
        self.source_idx = channel_indices(self.reader.channel_names, self.source_channels, where)
        self.target_idx = channel_indices(self.reader.channel_names, self.target_channels, where)
        self.z_window_size = int(z_window_size)
        self.transform = transform
        self.target_2d = target_2d
        self.yx_window = None if yx_window is None else (int(yx_window[0]), int(yx_window[1]))
        self.yx_placement = yx_placement
        self.output_yx = None if output_yx is None else (int(output_yx[0]), int(output_yx[1]))
        self.min_nonzero_fraction = float(min_nonzero_fraction)
        self.nonzero_threshold = float(nonzero_threshold)
        self.max_nonzero_retries = int(max_nonzero_retries)
        names = self.source_channels + self.target_channels
        check = nonzero_channel or (self.target_channels or self.source_channels)[0]
        if check not in names:
            raise ValueError(
                f"nonzero_channel '{check}' is not a source or target channel ({names})"
            )
        self._nonzero_pos = names.index(check)
        self.fg_reader = (
            PatchReader(store, array_key=fg_mask_key, cache_bytes=cache_bytes)
            if fg_mask_key
            else None
        )
        self.preloaded_fovs = preloaded_fovs
        if preloaded_fovs is not None and len(preloaded_fovs) != len(positions):
            raise ValueError(
                f"preloaded_fovs has {len(preloaded_fovs)} tensors for {len(positions)} positions"
            )
        self.norm_meta: list[NormMeta | None] = (
            [read_norm_meta(p) for p in positions]
            if load_normalization_metadata
            else [None] * len(positions)
        )
        self._shapes = [self.reader.shape(name) for name in self.position_names]
        windows = []
        for name, (t_size, _, z_size, y_size, x_size) in zip(
            self.position_names, self._shapes, strict=True
        ):
            if z_size < self.z_window_size:
                raise ValueError(
                    f"z_window_size={self.z_window_size} is larger than Z={z_size} of FOV "
                    f"'{name}' in {where}"
                )
            if self.yx_window is not None and (
                self.yx_window[0] > y_size or self.yx_window[1] > x_size
            ):
                raise ValueError(
                    f"Patch of YX size {self.yx_window} is larger than the image "
                    f"({y_size}, {x_size}) of FOV '{name}' in {where}"
                )
            windows.append(t_size * (z_size - self.z_window_size + 1))
        self._cumulative = np.cumsum(windows)

    # ---------------------------------------------------------------- indexing

    def __len__(self) -> int:
        return int(self._cumulative[-1])

    def _locate(self, index: int) -> tuple[int, int, int]:
        """Dataset index -> (position index, t, first z)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        p = int(np.searchsorted(self._cumulative, index, side="right"))
        local = index - (int(self._cumulative[p - 1]) if p else 0)
        z_starts = self._shapes[p][2] - self.z_window_size + 1
        return p, local // z_starts, local % z_starts

    def _yx_box(self, p: int) -> tuple[tuple[int, int], tuple[int, int]]:
        _, _, _, y_size, x_size = self._shapes[p]
        if self.yx_window is None:
            return (0, y_size), (0, x_size)
        wy, wx = self.yx_window
        if self.yx_placement == "random":
            y0 = int(torch.randint(0, y_size - wy + 1, ()).item())
            x0 = int(torch.randint(0, x_size - wx + 1, ()).item())
        else:
            y0, x0 = (y_size - wy) // 2, (x_size - wx) // 2
        return (y0, y0 + wy), (x0, x0 + wx)

    def _box(self, index: int, array_channels: tuple[int, ...]) -> tuple[int, PatchBox]:
        p, t, z0 = self._locate(index)
        y, x = self._yx_box(p)
        box = PatchBox(
            self.position_names[p], t, array_channels, (z0, z0 + self.z_window_size), y, x
        )
        return p, box

    # ---------------------------------------------------------------- reads

    def _read(
        self, boxes: list[PatchBox], positions: list[int], out: np.ndarray | None = None
    ) -> np.ndarray:
        if self.preloaded_fovs is None:
            return self.reader.read_patches(boxes, out=out)
        patches = []
        for p, box in zip(positions, boxes, strict=True):
            # preloaded tensors hold the source then the target channels
            fov = self.preloaded_fovs[p]
            patches.append(np.asarray(fov[box.t, :, slice(*box.z), slice(*box.y), slice(*box.x)]))
        if out is not None:
            out[:] = np.stack(patches)
            return out
        return np.stack(patches)

    def _nonzero_ok(self, patch: np.ndarray) -> bool:
        if self.min_nonzero_fraction <= 0:
            return True
        values = patch[self._nonzero_pos]
        return float((values > self.nonzero_threshold).mean()) >= self.min_nonzero_fraction

    def _read_windows(
        self, indices: Sequence[int]
    ) -> tuple[list[int], list[PatchBox], np.ndarray, Tensor]:
        """Boxes of a batch and their patches, read into one (N, C, Z, Y, X) tensor (in
        shared memory inside a worker when the samples are passed on as views of it)."""
        channels = tuple(self.source_idx + self.target_idx)
        located = [
            self._box(int(i), channels) for i in indices for _ in range(self.patches_per_stack)
        ]
        positions = [p for p, _ in located]
        boxes = [b for _, b in located]
        if self.float_output or self.transform is not None or self.preloaded_fovs is not None:
            dtype = np.dtype(np.float32)
        else:
            dtype = self.reader.dtype(boxes[0].position)
        shape = (len(boxes), *boxes[0].size)
        torch_dtype = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
        if self.transform is None:
            buffer = batch_buffer(shape, torch_dtype)
        else:  # transforms make new tensors anyway
            buffer = torch.empty(shape, dtype=torch_dtype)
        patches = self._read(boxes, positions, out=buffer.numpy())
        if self.min_nonzero_fraction > 0:
            for _ in range(self.max_nonzero_retries):
                bad = [i for i, patch in enumerate(patches) if not self._nonzero_ok(patch)]
                if not bad:
                    break
                redo = [
                    self._box(int(torch.randint(0, len(self), ()).item()), channels) for _ in bad
                ]
                again = self._read([b for _, b in redo], [p for p, _ in redo])
                for j, i in enumerate(bad):
                    positions[i], boxes[i] = redo[j]
                    patches[i] = again[j]
        return positions, boxes, patches, buffer

    def _sample(self, p: int, box: PatchBox, data: Tensor, fg: Tensor | None) -> Any:
        """One sample from its (C, Z, Y, X) float patch (a view into the batch array)."""
        index = HCSStackIndex(box.position, box.t, box.z[0])
        norm_meta = resolve_norm_meta(self.norm_meta[p], box.t)
        if self.transform is None:
            # no per-channel dict needed: source and target are views of the patch
            n_source = len(self.source_channels)
            sample: dict[str, Any] = {"_source": data[:n_source], "_target": data[n_source:]}
            if norm_meta is not None:
                sample["norm_meta"] = norm_meta
            if fg is not None:
                sample["fg_mask"] = fg
            return self._assemble(sample, index)
        names = self.source_channels + self.target_channels
        sample = {name: data[i : i + 1] for i, name in enumerate(names)}
        if norm_meta is not None:
            sample["norm_meta"] = norm_meta
        if fg is not None:
            sample["fg_mask"] = fg
        sample = self.transform(sample)
        if isinstance(sample, Mapping):
            return self._assemble(sample, index)
        if self.first_sample_only:
            return self._assemble(sample[0], index)
        return [self._assemble(s, index) for s in sample]

    def _stack(self, sample: Mapping[str, Any], names: list[str]) -> Tensor:
        key = "_source" if names is self.source_channels else "_target"
        if key in sample:
            stacked = sample[key]
        elif len(names) == 1:
            stacked = torch.as_tensor(sample[names[0]])
        else:
            stacked = torch.cat([torch.as_tensor(sample[name]) for name in names], dim=0)
        if self.output_yx is not None:
            stacked = center_crop_yx(stacked, self.output_yx)
        return stacked

    def _assemble(self, sample: Mapping[str, Any], index: HCSStackIndex) -> Sample:
        out: dict[str, Any] = {"index": index, "source": self._stack(sample, self.source_channels)}
        if self.target_channels:
            target = self._stack(sample, self.target_channels)
            if self.target_2d:
                center = target.shape[1] // 2
                target = target[:, center : center + 1]
            out["target"] = target
        if "fg_mask" in sample:
            fg = torch.as_tensor(sample["fg_mask"])
            if self.output_yx is not None:
                fg = center_crop_yx(fg, self.output_yx)
            if self.target_2d:
                fg = fg[:, fg.shape[1] // 2 : fg.shape[1] // 2 + 1]
            out["fg_mask"] = fg
        if "norm_meta" in sample:
            out["norm_meta"] = sample["norm_meta"]
        return out  # type: ignore[return-value]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """Read the windows of a whole batch in one call, then transform each sample."""
        positions, boxes, _, data = self._read_windows(indices)  # samples are views of data
        fgs: list[Tensor | None] = [None] * len(boxes)
        if self.fg_reader is not None:
            fg_channels = tuple(self.target_idx or self.source_idx[:1])
            fg_boxes = [PatchBox(b.position, b.t, fg_channels, b.z, b.y, b.x) for b in boxes]
            fg_data = self.fg_reader.read_patches(fg_boxes).astype(np.float32, copy=False)
            fgs = list(torch.from_numpy(fg_data))
        samples = [
            self._sample(p, box, patch, fg)
            for p, box, patch, fg in zip(positions, boxes, data, fgs, strict=True)
        ]
        n = self.patches_per_stack
        if n == 1:
            return samples
        # one item per index: the samples of its n patches
        items = []
        for k in range(0, len(samples), n):
            item: list[Any] = []
            for sample in samples[k : k + n]:
                item.extend(sample if isinstance(sample, list) else [sample])
            items.append(item)
        return items

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])[0]


class MaskTestDataset(SlidingWindowDataset):
    """:class:`SlidingWindowDataset` that adds ground-truth ``labels`` for testing.

    ``ground_truth_masks`` is either an OME-Zarr store whose positions have the same names
    as the image plate (labels are channel 0 of its ``array_key`` image at the window's
    center slice), or a directory of ``*_p<NNN>_z<Z>_cp_masks.png`` files (FOV number and
    Z slice in the name, timepoint 0).

    Parameters
    ----------
    positions : list of iohub Position
        FOVs to sample (all from one store).
    channels : ChannelMap
        ``{"source": [...], "target": [...]}`` channel names (target optional).
    z_window_size : int
        Number of Z slices per sample.
    transform : callable, optional
        Dictionary transform applied to each sample.
    ground_truth_masks : str, optional
        OME-Zarr store or directory of ``*cp_masks.png`` files (see above); None (default)
        adds no labels.
    array_key : str
        Image array in each position (and in the mask store), default ``"0"``.
    **kwargs : Any
        Other parameters of :class:`SlidingWindowDataset`.
    """

    def __init__(
        self,
        positions: list[Position],
        channels: ChannelMap,
        z_window_size: int,
        transform: DictTransform | None = None,
        ground_truth_masks: str | None = None,
        array_key: str = "0",
        **kwargs: Any,
    ) -> None:
        super().__init__(positions, channels, z_window_size, array_key, transform, **kwargs)
        self.mask_reader: PatchReader | None = None
        self.mask_files: dict[tuple[int, int, int], str] = {}
        if ground_truth_masks is None:
            return
        masks = Path(ground_truth_masks)
        if not masks.exists():
            raise FileNotFoundError(f"ground_truth_masks not found: '{masks}'")
        if (masks / "zarr.json").exists() or (masks / ".zgroup").exists():
            self.mask_reader = PatchReader(masks, array_key=array_key, cache_bytes=0)
            missing = set(self.position_names) - set(self.mask_reader.position_names)
            if missing:
                raise ValueError(f"ground_truth_masks '{masks}' lacks FOVs {sorted(missing)}")
        else:
            for png in sorted(masks.glob("*cp_masks.png")):
                fov = int(_search_int_in_str(r"(?<=_p)\d{3}", png.name))
                z = int(_search_int_in_str(r"(?<=_z)\d+", png.name))
                self.mask_files[(fov, 0, z)] = str(png)
            if not self.mask_files:
                raise ValueError(f"No '*cp_masks.png' files or OME-Zarr store in '{masks}'")

    def _labels(self, index: HCSStackIndex) -> Tensor | None:
        z = int(index.z) + self.z_window_size // 2
        if self.mask_reader is not None:
            _, _, _, y_size, x_size = self.mask_reader.shape(index.image)
            box = PatchBox(index.image, int(index.time), (0,), (z, z + 1), (0, y_size), (0, x_size))
            labels = torch.from_numpy(self.mask_reader.read_patch(box)[0, 0].astype(np.int32))
            return labels
        fov = int(index.image.split("/")[-1]) if index.image else 0
        path = self.mask_files.get((fov, int(index.time), z))
        if path is None:
            return None
        from viscy_data._imports import optional_import

        image = optional_import("PIL.Image", extra="livecell")
        with image.open(path) as png:
            return torch.from_numpy(np.asarray(png).astype(np.int32))

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        samples = super().__getitems__(indices)
        for sample in samples:
            for s in sample if isinstance(sample, list) else [sample]:
                labels = self._labels(s["index"])
                if labels is not None:
                    if self.output_yx is not None:
                        labels = center_crop_yx(labels, self.output_yx)
                    s["labels"] = labels
        return samples
