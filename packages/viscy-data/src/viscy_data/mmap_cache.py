"""Volumes preprocessed once into memory-mapped files on local scratch (tensordict extra).

:class:`MmappedDataModule` reads each (FOV, t) volume from the OME-Zarr plate the first time it
is needed, applies the preprocessing transforms (e.g. normalization) and writes it to a
``tensordict.MemoryMappedTensor`` in ``scratch_dir``; later epochs read the preprocessed row.
Requires ``pip install 'viscy-data[mmap]'``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from viscy_data._cache import MmappedDataset
from viscy_data._imports import optional_import
from viscy_data._utils import ensure_channel_list
from viscy_data.gpu_aug import GPUTransformDataModule, split_positions
from viscy_data.select import SelectWell
from viscy_data.transfer import StoredTransforms, compose

__all__ = ["MmappedDataModule", "MmappedDataset"]


class MmappedDataModule(StoredTransforms, GPUTransformDataModule, SelectWell):
    """Whole-volume OME-Zarr training from preprocessed, memory-mapped buffers.

    FOVs (filtered by ``include_wells`` / ``exclude_fovs``) are split into training and
    validation by ``split_ratio``; each split gets its own buffer and "filled" markers under a
    fresh directory in ``scratch_dir``, created in ``setup`` and deleted in ``teardown``. All FOVs
    must share C, Z, Y and X; T may differ. Workers started by ``fork`` or ``spawn`` share the
    buffers through the files.

    Parameters
    ----------
    data_path : Path
        HCS OME-Zarr plate.
    channels : str | list[str]
        Channels to load.
    batch_size, num_workers : int
        DataLoader settings.
    split_ratio : float
        Fraction of FOVs used for training.
    preprocess_transforms : list[DictTransform]
        Applied once per volume before it is stored (e.g. normalization).
    train_cpu_transforms, val_cpu_transforms : list[DictTransform]
        Per-sample transforms run in the workers.
    train_gpu_transforms, val_gpu_transforms : list[DictTransform]
        Batch transforms run on the device.
    pin_memory : bool
        Pin batches in host memory.
    prefetch_factor : int | None
        Batches prefetched per worker.
    array_key : str
        Image array in each FOV.
    scratch_dir : Path | None
        Directory for the buffers (fast local disk); None: the system temp directory.
    include_wells : list[str] | None
        Only FOVs of these wells.
    exclude_fovs : list[str] | None
        Leave out these FOVs.
    seed : int
        Seed of the FOV split.
    """

    def __init__(
        self,
        data_path: Path,
        channels: str | list[str],
        batch_size: int,
        num_workers: int,
        split_ratio: float,
        preprocess_transforms: list[Callable],
        train_cpu_transforms: list[Callable],
        val_cpu_transforms: list[Callable],
        train_gpu_transforms: list[Callable],
        val_gpu_transforms: list[Callable],
        pin_memory: bool = True,
        prefetch_factor: int | None = None,
        array_key: str = "0",
        scratch_dir: Path | None = None,
        include_wells: list[str] | None = None,
        exclude_fovs: list[str] | None = None,
        seed: int = 0,
    ) -> None:
        optional_import("tensordict", extra="mmap")  # fail at construction, not in a worker
        super().__init__()
        self.data_path = Path(data_path)
        self.channels = ensure_channel_list(channels)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.split_ratio = split_ratio
        self.preprocess_transforms = compose(preprocess_transforms)
        self._store_transforms(
            train_cpu_transforms, val_cpu_transforms, train_gpu_transforms, val_gpu_transforms
        )
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.array_key = array_key
        self.scratch_dir = Path(scratch_dir) if scratch_dir is not None else None
        self._include_wells = include_wells
        self._exclude_fovs = exclude_fovs
        self.seed = seed
        self.buffer_dir: Path | None = None

    def _make_dataset(self, name: str, positions: list, transform: Callable | None):
        tensordict = optional_import("tensordict", extra="mmap")
        dataset = MmappedDataset(
            positions,
            self.channels,
            cache_map=None,
            buffer=None,
            preprocess_transforms=self.preprocess_transforms,
            cpu_transform=transform,
            array_key=self.array_key,
        )
        mmt = tensordict.MemoryMappedTensor
        buffer = mmt.empty(
            dataset.buffer_shape,
            dtype=torch.float32,
            filename=str(self.buffer_dir / f"{name}_buffer.memmap"),
        )
        filled = mmt.zeros(
            (len(dataset),),
            dtype=torch.uint8,
            filename=str(self.buffer_dir / f"{name}_filled.memmap"),
        )
        dataset.attach(buffer, filled)
        return dataset

    def _check_same_zyx(self, positions: list) -> None:
        """All FOVs share one buffer layout: fail before any file is made if they do not."""
        first = None
        for position in positions:
            if self.array_key not in position.array_keys():
                continue  # reported with the FOV's name when the dataset indexes it
            zyx = tuple(position[self.array_key].shape[-3:])
            name = position.zgroup.name.strip("/")
            if first is None:
                first = (name, zyx)
            elif zyx != first[1]:
                raise ValueError(
                    f"MmappedDataModule needs FOVs of one (Z, Y, X) shape in {self.data_path}: "
                    f"FOV {first[0]!r} is {first[1]} but FOV {name!r} is {zyx}"
                )

    def setup(self, stage: str) -> None:
        if stage != "fit":
            raise NotImplementedError(
                f"{type(self).__name__} only supports the 'fit' stage, got {stage!r}"
            )
        from iohub.ngff import open_ome_zarr

        if not self.data_path.exists():
            raise FileNotFoundError(f"OME-Zarr plate not found: {self.data_path}")
        plate = open_ome_zarr(self.data_path, layout="hcs", mode="r")
        positions = self._filter_fit_fovs(plate)
        self._check_same_zyx(positions)
        train_positions, val_positions = split_positions(positions, self.split_ratio, self.seed)
        self.release_buffers()
        if self.scratch_dir is not None:
            self.scratch_dir.mkdir(parents=True, exist_ok=True)
        self.buffer_dir = Path(tempfile.mkdtemp(prefix="viscy-mmap-", dir=self.scratch_dir))
        try:
            self.train_dataset = self._make_dataset(
                "train", train_positions, self.train_cpu_transforms
            )
            self.val_dataset = self._make_dataset("val", val_positions, self.val_cpu_transforms)
        except BaseException:
            self.release_buffers()
            raise

    def release_buffers(self) -> None:
        """Drop the memory maps and delete their files."""
        for name in ("train_dataset", "val_dataset"):
            dataset = getattr(self, name, None)
            if isinstance(dataset, MmappedDataset):
                dataset.buffer = None
                dataset.filled = None
                setattr(self, name, None)
        # each map is unmapped when its last reference (the dataset's) goes
        if self.buffer_dir is not None:
            shutil.rmtree(self.buffer_dir, ignore_errors=True)
            self.buffer_dir = None

    def teardown(self, stage: str) -> None:
        self.release_buffers()
