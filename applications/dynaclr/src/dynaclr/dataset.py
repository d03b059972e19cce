"""Triplet dataset over several experiments, read in batches through the patch reader.

:class:`MultiExperimentTripletDataset` turns a batch of anchor indices (positions in
``index.valid_anchors``, e.g. from :class:`viscy_data.sampler.FlexibleBatchSampler`) into
one batch dict: for every anchor a positive is the same cell ``tau`` frames later, or its
daughter after a division (``tau`` drawn per anchor, favouring small offsets), and the
patches of all anchors, positives (and negatives) of an experiment are read in one batched
call. Channels follow the registry's ``active_channels``: an experiment lacking one gets
zeros there.

Batch dict (before ``on_after_batch_transfer``)::

    {"anchor": (B, C, Z, Y, X) float32 (or the plates' dtype), "positive": ..., ["negative": ...],
     "anchor_norm_meta": {channel: {level: {stat: (B,) float32}}} | None, ...,
     ["index": {column: list}]}
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dynaclr.index import MultiExperimentIndex
from viscy_data import (
    ULTRACK_INDEX_COLUMNS,
    NormStatsTable,
    PatchBox,
    PatchReader,
    batch_rng,
    read_norm_meta,
)

__all__ = ["MultiExperimentTripletDataset"]

_INDEX_COLUMNS = (
    "experiment",
    "condition",
    "well_name",
    *ULTRACK_INDEX_COLUMNS,
    "global_track_id",
    "hours_post_infection",
)


class MultiExperimentTripletDataset(Dataset):
    """Anchor / positive (/ negative) patches across experiments, batched per call.

    Parameters
    ----------
    index : MultiExperimentIndex
        Tracks, lineage and valid anchors of the experiments.
    z_range : tuple[int, int] | None
        ``[start, stop)`` Z slices read for every cell; ``None``: all slices (every FOV must
        then have the same depth).
    return_negative : bool
        Also return a negative per anchor: a random anchor of another lineage.
    return_index : bool
        Also return ``"index"``: the anchors' track columns as lists.
    seed : int
        Seed of the per-batch draws (tau offsets, daughters, negatives): each batch's
        generator comes from ``seed``, the batch's indices and the epoch
        (:func:`viscy_data.batch_rng`), so draws do not depend on the worker or start method.
    cache_bytes : int | None
        Decoded-chunk cache of each reader (``None``: the reader's default, 0: off).
    array_key : str
        Image array within each FOV.
    backend : str
        ``"auto"``, ``"tensorstore"`` or ``"zarr"`` (see :class:`viscy_data.PatchReader`).
    float_output : bool
        Return float32 patches. ``False`` keeps the plates' dtype (e.g. uint16: half the
        bytes through the loader and to the device), for pipelines that convert on device
        (``MultiExperimentDataModule`` does).
    buffer_pool_size : int
        Batch arrays kept for reuse once every tensor made from them is freed (per array
        shape; 0 allocates every batch anew). Size it to the batches in flight (workers x
        prefetch x roles); the pool keeps that much memory for the dataset's lifetime.
    fill_missing_norm : bool
        Neutral normalization statistics for FOVs lacking them (see
        :class:`viscy_data.NormStatsTable`). Off by default: such channels are left out of
        ``<role>_norm_meta`` and ``MultiExperimentDataModule`` raises at setup when its
        normalizations need them. Channels an experiment does not have (zeros) always get
        neutral statistics.
    predict : bool
        Prediction mode: the items are every cell-timepoint of ``index.tracks`` (in its
        order), and a batch is ``{"anchor", "anchor_norm_meta", "index"}`` of exactly the
        requested rows, in the requested order (no positives, no randomness).
    """

    def __init__(
        self,
        index: MultiExperimentIndex,
        z_range: tuple[int, int] | None = None,
        return_negative: bool = False,
        return_index: bool = False,
        seed: int = 0,
        cache_bytes: int | None = None,
        array_key: str = "0",
        backend: str = "auto",
        float_output: bool = True,
        buffer_pool_size: int = 8,
        fill_missing_norm: bool = False,
        predict: bool = False,
    ) -> None:
        from iohub.ngff import open_ome_zarr

        self.index = index
        self.predict = bool(predict)
        self.return_negative = return_negative
        self.return_index = return_index
        self.seed = int(seed)
        self.epoch = 0
        self.float_output = bool(float_output)
        if buffer_pool_size < 0:
            raise ValueError(f"buffer_pool_size must be >= 0, got {buffer_pool_size}")
        self.buffer_pool_size = int(buffer_pool_size)
        self._pool: dict[tuple, list[np.ndarray]] = {}
        self._pool_lock = threading.Lock()
        registry = index.registry
        self.channel_names = list(registry.active_channels)

        depths = {key: shape[2] for key, shape in index.image_shapes.items()}
        if z_range is None:
            if len(set(depths.values())) > 1:
                raise ValueError(
                    f"FOVs differ in depth ({sorted(set(depths.values()))} slices): set z_range"
                )
            z_range = (0, next(iter(depths.values())))
        z0, z1 = int(z_range[0]), int(z_range[1])
        too_shallow = [f"{e}:{f} (Z={d})" for (e, f), d in depths.items() if d < z1]
        if not 0 <= z0 < z1 or too_shallow:
            raise ValueError(f"z_range {z_range} does not fit FOV(s) {too_shallow[:5]}")
        self.z_range = (z0, z1)

        self.readers: dict[str, PatchReader] = {}
        self._sources: dict[str, tuple[tuple[int, ...], np.ndarray]] = {}
        tracks = index.tracks
        fov_keys = list(index.image_shapes)
        fov_of = {key: i for i, key in enumerate(fov_keys)}
        metas: list[dict | None] = [None] * len(fov_keys)
        absent: list[set[str]] = [set() for _ in fov_keys]
        for exp in registry:
            self.readers[exp.name] = PatchReader(
                exp.data_path, array_key=array_key, cache_bytes=cache_bytes, backend=backend
            )
            src = registry.source_indices(exp.name)
            present = np.array([i for i, s in enumerate(src) if s >= 0], dtype=np.int64)
            self._sources[exp.name] = (tuple(s for s in src if s >= 0), present)
            lacking = {self.channel_names[i] for i, s in enumerate(src) if s < 0}
            names = [f for e, f in fov_keys if e == exp.name]
            if names:
                with open_ome_zarr(exp.data_path, mode="r", layout="hcs") as plate:
                    for name in names:
                        metas[fov_of[(exp.name, name)]] = read_norm_meta(plate[name])
                        absent[fov_of[(exp.name, name)]] = lacking
        self._dtype = np.result_type(
            *(self.readers[e].dtype(f) for e, f in fov_keys if e in self.readers)
        )
        frames = [index.image_shapes[k][0] for k in fov_keys]
        self.norm_stats = NormStatsTable(
            metas,
            self.channel_names,
            frames,
            [f"{e}:{f}" for e, f in fov_keys],
            absent_channels=absent,
            fill_missing=fill_missing_norm,
        )
        pair = pd.MultiIndex.from_arrays(
            [tracks["experiment"].astype(str), tracks["fov_name"].astype(str)]
        )
        self._row_fov = np.asarray(
            pd.Index(pd.MultiIndex.from_tuples(fov_keys)).get_indexer(pair), dtype=np.int64
        )
        self._row_exp = tracks["experiment"].cat.codes.to_numpy()
        self._exp_names = [str(c) for c in tracks["experiment"].cat.categories]
        self._t = tracks["t"].to_numpy()
        self._y0 = tracks["y_origin"].to_numpy()
        self._x0 = tracks["x_origin"].to_numpy()
        self._fov_names = [f for _, f in fov_keys]
        self._lineage = tracks["lineage_id"].cat.codes.to_numpy()

    def __len__(self) -> int:
        if self.predict:
            return len(self.index.tracks)
        return len(self.index.valid_anchors)

    def __getstate__(self) -> dict:
        # picklable for spawned DataLoader workers: locks and recycled buffers stay behind
        state = self.__dict__.copy()
        state["_pool"] = {}
        state.pop("_pool_lock", None)
        state.pop("_rng_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pool_lock = threading.Lock()
        self._rng_lock = threading.Lock()

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that the per-batch draws depend on."""
        self.epoch = int(epoch)

    def batch_generator(self, indices: list[int]) -> np.random.Generator:
        """The generator of the batch of ``indices`` (:func:`viscy_data.batch_rng`)."""
        return batch_rng(self.seed, indices, epoch=self.epoch)

    def _negatives(self, anchor_rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pool = self.index.anchor_rows
        neg = pool[rng.integers(0, len(pool), size=len(anchor_rows))]
        for _ in range(16):
            same = self._lineage[neg] == self._lineage[anchor_rows]
            if not same.any():
                break
            neg[same] = pool[rng.integers(0, len(pool), size=int(same.sum()))]
        return neg

    def _out_dtype(self) -> np.dtype:
        """Batch dtype: float32, or the plates' dtype when torch can hold it as is."""
        dtype = self._dtype
        if self.float_output or dtype.kind not in "uif" or dtype == np.uint64:
            return np.dtype(np.float32)
        return dtype.newbyteorder("=")  # tensorstore converts byte order while copying

    def _allocate(self, n: int) -> np.ndarray:
        """Uninitialized (N, C_active, Z, Y, X) batch array, recycled when possible.

        A pooled array is handed out again once nothing but the pool refers to it (every
        tensor made from it has been freed): refilling memory that is already mapped is
        much cheaper than faulting in a fresh block of tens of MiB for every batch.
        """
        ph, pw = self.index.yx_patch_size
        z0, z1 = self.z_range
        shape = (n, len(self.channel_names), z1 - z0, ph, pw)
        dtype = self._out_dtype()
        if self.buffer_pool_size == 0:
            return np.empty(shape, dtype)
        with self._pool_lock:
            pool = self._pool.setdefault((shape, dtype.str), [])
            for i in range(len(pool)):
                # 2 references: the pool's and getrefcount's argument
                if sys.getrefcount(pool[i]) == 2:
                    return pool[i]
            buffer = np.empty(shape, dtype)
            if len(pool) < self.buffer_pool_size:
                pool.append(buffer)
            return buffer

    def _read_run(self, code: int, rows: np.ndarray, out: np.ndarray) -> None:
        """Read rows of one experiment into ``out`` (a leading-axis slice of the batch)."""
        ph, pw = self.index.yx_patch_size
        name = self._exp_names[code]
        channels, present = self._sources[name]
        boxes = [
            PatchBox(
                position=self._fov_names[f],
                t=t,
                channels=channels,
                z=self.z_range,
                y=(y, y + ph),
                x=(x, x + pw),
            )
            for f, t, y, x in zip(
                self._row_fov[rows].tolist(),
                self._t[rows].tolist(),
                self._y0[rows].tolist(),
                self._x0[rows].tolist(),
                strict=True,
            )
        ]
        if len(present) == out.shape[1]:
            # the reader copies every box straight into the batch rows (and casts)
            self.readers[name].read_patches(boxes, out=out)
        else:
            # channels this experiment lacks are zeros (the array may be recycled)
            out[:, np.setdiff1d(np.arange(out.shape[1]), present)] = 0
            out[:, present] = self.readers[name].read_patches(boxes)

    def _read(self, rows: np.ndarray, out: np.ndarray | None = None) -> Tensor:
        """Patches of tracks rows as (N, C_active, Z, Y, X), one read per experiment run.

        Rows of one experiment that are contiguous in ``rows`` are read straight into their
        slice of ``out`` (allocated here when ``None``); rows in scattered order are read
        grouped by experiment, then put in place with one copy.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if out is None:
            out = self._allocate(len(rows))
        if len(rows) == 0:
            return torch.from_numpy(out)
        codes = self._row_exp[rows]
        cuts = np.flatnonzero(codes[1:] != codes[:-1]) + 1
        starts, stops = np.r_[0, cuts], np.r_[cuts, len(rows)]
        if len(starts) > 2 * len(np.unique(codes)):
            order = np.argsort(codes, kind="stable")
            out[order] = self._read(rows[order]).numpy()
            return torch.from_numpy(out)
        for lo, hi in zip(starts.tolist(), stops.tolist(), strict=True):
            self._read_run(int(codes[lo]), rows[lo:hi], out[lo:hi])
        return torch.from_numpy(out)

    def _index_columns(self, rows: np.ndarray) -> dict[str, list]:
        df = self.index.tracks
        return {col: df[col].to_numpy()[rows].tolist() for col in _INDEX_COLUMNS if col in df}

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        """Batch of ``len(indices)`` triplets for positions in ``index.valid_anchors``
        (in predict mode: the cells at rows ``indices`` of ``index.tracks``)."""
        if self.predict:
            rows = np.asarray(indices, dtype=np.int64)
            return {
                "anchor": self._read(rows),
                "anchor_norm_meta": self.norm_stats.gather(self._row_fov[rows], self._t[rows]),
                "index": self._index_columns(rows),
            }
        anchors = self.index.anchor_rows[np.asarray(indices, dtype=np.int64)]
        # group the batch by experiment (order within a batch is free): contiguous reads
        anchors = anchors[np.argsort(self._row_exp[anchors], kind="stable")]
        rng = self.batch_generator(indices)
        positives, _ = self.index.sample_positives(anchors, rng)
        negatives = self._negatives(anchors, rng) if self.return_negative else None
        if (positives < 0).any():
            raise RuntimeError("an anchor without positive reached the dataset; rebuild the index")
        roles = {"anchor": anchors, "positive": positives}
        if negatives is not None:
            roles["negative"] = negatives
        batch: dict[str, Any] = {}
        for role, rows in roles.items():
            # one (recycled) array per role, each experiment's rows read straight into it:
            # anchors and positives, grouped by experiment, take one read per experiment
            batch[role] = self._read(rows)
            batch[f"{role}_norm_meta"] = self.norm_stats.gather(self._row_fov[rows], self._t[rows])
        if self.return_index:
            batch["index"] = self._index_columns(anchors)
        return batch

    def __getitem__(self, i: int) -> dict[str, Any]:
        """One triplet (batch of one, leading axis kept)."""
        return self.__getitems__([i])
