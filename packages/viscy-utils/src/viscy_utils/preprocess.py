"""Normalization statistics of OME-Zarr plates (the ``viscy preprocess`` command).

Statistics (:data:`viscy_data.INTENSITY_STATISTICS_KEYS`: ``min, max, mean, std, median,
iqr, p5, p95, p95_p5, p1, p99, p99_p1``; NaN pixels ignored) are computed
per channel at three levels from a regular YX grid of pixels of every Z slice
and timepoint of each FOV:

- ``timepoint_statistics``: one FOV at one t,
- ``fov_statistics``: one FOV, all timepoints,
- ``dataset_statistics``: all FOVs (each contributing at most
  ``max_dataset_samples_per_fov`` pixels, drawn at random with a fixed seed).

They are written to each FOV's ``.zattrs["normalization"]`` and (dataset level
only) to the plate's, in the layout :func:`viscy_data.read_norm_meta` reads.
Everything is computed before anything is written, and each FOV's attributes
are replaced in one update, so an interrupted run leaves no partial entry;
re-running replaces the entries of the channels it computes and keeps others.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viscy_data.statistics import intensity_statistics

NORMALIZATION_KEY = "normalization"


@dataclass
class FOVStatistics:
    """Statistics of one FOV: ``channel -> stats`` and ``channel -> {str(t): stats}``."""

    fov_statistics: dict[str, dict[str, float]]
    timepoint_statistics: dict[str, dict[str, dict[str, float]]]
    dataset_sample: dict[str, np.ndarray] = field(repr=False)


@dataclass
class PlateStatistics:
    """Everything ``viscy preprocess`` writes: dataset-level and per-FOV statistics."""

    channel_names: list[str]
    dataset_statistics: dict[str, dict[str, float]]
    fovs: dict[str, FOVStatistics]

    def fov_metadata(self, fov_name: str) -> dict[str, dict]:
        """The ``normalization`` attribute of one FOV, per channel."""
        fov = self.fovs[fov_name]
        return {
            ch: {
                "dataset_statistics": self.dataset_statistics[ch],
                "fov_statistics": fov.fov_statistics[ch],
                "timepoint_statistics": fov.timepoint_statistics[ch],
            }
            for ch in self.channel_names
        }


def sample_fov_pixels(
    data_path: str | Path,
    fov_name: str,
    channel_indices: Sequence[int],
    grid_spacing: int = 32,
    image_key: str = "0",
) -> dict[int, np.ndarray]:
    """Pixels of one FOV on a YX grid, per timepoint.

    Returns
    -------
    dict[int, np.ndarray]
        ``t -> (n_channels, n_pixels)`` float32 array, channels in the order of
        ``channel_indices``; pixels are every ``grid_spacing``-th Y and X of
        every Z slice.
    """
    from iohub.ngff import open_ome_zarr

    with open_ome_zarr(data_path, layout="hcs", mode="r") as plate:
        array = plate[fov_name][image_key]
        n_t = array.shape[0]
        samples = {}
        for t in range(n_t):
            # one (Z, Y, X) volume in memory at a time, only the requested channels
            grids = [
                np.asarray(array[t, c])[:, ::grid_spacing, ::grid_spacing].astype(np.float32)
                for c in channel_indices
            ]
            samples[t] = np.stack([g.ravel() for g in grids])
    return samples


def _statistics(values: np.ndarray, where: str) -> dict[str, float]:
    """:func:`viscy_data.intensity_statistics`, with an error that names the sample."""
    try:
        return intensity_statistics(values)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from error


def compute_fov_statistics(
    data_path: str | Path,
    fov_name: str,
    channel_names: Sequence[str],
    channel_indices: Sequence[int],
    grid_spacing: int = 32,
    image_key: str = "0",
    max_dataset_samples: int = 200_000,
) -> FOVStatistics:
    """Timepoint- and FOV-level statistics of one FOV (runs in a worker process)."""
    samples = sample_fov_pixels(data_path, fov_name, channel_indices, grid_spacing, image_key)
    rng = np.random.default_rng(zlib.crc32(fov_name.encode()))  # same in every process
    fov_stats, tp_stats, dataset_sample = {}, {}, {}
    for i, ch in enumerate(channel_names):
        per_t = {t: s[i] for t, s in samples.items()}
        tp_stats[ch] = {
            str(t): _statistics(v, f"FOV {fov_name!r}, channel {ch!r}, t={t}")
            for t, v in per_t.items()
        }
        all_values = np.concatenate(list(per_t.values()))
        fov_stats[ch] = _statistics(all_values, f"FOV {fov_name!r}, channel {ch!r}")
        if all_values.size > max_dataset_samples:
            all_values = rng.choice(all_values, max_dataset_samples, replace=False)
        dataset_sample[ch] = all_values
    return FOVStatistics(fov_stats, tp_stats, dataset_sample)


def compute_normalization_stats(
    data_path: str | Path,
    channel_names: Sequence[str] | None = None,
    grid_spacing: int = 32,
    num_workers: int = 1,
    image_key: str = "0",
    max_dataset_samples_per_fov: int = 200_000,
    progress: bool = True,
    mp_start_method: str | None = None,
) -> PlateStatistics:
    """Compute normalization statistics of a plate without writing anything.

    Parameters
    ----------
    data_path : str or Path
        HCS OME-Zarr plate.
    channel_names : sequence of str, optional
        Channels to compute; all when None.
    grid_spacing : int
        Sample every ``grid_spacing``-th pixel along Y and X (1 = all pixels).
    num_workers : int
        Processes working on FOVs in parallel (``<= 1``: in this process).
    image_key : str
        Image array inside each FOV.
    max_dataset_samples_per_fov : int
        Cap on the pixels each FOV contributes to the dataset-level statistics.
    progress : bool
        Show a tqdm progress bar over FOVs.
    mp_start_method : str, optional
        ``"fork"``, ``"spawn"`` or ``"forkserver"`` for the worker processes
        (the platform default when None). Workers open the plate themselves.

    Returns
    -------
    PlateStatistics

    Raises
    ------
    FileNotFoundError, ValueError
        If the plate is missing, holds no FOV, or lacks a requested channel.
    """
    from iohub.ngff import open_ome_zarr
    from tqdm.auto import tqdm

    data_path = Path(data_path)
    if not data_path.exists():
        raise FileNotFoundError(f"Plate not found: {data_path}")
    if grid_spacing < 1:
        raise ValueError(f"grid_spacing must be >= 1, got {grid_spacing}")
    with open_ome_zarr(data_path, layout="hcs", mode="r") as plate:
        all_channels = list(plate.channel_names)
        fov_names = [name for name, _ in plate.positions()]
    if not fov_names:
        raise ValueError(f"Plate {data_path} holds no FOV")
    channels = list(channel_names) if channel_names else all_channels
    missing = [ch for ch in channels if ch not in all_channels]
    if missing:
        raise ValueError(f"Channel(s) {missing} not in plate {data_path} (has {all_channels})")
    indices = [all_channels.index(ch) for ch in channels]
    args = (channels, indices, grid_spacing, image_key, max_dataset_samples_per_fov)

    fovs: dict[str, FOVStatistics] = {}
    bar = tqdm(
        total=len(fov_names), desc="normalization statistics", unit="FOV", disable=not progress
    )
    if num_workers <= 1:
        for name in fov_names:
            fovs[name] = compute_fov_statistics(data_path, name, *args)
            bar.update()
    else:
        context = multiprocessing.get_context(mp_start_method)
        workers = min(num_workers, len(fov_names))
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {
                pool.submit(compute_fov_statistics, data_path, name, *args): name
                for name in fov_names
            }
            for future in as_completed(futures):
                fovs[futures[future]] = future.result()
                bar.update()
    bar.close()
    fovs = {name: fovs[name] for name in fov_names}
    dataset = {
        ch: _statistics(
            np.concatenate([f.dataset_sample[ch] for f in fovs.values()]),
            f"plate {data_path}, channel {ch!r}",
        )
        for ch in channels
    }
    return PlateStatistics(channels, dataset, fovs)


def write_normalization_metadata(data_path: str | Path, stats: PlateStatistics) -> None:
    """Write computed statistics into the plate's and each FOV's attributes.

    Each node's ``normalization`` attribute is replaced in one assignment,
    keeping entries of channels not in ``stats``.

    Parameters
    ----------
    data_path : str or Path
        HCS OME-Zarr plate, opened in ``r+`` mode.
    stats : PlateStatistics
        Statistics to write, e.g. from :func:`compute_normalization_stats`; FOV-level entries
        go to each FOV in ``stats.fovs``, dataset-level entries to the plate.
    """
    from iohub.ngff import open_ome_zarr

    with open_ome_zarr(data_path, layout="hcs", mode="r+") as plate:
        for fov_name in stats.fovs:
            position = plate[fov_name]
            merged = dict(position.zattrs.get(NORMALIZATION_KEY) or {})
            merged.update(stats.fov_metadata(fov_name))
            position.zattrs[NORMALIZATION_KEY] = merged
        merged = dict(plate.zattrs.get(NORMALIZATION_KEY) or {})
        merged.update(
            {ch: {"dataset_statistics": stats.dataset_statistics[ch]} for ch in stats.channel_names}
        )
        plate.zattrs[NORMALIZATION_KEY] = merged


def generate_normalization_metadata(
    data_path: str | Path,
    channel_names: Sequence[str] | None = None,
    grid_spacing: int = 32,
    num_workers: int = 1,
    image_key: str = "0",
    max_dataset_samples_per_fov: int = 200_000,
    progress: bool = True,
    mp_start_method: str | None = None,
) -> PlateStatistics:
    """Compute normalization statistics of a plate and write them into its metadata.

    Parameters
    ----------
    data_path : str or Path
        HCS OME-Zarr plate; its metadata is updated in place.
    channel_names : sequence of str, optional
        Channels to compute; all when None.
    grid_spacing : int
        Sample every ``grid_spacing``-th pixel along Y and X (1 = all pixels), default 32.
    num_workers : int
        Processes working on FOVs in parallel (``<= 1``: in this process), default 1.
    image_key : str
        Image array inside each FOV, default ``"0"``.
    max_dataset_samples_per_fov : int
        Cap on the pixels each FOV contributes to the dataset-level statistics,
        default 200000.
    progress : bool
        Show a tqdm progress bar over FOVs, default True.
    mp_start_method : str, optional
        ``"fork"``, ``"spawn"`` or ``"forkserver"`` for the worker processes
        (the platform default when None).

    Returns
    -------
    PlateStatistics
        What was written.
    """
    stats = compute_normalization_stats(
        data_path,
        channel_names,
        grid_spacing,
        num_workers,
        image_key,
        max_dataset_samples_per_fov,
        progress,
        mp_start_method,
    )
    write_normalization_metadata(data_path, stats)
    return stats


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``viscy preprocess``."""
    parser = argparse.ArgumentParser(
        prog="viscy preprocess",
        description="Compute per-channel normalization statistics (dataset, FOV and timepoint "
        "level) of an HCS OME-Zarr plate and write them into its metadata.",
    )
    parser.add_argument(
        "-c",
        "--config",
        help="YAML with any of the options below as top-level keys (may list 'base:' files); "
        "command-line options override it",
    )
    parser.add_argument("--data_path", help="HCS OME-Zarr plate")
    parser.add_argument("--channel_names", nargs="+", help="channels (default: all)")
    parser.add_argument("--num_workers", type=int, help="parallel FOV workers (default 1)")
    parser.add_argument("--grid_spacing", type=int, help="YX sampling stride (default 32)")
    parser.add_argument("--image_key", help="image array in each FOV (default '0')")
    parser.add_argument(
        "--max_dataset_samples_per_fov",
        type=int,
        help="pixels per FOV used for dataset statistics (default 200000)",
    )
    parser.add_argument(
        "--mp_start_method",
        choices=("fork", "spawn", "forkserver"),
        help="start method of the worker processes (default: the platform's)",
    )
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    return parser


