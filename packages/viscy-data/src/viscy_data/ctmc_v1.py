"""CTMC-v1 (Cell Tracking with Mitosis Challenge) converted to HCS OME-Zarr plates.

Training and validation come from two separate plates; every FOV and timepoint is a sample
of one channel (DIC by default). Validation uses every ``val_subsample_ratio``-th volume.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Subset

from viscy_data._cache import CachedOmeZarrDataset, VolumeCache, make_caches
from viscy_data.gpu_aug import GPUTransformDataModule
from viscy_data.transfer import StoredTransforms

__all__ = ["CTMCv1DataModule"]


class CTMCv1DataModule(StoredTransforms, GPUTransformDataModule):
    """CTMC-v1 training from a training plate and a validation plate.

    Volumes are kept in a byte-bounded cache shared by the workers, one per split.

    Parameters
    ----------
    train_data_path, val_data_path : str | Path
        HCS OME-Zarr plates of the two splits.
    train_cpu_transforms, val_cpu_transforms : list[MapTransform]
        Per-sample transforms run in the workers.
    train_gpu_transforms, val_gpu_transforms : list[MapTransform]
        Batch transforms run on the device.
    batch_size, num_workers : int
        DataLoader settings.
    val_subsample_ratio : int
        Keep every n-th validation volume (1 keeps all).
    channel_name : str
        Channel to load.
    pin_memory : bool
        Pin batches in host memory.
    cache_bytes : int | None
        Bound of both caches together; None: everything, at most a quarter of the free space
        of the cache directory; 0: no cache.
    """

    def __init__(
        self,
        train_data_path: str | Path,
        val_data_path: str | Path,
        train_cpu_transforms: list[Callable],
        val_cpu_transforms: list[Callable],
        train_gpu_transforms: list[Callable],
        val_gpu_transforms: list[Callable],
        batch_size: int = 16,
        num_workers: int = 8,
        val_subsample_ratio: int = 30,
        channel_name: str = "DIC",
        pin_memory: bool = True,
        cache_bytes: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(val_subsample_ratio, int) or val_subsample_ratio < 1:
            raise ValueError(
                f"val_subsample_ratio must be an integer >= 1, got {val_subsample_ratio!r}"
            )
        self.train_data_path = Path(train_data_path)
        self.val_data_path = Path(val_data_path)
        self._store_transforms(
            train_cpu_transforms, val_cpu_transforms, train_gpu_transforms, val_gpu_transforms
        )
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_subsample_ratio = val_subsample_ratio
        self.channel_name = channel_name
        self.pin_memory = pin_memory
        self.cache_bytes = cache_bytes
        self.caches: dict[str, VolumeCache] = {}

    def _dataset(self, path: Path, transform: Callable | None) -> CachedOmeZarrDataset:
        from iohub.ngff import open_ome_zarr

        if not path.exists():
            raise FileNotFoundError(f"CTMC-v1 plate not found: {path}")
        plate = open_ome_zarr(path, layout="hcs", mode="r")
        positions = [pos for _, pos in plate.positions()]
        if not positions:
            raise ValueError(f"CTMC-v1 plate {path} has no FOVs")
        # 0.1.0: CTMC batches carry no normalization metadata
        return CachedOmeZarrDataset(
            positions,
            [self.channel_name],
            None,
            transform=transform,
            load_normalization_metadata=False,
        )

    def setup(self, stage: str) -> None:
        if stage != "fit":
            raise NotImplementedError(f"CTMCv1DataModule only supports 'fit', got {stage!r}")
        train = self._dataset(self.train_data_path, self.train_cpu_transforms)
        val = self._dataset(self.val_data_path, self.val_cpu_transforms)
        self.release_caches()
        kept = list(range(0, len(val), self.val_subsample_ratio))
        if self.cache_bytes != 0:
            layouts = {"train": train.cache_layout(), "val": [val.cache_layout()[i] for i in kept]}
            self.caches = make_caches(layouts, self.cache_bytes, source=str(self.train_data_path))
            train.cache = self.caches["train"]
            val.cache = self.caches["val"]
        self.train_dataset = train
        self.val_dataset = Subset(val, kept)
