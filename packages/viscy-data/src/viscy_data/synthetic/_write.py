"""Writing a synthetic plate: pixels, normalization metadata and tracks CSVs."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from viscy_data.statistics import intensity_statistics
from viscy_data.synthetic._render import (
    CHANNEL_KINDS,
    PHENOTYPES,
    background_field,
    random_compartments,
    render_timepoint,
    to_dtype,
)
from viscy_data.synthetic._render import channel_kinds as kinds_from_names
from viscy_data.synthetic._simulate import (
    CONDITIONS,
    TRACKS_COLUMNS,
    default_well_conditions,
    infection_onsets,
    simulate_tracks,
)


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
    phenotype: str = "reporter",
) -> _FovResult:
    """Simulate, render and write one FOV; return its cells and statistics."""
    n_t, n_c, n_z, n_y, n_x = shape
    rng = np.random.default_rng(list(job.seed))
    tracks = simulate_tracks(rng, cells_per_fov, n_t, (n_y, n_x), n_z)
    onsets = infection_onsets(rng, tracks, job.condition == "infected", onset)
    background = background_field(rng, n_y, n_x)
    levels_by_track = compartments = None
    if phenotype != "reporter":  # own stream: the default plate's bytes do not change
        extra = np.random.default_rng([*job.seed, 1])
        lineage = tracks.groupby("track_id")["lineage"].first()
        by_lineage = {int(k): float(extra.lognormal(0.0, 0.5)) for k in np.unique(lineage)}
        levels_by_track = {int(tid): by_lineage[int(lin)] for tid, lin in lineage.items()}
        if phenotype == "translocation":
            compartments = {int(tid): random_compartments(extra) for tid in lineage.index}

    stats_step = max(1, min(n_y, n_x) // 128)
    tp_stats: dict[str, dict[str, dict]] = {name: {} for name in channel_names}
    samples: dict[str, list[np.ndarray]] = {name: [] for name in channel_names}
    by_t = dict(tuple(tracks.groupby("t")))
    for t in range(n_t):
        frame, mask = render_timepoint(
            by_t.get(t, tracks.iloc[:0]),
            onsets,
            t,
            (n_c, n_z, n_y, n_x),
            kinds,
            background,
            rng,
            phenotype=phenotype,
            reporter_levels=levels_by_track,
            compartments=compartments,
        )
        frame = to_dtype(frame, dtype)
        job.image[t] = frame
        if job.mask is not None:
            job.mask[t] = np.broadcast_to(mask, (n_c, n_z, n_y, n_x)).astype(np.uint8)
        if normalization:
            for c, name in enumerate(channel_names):
                sample = frame[c, :, ::stats_step, ::stats_step]
                tp_stats[name][str(t)] = intensity_statistics(sample)
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
                "fov_statistics": intensity_statistics(fov_sample),
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
    phenotype: str = "reporter",
    channel_kinds: Sequence[str] | None = None,
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
    phenotype : {"reporter", "relocalization", "translocation", "relocalization_defocus"}
        What infection looks like in fluorescence channels (see
        :data:`viscy_data.synthetic.PHENOTYPES`). ``"reporter"`` (default, unchanged plates):
        a bright reporter appears and cells elongate, so mean brightness tells infection.
        ``"relocalization"``: a reporter every cell expresses at its own level moves from the
        cytoplasm to the nucleus at matched total intensity, with a subtle shape change.
        ``"translocation"``: a reporter focus moves onto an off-centre nucleus seen in the
        label-free channel; the fluorescence channel alone looks alike in both states.
        ``"relocalization_defocus"``: ``"relocalization"`` with a weaker relocalization, more
        debris, and a per-frame defocus that inverts the label-free contrast of half of the
        cells in each frame (the phenotype of ``dynaclr demo``).
    channel_kinds : sequence of str, optional
        Kind of each channel (keys of ``CHANNEL_KINDS`` in ``viscy_data.synthetic._render``),
        overriding the kind chosen from its name. For virtual staining use
        ``("labelfree_nucleus", "nucleus", "membrane")``: a label-free image in which nuclei
        look darker, and nucleus and membrane fluorescence of the same cells.

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
    conditions = dict(well_conditions or default_well_conditions(wells))
    for r, c in wells:
        if f"{r}/{c}" not in conditions:
            raise ValueError(f"well_conditions has no entry for well {r}/{c}.")
    bad = {k: v for k, v in conditions.items() if v not in CONDITIONS}
    if bad:
        raise ValueError(f"Unknown conditions {bad}; use one of {CONDITIONS}.")
    onset = n_t // 3 if infection_onset is None else int(infection_onset)
    if phenotype not in PHENOTYPES:
        raise ValueError(f"phenotype must be one of {PHENOTYPES}, got {phenotype!r}")
    tracks_root = Path(tracks_path) if tracks_path is not None else None
    if tracks_root is not None and tracks_root.exists():
        raise FileExistsError(f"Refusing to overwrite existing tracks directory: {tracks_root}")

    from iohub.ngff import open_ome_zarr

    if channel_kinds is None:
        kinds = kinds_from_names(channel_names)
    else:
        kinds = list(channel_kinds)
        if len(kinds) != n_c:
            raise ValueError(f"{len(kinds)} channel kinds given for {n_c} channels.")
        unknown = [k for k in kinds if k not in CHANNEL_KINDS]
        if unknown:
            raise ValueError(
                f"Unknown channel kind(s) {unknown}; use one of {sorted(CHANNEL_KINDS)}."
            )
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
                phenotype=phenotype,
            )
            with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
                results = list(pool.map(render, jobs))

            if normalization:
                dataset_stats = {
                    name: intensity_statistics(
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
