"""LIVECell: 2D phase-contrast TIFF images with COCO instance annotations (livecell extra).

Training and validation read the images listed in COCO annotation files (via pycocotools)
from one image directory; the test split also turns the annotations into a foreground mask
(``"target"``) and an instance label image (``"labels"``). Requires
``pip install 'viscy-data[livecell]'``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from viscy_data._cache import VolumeCache, _as_cache, make_caches
from viscy_data._imports import optional_import
from viscy_data.gpu_aug import GPUTransformDataModule
from viscy_data.transfer import StoredTransforms, compose

__all__ = ["LiveCellDataModule", "LiveCellDataset", "LiveCellTestDataset"]


def _coco(annotations: Path) -> Any:
    """Load a COCO annotation file, with errors that name it."""
    coco_module = optional_import("pycocotools.coco", extra="livecell")
    annotations = Path(annotations)
    if not annotations.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {annotations}")
    try:
        return coco_module.COCO(str(annotations))
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{annotations} is not a valid COCO annotation file: {err}") from err


def _image_paths(coco: Any, image_dir: Path, annotations: Path) -> tuple[list[int], list[Path]]:
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"LIVECell image directory not found: {image_dir}")
    ids = sorted(coco.getImgIds())
    if not ids:
        raise ValueError(f"{annotations} lists no images")
    paths = [image_dir / coco.loadImgs(i)[0]["file_name"] for i in ids]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) listed in {annotations} are not in {image_dir}, "
            f"e.g. {missing[:3]}"
        )
    return ids, paths


def _read_image(path: Path) -> np.ndarray:
    tifffile = optional_import("tifffile", extra="livecell")
    image = tifffile.imread(path)
    if image.ndim != 2:
        raise ValueError(f"{path}: expected a 2D (Y, X) image, got shape {image.shape}")
    return image


def _image_shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    tifffile = optional_import("tifffile", extra="livecell")
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        return tuple(series.shape), np.dtype(series.dtype)


def _to_czyx(image: np.ndarray) -> torch.Tensor:
    """(Y, X) image -> (C=1, Z=1, Y, X) float32 tensor."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32))[None, None]


class LiveCellDataset(Dataset):
    """LIVECell images for self-supervised training: ``{"source", "target"}`` (1, 1, Y, X).

    ``"target"`` is the same image as ``"source"`` (transforms may treat them differently).

    Parameters
    ----------
    images : list[Path]
        TIFF files, one 2D image each.
    transform : Callable
        Per-sample CPU transform.
    cache_map : VolumeCache | MutableMapping | None
        Keeps decoded images between epochs, keyed by index (see :class:`VolumeCache`).
    """

    def __init__(
        self,
        images: list[Path],
        transform: Callable | None,
        cache_map: VolumeCache | Any | None,
    ) -> None:
        super().__init__()
        optional_import("tifffile", extra="livecell")
        self.images = [Path(p) for p in images]
        if not self.images:
            raise ValueError("LiveCellDataset needs at least one image")
        self.transform = transform
        self.cache = _as_cache(cache_map)

    def cache_layout(self) -> list[tuple[int, tuple[int, ...], np.dtype]]:
        """``(index, shape, dtype)`` of every image (read from TIFF headers), for a cache."""
        return [(i, *_image_shape(p)) for i, p in enumerate(self.images)]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict | list[dict]:
        image = self.cache.get(index) if self.cache is not None else None
        if image is None:
            image = _read_image(self.images[index])
            if self.cache is not None:
                self.cache.put(index, image)
        source = _to_czyx(image)
        sample = {"source": source, "target": source.clone()}
        return self.transform(sample) if self.transform is not None else sample


class LiveCellTestDataset(Dataset):
    """LIVECell test images with their annotations.

    Items hold ``"source"`` (1, 1, Y, X) float32 and ``"file_name"``; with ``load_target``
    ``"target"``, a copy of ``"source"`` (as in 0.1.0); with ``load_labels`` the annotations
    as ``"detections"``: ``"boxes"`` (N, 4) float32 ``x0, y0, x1, y1`` pixels (from the COCO
    ``[x, y, width, height]``), ``"labels"`` (N,) uint8 (0: one class) and ``"masks"``
    (N, Y, X) bool, one per instance in annotation order (the 0.1.0 layout).

    Parameters
    ----------
    image_dir : Path
        Directory holding the TIFF files named in ``annotations``.
    transform : Callable | None
        Per-sample transform.
    annotations : Path
        COCO annotation file.
    load_target : bool
        Add ``"target"`` (a copy of the image).
    load_labels : bool
        Add ``"detections"`` (boxes, labels, masks).
    """

    def __init__(
        self,
        image_dir: Path,
        transform: Callable | None,
        annotations: Path,
        load_target: bool = False,
        load_labels: bool = False,
    ) -> None:
        super().__init__()
        self.annotations = Path(annotations)
        self.coco = _coco(self.annotations)
        self.image_ids, self.images = _image_paths(self.coco, Path(image_dir), self.annotations)
        self.transform = transform
        self.load_target = load_target
        self.load_labels = load_labels

    def __len__(self) -> int:
        return len(self.images)

    def _detections(self, image_id: int, shape: tuple[int, int]) -> dict[str, torch.Tensor]:
        annotations = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id]))
        masks = np.zeros((len(annotations), *shape), dtype=bool)
        boxes = np.zeros((len(annotations), 4), dtype=np.float32)
        for i, annotation in enumerate(annotations):
            masks[i] = self.coco.annToMask(annotation).astype(bool)
            x, y, width, height = annotation["bbox"]
            boxes[i] = (x, y, x + width, y + height)
        return {
            "boxes": torch.from_numpy(boxes),
            "labels": torch.zeros(len(annotations), dtype=torch.uint8),
            "masks": torch.from_numpy(masks),
        }

    def __getitem__(self, index: int) -> dict:
        image = _read_image(self.images[index])
        source = _to_czyx(image)
        sample: dict[str, Any] = {"source": source, "file_name": self.images[index].name}
        if self.load_target:
            sample["target"] = source.clone()
        if self.load_labels:
            sample["detections"] = self._detections(self.image_ids[index], image.shape)
        return self.transform(sample) if self.transform is not None else sample


