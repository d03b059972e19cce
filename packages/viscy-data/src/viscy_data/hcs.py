"""HCSDataModule: image-to-image translation (virtual staining) from an HCS OME-Zarr plate."""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from iohub.ngff import open_ome_zarr
from lightning.pytorch import LightningDataModule
from monai.transforms import MapTransform
from torch import Tensor
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from viscy_data._imports import optional_import
from viscy_data._patch_ops import apply_channel_wise, center_crop_yx
from viscy_data._reader import PatchBox, PatchReader, worker_start_method
from viscy_data._typing import ChannelMap, NormMeta
from viscy_data._utils import (
    ComposeDict,
    channel_indices,
    check_stage,
    collate_samples,
    ensure_channel_list,
    find_normalize_transforms,
    read_norm_meta,
)
from viscy_data.distributed import WorkerShardedSampler, rank_sampler
from viscy_data.select import filter_fov_names
from viscy_data.sliding_window import MaskTestDataset, SlidingWindowDataset
from viscy_data.transfer import DeviceTransformMixin

__all__ = ["HCSDataModule"]

_logger = logging.getLogger(__name__)


def _monai_spatial_types() -> tuple[type, ...]:
    """MONAI's own transforms that move pixels across the patch border; they declare no
    ``spatial_margin``, so they are known here by type."""
    import monai.transforms as mt

    names = (
        "Affine", "Affined", "RandAffine", "RandAffined", "Rotate", "Rotated", "RandRotate",
        "RandRotated", "Zoom", "Zoomd", "RandZoom", "RandZoomd", "Rand2DElastic",
        "Rand2DElasticd", "Rand3DElastic", "Rand3DElasticd",
    )  # fmt: skip
    return tuple(getattr(mt, n) for n in names if hasattr(mt, n))


def spatial_margin(transform: Callable) -> float:
    """Factor by which the Y/X read must grow so that ``transform``'s output holds only pixels
    of the image (1.0: none needed).

    A transform declares it as a ``spatial_margin`` attribute (viscy-transforms' affine,
    elastic and zoom transforms declare ``sqrt(2)``, enough for a 45 degree rotation);
    MONAI's affine, rotation, zoom and elastic transforms get ``sqrt(2)`` too.

    Parameters
    ----------
    transform : Callable
        One transform (not a ``Compose``).
    """
    declared = getattr(transform, "spatial_margin", None)
    if declared is not None:
        return float(declared)
    return math.sqrt(2) if isinstance(transform, _monai_spatial_types()) else 1.0


def _flatten(transforms: Iterable[Callable] | None) -> list[Callable]:
    flat: list[Callable] = []
    for transform in transforms or ():
        inner = getattr(transform, "transforms", None)
        if isinstance(inner, (list, tuple)):
            flat.extend(_flatten(inner))
        else:
            flat.append(transform)
    return flat


def _croppers(transform: Callable) -> list[Any]:
    """The transform and the croppers it wraps (``RandSpatialCropSamplesd`` holds a
    ``RandSpatialCropSamples`` that holds a ``RandSpatialCrop``)."""
    objs = [transform]
    while len(objs) < 4 and getattr(objs[-1], "cropper", None) is not None:
        objs.append(objs[-1].cropper)
    return objs


def _crop_yx(transform: Callable) -> tuple[int, int] | None:
    """The Y/X size a cropping transform outputs (``roi_size`` / ``spatial_size``), if any."""
    for obj in _croppers(transform):
        if obj is None:
            continue
        for attr in ("roi_size", "spatial_size"):
            size = getattr(obj, attr, None)
            if isinstance(size, (list, tuple)) and len(size) >= 2:
                y, x = (int(s) for s in size[-2:])
                if y > 0 and x > 0:
                    return y, x
    return None


def _uniform_samples_crop(transforms: Iterable[Callable] | None) -> tuple[int, int] | None:
    """Y/X size of a ``num_samples`` crop that draws fixed-size crops at uniformly random
    places (MONAI's ``RandSpatialCropSamplesd`` with ``random_size=False``,
    ``random_center=True``), if the transforms hold one."""
    for transform in _flatten(transforms):
        objs = _croppers(transform)
        if not any(isinstance(getattr(o, "num_samples", None), int) for o in objs):
            continue
        inner = objs[-1]
        if getattr(inner, "random_size", True) or not getattr(inner, "random_center", False):
            return None
        return _crop_yx(transform)
    return None


