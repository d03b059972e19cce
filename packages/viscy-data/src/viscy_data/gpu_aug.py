"""DataModules that augment on the GPU, and the cached whole-volume OME-Zarr pipeline.

:class:`GPUTransformDataModule` runs the CPU transforms in DataLoader workers and the GPU
transforms on the batch in :meth:`~GPUTransformDataModule.on_after_batch_transfer`, after
Lightning has moved it to the device. :class:`CachedOmeZarrDataModule` serves whole (C, Z, Y, X)
volumes from a byte-bounded cache shared by the workers (used for FCMAE pretraining).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler

from viscy_data._cache import CachedOmeZarrDataset, VolumeCache, make_caches
from viscy_data._reader import worker_start_method
from viscy_data._utils import collate_samples, ensure_channel_list
from viscy_data.distributed import ShardedDistributedSampler
from viscy_data.select import SelectWell
from viscy_data.transfer import DeviceTransformMixin, StoredTransforms

__all__ = ["CachedOmeZarrDataModule", "CachedOmeZarrDataset", "GPUTransformDataModule"]


def distributed_sampler(dataset: Dataset, shuffle: bool, seed: int = 0) -> Sampler | None:
    """A sharding sampler when running under an initialised multi-process group, else None."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None
    if torch.distributed.get_world_size() < 2:
        return None
    return ShardedDistributedSampler(dataset, shuffle=shuffle, seed=seed)


class GPUTransformDataModule(DeviceTransformMixin, ABC, LightningDataModule):
    """Base of DataModules whose augmentations run on the GPU.

    Subclasses set ``train_dataset`` / ``val_dataset`` in ``setup`` and the attributes
    ``batch_size``, ``num_workers``, ``pin_memory`` and ``prefetch_factor``, and provide the
    four transform properties. CPU transforms run per sample in the workers; the GPU transform
    of the current stage runs on the whole collated batch dict after it reaches the device
    (training: ``train_gpu_transforms``; validation and sanity check: ``val_gpu_transforms``;
    test and predict: none; see :class:`~viscy_data.transfer.DeviceTransformMixin`). Under
    DDP the loaders shard with a distributed sampler.

    Set ``multiprocessing_context`` (``"fork"``, ``"spawn"`` or ``"forkserver"``) to choose how
    workers start; None uses torch's default.
    """

    train_dataset: Dataset
    val_dataset: Dataset
    batch_size: int
    num_workers: int
    pin_memory: bool = True
    prefetch_factor: int | None = None
    multiprocessing_context: Literal["fork", "spawn", "forkserver"] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    @property
    @abstractmethod
    def train_cpu_transforms(self) -> Callable | None:
        """Per-sample transform applied in the training workers."""

    @property
    @abstractmethod
    def val_cpu_transforms(self) -> Callable | None:
        """Per-sample transform applied in the validation workers."""

    @property
    @abstractmethod
    def train_gpu_transforms(self) -> Callable | None:
        """Batch transform applied on the device during training."""

    @property
    @abstractmethod
    def val_gpu_transforms(self) -> Callable | None:
        """Batch transform applied on the device during validation."""

    def _check_loader_settings(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {self.num_workers!r}")

    def _dataloader(self, dataset: Dataset, shuffle: bool, drop_last: bool) -> DataLoader:
        self._check_loader_settings()
        sampler = distributed_sampler(dataset, shuffle=shuffle)
        workers = self.num_workers
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle if sampler is None else False,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=workers > 0,
            prefetch_factor=self.prefetch_factor if workers > 0 else None,
            multiprocessing_context=worker_start_method(self.multiprocessing_context, workers),
            collate_fn=collate_samples,
            drop_last=drop_last,
        )

    def train_dataloader(self) -> DataLoader:
        # 0.1.0 keeps the last partial training batch of these DataModules
        return self._dataloader(self.train_dataset, shuffle=True, drop_last=False)

    def release_caches(self) -> None:
        """Close and delete the cache files of the subclass's ``caches`` (if any)."""
        for cache in getattr(self, "caches", {}).values():
            cache.close()
        self.caches = {}

    def teardown(self, stage: str) -> None:
        self.release_caches()

    def val_dataloader(self) -> DataLoader:
        return self._dataloader(self.val_dataset, shuffle=False, drop_last=False)