_DEFAULTS = {
    "channel_names": None,
    "num_workers": 1,
    "grid_spacing": 32,
    "image_key": "0",
    "max_dataset_samples_per_fov": 200_000,
    "mp_start_method": None,
}


def preprocess_main(argv: Sequence[str] | None = None) -> int:
    """Run ``viscy preprocess`` with command-line arguments ``argv``."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    options: dict = dict(_DEFAULTS)
    if ns.config:
        from viscy_utils.cli_utils import load_config

        config = load_config(ns.config)
        config = config.get("preprocess", config)  # a section or top-level keys
        unknown = set(config) - set(_DEFAULTS) - {"data_path"}
        if unknown:
            parser.error(f"unknown option(s) {sorted(unknown)} in {ns.config}")
        options.update(config)
    options.update({k: v for k, v in vars(ns).items() if k in options and v is not None})
    data_path = ns.data_path or options.pop("data_path", None)
    options.pop("data_path", None)
    if not data_path:
        parser.error("--data_path is required (on the command line or in the config)")
    try:
        stats = generate_normalization_metadata(data_path, progress=not ns.no_progress, **options)
    except (FileNotFoundError, ValueError) as err:
        print(f"viscy preprocess: error: {err}", file=sys.stderr)
        return 1
    print(
        f"Wrote normalization statistics of {len(stats.channel_names)} channel(s) "
        f"{stats.channel_names} for {len(stats.fovs)} FOV(s) to {data_path}"
    )
    return 0
