"""Triplets of single-cell time series stored as ``.npy`` arrays (cell-division studies).

Each ``.npy`` file holds one cell's time series, shaped ``(T, C, Y, X)``. An anchor is frame
``t`` of a file, its positive the same file at ``t + dt`` (or the same frame when
``time_interval="any"``; its two views then differ by augmentation), its negative a frame of
another file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from monai.transforms import MapTransform
from torch import Tensor
from torch.utils.data import Dataset

from viscy_data._tracks import batch_rng
from viscy_data._triplet_base import TripletDataModuleBase, split_items
from viscy_data._utils import check_stage

__all__ = ["CellDivisionTripletDataModule", "CellDivisionTripletDataset"]

SampleTransform = Callable[[dict[str, Tensor | dict]], dict[str, Tensor]]


def _check_time_interval(time_interval: Literal["any"] | int) -> None:
    if time_interval == "any":
        return
    if isinstance(time_interval, bool) or not isinstance(time_interval, int) or time_interval < 1:
        raise ValueError(f"time_interval must be 'any' or an int >= 1, got {time_interval!r}")


class CellDivisionTripletDataset(Dataset):
    """Anchor / positive / negative frames of single-cell ``(T, C, Y, X)`` arrays.

    Parameters
    ----------
    data_paths : list[Path]
        ``.npy`` files, one cell time series each.
    channel_names : list[str]
        Channels to return. They name the arrays' channels in order unless
        ``array_channel_names`` is given, in which case they select from it.
    anchor_transform, positive_transform, negative_transform : callable, optional
        Per-sample dictionary transforms of the anchor, positive and negative (see Notes).
    fit : bool
        Sample triplets (True) or return every frame once with its index (False).
    time_interval : "any" or int
        Frames between anchor and positive.
    return_negative : bool
        Also return a negative.
    output_2d : bool
        Return (C, Y, X) patches instead of (C, 1, Y, X).
    array_channel_names : sequence of str, optional
        Names of all channels of the arrays, in order.
    seed : int
        Seed of the positive/negative sampling.

    Notes
    -----
    Transforms receive ``{channel_name: (1, [1,] Y, X) tensor}`` for one sample and key and
    return the same layout (MONAI dictionary-transform style).
    """

    def __init__(
        self,
        data_paths: list[Path],
        channel_names: list[str],
        anchor_transform: SampleTransform | None = None,
        positive_transform: SampleTransform | None = None,
        negative_transform: SampleTransform | None = None,
        fit: bool = True,
        time_interval: Literal["any"] | int = "any",
        return_negative: bool = True,
        output_2d: bool = False,
        *,
        array_channel_names: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        _check_time_interval(time_interval)
        if not data_paths:
            raise ValueError("CellDivisionTripletDataset needs at least one .npy file")
        self.data_paths = [Path(p) for p in data_paths]
        self.channel_names = list(channel_names)
        all_names = list(array_channel_names) if array_channel_names else self.channel_names
        unknown = [c for c in self.channel_names if c not in all_names]
        if unknown:
            raise ValueError(f"Unknown channel(s) {unknown}; the arrays' channels are {all_names}")
        self.channel_indices = [all_names.index(c) for c in self.channel_names]
        self.transforms = {
            "anchor": anchor_transform,
            "positive": positive_transform,
            "negative": negative_transform,
        }
        self.fit = fit
        self.time_interval = time_interval
        self.return_negative = return_negative and fit
        self.output_2d = output_2d
        self.seed = int(seed)
        self.epoch = 0
        self._arrays: dict[int, np.ndarray] = {}
        lengths = []
        yx = None
        for path in self.data_paths:
            array = self._open(path)
            if array.ndim != 4:
                raise ValueError(f"{path}: expected a (T, C, Y, X) array, got shape {array.shape}")
            if array.shape[1] != len(all_names):
                raise ValueError(
                    f"{path}: has {array.shape[1]} channels but {len(all_names)} channel names "
                    f"{all_names} were given"
                )
            if yx is None:
                yx = array.shape[2:]
            elif array.shape[2:] != yx:
                raise ValueError(f"{path}: Y, X size {array.shape[2:]} differs from {yx}")
            lengths.append(array.shape[0])
        self.yx_shape = tuple(int(s) for s in yx)
        self.lengths = np.array(lengths, dtype=np.int64)
        dt = 0 if time_interval == "any" or not fit else int(time_interval)
        usable = np.maximum(self.lengths - dt, 0)
        self._file = np.repeat(np.arange(len(self.lengths)), usable)
        self._t = np.concatenate([np.arange(n) for n in usable]) if usable.sum() else usable[:0]
        if len(self._file) == 0:
            raise ValueError(
                f"No frame has a positive {time_interval} frame(s) later: all series are "
                f"shorter than {dt + 1} frames"
            )
        if self.return_negative and len(self.data_paths) < 2:
            raise ValueError(
                f"return_negative needs at least two .npy files, got {self.data_paths} "
                "(with a train/validation split, each side needs two)"
            )

    @staticmethod
    def _open(path: Path) -> np.ndarray:
        try:
            return np.load(path, mmap_mode="r")
        except Exception as err:
            raise ValueError(f"Cannot read cell time series {path}: {err}") from err

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = {}  # memory maps are reopened in each process
        return state

    def _array(self, file: int) -> np.ndarray:
        array = self._arrays.get(file)
        if array is None:
            array = self._open(self.data_paths[file])
            self._arrays[file] = array
        return array

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that the negative draws depend on (see :func:`batch_rng`)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._file)

    def _frame(self, file: int, t: int, key: str) -> Tensor:
        frame = np.asarray(self._array(file)[t, self.channel_indices], dtype=np.float32)
        patch = torch.from_numpy(frame)  # (C, Y, X)
        if not self.output_2d:
            patch = patch.unsqueeze(1)
        transform = self.transforms[key]
        if transform is not None:
            sample = {name: patch[i : i + 1] for i, name in enumerate(self.channel_names)}
            sample = transform(sample)
            patch = torch.cat([sample[name] for name in self.channel_names], dim=0)
        return patch

    def __getitem__(self, index: int) -> dict[str, Any]:
        file, t = int(self._file[index]), int(self._t[index])
        sample: dict[str, Any] = {"anchor": self._frame(file, t, "anchor")}
        if not self.fit:
            # "id" is 0.1.0's name of the frame index; "t" ours
            sample["index"] = {"fov_name": self.data_paths[file].stem, "t": t, "id": t}
            return sample
        t_pos = t if self.time_interval == "any" else t + int(self.time_interval)
        sample["positive"] = self._frame(file, t_pos, "positive")
        if self.return_negative:
            rng = batch_rng(self.seed, [index], epoch=self.epoch)
            other = int(rng.integers(len(self.lengths) - 1))
            other += other >= file  # any file but the anchor's
            n_other = int(self.lengths[other])
            t_neg = t_pos if t_pos < n_other else int(rng.integers(n_other))
            sample["negative"] = self._frame(other, t_neg, "negative")
        return sample


class CellDivisionTripletDataModule(TripletDataModuleBase):
    """Lightning DataModule of cell-division triplets from a folder of ``.npy`` arrays.

    Parameters
    ----------
    data_path : str
        Folder of ``.npy`` files, one ``(T, C, Y, X)`` cell time series each.
    source_channel : str or sequence of str
        Channel names of the arrays, in order (all channels are returned).
    final_yx_patch_size : tuple[int, int]
        Y, X size after the final center crop.
    split_ratio : float
        Fraction of files used for training, the rest for validation.
    batch_size, num_workers : int
        Loader settings (thread workers).
    normalizations, augmentations : list of dictionary transforms, optional
        Applied on the device channel by channel, as in
        :class:`~viscy_data.triplet.TripletDataModule`.
    augment_validation : bool
        Augment validation batches too.
    time_interval : "any" or int
        Frames between anchor and positive.
    return_negative : bool
        Also return negatives.
    output_2d : bool
        Batches of (B, C, Y, X) instead of (B, C, 1, Y, X).
    persistent_workers, prefetch_factor, pin_memory
        Passed to the loaders.
    seed : int
        Seed of the split and of the sampling.
    """

    def __init__(
        self,
        data_path: str,
        source_channel: str | Sequence[str],
        final_yx_patch_size: tuple[int, int] = (64, 64),
        split_ratio: float = 0.8,
        batch_size: int = 16,
        num_workers: int = 8,
        normalizations: list[MapTransform] | None = None,
        augmentations: list[MapTransform] | None = None,
        augment_validation: bool = True,
        time_interval: Literal["any"] | int = "any",
        return_negative: bool = True,
        output_2d: bool = False,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        pin_memory: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            data_path=data_path,
            source_channel=source_channel,
            target_channel=[],
            z_window_size=1,
            split_ratio=split_ratio,
            batch_size=batch_size,
            num_workers=num_workers,
            yx_patch_size=tuple(final_yx_patch_size),
            normalizations=normalizations,
            augmentations=augmentations,
            persistent_workers=persistent_workers,
            prefetch_factor=prefetch_factor,
            pin_memory=pin_memory,
            seed=seed,
        )
        _check_time_interval(time_interval)
        self.final_yx_patch_size = (int(final_yx_patch_size[0]), int(final_yx_patch_size[1]))
        self.augment_validation = augment_validation
        self.time_interval = time_interval
        self.return_negative = return_negative
        self.output_2d = output_2d

    def _files(self) -> list[Path]:
        if not self.data_path.is_dir():
            raise FileNotFoundError(f"data_path is not a folder of .npy files: {self.data_path}")
        files = sorted(self.data_path.glob("*.npy"))
        if not files:
            raise FileNotFoundError(f"No .npy files in {self.data_path}")
        return files

    def _dataset(self, files: list[Path], fit: bool) -> CellDivisionTripletDataset:
        dataset = CellDivisionTripletDataset(
            data_paths=files,
            channel_names=self.source_channel,
            fit=fit,
            time_interval=self.time_interval,
            return_negative=self.return_negative,
            output_2d=self.output_2d,
            seed=self.seed,
        )
        fy, fx = self.final_yx_patch_size
        if fy > dataset.yx_shape[0] or fx > dataset.yx_shape[1]:
            raise ValueError(
                f"final_yx_patch_size {self.final_yx_patch_size} is larger than the arrays' "
                f"Y, X {dataset.yx_shape} in {self.data_path}"
            )
        return dataset

    def setup(self, stage: str | None = None) -> None:
        """Find and validate the arrays, split them by file and build the datasets."""
        check_stage(stage, type(self).__name__, ("fit", "validate", "test", "predict", None))
        files = self._files()
        if stage in ("fit", "validate", None):
            train, val = split_items(files, self.split_ratio, self.seed)
            self.train_dataset = self._dataset(train, fit=True)
            self.val_dataset = self._dataset(val, fit=True) if val else None
        if stage in ("predict", None):
            self.predict_dataset = self._dataset(files, fit=False)
        if stage == "test":
            raise NotImplementedError("CellDivisionTripletDataModule has no test stage")
        self._compose_device_transforms()