class LiveCellDataModule(StoredTransforms, GPUTransformDataModule):
    """LIVECell training (FCMAE-style: CPU then GPU augmentation) and test loading.

    Parameters
    ----------
    train_val_images : Path | None
        Directory of the training and validation TIFFs.
    test_images : Path | None
        Directory of the test TIFFs.
    train_annotations, val_annotations, test_annotations : Path | None
        COCO annotation files listing each split's images.
    train_cpu_transforms, val_cpu_transforms : list[MapTransform] | None
        Per-sample transforms run in the workers.
    train_gpu_transforms, val_gpu_transforms : list[MapTransform] | None
        Batch transforms run on the device.
    test_transforms : list[MapTransform] | None
        Per-sample transforms of the test split.
    batch_size, num_workers : int
        DataLoader settings.
    pin_memory : bool
        Pin batches in host memory.
    cache_bytes : int | None
        Bound of the decoded-image caches of training and validation together; None: all
        images (at most a quarter of the free space in the cache directory); 0: no cache.
    """

    def __init__(
        self,
        train_val_images: Path | None = None,
        test_images: Path | None = None,
        train_annotations: Path | None = None,
        val_annotations: Path | None = None,
        test_annotations: Path | None = None,
        train_cpu_transforms: list[Callable] | None = None,
        val_cpu_transforms: list[Callable] | None = None,
        train_gpu_transforms: list[Callable] | None = None,
        val_gpu_transforms: list[Callable] | None = None,
        test_transforms: list[Callable] | None = None,
        batch_size: int = 16,
        num_workers: int = 8,
        pin_memory: bool = True,
        cache_bytes: int | None = None,
    ) -> None:
        # fail here, in the main process, rather than in a worker
        optional_import("pycocotools.coco", extra="livecell")
        optional_import("tifffile", extra="livecell")
        super().__init__()
        self.train_val_images = Path(train_val_images) if train_val_images else None
        self.test_images = Path(test_images) if test_images else None
        self.train_annotations = Path(train_annotations) if train_annotations else None
        self.val_annotations = Path(val_annotations) if val_annotations else None
        self.test_annotations = Path(test_annotations) if test_annotations else None
        self._store_transforms(
            train_cpu_transforms, val_cpu_transforms, train_gpu_transforms, val_gpu_transforms
        )
        self.test_transforms = compose(test_transforms)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.cache_bytes = cache_bytes
        self.caches: dict[str, VolumeCache] = {}

    @staticmethod
    def _require(**paths: Path | None) -> None:
        missing = [name for name, value in paths.items() if value is None]
        if missing:
            raise ValueError(f"LiveCellDataModule needs {', '.join(missing)} for this stage")

    def _split_images(self, annotations: Path) -> list[Path]:
        return _image_paths(_coco(annotations), self.train_val_images, annotations)[1]

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate"):
            self._require(
                train_val_images=self.train_val_images,
                train_annotations=self.train_annotations,
                val_annotations=self.val_annotations,
            )
            train = self._split_images(self.train_annotations)
            val = self._split_images(self.val_annotations)
            self.release_caches()
            self.train_dataset = LiveCellDataset(train, self.train_cpu_transforms, None)
            self.val_dataset = LiveCellDataset(val, self.val_cpu_transforms, None)
            if self.cache_bytes != 0:
                datasets = {"train": self.train_dataset, "val": self.val_dataset}
                self.caches = make_caches(
                    {name: ds.cache_layout() for name, ds in datasets.items()},
                    self.cache_bytes,
                    source=str(self.train_val_images),
                )
                for name, cache in self.caches.items():
                    datasets[name].cache = cache
        elif stage == "test":
            self._require(test_images=self.test_images, test_annotations=self.test_annotations)
            self.test_dataset = LiveCellTestDataset(
                self.test_images,
                self.test_transforms,
                self.test_annotations,
                load_labels=True,
            )
        else:
            raise NotImplementedError(f"LiveCellDataModule does not support stage {stage!r}")

    def test_dataloader(self) -> DataLoader:
        self._check_loader_settings()
        return DataLoader(
            self.test_dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=default_collate,  # detections stack per key, as in 0.1.0
            multiprocessing_context=self.multiprocessing_context if self.num_workers else None,
        )
