"""Triplets of tracked cells for contrastive learning (DynaCLR).

An anchor is a cell patch at time ``t``; its positive is the same cell at ``t + dt`` (or, with
``follow_lineage=True``, its daughter after a division); its negative is another track.
:class:`TripletDataset` draws a whole batch of anchors, positives and negatives and reads all
their patches in one batched call of :class:`~viscy_data._reader.PatchReader`.
:class:`TripletDataModule` finds the tracks CSVs, validates everything at ``setup()``, serves
the batches with thread workers and, on the device, normalizes, augments and center-crops them
channel by channel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from iohub.ngff.nodes import Position
from monai.transforms import MapTransform
from torch import Tensor
from torch.utils.data import Dataset

from viscy_data._norm import NormStatsTable
from viscy_data._reader import PatchBox, PatchReader
from viscy_data._tracks import (
    TrackIndex,
    batch_rng,
    clear_of_border,
    find_tracks_csv,
    patch_starts,
    read_tracks_csv,
    validate_tracks,
)
from viscy_data._triplet_base import TripletDataModuleBase, split_items
from viscy_data._typing import ULTRACK_INDEX_COLUMNS
from viscy_data._utils import check_stage
from viscy_data.loading import identity_collate

__all__ = ["TripletDataModule", "TripletDataset"]

_logger = logging.getLogger(__name__)


def _position_location(position: Position) -> tuple[Path, str]:
    """Store root and FOV name (``"A/1/0"``) of an iohub position."""
    group = position.zgroup
    root = getattr(group.store, "root", None)
    if root is None:
        raise ValueError(f"Position {group.path!r} is not in a local store; pass reader=")
    return Path(root), group.path.strip("/")


class TripletDataset(Dataset):
    """Anchor / positive / negative cell patches from tracked time-lapse FOVs.

    Parameters
    ----------
    positions : list[Position]
        iohub positions (FOVs) of one plate; only their names and store are used.
    tracks_tables : list[pd.DataFrame]
        Tracks of each position (same order), columns ``track_id, t, y, x`` and optionally
        ``id, parent_track_id, parent_id, z``; validated here.
    channel_names : list[str]
        Channels to read, in output order.
    initial_yx_patch_size : tuple[int, int]
        Y and X size of the patches read around each centroid.
    z_range : slice
        Z slices to read (same for all cells).
    fit : bool
        Sample triplets (True) or return every cell once with its index (False, predict).
    predict_cells : bool
        In predict mode, keep only the cells listed by ``include_fov_names`` and
        ``include_track_ids`` (paired element-wise; a single FOV name applies to all ids).
    include_fov_names, include_track_ids : list, optional
        Cells to predict when ``predict_cells``.
    time_interval : "any" or int
        Frames between anchor and positive; ``"any"`` uses the anchor cell itself as positive
        (its two views then differ by augmentation).
    return_negative : bool
        Also return a negative patch per anchor.
    reader : PatchReader, optional
        Reader of the plate; opened on the positions' store when not given.
    exclude_border_cells : bool
        Drop cells (anchors and positive candidates) whose center is within half a patch
        of the Y/X border, inclusive (0.1.0's rule, the default; Z is not checked). With
        ``False`` they are kept and their read window is shifted inward.
    follow_lineage : bool
        Let a positive be a daughter after a division when the anchor's track ends before
        ``t + time_interval``. ``False`` (default, as in 0.1.0): positives come from the
        anchor's own track only.
    seed : int
        Seed of all sampling randomness (positive daughter choice, negatives).
    norm_metas : list[dict or None], optional
        Normalization metadata of each position (``read_norm_meta``); attached to batches as
        ``<key>_norm_meta``.
    """

    def __init__(
        self,
        positions: list[Position],
        tracks_tables: list[pd.DataFrame],
        channel_names: list[str],
        initial_yx_patch_size: tuple[int, int],
        z_range: slice,
        fit: bool = True,
        predict_cells: bool = False,
        include_fov_names: list[str] | None = None,
        include_track_ids: list[int] | None = None,
        time_interval: Literal["any"] | int = "any",
        return_negative: bool = True,
        *,
        reader: PatchReader | None = None,
        exclude_border_cells: bool = True,
        follow_lineage: bool = False,
        seed: int = 0,
        norm_metas: list[dict | None] | None = None,
    ) -> None:
        super().__init__()
        if len(positions) != len(tracks_tables):
            raise ValueError(
                f"Got {len(positions)} positions but {len(tracks_tables)} tracks tables"
            )
        if not positions:
            raise ValueError("TripletDataset needs at least one position")
        locations = [_position_location(p) for p in positions]
        self.fov_names = [name for _, name in locations]
        if reader is None:
            reader = PatchReader(locations[0][0])
        self.reader = reader
        self.fit = fit
        self.return_negative = return_negative and fit
        self.time_interval = time_interval
        self.seed = int(seed)
        self.epoch = 0
        self.channel_names = list(channel_names)
        self.channel_indices = self._channel_indices(self.channel_names)
        if isinstance(z_range, slice):
            self.z_range = (int(z_range.start or 0), int(z_range.stop))
        else:  # a (start, stop) pair works too
            self.z_range = (int(z_range[0]), int(z_range[1]))
        self.yx_patch_size = (int(initial_yx_patch_size[0]), int(initial_yx_patch_size[1]))
        shapes = [reader.shape(name) for name in self.fov_names]
        self._check_geometry(shapes)
        tables = []
        for i, (name, table, shape) in enumerate(
            zip(self.fov_names, tracks_tables, shapes, strict=True)
        ):
            table = validate_tracks(table, f"tracks of FOV '{name}'", name, shape)
            tables.append(table.assign(fov_index=np.int64(i)))
        tracks = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
        tracks = self._select_cells(
            tracks,
            shapes,
            predict_cells,
            include_fov_names,
            include_track_ids,
            exclude_border_cells,
        )
        if len(tracks) == 0:
            raise ValueError(
                f"No cells left to sample from FOVs {self.fov_names[:5]} after filtering"
            )
        self.index = TrackIndex(
            tracks, time_interval=time_interval, need_positive=fit, follow_lineage=follow_lineage
        )
        if fit and len(self.index) == 0:
            raise ValueError(
                f"No anchor has a positive {time_interval} frame(s) later in FOVs "
                f"{self.fov_names[:5]}: tracks are shorter than time_interval"
            )
        if self.return_negative and self.index.n_tracks < 2:
            raise ValueError(
                f"return_negative needs at least two tracks, FOVs {self.fov_names[:5]} have one"
            )
        extents = np.array([s[3:] for s in shapes], dtype=np.int64)
        fov = self.index.fov_index
        self._y0 = patch_starts(
            self.index.tracks["y"].to_numpy(), self.yx_patch_size[0], extents[fov, 0]
        )
        self._x0 = patch_starts(
            self.index.tracks["x"].to_numpy(), self.yx_patch_size[1], extents[fov, 1]
        )
        self._norm = NormStatsTable(
            norm_metas if norm_metas is not None else [None] * len(self.fov_names),
            self.channel_names,
            [s[0] for s in shapes],
            self.fov_names,
        )

    # ------------------------------------------------------------------ setup checks

    def _channel_indices(self, names: list[str]) -> tuple[int, ...]:
        available = self.reader.channel_names
        unknown = [c for c in names if c not in available]
        if unknown:
            raise ValueError(
                f"Unknown channel(s) {unknown} in {self.reader.store_path}; "
                f"channels are {available}"
            )
        if not names:
            raise ValueError("At least one channel is needed")
        return tuple(available.index(c) for c in names)

    def _check_geometry(self, shapes: list[tuple[int, ...]]) -> None:
        z0, z1 = self.z_range
        py, px = self.yx_patch_size
        if py < 1 or px < 1:
            raise ValueError(f"initial_yx_patch_size must be positive, got {self.yx_patch_size}")
        for name, (_, _, nz, ny, nx) in zip(self.fov_names, shapes, strict=True):
            if not 0 <= z0 < z1 <= nz:
                raise ValueError(
                    f"z_range {self.z_range} is outside the Z stack of FOV '{name}' "
                    f"(Z size {nz}, valid 0 <= start < stop <= {nz})"
                )
            if py > ny or px > nx:
                raise ValueError(
                    f"Patch size {self.yx_patch_size} is larger than the image of FOV "
                    f"'{name}' (Y, X = {ny}, {nx})"
                )

    def _select_cells(
        self,
        tracks: pd.DataFrame,
        shapes: list[tuple[int, ...]],
        predict_cells: bool,
        include_fov_names: list[str] | None,
        include_track_ids: list[int] | None,
        exclude_border_cells: bool,
    ) -> pd.DataFrame:
        if predict_cells and not self.fit:
            if not include_fov_names or include_track_ids is None:
                raise ValueError("predict_cells needs include_fov_names and include_track_ids")
            fovs = [f.strip("/") for f in include_fov_names]
            ids = [int(i) for i in include_track_ids]
            if len(fovs) == 1:
                fovs = fovs * len(ids)
            if len(fovs) != len(ids):
                raise ValueError(
                    "include_fov_names and include_track_ids must have the same length "
                    f"(or one FOV name), got {len(fovs)} and {len(ids)}"
                )
            wanted = pd.MultiIndex.from_arrays([fovs, ids])
            have = pd.MultiIndex.from_arrays([tracks["fov_name"], tracks["track_id"]])
            tracks = tracks[have.isin(wanted)]
        if exclude_border_cells:
            extents = np.array([s[3:] for s in shapes], dtype=np.int64)
            fov = tracks["fov_index"].to_numpy()
            inside = clear_of_border(
                tracks["y"].to_numpy(), self.yx_patch_size[0], extents[fov, 0]
            ) & clear_of_border(tracks["x"].to_numpy(), self.yx_patch_size[1], extents[fov, 1])
            tracks = tracks[inside]
        return tracks.reset_index(drop=True)

    # ------------------------------------------------------------------ sampling

    def __len__(self) -> int:
        return len(self.index)

    def _boxes(self, rows: np.ndarray) -> list[PatchBox]:
        py, px = self.yx_patch_size
        fov = self.index.fov_index[rows]
        t = self.index.t[rows]
        y0 = self._y0[rows]
        x0 = self._x0[rows]
        return [
            PatchBox(
                position=self.fov_names[f],
                t=int(tt),
                channels=self.channel_indices,
                z=self.z_range,
                y=(int(y), int(y) + py),
                x=(int(x), int(x) + px),
            )
            for f, tt, y, x in zip(fov, t, y0, x0, strict=True)
        ]

    def _read_rows(self, rows: np.ndarray) -> Tensor:
        """Patches of ``rows`` (N, C, Z, Y, X) in the store's dtype, in the order of ``rows``.

        Read straight into one batch array in final order; a row repeated in the batch is
        read once (see :meth:`PatchReader.read_patches`). Integer images stay integer
        (uint16 is half the bytes of float32 to move to the device);
        :meth:`TripletDataModule.on_after_batch_transfer` converts to float32.
        """
        patches = self.reader.read_patches(self._boxes(rows))
        if (
            not patches.dtype.isnative
            or patches.dtype.kind not in "uif"
            or patches.dtype == np.uint64
        ):
            patches = patches.astype(np.float32)
        return torch.from_numpy(patches)

    def _cell_index(self, rows: np.ndarray) -> dict[str, Any]:
        table = self.index.tracks
        out: dict[str, Any] = {"fov_name": table["fov_name"].to_numpy()[rows].tolist()}
        for column in ULTRACK_INDEX_COLUMNS[1:]:
            out[column] = torch.from_numpy(table[column].to_numpy(dtype=np.int64)[rows])
        return out

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that the per-batch draws depend on (see :func:`batch_rng`)."""
        self.epoch = int(epoch)

    def sample_rows(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """Rows of the tracks table used for the anchors, positives and negatives of a batch.

        Randomness comes from :func:`~viscy_data.batch_rng` (``seed``, the batch's indices and
        the epoch), so the same batch always gets the same triplets whichever thread draws it.
        """
        idx = np.asarray(indices, dtype=np.int64)
        anchors = self.index.anchors[idx]
        rows = {"anchor": anchors}
        if not self.fit:
            return rows
        rng = batch_rng(self.seed, idx, epoch=self.epoch)
        rows["positive"] = self.index.positives(anchors, rng)
        if self.return_negative:
            rows["negative"] = self.index.negatives(anchors, rows["positive"], rng)
        return rows

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        """A whole batch: ``anchor`` (+ ``positive``, ``negative``) tensors (B, C, Z, Y, X) in
        the store's dtype, their ``<key>_norm_meta`` and, in predict mode, the cells' ``index``."""
        rows = self.sample_rows(indices)
        keys = list(rows)
        all_rows = np.concatenate([rows[k] for k in keys])
        patches = self._read_rows(all_rows)
        batch: dict[str, Any] = {}
        n = len(indices)
        for i, key in enumerate(keys):
            batch[key] = patches[i * n : (i + 1) * n]
            meta = self._norm.gather(self.index.fov_index[rows[key]], self.index.t[rows[key]])
            if meta is not None:
                batch[f"{key}_norm_meta"] = meta
        if not self.fit:
            batch["index"] = self._cell_index(rows["anchor"])
        return batch

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One sample, as a batch of one (leading dimension 1)."""
        return self.__getitems__([index])


class TripletDataModule(TripletDataModuleBase):
    """Lightning DataModule of cell triplets from an HCS OME-Zarr plate and its tracks.

    Parameters
    ----------
    data_path : str
        HCS OME-Zarr plate.
    tracks_path : str
        Root of the tracks CSVs, one per FOV at ``<tracks_path>/<row>/<col>/<fov>/*.csv``.
    source_channel : str or sequence of str
        Channels to read.
    z_range : tuple[int, int]
        Z slices ``[start, stop)`` to read.
    initial_yx_patch_size : tuple[int, int]
        Patch size read around each cell (room for augmentations).
    final_yx_patch_size : tuple[int, int]
        Patch size after the final center crop (what the model sees).
    split_ratio : float
        Fraction of FOVs used for training, the rest for validation.
    batch_size, num_workers : int
        Loader batch size and number of worker threads.
    normalizations, augmentations : list of dictionary transforms, optional
        Applied on the device, channel by channel (keys are channel names, the batch's
        ``norm_meta`` is available to them). Augmentations run during training, during
        validation only with ``augment_validation``, never during the sanity check.
    augment_validation : bool
        Augment validation batches too.
    fit_include_wells : list[str], optional
        Wells (``"A/1"``) used for fitting; all when None.
    fit_exclude_fovs : list[str], optional
        FOVs (``"A/1/0"``) left out of fitting.
    predict_cells : bool
        Predict only the cells given by ``include_fov_names`` / ``include_track_ids``.
    include_fov_names, include_track_ids : list, optional
        Cells to predict (paired element-wise).
    time_interval : "any" or int
        Frames between anchor and positive.
    return_negative : bool
        Also return negatives.
    persistent_workers, prefetch_factor, pin_memory
        Passed to the loaders.
    z_window_size : int, optional
        Kept for compatibility; must equal the ``z_range`` length when given.
    cache_pool_bytes : int, optional
        Decoded-chunk cache of the reader, in bytes (``None``: the reader's default, ``0``
        disables it).
    exclude_border_cells : bool
        Drop cells within half a patch of the Y/X border (default, as in 0.1.0); ``False``
        keeps them and shifts their read window inward.
    follow_lineage : bool
        Let positives follow a division into a daughter track (see :class:`TripletDataset`);
        default ``False``, as in 0.1.0.
    seed : int
        Seed of the FOV split, the loader shuffling and the triplet sampling.
    """

    collate_fn = staticmethod(identity_collate)  # the dataset returns whole batches

    def __init__(
        self,
        data_path: str,
        tracks_path: str,
        source_channel: str | Sequence[str],
        z_range: tuple[int, int],
        initial_yx_patch_size: tuple[int, int] = (512, 512),
        final_yx_patch_size: tuple[int, int] = (224, 224),
        split_ratio: float = 0.8,
        batch_size: int = 16,
        num_workers: int = 1,
        normalizations: list[MapTransform] | None = None,
        augmentations: list[MapTransform] | None = None,
        augment_validation: bool = True,
        fit_include_wells: list[str] | None = None,
        fit_exclude_fovs: list[str] | None = None,
        predict_cells: bool = False,
        include_fov_names: list[str] | None = None,
        include_track_ids: list[int] | None = None,
        time_interval: Literal["any"] | int = "any",
        return_negative: bool = True,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        pin_memory: bool = False,
        z_window_size: int | None = None,
        cache_pool_bytes: int | None = None,
        exclude_border_cells: bool = True,
        follow_lineage: bool = False,
        seed: int = 0,
    ) -> None:
        z_range = (int(z_range[0]), int(z_range[1]))
        if z_window_size is not None and z_window_size != z_range[1] - z_range[0]:
            raise ValueError(
                f"z_window_size={z_window_size} does not match z_range {z_range} "
                f"({z_range[1] - z_range[0]} slices)"
            )
        super().__init__(
            data_path=data_path,
            source_channel=source_channel,
            target_channel=[],
            z_window_size=z_range[1] - z_range[0],
            split_ratio=split_ratio,
            batch_size=batch_size,
            num_workers=num_workers,
            yx_patch_size=tuple(initial_yx_patch_size),
            normalizations=normalizations,
            augmentations=augmentations,
            persistent_workers=persistent_workers,
            prefetch_factor=prefetch_factor,
            pin_memory=pin_memory,
            seed=seed,
            cache_bytes=cache_pool_bytes,
        )
        self.tracks_path = Path(tracks_path)
        self.z_range = z_range
        self.initial_yx_patch_size = (int(initial_yx_patch_size[0]), int(initial_yx_patch_size[1]))
        self.final_yx_patch_size = (int(final_yx_patch_size[0]), int(final_yx_patch_size[1]))
        if any(
            f > i for f, i in zip(self.final_yx_patch_size, self.initial_yx_patch_size, strict=True)
        ):
            raise ValueError(
                f"final_yx_patch_size {self.final_yx_patch_size} is larger than "
                f"initial_yx_patch_size {self.initial_yx_patch_size}"
            )
        self.augment_validation = augment_validation
        self.fit_include_wells = fit_include_wells
        self.fit_exclude_fovs = fit_exclude_fovs
        self.predict_cells = predict_cells
        self.include_fov_names = include_fov_names
        self.include_track_ids = include_track_ids
        self.time_interval = time_interval
        self.return_negative = return_negative
        self.cache_pool_bytes = cache_pool_bytes
        self.exclude_border_cells = exclude_border_cells
        self.follow_lineage = follow_lineage

    # ------------------------------------------------------------------ setup

    def _open_reader(self) -> PatchReader:
        if not self.data_path.exists():
            raise FileNotFoundError(f"OME-Zarr plate not found: {self.data_path}")
        return PatchReader(self.data_path, cache_bytes=self.cache_pool_bytes)

    def _load_tracks(
        self, reader: PatchReader, fov_names: list[str], require_all: bool
    ) -> list[pd.DataFrame]:
        if not self.tracks_path.is_dir():
            raise FileNotFoundError(f"tracks_path is not a folder: {self.tracks_path}")
        return [
            read_tracks_csv(
                find_tracks_csv(self.tracks_path, name), name, reader.shape(name), require_all
            )
            for name in fov_names
        ]

    def _fit_fov_names(self, reader: PatchReader) -> tuple[list[str], list[str]]:
        names = reader.position_names
        if self.fit_include_wells is not None:
            wells = {w.strip("/") for w in self.fit_include_wells}
            names = [n for n in names if n.rsplit("/", 1)[0] in wells]
        if self.fit_exclude_fovs is not None:
            excluded = {f.strip("/") for f in self.fit_exclude_fovs}
            names = [n for n in names if n not in excluded]
        if not names:
            raise ValueError(
                f"No FOV of {self.data_path} left for fitting after fit_include_wells="
                f"{self.fit_include_wells} and fit_exclude_fovs={self.fit_exclude_fovs}"
            )
        return split_items(names, self.split_ratio, self.seed)

    def _dataset(
        self, reader: PatchReader, plate: Any, fov_names: list[str], fit: bool
    ) -> TripletDataset:
        from viscy_data._utils import read_norm_meta

        tables = self._load_tracks(reader, fov_names, require_all=not fit)
        positions = [plate[name] for name in fov_names]
        norm_metas = [read_norm_meta(p) for p in positions]
        # normalization transforms need their statistics in every FOV: fail here, not on GPU
        self._check_norm_meta(fov_names, dict(zip(fov_names, norm_metas, strict=True)), reader)
        return TripletDataset(
            positions=positions,
            tracks_tables=tables,
            channel_names=self.source_channel,
            initial_yx_patch_size=self.initial_yx_patch_size,
            z_range=slice(*self.z_range),
            fit=fit,
            predict_cells=self.predict_cells,
            include_fov_names=self.include_fov_names,
            include_track_ids=self.include_track_ids,
            time_interval=self.time_interval,
            return_negative=self.return_negative,
            reader=reader,
            exclude_border_cells=self.exclude_border_cells,
            follow_lineage=self.follow_lineage,
            seed=self.seed,
            norm_metas=norm_metas,
        )

    def setup(self, stage: str | None = None) -> None:
        """Read tracks and metadata, validate them, and build the datasets of ``stage``."""
        from iohub.ngff import open_ome_zarr

        check_stage(stage, type(self).__name__, ("fit", "validate", "test", "predict", None))

        reader = self._open_reader()
        with open_ome_zarr(self.data_path, mode="r", layout="hcs") as plate:
            if stage in ("fit", "validate", None):
                train_names, val_names = self._fit_fov_names(reader)
                self.train_dataset = self._dataset(reader, plate, train_names, fit=True)
                self.val_dataset = (
                    self._dataset(reader, plate, val_names, fit=True) if val_names else None
                )
            if stage in ("predict", None):
                names = reader.position_names
                if self.predict_cells and self.include_fov_names:
                    wanted = {f.strip("/") for f in self.include_fov_names}
                    names = [n for n in names if n in wanted]
                    missing = wanted.difference(names)
                    if missing:
                        raise ValueError(
                            f"include_fov_names {sorted(missing)} not in {self.data_path}"
                        )
                self.predict_dataset = self._dataset(reader, plate, names, fit=False)
            if stage == "test":
                raise NotImplementedError("TripletDataModule has no test stage")
        self._compose_device_transforms()