def _is_identity_crop(transform: Callable, window_zyx: Sequence[int]) -> bool:
    """Whether ``transform`` is a MONAI crop (``RandSpatialCropd``, ``RandSpatialCropSamplesd``,
    ``CenterSpatialCropd``, fixed size) whose ROI covers a whole ``window_zyx`` box, so that it
    returns each box it gets as it is."""
    import monai.transforms as mt

    names = ("RandSpatialCropd", "RandSpatialCropSamplesd", "CenterSpatialCropd")
    if not isinstance(transform, tuple(getattr(mt, n) for n in names if hasattr(mt, n))):
        return False
    objs = _croppers(transform)
    if any(getattr(o, "random_size", False) for o in objs):
        return False
    roi = next((o.roi_size for o in objs if getattr(o, "roi_size", None) is not None), None)
    if not isinstance(roi, (list, tuple)) or len(roi) != len(window_zyx):
        return False
    return all(int(r) <= 0 or int(r) >= int(w) for r, w in zip(roi, window_zyx, strict=True))


def samples_per_stack(transforms: Iterable[Callable] | None) -> int:
    """Patches one stack yields through ``transforms`` (the product of their ``num_samples``,
    e.g. MONAI's ``RandSpatialCropSamplesd``; 1 without such a transform)."""
    count = 1
    for transform in _flatten(transforms):
        for obj in _croppers(transform):
            n = getattr(obj, "num_samples", None)
            if isinstance(n, int) and n > 1:
                count *= n
                break
    return count


def required_yx(transforms: Iterable[Callable] | None, out_yx: Sequence[int]) -> tuple[int, int]:
    """Y/X size to read so that ``transforms`` can produce an ``out_yx`` patch.

    The largest crop size found in the transforms (at least ``out_yx``); without a crop,
    ``out_yx`` grown by the largest :func:`spatial_margin` of the transforms (sqrt(2) for
    affine, rotation, zoom and elastic transforms), else ``out_yx`` itself.
    """
    out = (int(out_yx[0]), int(out_yx[1]))
    flat = _flatten(transforms)
    crops = [size for size in map(_crop_yx, flat) if size is not None]
    if crops:
        return max(max(c[0] for c in crops), out[0]), max(max(c[1] for c in crops), out[1])
    margin = max((spatial_margin(t) for t in flat), default=1.0)
    if margin > 1.0:
        return math.ceil(out[0] * margin), math.ceil(out[1] * margin)
    return out


