"""Synthetic HCS OME-Zarr plates of tracked, dividing, infected cells.

The generator writes real plates with iohub (NGFF 0.4 on zarr v2 or NGFF 0.5 on zarr v3),
with normalization metadata in the layout that :func:`viscy_data._utils.read_norm_meta`
reads, optional foreground masks, and (for time-lapse use) one tracks CSV per FOV in the
layout that the triplet pipelines read. It is the data of the test suite, the benchmarks and
the DynaCLR demo, so it is deterministic for a seed and fast: cells are rendered only inside
small windows around them, and noise is drawn in float32.

Use it as a library::

    from viscy_data.synthetic import write_synthetic_plate

    plate = write_synthetic_plate("plate.zarr", shape=(8, 2, 8, 256, 256), tracks_path="tracks")

or as a command: ``python -m viscy_data.synthetic --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "STATISTICS_KEYS",
    "TRACKS_COLUMNS",
    "SyntheticPlate",
    "compute_statistics",
    "main",
    "simulate_tracks",
    "write_synthetic_plate",
]

#: Columns of every tracks CSV the generator writes.
TRACKS_COLUMNS = ["track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x"]

#: Statistics written at every normalization level.
STATISTICS_KEYS = ("mean", "std", "median", "iqr", "min", "max", "p1", "p5", "p95", "p99")

_CONDITIONS = ("uninfected", "infected")
_CELL_RADIUS = 9.0  # pixels, before per-cell jitter
_Z_SIGMA = 1.5  # slices


@dataclass
class SyntheticPlate:
    """What :func:`write_synthetic_plate` wrote.

    Attributes
    ----------
    path : Path
        The plate (``.zarr``).
    tracks_path : Path or None
        Root of the tracks CSVs (``<tracks_path>/<row>/<col>/<fov>/tracks.csv``), if written.
    fov_names : list of str
        FOV names, e.g. ``"A/1/0"``.
    channel_names : list of str
        Channel names, in the channel axis order.
    shape : tuple of int
        ``(T, C, Z, Y, X)`` of every FOV.
    well_conditions : dict
        Well name (``"A/1"``) to condition (``"uninfected"`` or ``"infected"``).
    cells : pandas.DataFrame
        One row per cell and timepoint: ``fov_name`` plus :data:`TRACKS_COLUMNS`, the well's
        ``condition`` and the cell's ``infection_state`` at that timepoint.
    """

    path: Path
    tracks_path: Path | None
    fov_names: list[str]
    channel_names: list[str]
    shape: tuple[int, int, int, int, int]
    well_conditions: dict[str, str]
    cells: pd.DataFrame = field(repr=False)


def simulate_tracks(
    rng: np.random.Generator,
    n_cells: int,
    n_timepoints: int,
    yx_shape: tuple[int, int],
    z_size: int,
    division_fraction: float = 0.5,
) -> pd.DataFrame:
    """Simulate cells that drift and divide in one FOV.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all randomness.
    n_cells : int
        Cells at the first timepoint.
    n_timepoints : int
        Number of timepoints.
    yx_shape : tuple of int
        Image size; centroids stay at least one cell radius inside it.
    z_size : int
        Number of Z slices; each cell has a fixed focal slice.
    division_fraction : float
        Fraction of the initial cells that divide once, at a random time in the middle third.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TRACKS_COLUMNS` plus ``radius``, ``angle`` and ``lineage`` (the
        initial cell the row descends from). Detection ``id`` is unique within the FOV;
        ``parent_track_id`` and ``parent_id`` are -1 for cells without a parent.
    """
    height, width = yx_shape
    margin = _CELL_RADIUS + 2.0
    lo = np.array([margin, margin])
    hi = np.array([height - 1 - margin, width - 1 - margin])
    if np.any(hi <= lo):
        raise ValueError(f"Image size {yx_shape} is too small for cells of radius {_CELL_RADIUS}.")

    rows: list[tuple] = []
    next_track = 1
    next_id = 1
    # live cells: track_id -> [position (2,), velocity (2,), z, radius, angle, lineage, divide_at]
    live: dict[int, list] = {}
    n_divide = int(round(division_fraction * n_cells)) if n_timepoints >= 3 else 0
    divide_slots = rng.permutation(n_cells)[:n_divide]
    first, last = max(1, n_timepoints // 3), max(1, (2 * n_timepoints) // 3)
    for i in range(n_cells):
        pos = lo + rng.random(2) * (hi - lo)
        vel = rng.normal(0.0, 1.5, size=2)
        z = float(rng.integers(0, z_size)) if z_size > 1 else 0.0
        radius = _CELL_RADIUS * rng.uniform(0.8, 1.2)
        divide_at = int(rng.integers(first, last + 1)) if i in divide_slots else -1
        live[next_track] = [pos, vel, z, radius, rng.uniform(0, np.pi), i, divide_at, -1, -1]
        next_track += 1

    for t in range(n_timepoints):
        born: dict[int, list] = {}
        for track_id, cell in list(live.items()):
            pos, vel, z, radius, angle, lineage, divide_at, parent_track, parent_id = cell
            det_id = next_id
            next_id += 1
            rows.append(
                (
                    track_id,
                    t,
                    det_id,
                    parent_track,
                    parent_id,
                    z,
                    pos[0],
                    pos[1],
                    radius,
                    angle,
                    lineage,
                )
            )
            if t == divide_at and t + 1 < n_timepoints:
                offset = np.array([np.cos(angle), np.sin(angle)]) * radius * 0.9
                for sign in (1.0, -1.0):
                    child_pos = np.clip(pos + sign * offset, lo, hi)
                    born[next_track] = [
                        child_pos,
                        rng.normal(0.0, 1.5, size=2),
                        z,
                        radius * 0.85,
                        rng.uniform(0, np.pi),
                        lineage,
                        -1,
                        track_id,
                        det_id,
                    ]
                    next_track += 1
                del live[track_id]
                continue
            # random walk with momentum, reflected at the borders
            vel = 0.7 * vel + rng.normal(0.0, 1.0, size=2)
            new = pos + vel
            bounce = (new < lo) | (new > hi)
            vel[bounce] *= -1
            cell[0] = np.clip(new, lo, hi)
            cell[1] = vel
            cell[7], cell[8] = -1, -1  # the parent link belongs to the first row only
        live.update(born)

    columns = [*TRACKS_COLUMNS, "radius", "angle", "lineage"]
    df = pd.DataFrame(rows, columns=columns)
    df["z"] = df["z"].astype(np.int64)
    return df


def _infection_onsets(
    rng: np.random.Generator, tracks: pd.DataFrame, infected: bool, onset: int
) -> dict[int, int]:
    """Timepoint from which each track shows the infection phenotype (-1 never)."""
    lineage_onset = {}
    for lineage in np.unique(tracks["lineage"]):
        lineage_onset[int(lineage)] = onset + int(rng.integers(0, 2)) if infected else -1
    return {
        int(tid): lineage_onset[int(lin)]
        for tid, lin in tracks.groupby("track_id")["lineage"].first().items()
    }


def _render_timepoint(
    cells: pd.DataFrame,
    onsets: dict[int, int],
    t: int,
    shape_czyx: tuple[int, int, int, int],
    channel_kinds: Sequence[str],
    background: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one timepoint as float32 (C, Z, Y, X) plus a (Z, Y, X) foreground mask.

    The whole frame is background plus noise; cells are added only inside a window around
    each of them, which keeps a 1024 x 1024 frame cheap.
    """
    n_channels, depth, height, width = shape_czyx
    image = np.empty(shape_czyx, dtype=np.float32)
    for c, kind in enumerate(channel_kinds):
        rng.standard_normal(out=image[c], dtype=np.float32)
        if kind == "labelfree":
            image[c] *= 40.0
            image[c] += background
        else:
            image[c] *= 20.0
            image[c] += 100.0
    mask = np.zeros((depth, height, width), dtype=bool)
    z_index = np.arange(depth, dtype=np.float32)
    for row in cells.itertuples(index=False):
        infected = 0 <= onsets[row.track_id] <= t
        a = row.radius * (1.6 if infected else 1.0)  # infected cells elongate
        b = row.radius * (0.75 if infected else 1.0)
        half = int(np.ceil(2.0 * a))
        cy, cx = row.y, row.x
        y0, y1 = max(0, int(cy) - half), min(height, int(cy) + half + 1)
        x0, x1 = max(0, int(cx) - half), min(width, int(cx) + half + 1)
        yy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
        xx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
        cos, sin = np.float32(np.cos(row.angle)), np.float32(np.sin(row.angle))
        u = (yy * cos + xx * sin) / np.float32(a)
        v = (-yy * sin + xx * cos) / np.float32(b)
        r2 = u * u + v * v
        body = np.exp(-(r2 * r2))  # flat-topped cell body
        # each cell is sharp at its own focal slice and fainter away from it
        focus = np.exp(-((z_index - np.float32(row.z)) ** 2) / np.float32(2 * _Z_SIGMA**2))
        weight = (0.35 + 0.65 * focus)[:, None, None]
        for c, kind in enumerate(channel_kinds):
            if kind == "labelfree":
                image[c, :, y0:y1, x0:x1] += weight * (1500.0 * body)
            else:
                signal = 150.0 * body
                if infected:
                    signal = signal + 2500.0 * np.exp(-2.0 * r2)
                image[c, :, y0:y1, x0:x1] += weight * signal
        mask[:, y0:y1, x0:x1] |= (r2 <= 1.0)[None] & (focus > 0.1)[:, None, None]
    return image, mask


def _channel_kinds(channel_names: Sequence[str]) -> list[str]:
    """Names like Phase3D, BF, DIC or Retardance are label-free; the rest fluorescence."""
    labelfree = ("phase", "bf", "bright", "dic", "retardance")
    return [
        "labelfree" if any(k in name.lower() for k in labelfree) else "fluorescence"
        for name in channel_names
    ]


def compute_statistics(values: np.ndarray) -> dict[str, float]:
    """Summary statistics of a sample of pixel values, keyed by :data:`STATISTICS_KEYS`.

    Parameters
    ----------
    values : numpy.ndarray
        Pixel values of any shape; flattened.

    Returns
    -------
    dict
        ``mean, std, median, iqr, min, max, p1, p5, p95, p99`` as Python floats.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    p1, p5, p25, p50, p75, p95, p99 = np.percentile(flat, [1, 5, 25, 50, 75, 95, 99])
    return {
        "mean": float(flat.mean()),
        "std": float(flat.std()),
        "median": float(p50),
        "iqr": float(p75 - p25),
        "min": float(flat.min()),
        "max": float(flat.max()),
        "p1": float(p1),
        "p5": float(p5),
        "p95": float(p95),
        "p99": float(p99),
    }


def _to_dtype(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Convert in place where possible: round half up, clip to the integer range."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        image += 0.5
        np.clip(image, info.min, info.max, out=image)
        return np.floor(image, out=image).astype(dtype)
    return image.astype(dtype, copy=False)


def _default_well_conditions(wells: Sequence[tuple[str, str]]) -> dict[str, str]:
    return {f"{r}/{c}": _CONDITIONS[i % 2] for i, (r, c) in enumerate(wells)}


def _drop_empty_plate_warning(record: logging.LogRecord) -> bool:
    return "Cannot read first position metadata" not in record.getMessage()


@contextlib.contextmanager
def _quiet_empty_plate_warning():
    """iohub warns that a plate has no first position while we create that position."""
    logger = logging.getLogger("iohub.ngff.nodes")
    logger.addFilter(_drop_empty_plate_warning)
    try:
        yield
    finally:
        logger.removeFilter(_drop_empty_plate_warning)


@dataclass
class _FovJob:
    name: str
    condition: str
    seed: tuple[int, int, int]
    image: object  # iohub ImageArray
    mask: object | None


@dataclass
class _FovResult:
    cells: pd.DataFrame
    levels: dict[str, dict]
    dataset_sample: dict[str, np.ndarray]


def _write_fov(
    job: _FovJob,
    shape: tuple[int, int, int, int, int],
    dtype: np.dtype,
    channel_names: list[str],
    kinds: list[str],
    cells_per_fov: int,
    onset: int,
    normalization: bool,
    bar: object | None,
) -> _FovResult:
    """Simulate, render and write one FOV; return its cells and statistics."""
    n_t, n_c, n_z, n_y, n_x = shape
    rng = np.random.default_rng(list(job.seed))
    tracks = simulate_tracks(rng, cells_per_fov, n_t, (n_y, n_x), n_z)
    onsets = _infection_onsets(rng, tracks, job.condition == "infected", onset)
    yy = np.linspace(-1, 1, n_y, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, n_x, dtype=np.float32)[None, :]
    phase, tilt = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.5)
    background = 1000.0 + 150.0 * np.sin(tilt * 3 * yy + phase) * np.cos(tilt * 2 * xx)
    background = background.astype(np.float32)

    stats_step = max(1, min(n_y, n_x) // 128)
    tp_stats: dict[str, dict[str, dict]] = {name: {} for name in channel_names}
    samples: dict[str, list[np.ndarray]] = {name: [] for name in channel_names}
    by_t = dict(tuple(tracks.groupby("t")))
    for t in range(n_t):
        frame, mask = _render_timepoint(
            by_t.get(t, tracks.iloc[:0]), onsets, t, (n_c, n_z, n_y, n_x), kinds, background, rng
        )
        frame = _to_dtype(frame, dtype)
        job.image[t] = frame
        if job.mask is not None:
            job.mask[t] = np.broadcast_to(mask, (n_c, n_z, n_y, n_x)).astype(np.uint8)
        if normalization:
            for c, name in enumerate(channel_names):
                sample = frame[c, :, ::stats_step, ::stats_step]
                tp_stats[name][str(t)] = compute_statistics(sample)
                samples[name].append(sample)
        if bar is not None:
            bar.update()

    levels: dict[str, dict] = {}
    dataset_sample: dict[str, np.ndarray] = {}
    if normalization:
        for name in channel_names:
            fov_sample = np.stack(samples[name])
            dataset_sample[name] = fov_sample[:, :, ::2, ::2]
            levels[name] = {
                "fov_statistics": compute_statistics(fov_sample),
                "timepoint_statistics": tp_stats[name],
            }
    cells = tracks[TRACKS_COLUMNS].copy()
    cells.insert(0, "fov_name", job.name)
    cells["condition"] = job.condition
    cell_onset = cells["track_id"].map(onsets)
    cells["infection_state"] = np.where(
        (cell_onset >= 0) & (cells["t"] >= cell_onset), "infected", "uninfected"
    )
    return _FovResult(cells=cells, levels=levels, dataset_sample=dataset_sample)


def write_synthetic_plate(
    path: str | os.PathLike,
    shape: tuple[int, int, int, int, int] = (8, 2, 8, 256, 256),
    channel_names: Sequence[str] = ("Phase3D", "GFP"),
    wells: Sequence[tuple[str, str]] = (("A", "1"), ("B", "1")),
    fovs_per_well: int = 2,
    dtype: str | np.dtype = "uint16",
    chunks: tuple[int, ...] | None = None,
    shards_ratio: tuple[int, ...] | None = None,
    version: Literal["0.4", "0.5"] = "0.5",
    seed: int = 0,
    normalization: bool = True,
    foreground_mask: bool = False,
    tracks_path: str | os.PathLike | None = None,
    cells_per_fov: int = 8,
    well_conditions: dict[str, str] | None = None,
    infection_onset: int | None = None,
    progress: bool = False,
) -> SyntheticPlate:
    """Write a synthetic HCS OME-Zarr plate of tracked cells.

    Parameters
    ----------
    path : str or PathLike
        Plate to create; must not exist. Written to a temporary sibling, then renamed.
    shape : tuple of int
        ``(T, C, Z, Y, X)`` of every FOV.
    channel_names : sequence of str
        One name per channel. Names like "Phase3D", "BF" or "DIC" are rendered label-free
        (bright cell bodies on a smooth background); others as fluorescence, where infected
        cells carry a bright reporter.
    wells : sequence of (row, column)
        Wells to create.
    fovs_per_well : int
        FOVs per well, named ``"0"``, ``"1"``, ...
    dtype : str or numpy.dtype
        Pixel type of the image array, e.g. ``"uint16"`` or ``"float32"``.
    chunks : tuple of int, optional
        Chunk shape (TCZYX); iohub's default (one ZYX stack per chunk) if None.
    shards_ratio : tuple of int, optional
        Chunks per shard along each axis (NGFF 0.5 only).
    version : {"0.4", "0.5"}
        NGFF version: 0.4 writes zarr v2, 0.5 writes zarr v3.
    seed : int
        Seed of every random choice; the same seed writes the same plate.
    normalization : bool
        Write normalization statistics to each FOV's and the plate's attributes.
    foreground_mask : bool
        Also write an image ``"fg_mask"`` (uint8, same TCZYX shape, 1 inside cells).
    tracks_path : str or PathLike, optional
        If given, write ``<tracks_path>/<row>/<col>/<fov>/tracks.csv`` for every FOV and
        ``<tracks_path>/cell_conditions.csv`` (one row per cell and timepoint with its
        condition and infection state). Must not exist.
    cells_per_fov : int
        Cells at the first timepoint of each FOV; half of them divide once.
    well_conditions : dict, optional
        Well name (``"A/1"``) to ``"uninfected"`` or ``"infected"``; by default wells alternate.
    infection_onset : int, optional
        First timepoint of the infection phenotype in infected wells (``T // 3`` by default);
        each cell's onset is jittered by up to one frame.
    progress : bool
        Show a progress bar.

    Returns
    -------
    SyntheticPlate
        Paths, names and the table of simulated cells.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"Refusing to overwrite existing plate: {path}")
    if len(shape) != 5:
        raise ValueError(f"shape must be (T, C, Z, Y, X), got {shape}")
    n_t, n_c, n_z, n_y, n_x = (int(s) for s in shape)
    if len(channel_names) != n_c:
        raise ValueError(f"{len(channel_names)} channel names given for {n_c} channels.")
    if version not in ("0.4", "0.5"):
        raise ValueError(f"version must be '0.4' or '0.5', got {version!r}")
    if shards_ratio is not None and version != "0.5":
        raise ValueError("Sharding needs NGFF 0.5 (zarr v3); pass version='0.5'.")
    dtype = np.dtype(dtype)
    conditions = dict(well_conditions or _default_well_conditions(wells))
    for r, c in wells:
        if f"{r}/{c}" not in conditions:
            raise ValueError(f"well_conditions has no entry for well {r}/{c}.")
    bad = {k: v for k, v in conditions.items() if v not in _CONDITIONS}
    if bad:
        raise ValueError(f"Unknown conditions {bad}; use one of {_CONDITIONS}.")
    onset = n_t // 3 if infection_onset is None else int(infection_onset)
    tracks_root = Path(tracks_path) if tracks_path is not None else None
    if tracks_root is not None and tracks_root.exists():
        raise FileExistsError(f"Refusing to overwrite existing tracks directory: {tracks_root}")

    from iohub.ngff import open_ome_zarr

    kinds = _channel_kinds(channel_names)
    tmp_plate = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp_tracks = (
        tracks_root.with_name(f".{tracks_root.name}.tmp-{os.getpid()}") if tracks_root else None
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(wells) * fovs_per_well * n_t, desc=f"Writing {path.name}", unit="frame"
        )
    try:
        with (
            _quiet_empty_plate_warning(),
            open_ome_zarr(
                tmp_plate,
                layout="hcs",
                mode="w-",
                channel_names=list(channel_names),
                version=version,
            ) as plate,
        ):
            # Metadata is written serially; pixels are rendered and written per FOV in threads
            # (numpy and the zarr codecs release the GIL).
            jobs = []
            for w, (row_name, col_name) in enumerate(wells):
                condition = conditions[f"{row_name}/{col_name}"]
                for f in range(fovs_per_well):
                    position = plate.create_position(row_name, col_name, str(f))
                    arrays = [
                        position.create_zeros(
                            name,
                            shape=(n_t, n_c, n_z, n_y, n_x),
                            dtype=array_dtype,
                            chunks=chunks,
                            shards_ratio=shards_ratio,
                        )
                        for name, array_dtype in (
                            [("0", dtype), ("fg_mask", np.uint8)]
                            if foreground_mask
                            else [("0", dtype)]
                        )
                    ]
                    fov = _FovJob(
                        name=f"{row_name}/{col_name}/{f}",
                        condition=condition,
                        seed=(seed, w, f),
                        image=arrays[0],
                        mask=arrays[1] if foreground_mask else None,
                    )
                    jobs.append(fov)
            render = partial(
                _write_fov,
                shape=(n_t, n_c, n_z, n_y, n_x),
                dtype=dtype,
                channel_names=list(channel_names),
                kinds=kinds,
                cells_per_fov=cells_per_fov,
                onset=onset,
                normalization=normalization,
                bar=bar,
            )
            with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
                results = list(pool.map(render, jobs))

            if normalization:
                dataset_stats = {
                    name: compute_statistics(
                        np.concatenate([r.dataset_sample[name].ravel() for r in results])
                    )
                    for name in channel_names
                }
                for job, result in zip(jobs, results, strict=True):
                    plate[job.name].zattrs["normalization"] = {
                        name: {"dataset_statistics": dataset_stats[name], **levels}
                        for name, levels in result.levels.items()
                    }
                plate.zattrs["normalization"] = {
                    name: {"dataset_statistics": stats} for name, stats in dataset_stats.items()
                }
        cells_table = pd.concat([r.cells for r in results], ignore_index=True)
        if tmp_tracks is not None:
            for fov_name, fov_cells in cells_table.groupby("fov_name", sort=False):
                out = tmp_tracks / fov_name / "tracks.csv"
                out.parent.mkdir(parents=True, exist_ok=True)
                fov_cells[TRACKS_COLUMNS].to_csv(out, index=False, float_format="%.3f")
            cells_table.to_csv(tmp_tracks / "cell_conditions.csv", index=False, float_format="%.3f")
        os.replace(tmp_plate, path)
        if tmp_tracks is not None:
            os.replace(tmp_tracks, tracks_root)
    except BaseException:
        shutil.rmtree(tmp_plate, ignore_errors=True)
        if tmp_tracks is not None:
            shutil.rmtree(tmp_tracks, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()

    return SyntheticPlate(
        path=path,
        tracks_path=tracks_root,
        fov_names=[job.name for job in jobs],
        channel_names=list(channel_names),
        shape=(n_t, n_c, n_z, n_y, n_x),
        well_conditions=conditions,
        cells=cells_table,
    )


def _parse_ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m viscy_data.synthetic",
        description="Write a synthetic HCS OME-Zarr plate of tracked, dividing, infected cells.",
    )
    parser.add_argument("path", type=Path, help="plate to create (.zarr); must not exist")
    parser.add_argument(
        "--shape",
        type=_parse_ints,
        default=(8, 2, 8, 256, 256),
        help="T,C,Z,Y,X per FOV (default: 8,2,8,256,256)",
    )
    parser.add_argument(
        "--channels",
        default="Phase3D,GFP",
        help="comma-separated channel names (default: Phase3D,GFP)",
    )
    parser.add_argument(
        "--wells", default="A/1,B/1", help="comma-separated wells as ROW/COL (default: A/1,B/1)"
    )
    parser.add_argument("--fovs-per-well", type=int, default=2)
    parser.add_argument("--dtype", default="uint16")
    parser.add_argument(
        "--chunks",
        type=_parse_ints,
        default=None,
        help="T,C,Z,Y,X chunk shape (default: iohub's, one ZYX stack)",
    )
    parser.add_argument(
        "--version",
        choices=("0.4", "0.5"),
        default="0.5",
        help="NGFF version: 0.4 = zarr v2, 0.5 = zarr v3 (default)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tracks", type=Path, default=None, help="also write tracks CSVs under this directory"
    )
    parser.add_argument("--cells-per-fov", type=int, default=8)
    parser.add_argument("--foreground-mask", action="store_true")
    parser.add_argument("--no-normalization", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints a JSON summary of what was written."""
    args = _build_parser().parse_args(argv)
    wells = []
    for well in args.wells.split(","):
        row, sep, col = well.strip().partition("/")
        if not sep:
            print(f"error: well {well!r} is not ROW/COL", file=sys.stderr)
            return 2
        wells.append((row, col))
    start = time.perf_counter()
    plate = write_synthetic_plate(
        args.path,
        shape=args.shape,
        channel_names=[c.strip() for c in args.channels.split(",")],
        wells=wells,
        fovs_per_well=args.fovs_per_well,
        dtype=args.dtype,
        chunks=args.chunks,
        version=args.version,
        seed=args.seed,
        normalization=not args.no_normalization,
        foreground_mask=args.foreground_mask,
        tracks_path=args.tracks,
        cells_per_fov=args.cells_per_fov,
        progress=True,
    )
    summary = {
        "path": str(plate.path),
        "tracks_path": str(plate.tracks_path) if plate.tracks_path else None,
        "fovs": plate.fov_names,
        "shape": list(plate.shape),
        "cells": int(plate.cells.groupby(["fov_name", "track_id"]).ngroups),
        "seconds": round(time.perf_counter() - start, 2),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
