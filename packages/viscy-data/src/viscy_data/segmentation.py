"""Pairs of predicted and ground-truth segmentations from two HCS OME-Zarr plates.

Used to evaluate segmentation (e.g. with ``trainer.test``): both plates hold the same FOVs
and timepoints; each item is one (FOV, t) with the prediction and the target at chosen
Z slices.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from viscy_data._cache import position_address
from viscy_data._reader import PatchBox, PatchReader

if TYPE_CHECKING:
    from iohub.ngff import Plate

    from viscy_data._typing import SegmentationSample

__all__ = ["SegmentationDataModule", "SegmentationDataset"]


def _z_range(z_slice: int | slice, z_size: int, what: str) -> tuple[tuple[int, int], bool]:
    """``((start, stop), squeeze)`` of a Z selection, checked against the plate's Z size."""
    if isinstance(z_slice, slice):
        start, stop, step = z_slice.indices(z_size)
        if step != 1 or stop <= start:
            raise ValueError(f"{what}: Z slice {z_slice} must select >= 1 plane with step 1")
        return (start, stop), False
    z = int(z_slice)
    if z < 0:
        z += z_size
    if not 0 <= z < z_size:
        raise ValueError(f"{what}: Z index {z_slice} is outside the {z_size} Z planes")
    return (z, z + 1), True


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    # torch has no arithmetic on uint16/uint32: widen unsigned labels to a signed type
    if array.dtype.kind == "u" and array.dtype.itemsize >= 2:
        array = array.astype(np.int32 if array.dtype.itemsize == 2 else np.int64)
    return torch.from_numpy(np.ascontiguousarray(array))


class _PlateSide:
    """One plate's reader, FOV names, channel index and Z window."""

    def __init__(self, plate: Plate, channel: str, z_slice: int | slice, img_name: str, what: str):
        positions = list(plate.positions())
        if not positions:
            raise ValueError(f"{what} plate has no FOVs")
        self.store_path, _ = position_address(positions[0][1])
        if channel not in plate.channel_names:
            raise ValueError(
                f"{what} plate {self.store_path} has no channel {channel!r}; "
                f"it has {list(plate.channel_names)}"
            )
        self.reader = PatchReader(self.store_path, array_key=img_name, cache_bytes=0)
        self.fovs = [name for name, _ in positions]
        self.channel = self.reader.channel_names.index(channel)
        shape = self.reader.shape(self.fovs[0])
        self.z, self.squeeze = _z_range(z_slice, shape[2], f"{what} plate {self.store_path}")

    def read(self, fov: str, t: int) -> torch.Tensor:
        _, _, _, y, x = self.reader.shape(fov)
        patch = self.reader.read_patch(PatchBox(fov, t, (self.channel,), self.z, (0, y), (0, x)))
        patch = patch[0, 0] if self.squeeze else patch[0]
        return _as_tensor(patch)


class SegmentationDataset(Dataset):
    """Predicted and target segmentations of every (FOV, t) of two plates.

    Items are :class:`~viscy_data._typing.SegmentationSample` dicts: ``"pred"`` and
    ``"target"`` are (Y, X) tensors for an integer Z selection, (Z, Y, X) for a slice
    (unsigned label images become int32/int64), plus ``"position_idx"`` and ``"time_idx"``.

    Parameters
    ----------
    pred_dataset, target_dataset : Plate
        Open iohub plates with the same FOV names and T / Y / X sizes.
    pred_channel, target_channel : str
        Channel of each plate to read.
    pred_z_slice, target_z_slice : int | slice
        Z selection of each plate.
    img_name : str
        Image array in each FOV.
    """

    def __init__(
        self,
        pred_dataset: Plate,
        target_dataset: Plate,
        pred_channel: str,
        target_channel: str,
        pred_z_slice: int | slice,
        target_z_slice: int | slice,
        img_name: str = "0",
    ) -> None:
        super().__init__()
        self.pred = _PlateSide(pred_dataset, pred_channel, pred_z_slice, img_name, "prediction")
        self.target = _PlateSide(target_dataset, target_channel, target_z_slice, img_name, "target")
        missing = sorted(set(self.pred.fovs) - set(self.target.fovs))
        if missing:
            raise ValueError(
                f"FOV(s) {missing[:5]} of the prediction plate {self.pred.store_path} are not in "
                f"the target plate {self.target.store_path}"
            )
        self._items: list[tuple[int, str, int]] = []
        for position_idx, fov in enumerate(self.pred.fovs):
            p_shape, t_shape = self.pred.reader.shape(fov), self.target.reader.shape(fov)
            if p_shape[0] != t_shape[0] or p_shape[3:] != t_shape[3:]:
                raise ValueError(
                    f"FOV {fov!r}: prediction (T, Y, X) {(p_shape[0], *p_shape[3:])} differs "
                    f"from target {(t_shape[0], *t_shape[3:])}"
                )
            self._items.extend((position_idx, fov, t) for t in range(p_shape[0]))

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> SegmentationSample:
        position_idx, fov, t = self._items[index]
        return {
            "pred": self.pred.read(fov, t),
            "target": self.target.read(fov, t),
            "position_idx": position_idx,
            "time_idx": t,
        }


class SegmentationDataModule(LightningDataModule):
    """Test-stage DataModule over a prediction plate and a ground-truth plate.

    Parameters
    ----------
    pred_dataset, target_dataset : Path
        HCS OME-Zarr plates with the same FOVs.
    pred_channel, target_channel : str
        Channel of each plate to compare.
    pred_z_slice, target_z_slice : int
        Z plane of each plate.
    batch_size, num_workers : int
        DataLoader settings.
    """

    def __init__(
        self,
        pred_dataset: Path,
        target_dataset: Path,
        pred_channel: str,
        target_channel: str,
        pred_z_slice: int,
        target_z_slice: int,
        batch_size: int,
        num_workers: int,
    ) -> None:
        super().__init__()
        self.pred_dataset = Path(pred_dataset)
        self.target_dataset = Path(target_dataset)
        self.pred_channel = pred_channel
        self.target_channel = target_channel
        self.pred_z_slice = pred_z_slice
        self.target_z_slice = target_z_slice
        if batch_size < 1 or num_workers < 0:
            raise ValueError(
                f"batch_size must be >= 1 and num_workers >= 0, got {batch_size}, {num_workers}"
            )
        self.batch_size = batch_size
        self.num_workers = num_workers

    def setup(self, stage: str) -> None:
        if stage != "test":
            raise NotImplementedError(
                f"SegmentationDataModule only supports the 'test' stage, got {stage!r}"
            )
        from iohub.ngff import open_ome_zarr

        for path in (self.pred_dataset, self.target_dataset):
            if not path.exists():
                raise FileNotFoundError(f"OME-Zarr plate not found: {path}")
        with (
            open_ome_zarr(self.pred_dataset, layout="hcs", mode="r") as pred,
            open_ome_zarr(self.target_dataset, layout="hcs", mode="r") as target,
        ):
            self.test_dataset = SegmentationDataset(
                pred,
                target,
                self.pred_channel,
                self.target_channel,
                self.pred_z_slice,
                self.target_z_slice,
            )

    def test_dataloader(self) -> DataLoader:
        return DataLoader(
            self.test_dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            shuffle=False,
        )
