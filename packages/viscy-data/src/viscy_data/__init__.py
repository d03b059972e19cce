"""PyTorch Lightning DataModules for HCS OME-Zarr microscopy data.

Public names are exported flat from the package and imported lazily (PEP 562), so
``import viscy_data`` stays fast and never pulls an optional dependency: a class whose
extra is missing raises an ImportError naming the extra when it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # types and constants
    "AnnotationColumns": "_typing",
    "CELL_INDEX_CORE_COLUMNS": "_typing",
    "CELL_INDEX_GROUPING_COLUMNS": "_typing",
    "CELL_INDEX_OPS_COLUMNS": "_typing",
    "CELL_INDEX_TIMELAPSE_COLUMNS": "_typing",
    "CellIndex": "_typing",
    "ChannelMap": "_typing",
    "ChannelNormStats": "_typing",
    "DictTransform": "_typing",
    "HCSStackIndex": "_typing",
    "LABEL_CELL_CYCLE_STATE": "_typing",
    "LABEL_CELL_DIVISION_STATE": "_typing",
    "LABEL_CELL_REMODELING_STATE": "_typing",
    "LABEL_INFECTION_STATE": "_typing",
    "LevelNormStats": "_typing",
    "NormMeta": "_typing",
    "OneOrSeq": "_typing",
    "Sample": "_typing",
    "SampleMeta": "_typing",
    "SegmentationSample": "_typing",
    "TripletSample": "_typing",
    "ULTRACK_INDEX_COLUMNS": "_typing",
    # building blocks
    "read_norm_meta": "_utils",
    "INTENSITY_STATISTICS_KEYS": "statistics",
    "intensity_statistics": "statistics",
    "identity_collate": "loading",
    "thread_data_loader": "loading",
    "ThreadDataLoader": "loading",
    # single-cell layer: reading, tracks, statistics, randomness, batch operations
    "PatchBox": "_reader",
    "PatchReader": "_reader",
    "PatchReadError": "_reader",
    "TrackIndex": "_tracks",
    "batch_rng": "_tracks",
    "find_tracks_csv": "_tracks",
    "patch_starts": "_tracks",
    "read_tracks_csv": "_tracks",
    "validate_tracks": "_tracks",
    "NEUTRAL_NORM_STATS": "_norm",
    "NormStatsTable": "_norm",
    "ChannelWiseBatchTransform": "_patch_ops",
    "apply_channel_wise": "_patch_ops",
    "center_crop_yx": "_patch_ops",
    # device-transfer skeleton of the DataModules
    "DeviceTransformMixin": "transfer",
    "StoredTransforms": "transfer",
    "compose": "transfer",
    "trainer_stage": "transfer",
    "spatial_margin": "hcs",
    "SelectWell": "select",
    "ShardedDistributedSampler": "distributed",
    "WorkerShardedSampler": "distributed",
    "FlexibleBatchSampler": "sampler",
    "ChannelDropout": "channel_dropout",
    "read_cell_index": "cell_index",
    "validate_cell_index": "cell_index",
    "write_cell_index": "cell_index",
    # translation pipeline
    "HCSDataModule": "hcs",
    "SlidingWindowDataset": "sliding_window",
    "MaskTestDataset": "sliding_window",
    # single-cell pipelines
    "TripletDataModule": "triplet",
    "TripletDataset": "triplet",
    "PairedChannelTripletDataModule": "paired_channels",
    "ClassificationDataModule": "cell_classification",
    "ClassificationDataset": "cell_classification",
    "CellDivisionTripletDataModule": "cell_division_triplet",
    "CellDivisionTripletDataset": "cell_division_triplet",
    # other pipelines
    "GPUTransformDataModule": "gpu_aug",
    "CachedOmeZarrDataModule": "gpu_aug",
    "CachedOmeZarrDataset": "gpu_aug",
    "MmappedDataModule": "mmap_cache",
    "MmappedDataset": "mmap_cache",
    "LiveCellDataModule": "livecell",
    "LiveCellDataset": "livecell",
    "LiveCellTestDataset": "livecell",
    "CTMCv1DataModule": "ctmc_v1",
    "SegmentationDataModule": "segmentation",
    "SegmentationDataset": "segmentation",
    "CombineMode": "combined",
    "CombinedDataModule": "combined",
    "ConcatDataModule": "combined",
    "BatchedConcatDataModule": "combined",
    "BatchedConcatDataset": "combined",
    "CachedConcatDataModule": "combined",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'viscy_data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static analysers see the real names
    from viscy_data._typing import *  # noqa: F403