def split_positions(positions: Sequence, split_ratio: float, seed: int = 0) -> tuple[list, list]:
    """Shuffle FOVs with a fixed seed and split them into (train, validation) by ``split_ratio``."""
    if not 0.0 < split_ratio < 1.0:
        raise ValueError(f"split_ratio must be between 0 and 1 (exclusive), got {split_ratio}")
    order = np.random.default_rng(seed).permutation(len(positions))
    shuffled = [positions[i] for i in order]
    num_train = int(round(len(shuffled) * split_ratio))
    if num_train == 0 or num_train == len(shuffled):
        raise ValueError(
            f"split_ratio={split_ratio} leaves no FOV for "
            f"{'training' if num_train == 0 else 'validation'} out of {len(shuffled)} FOVs; "
            "add FOVs or change split_ratio"
        )
    return shuffled[:num_train], shuffled[num_train:]


class CachedOmeZarrDataModule(StoredTransforms, GPUTransformDataModule, SelectWell):
    """Whole-volume OME-Zarr training with a byte-bounded volume cache shared by the workers.

    FOVs (filtered by ``include_wells`` / ``exclude_fovs``) are split into training and
    validation by ``split_ratio``. Each split gets its own :class:`~viscy_data._cache.VolumeCache`
    (a memory-mapped file, by default in ``/dev/shm``), so a validation index can never be
    served a training volume; the budget ``cache_bytes`` is shared between them in proportion
    to their sizes. Caches are created in ``setup`` and released in ``teardown``.

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
    train_cpu_transforms, val_cpu_transforms : list[DictTransform]
        Per-sample transforms run in the workers.
    train_gpu_transforms, val_gpu_transforms : list[DictTransform]
        Batch transforms run on the device.
    pin_memory : bool
        Pin batches in host memory.
    skip_cache : bool
        Read every volume from the store.
    include_wells : list[str] | None
        Only FOVs of these wells (e.g. ``["A/1"]``).
    exclude_fovs : list[str] | None
        Leave out these FOVs (e.g. ``["A/1/0"]``).
    prefetch_factor : int | None
        Batches prefetched per worker.
    array_key : str
        Image array in each FOV.
    cache_bytes : int | None
        Upper bound of both caches together; None: the whole data set, but at most a quarter
        of the free space in ``cache_dir``.
    cache_dir : Path | None
        Where the cache files live; None: ``/dev/shm`` when available, else the temp dir.
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
        train_cpu_transforms: list[Callable],
        val_cpu_transforms: list[Callable],
        train_gpu_transforms: list[Callable],
        val_gpu_transforms: list[Callable],
        pin_memory: bool = True,
        skip_cache: bool = False,
        include_wells: list[str] | None = None,
        exclude_fovs: list[str] | None = None,
        prefetch_factor: int | None = None,
        array_key: str = "0",
        cache_bytes: int | None = None,
        cache_dir: Path | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.data_path = Path(data_path)
        self.channels = ensure_channel_list(channels)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.split_ratio = split_ratio
        self._store_transforms(
            train_cpu_transforms, val_cpu_transforms, train_gpu_transforms, val_gpu_transforms
        )
        self.pin_memory = pin_memory
        self.skip_cache = skip_cache
        self._include_wells = include_wells
        self._exclude_fovs = exclude_fovs
        self.prefetch_factor = prefetch_factor
        self.array_key = array_key
        if cache_bytes is not None and cache_bytes < 0:
            raise ValueError(f"cache_bytes must be >= 0 or None, got {cache_bytes}")
        self.cache_bytes = cache_bytes
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.seed = seed
        self.caches: dict[str, VolumeCache] = {}

    def _open_positions(self) -> list:
        from iohub.ngff import open_ome_zarr

        if not self.data_path.exists():
            raise FileNotFoundError(f"OME-Zarr plate not found: {self.data_path}")
        plate = open_ome_zarr(self.data_path, layout="hcs", mode="r")
        return self._filter_fit_fovs(plate)

    def _make_caches(self, datasets: dict[str, CachedOmeZarrDataset]) -> None:
        self.release_caches()
        if self.skip_cache:
            return
        layouts = {name: ds.cache_layout() for name, ds in datasets.items()}
        self.caches = make_caches(layouts, self.cache_bytes, self.cache_dir, str(self.data_path))
        for name, cache in self.caches.items():
            datasets[name].cache = cache

    def setup(self, stage: str) -> None:
        if stage != "fit":
            raise NotImplementedError(
                f"{type(self).__name__} only supports the 'fit' stage, got {stage!r}"
            )
        positions = self._open_positions()
        train_positions, val_positions = split_positions(positions, self.split_ratio, self.seed)
        common = dict(
            channel_names=self.channels,
            cache_map=None,
            array_key=self.array_key,
            skip_cache=self.skip_cache,
        )
        self.train_dataset = CachedOmeZarrDataset(
            train_positions, transform=self.train_cpu_transforms, **common
        )
        self.val_dataset = CachedOmeZarrDataset(
            val_positions, transform=self.val_cpu_transforms, **common
        )
        self._make_caches({"train": self.train_dataset, "val": self.val_dataset})