class HCSDataModule(DeviceTransformMixin, LightningDataModule):
    """Lightning DataModule for translation between channels of an HCS OME-Zarr plate.

    Samples are ``z_window_size``-slice windows at every (FOV, t, z). Without CPU transforms
    for a stage, batches leave the DataLoader in the store's dtype (e.g. uint16, half the
    bytes) and become float32 on the device in ``on_after_batch_transfer``. Training reads, at a
    random Y/X place, only the window the augmentations need (the largest crop they make,
    or ``yx_patch_size`` plus a rotation margin), never the whole FOV; validation reads the
    FOV center; test and predict read whole FOVs.

    Parameters
    ----------
    data_path : str
        HCS OME-Zarr plate (a single position store is accepted for predict).
    source_channel, target_channel : str or sequence of str
        Input and output channel names.
    z_window_size : int
        Z slices per sample.
    split_ratio : float
        Fraction of FOVs used for training; the rest validate. The split is at the FOV
        level, drawn with a generator seeded by ``seed``; both parts must be non-empty.
    batch_size, num_workers : int
        DataLoader settings.
    target_2d : bool
        Keep only the center Z slice of the target.
    yx_patch_size : tuple of int
        Y/X size of training and validation patches delivered to the model.
    normalizations, augmentations : list of transforms, optional
        CPU dictionary transforms (keys are channel names, ``norm_meta`` holds the FOV's
        statistics). Normalizations run in every stage, augmentations in training only.
    mmap_preload : bool
        Copy the used channels of every FOV into memory-mapped float32 tensors (tensordict,
        ``viscy-data[mmap]``) under ``scratch_dir`` and read from those.
    scratch_dir : Path, optional
        Directory for the memory-mapped copy (a temporary directory by default).
    ground_truth_masks : Path, optional
        Test with ground-truth masks (see :class:`~viscy_data.MaskTestDataset`).
    persistent_workers, prefetch_factor, pin_memory :
        DataLoader settings. ``persistent_workers=True`` is recommended for training with
        worker processes: each worker keeps the chunks it decoded (``cache_bytes``) for the
        next epochs instead of starting every epoch with an empty cache (False, the 0.1.0
        default, is kept).
    array_key : str
        Image array within each FOV.
    min_nonzero_fraction, nonzero_threshold, nonzero_channel, max_nonzero_retries :
        Resample training windows with too little signal (see
        :class:`~viscy_data.SlidingWindowDataset`).
    fg_mask_key : str, optional
        Image array with foreground masks, added to samples as ``fg_mask``.
    gpu_augmentations, val_gpu_augmentations : list of transforms, optional
        Applied to the batch (same channel-keyed dictionary, tensors (B, 1, Z, Y, X)) in
        ``on_after_batch_transfer`` during training / validation; patches are then
        center-cropped to ``yx_patch_size``. Any callables on a dict work.
    val_augmentations : list of transforms, optional
        CPU transforms of validation samples (after normalizations).
    include_fov_names, exclude_fov_names : iterable of str, optional
        Keep only / drop these FOVs (``"A/1/0"``) in every stage.
    seed : int
        Seed of the train/validation split.
    cache_bytes : int, optional
        Decoded-chunk cache per process (bytes; ``None`` -> reader default, 0 disables).
    multiprocessing_context : str, optional
        DataLoader start method for workers (e.g. ``"spawn"``).
    patches_per_stack : int
        Training patches drawn from each (FOV, t, z) window read, each at its own random
        Y/X place (1, the default: one). They are read together, so on a plate with large
        chunks (one ZYX stack per chunk) a stack is decoded once for all of them; a step
        still has ``batch_size`` patches, from ``batch_size // (patches_per_stack *
        num_samples)`` windows. The patches of a window share its timepoint and Z range.

    Notes
    -----
    A ``num_samples`` crop in ``augmentations`` (e.g. ``RandSpatialCropSamplesd``) gives, as
    in 0.1.0, ``num_samples`` different crops of each window: ours reads ``num_samples``
    crop-sized boxes of the window at random Y/X places (the distribution of the crop's own
    draws) instead of the whole FOV, and the crop then leaves each box as it is.
    """

    def __init__(
        self,
        data_path: str,
        source_channel: str | Sequence[str],
        target_channel: str | Sequence[str],
        z_window_size: int,
        split_ratio: float = 0.8,
        batch_size: int = 16,
        num_workers: int = 8,
        target_2d: bool = False,
        yx_patch_size: tuple[int, int] = (256, 256),
        normalizations: list[MapTransform] | None = None,
        augmentations: list[MapTransform] | None = None,
        mmap_preload: bool = False,
        scratch_dir: Path | None = None,
        ground_truth_masks: Path | None = None,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        array_key: str = "0",
        pin_memory: bool = True,
        min_nonzero_fraction: float = 0.0,
        nonzero_threshold: float = 0.0,
        nonzero_channel: str | None = None,
        max_nonzero_retries: int = 100,
        fg_mask_key: str | None = None,
        gpu_augmentations: list[MapTransform] | None = None,
        val_augmentations: list[MapTransform] | None = None,
        val_gpu_augmentations: list[MapTransform] | None = None,
        include_fov_names: Iterable[str] | None = None,
        exclude_fov_names: Iterable[str] | None = None,
        seed: int = 42,
        cache_bytes: int | None = None,
        multiprocessing_context: str | None = None,
        patches_per_stack: int = 1,
    ) -> None:
        super().__init__()
        if int(patches_per_stack) < 1:
            raise ValueError(f"patches_per_stack must be >= 1, got {patches_per_stack}")
        self.patches_per_stack = int(patches_per_stack)
        self.data_path = Path(data_path)
        self.source_channel = ensure_channel_list(source_channel)
        self.target_channel = ensure_channel_list(target_channel)
        self.z_window_size = int(z_window_size)
        self.split_ratio = float(split_ratio)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.target_2d = target_2d
        self.yx_patch_size = (int(yx_patch_size[0]), int(yx_patch_size[1]))
        self.normalizations = list(normalizations or [])
        self.augmentations = list(augmentations or [])
        self.val_augmentations = list(val_augmentations or [])
        self.gpu_augmentations = list(gpu_augmentations or [])
        self.val_gpu_augmentations = list(val_gpu_augmentations or [])
        self.mmap_preload = mmap_preload
        self.scratch_dir = None if scratch_dir is None else Path(scratch_dir)
        self.ground_truth_masks = ground_truth_masks
        self.persistent_workers = persistent_workers
        self.prefetch_factor = prefetch_factor
        self.array_key = array_key
        self.pin_memory = pin_memory
        self.min_nonzero_fraction = min_nonzero_fraction
        self.nonzero_threshold = nonzero_threshold
        self.nonzero_channel = nonzero_channel
        self.max_nonzero_retries = max_nonzero_retries
        self.fg_mask_key = fg_mask_key
        self.include_fov_names = None if include_fov_names is None else list(include_fov_names)
        self.exclude_fov_names = list(exclude_fov_names or [])
        self.seed = int(seed)
        self.cache_bytes = cache_bytes
        self.multiprocessing_context = multiprocessing_context
        self._preloaded: dict[str, Tensor] | None = None

    # ---------------------------------------------------------------- helpers

    @property
    def train_patches_per_stack(self) -> int:
        """Training patches per window read (``patches_per_stack`` x the augmentations'
        ``num_samples``); :class:`~viscy_data.ConcatDataModule` loads ``batch_size //`` this
        many windows per step."""
        return self.patches_per_stack * samples_per_stack(self.normalizations + self.augmentations)

    @property
    def channels(self) -> ChannelMap:
        return {"source": self.source_channel, "target": self.target_channel}

    def _open_reader(self) -> PatchReader:
        reader = PatchReader(self.data_path, array_key=self.array_key, cache_bytes=self.cache_bytes)
        channel_indices(
            reader.channel_names,
            self.source_channel + self.target_channel,
            where=f"'{self.data_path}'",
        )
        return reader

    def _select_positions(self, reader: PatchReader, stage: str) -> list[str]:
        names = filter_fov_names(
            reader.position_names,
            exclude_fovs=self.exclude_fov_names,
            include_fovs=self.include_fov_names,
        )
        if not names:
            raise ValueError(
                f"No positions left in '{self.data_path}' for stage '{stage}' after filtering "
                f"(include_fov_names={self.include_fov_names}, "
                f"exclude_fov_names={self.exclude_fov_names}; "
                f"plate has {len(reader.position_names)} FOVs)"
            )
        return names

    def _check_shapes(self, reader: PatchReader, names: list[str], patch: bool) -> None:
        for name in names:
            _, _, z, y, x = reader.shape(name)
            if self.z_window_size > z:
                raise ValueError(
                    f"z_window_size={self.z_window_size} is larger than Z={z} of FOV '{name}' "
                    f"in '{self.data_path}'"
                )
            if patch and (self.yx_patch_size[0] > y or self.yx_patch_size[1] > x):
                raise ValueError(
                    f"yx_patch_size={self.yx_patch_size} is larger than the image ({y}, {x}) "
                    f"of FOV '{name}' in '{self.data_path}'"
                )

    def _check_norm_meta(
        self, names: list[str], norm_meta: dict[str, NormMeta | None], reader: PatchReader
    ) -> None:
        transforms = (
            self.normalizations
            + self.augmentations
            + self.val_augmentations
            + self.gpu_augmentations
            + self.val_gpu_augmentations
        )
        channels = set(self.source_channel + self.target_channel)
        for transform in find_normalize_transforms(transforms):
            keys = transform.keys  # type: ignore[attr-defined]
            level = str(transform.level)  # type: ignore[attr-defined]
            for channel in ensure_channel_list(keys if isinstance(keys, str) else list(keys)):
                if channel not in channels:
                    continue
                for name in names:
                    meta = norm_meta[name]
                    stats = None if meta is None else meta.get(channel, {}).get(level)
                    if level == "timepoint_statistics" and stats is not None:
                        t_size = reader.shape(name)[0]
                        missing_t = [t for t in range(t_size) if str(t) not in stats]
                        if missing_t:
                            stats = None
                    if not stats:
                        raise ValueError(
                            f"Normalization metadata '{level}' for channel '{channel}' is "
                            f"missing in FOV '{name}' of '{self.data_path}' (needed by "
                            f"{type(transform).__name__}); compute it with `viscy preprocess`"
                        )

    def _read_all_norm_meta(self, names: list[str]) -> dict[str, NormMeta | None]:
        with open_ome_zarr(self.data_path, mode="r") as node:
            if not names or names == [""]:
                return {"": read_norm_meta(node)}
            return {name: read_norm_meta(node[name]) for name in names}

    def _preload(self, reader: PatchReader, names: list[str]) -> list[Tensor] | None:
        if not self.mmap_preload:
            return None
        tensordict = optional_import("tensordict")
        if self._preloaded is None:
            self._preloaded = {}
        root = self.scratch_dir or Path(tempfile.mkdtemp(prefix="viscy_mmap_"))
        root.mkdir(parents=True, exist_ok=True)
        channels = tuple(
            channel_indices(reader.channel_names, self.source_channel + self.target_channel)
        )
        for name in tqdm(names, desc="Preloading FOVs", disable=len(names) < 4):
            if name in self._preloaded:
                continue
            t_size, _, z_size, y_size, x_size = reader.shape(name)
            filename = root / f"{name.replace('/', '_') or 'fov'}.mmap"
            buffer = tensordict.MemoryMappedTensor.empty(
                (t_size, len(channels), z_size, y_size, x_size),
                dtype=torch.float32,
                filename=str(filename),
                existsok=True,
            )
            for t in range(t_size):
                box = PatchBox(name, t, channels, (0, z_size), (0, y_size), (0, x_size))
                buffer[t] = torch.from_numpy(reader.read_patch(box).astype(np.float32))
            self._preloaded[name] = buffer
        return [self._preloaded[name] for name in names]

    def _dataset(
        self,
        reader: PatchReader,
        names: list[str],
        transforms: list[Callable],
        *,
        yx_window: tuple[int, int] | None,
        placement: Literal["center", "random"],
        output_yx: tuple[int, int] | None,
        nonzero: bool,
        dataset_cls: type[SlidingWindowDataset] = SlidingWindowDataset,
        target_2d: bool | None = None,
        **kwargs: Any,
    ) -> SlidingWindowDataset:
        if yx_window is not None:
            smallest = (
                min(reader.shape(n)[3] for n in names),
                min(reader.shape(n)[4] for n in names),
            )
            yx_window = (min(yx_window[0], smallest[0]), min(yx_window[1], smallest[1]))
        preloaded = self._preload(reader, names)
        node = open_ome_zarr(self.data_path, mode="r")
        try:
            positions = [node] if names == [""] else [node[name] for name in names]
            return self._make_dataset(
                dataset_cls,
                reader,
                positions,
                transforms,
                preloaded,
                yx_window,
                placement,
                output_yx,
                nonzero,
                self.target_2d if target_2d is None else target_2d,
                **kwargs,
            )
        finally:
            node.close()

    def _make_dataset(
        self,
        dataset_cls: type[SlidingWindowDataset],
        reader: PatchReader,
        positions: list[Any],
        transforms: list[Callable],
        preloaded: list[Tensor] | None,
        yx_window: tuple[int, int] | None,
        placement: Literal["center", "random"],
        output_yx: tuple[int, int] | None,
        nonzero: bool,
        target_2d: bool,
        **kwargs: Any,
    ) -> SlidingWindowDataset:
        return dataset_cls(
            positions=positions,
            channels=self.channels,
            z_window_size=self.z_window_size,
            array_key=self.array_key,
            transform=ComposeDict(transforms) if transforms else None,
            min_nonzero_fraction=self.min_nonzero_fraction if nonzero else 0.0,
            nonzero_threshold=self.nonzero_threshold,
            nonzero_channel=self.nonzero_channel,
            max_nonzero_retries=self.max_nonzero_retries,
            fg_mask_key=self.fg_mask_key,
            preloaded_fovs=preloaded,
            yx_window=yx_window,
            yx_placement=placement,
            output_yx=output_yx,
            target_2d=target_2d,
            reader=reader,
            cache_bytes=self.cache_bytes,
            **{"float_output": False, **kwargs},  # integer patches become float on the device
        )

    # ---------------------------------------------------------------- hooks

    def prepare_data(self) -> None:
        """Nothing to download; data is read in place (preloading happens in ``setup``)."""

    def setup(self, stage: str | None = None) -> None:
        """Validate the plate and the configuration, then build the stage's datasets.

        Raises
        ------
        ValueError
            For a path that is not an OME-Zarr plate, a channel not in the plate (listing
            the available ones), ``z_window_size`` larger than Z, a patch larger than the
            image, no positions after filtering, missing normalization metadata (naming
            the FOV and channel), or a split that leaves training or validation empty.
        """
        stage = stage or "fit"
        check_stage(stage, "HCSDataModule", ("fit", "validate", "test", "predict"))
        reader = self._open_reader()
        if reader.position_names == [""] and stage in ("fit", "validate"):
            raise ValueError(
                f"'{self.data_path}' is a single position; training needs an HCS plate"
            )
        names = self._select_positions(reader, stage)
        self._check_shapes(reader, names, patch=stage in ("fit", "validate"))
        norm_meta = self._read_all_norm_meta(names)
        self._check_norm_meta(names, norm_meta, reader)
        if stage in ("fit", "validate"):
            self._setup_fit(reader, names)
        elif stage == "test":
            self.test_dataset = self._dataset(
                reader,
                names,
                self.normalizations,
                yx_window=None,
                placement="center",
                output_yx=None,
                nonzero=False,
                dataset_cls=MaskTestDataset,
                ground_truth_masks=self.ground_truth_masks,
            )
        else:
            self.predict_dataset = self._dataset(
                reader,
                names,
                self.normalizations,
                yx_window=None,
                placement="center",
                output_yx=None,
                nonzero=False,
            )
        self._compose_device_transforms()

    def _split(self, names: list[str]) -> tuple[list[str], list[str]]:
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(names), generator=generator).tolist()
        n_train = int(len(names) * self.split_ratio)
        if n_train < 1 or n_train >= len(names):
            raise ValueError(
                f"split_ratio={self.split_ratio} of {len(names)} FOV(s) in '{self.data_path}' "
                f"leaves {n_train} for training and {len(names) - n_train} for validation; "
                "both need at least one FOV"
            )
        train = sorted(names[i] for i in order[:n_train])
        val = sorted(names[i] for i in order[n_train:])
        return train, val

    def _setup_fit(self, reader: PatchReader, names: list[str]) -> None:
        train_transforms = self.normalizations + self.augmentations
        self._stacks_per_batch(train_transforms, "augmentations", self.patches_per_stack)
        self._stacks_per_batch(self.normalizations + self.val_augmentations, "val_augmentations")
        self.train_fov_names, self.val_fov_names = self._split(names)
        train_out = required_yx(self.gpu_augmentations, self.yx_patch_size)
        val_out = required_yx(self.val_gpu_augmentations, self.yx_patch_size)
        train_window = required_yx(self.augmentations, train_out)
        # a num_samples crop as large as the window read would repeat it num_samples times:
        # read that many boxes of the window instead (0.1.0 cropped them from the whole FOV)
        n_samples = samples_per_stack(train_transforms)
        lifted = n_samples > 1 and _uniform_samples_crop(train_transforms) == train_window
        # crops that return the box read as it is (the usual 0.1.0 way of asking for the patch
        # size) are skipped: same values, without MONAI's per-sample copies
        window_zyx = (self.z_window_size, *train_window)
        flat = _flatten(train_transforms)
        kept = [
            t
            for t in flat
            if not (_is_identity_crop(t, window_zyx) and (lifted or samples_per_stack([t]) == 1))
        ]
        extra: dict[str, Any] = {}
        if len(kept) < len(flat):
            train_transforms = kept
            extra["float_output"] = True  # the batches' dtype stays what the crop gave
        self.train_dataset = self._dataset(
            reader,
            self.train_fov_names,
            train_transforms,
            yx_window=train_window,
            placement="random",
            output_yx=train_out,
            nonzero=True,
            target_2d=self.target_2d and not self._target_2d_on_device("train"),
            patches_per_stack=self.patches_per_stack * (n_samples if lifted else 1),
            first_sample_only=lifted,
            **extra,
        )
        self.val_dataset = self._dataset(
            reader,
            self.val_fov_names,
            self.normalizations + self.val_augmentations,
            yx_window=required_yx(self.val_augmentations, val_out),
            placement="center",
            output_yx=val_out,
            nonzero=False,
            target_2d=self.target_2d and not self._target_2d_on_device("val"),
        )

    def _start_method(self) -> str | None:
        """Worker start method: the configured one, else ``forkserver`` instead of a default
        ``fork`` once this process has used tensorstore (see ``worker_start_method``)."""
        return worker_start_method(self.multiprocessing_context, self.num_workers)

    def _stacks_per_batch(self, transforms: list[Callable], option: str, patches: int = 1) -> int:
        """Stacks to load per batch: ``batch_size // (patches * num_samples)`` of the CPU
        transforms, so that a step sees ``batch_size`` patches (as in 0.1.0).

        Raises
        ------
        ValueError
            If ``batch_size`` is not divisible by that number of patches per stack.
        """
        n = samples_per_stack(transforms)
        if self.batch_size % (n * patches):
            what = f"num_samples={n} of the {option}"
            if patches > 1:
                what = f"patches_per_stack={patches}" + (f" x {what}" if n > 1 else "")
            raise ValueError(
                f"batch_size={self.batch_size} must be divisible by {what} (each stack gives "
                f"{n * patches} patches, a step {self.batch_size})"
            )
        return self.batch_size // (n * patches)

    def _loader(
        self,
        dataset: SlidingWindowDataset,
        shuffle: bool,
        sampler: Sampler | None = None,
        batch_size: int | None = None,
        drop_last: bool = False,
    ) -> DataLoader:
        workers = self.num_workers
        return DataLoader(
            dataset,
            batch_size=self.batch_size if batch_size is None else batch_size,
            drop_last=drop_last,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate_samples,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and workers > 0,
            prefetch_factor=self.prefetch_factor if workers > 0 else None,
            multiprocessing_context=self._start_method(),
        )

    def train_dataloader(self) -> DataLoader:
        """Training batches of ``batch_size`` patches; the last partial batch is dropped
        (with several worker processes, shards are padded to whole batches instead)."""
        stacks = self._stacks_per_batch(
            self.normalizations + self.augmentations, "augmentations", self.patches_per_stack
        )
        if self.num_workers > 1 and not self._distributed():
            # each worker process reads (and caches) one contiguous shard of the windows
            sampler = WorkerShardedSampler(
                len(self.train_dataset), stacks, self.num_workers, seed=self.seed
            )
            return self._loader(
                self.train_dataset, shuffle=False, sampler=sampler, batch_size=stacks
            )
        sampler = rank_sampler(self.trainer, self.train_dataset, True, self.seed, drop_last=True)
        if sampler is not None:  # DDP: shard here, whatever use_distributed_sampler says
            return self._loader(
                self.train_dataset, shuffle=False, sampler=sampler, batch_size=stacks,
                drop_last=True,
            )  # fmt: skip
        # as in 0.1.0, the last partial batch of an epoch is dropped in training
        return self._loader(self.train_dataset, shuffle=True, batch_size=stacks, drop_last=True)

    def _distributed(self) -> bool:
        trainer = getattr(self, "trainer", None)
        return trainer is not None and getattr(trainer, "world_size", 1) > 1

    def val_dataloader(self) -> DataLoader:
        sampler = rank_sampler(getattr(self, "trainer", None), self.val_dataset, False)
        stacks = self._stacks_per_batch(
            self.normalizations + self.val_augmentations, "val_augmentations"
        )
        return self._loader(self.val_dataset, shuffle=False, sampler=sampler, batch_size=stacks)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_dataset, shuffle=False)

    def _build_device_transform(self, stage: str | None) -> Callable[[dict], dict] | None:
        """``gpu_augmentations`` in training, ``val_gpu_augmentations`` in validation and the
        sanity check, then a center crop to ``yx_patch_size``; nothing in other stages."""
        if stage == "train":
            transforms = self.gpu_augmentations
        elif stage in ("val", "sanity"):
            transforms = self.val_gpu_augmentations
        else:
            return None
        if not transforms:
            return None
        self._batch_keyed(transforms)  # a mix of key styles fails here, not mid-epoch
        return partial(
            self.apply_batch_transforms,
            transforms=list(transforms),
            target_2d=self._target_2d_on_device(stage),
        )

    def _prepare_batch(self, batch: Any) -> Any:
        return self.to_float(batch)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Apply ``gpu_augmentations`` (training) or ``val_gpu_augmentations`` (validation).

        The transforms see ``{channel: (B, 1, Z, Y, X), "norm_meta": ...}``; source and
        target are stacked back and center-cropped to ``yx_patch_size``. Integer batches
        become float32 in every stage.
        """
        if not isinstance(batch, dict):
            return batch
        return super().on_after_batch_transfer(batch, dataloader_idx)

    @staticmethod
    def to_float(batch: dict) -> dict:
        """Convert integer ``source``/``target`` tensors (store dtype) to float32."""
        out = dict(batch)
        for key in ("source", "target"):
            value = out.get(key)
            if isinstance(value, Tensor) and not value.is_floating_point():
                out[key] = value.to(torch.float32)
        return out

    def _batch_keyed(self, transforms: Sequence[Callable]) -> bool:
        """Whether ``transforms`` are keyed by the batch's ``source``/``target`` (0.1.0 style)
        rather than by channel names.

        Raises
        ------
        ValueError
            If some transforms use batch keys and others channel names.
        """
        batch_keys = {"source", "target", "fg_mask"}
        styles = set()
        for transform in _flatten(transforms):
            keys = getattr(transform, "keys", None)
            if keys is None or callable(keys):
                continue
            keys = {keys} if isinstance(keys, str) else set(keys)
            if keys & {"source", "target"}:
                styles.add("batch")
            if keys - batch_keys:
                styles.add("channel")
        if len(styles) > 1:
            raise ValueError(
                "gpu_augmentations / val_gpu_augmentations mix batch keys ('source', "
                "'target') and channel names "
                f"{self.source_channel + self.target_channel}; use one or the other"
            )
        return styles == {"batch"}

    def _target_2d_on_device(self, stage: str | None) -> bool:
        """``target_2d`` is applied after the stage's GPU augmentations (as in 0.1.0)."""
        if not self.target_2d:
            return False
        if stage == "train":
            return bool(self.gpu_augmentations)
        return stage in ("val", "sanity") and bool(self.val_gpu_augmentations)

    def apply_batch_transforms(
        self, batch: dict, transforms: Sequence[Callable], target_2d: bool = False
    ) -> dict:
        """Run GPU augmentations on a collated batch, then ``target_2d`` and a center crop to
        ``yx_patch_size``.

        Transforms keyed ``source``/``target`` (0.1.0 configs) see the batch itself,
        ``{"source": (B, Cs, Z, Y, X), "target": (B, Ct, Z, Y, X), "norm_meta": ...}``;
        transforms keyed by channel names see one ``(B, 1, Z, Y, X)`` entry per channel
        (:func:`~viscy_data._patch_ops.apply_channel_wise`). Either way all tensors go
        through one call, so random transforms draw the same parameters for all of them,
        and a foreground mask travels as an extra target channel, so spatial
        augmentations move it with the target (with channel-name keys, add ``"fg_mask"``
        to a transform's keys to move it). ``target_2d`` keeps the center Z slice of the
        target and mask afterwards.
        """
        keys = [k for k in ("source", "target") if k in batch]
        out = dict(batch)
        if not keys:
            return out
        fg = batch.get("fg_mask") if "target" in batch else None
        target = batch.get("target")
        if fg is not None:
            fg = fg.to(target.dtype) if target.is_floating_point() else fg.float()
            out["target"] = torch.cat([target, fg], dim=1)
        n_target = 0 if target is None else target.shape[1]
        if self._batch_keyed(transforms):
            sample = {k: out[k] for k in keys}
            if batch.get("norm_meta") is not None:
                sample["norm_meta"] = batch["norm_meta"]
            for transform in transforms:
                sample = transform(sample)
            transformed = [sample[k] for k in keys]
        else:
            groups = {
                "source": self.source_channel,
                "target": self.target_channel + (["fg_mask"] if fg is not None else []),
            }
            transformed = apply_channel_wise(
                transforms, [groups[k] for k in keys], [out[k] for k in keys],
                batch.get("norm_meta"),
            )  # fmt: skip
        for key, patch in zip(keys, transformed, strict=True):
            out[key] = center_crop_yx(patch, self.yx_patch_size)
        if fg is not None:
            out["fg_mask"] = out["target"][:, n_target:]
            out["target"] = out["target"][:, :n_target]
        if target_2d:
            for key in ("target", "fg_mask"):
                if key in out:
                    center = out[key].shape[2] // 2
                    out[key] = out[key][:, :, center : center + 1]
        return out
