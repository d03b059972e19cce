"""Types and constants shared by every viscy-data pipeline.

This module imports nothing from the package, so any module may import it. It does not use
``from __future__ import annotations``: TypedDict must see ``NotRequired`` at runtime.
"""

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, NotRequired, TypedDict, TypeVar

from torch import Tensor

T = TypeVar("T")

OneOrSeq = T | Sequence[T]
"""A single value or a sequence of them (e.g. one channel name or several)."""

DictTransform = Callable[[dict[str, Tensor | dict]], dict[str, Tensor]]
"""A transform on a sample or batch dictionary (MONAI dictionary-transform style)."""

AnnotationColumns = Literal[
    "infection_state", "cell_division_state", "cell_remodeling_state", "cell_cycle_state"
]
"""Annotation columns that cell-classification pipelines can train on."""


class LevelNormStats(TypedDict, total=False):
    """Intensity statistics of one channel at one level (dataset, FOV or timepoint)."""

    mean: float | Tensor
    std: float | Tensor
    median: float | Tensor
    iqr: float | Tensor
    min: float | Tensor
    max: float | Tensor
    p1: float | Tensor
    p5: float | Tensor
    p95: float | Tensor
    p99: float | Tensor


class ChannelNormStats(TypedDict, total=False):
    """Normalization statistics of one channel.

    ``timepoint_statistics`` is keyed by ``str(t)`` when read from a store; datasets
    resolve it to the sample's timepoint, so in a sample it is a single
    :class:`LevelNormStats`.
    """

    dataset_statistics: LevelNormStats
    fov_statistics: LevelNormStats
    timepoint_statistics: dict[str, LevelNormStats] | LevelNormStats


NormMeta = dict[str, ChannelNormStats]
"""Normalization metadata of a FOV or sample: channel name -> statistics."""


class HCSStackIndex(NamedTuple):
    """Where a sample came from: FOV name, timepoint and first Z slice of the window.

    Attributes
    ----------
    image : str
        FOV name in the plate, e.g. ``"A/1/0"``.
    time : int
        Timepoint index.
    z : int
        Index of the first Z slice of the sample's window.
    """

    image: str
    time: int
    z: int


class ChannelMap(TypedDict):
    """Source (input) and target (output) channel names of a translation pipeline."""

    source: OneOrSeq[str]
    target: NotRequired[OneOrSeq[str]]


class Sample(TypedDict, total=False):
    """A translation sample (or, after collation, a batch)."""

    index: HCSStackIndex
    source: OneOrSeq[Tensor]
    target: OneOrSeq[Tensor]
    weight: OneOrSeq[Tensor]
    labels: OneOrSeq[Tensor]
    norm_meta: NormMeta | None


class CellIndex(TypedDict, total=False):
    """Per-cell index of a single-cell sample (the ``ULTRACK_INDEX_COLUMNS``): one value per
    sample, or a sequence of them once collated into a batch (as in 0.1.0)."""

    fov_name: str | Sequence[str]
    track_id: int | Sequence[int]
    t: int | Sequence[int]
    id: int | Sequence[int]
    parent_track_id: int | Sequence[int]
    parent_id: int | Sequence[int]
    z: float | Sequence[float]
    y: float | Sequence[float]
    x: float | Sequence[float]


class SampleMeta(TypedDict, total=False):
    """Per-sample metadata of multi-experiment single-cell pipelines."""

    experiment: str
    condition: str
    fov_name: str
    global_track_id: str
    track_id: int
    t: int
    hours_post_perturbation: float
    lineage_id: str


class TripletSample(TypedDict, total=False):
    """A contrastive sample: anchor, positive and negative patches (B, C, Z, Y, X)."""

    anchor: Tensor
    positive: Tensor
    negative: Tensor
    index: CellIndex
    anchor_norm_meta: NormMeta | None
    positive_norm_meta: NormMeta | None
    negative_norm_meta: NormMeta | None


class SegmentationSample(TypedDict):
    """A prediction / ground-truth pair for segmentation evaluation."""

    pred: Tensor
    target: Tensor
    position_idx: OneOrSeq[int]
    time_idx: OneOrSeq[int]


ULTRACK_INDEX_COLUMNS: list[str] = [
    "fov_name",
    "track_id",
    "t",
    "id",
    "parent_track_id",
    "parent_id",
    "z",
    "y",
    "x",
]
"""Columns of an Ultrack-style tracks table that identify a cell observation."""

CELL_INDEX_CORE_COLUMNS: list[str] = [
    "cell_id",
    "experiment",
    "store_path",
    "tracks_path",
    "fov",
    "well",
    "y",
    "x",
    "z",
]
CELL_INDEX_GROUPING_COLUMNS: list[str] = ["perturbation", "channel_name", "microscope"]
CELL_INDEX_OPS_COLUMNS: list[str] = ["gene_name", "reporter", "sgRNA"]
CELL_INDEX_TIMELAPSE_COLUMNS: list[str] = [
    "t",
    "track_id",
    "global_track_id",
    "lineage_id",
    "parent_track_id",
    "hours_post_perturbation",
    "interval_minutes",
]

LABEL_INFECTION_STATE: dict[str, int] = {"uninfected": 0, "infected": 1, "unknown": -1}
LABEL_CELL_DIVISION_STATE: dict[str, int] = {"interphase": 0, "mitosis": 1, "unknown": -1}
LABEL_CELL_REMODELING_STATE: dict[str, int] = {"no_remodel": 0, "remodeling": 1, "unknown": -1}
LABEL_CELL_CYCLE_STATE: dict[str, int] = {
    "G1": 0,
    "S": 1,
    "G2": 2,
    "prophase": 3,
    "metaphase": 4,
    "anaphase": 5,
    "telophase": 6,
    "unknown": -1,
}
