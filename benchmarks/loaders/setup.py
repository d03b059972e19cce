"""``setup("fit")`` time of the HCS, triplet and multi-experiment DataModules (imports excluded).

Plate: the loader benchmarks' 1 GiB plate (4 FOVs x 8 T x 2 C x 8 Z x 1024 x 1024, 32 tracked
cells per FOV, NGFF 0.5, iohub's default chunks), written once under ``--workdir``. Each
DataModule is built and set up in a fresh spawned process, after importing everything it
needs, ``--repeats`` times; the median is reported with the largest parts of one profiled
setup (cumulative seconds per function, ``cProfile``), to say where the time goes.
Target: < 2 s each.

Run: ``uv run python -m benchmarks.loaders setup [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import machine

SHAPE = (8, 2, 8, 1024, 1024)
CHANNELS = ("Phase3D", "GFP")
TARGET_S = 2.0


def _plate(workdir: Path) -> tuple[Path, Path, Path]:
    import yaml

    from viscy_data.synthetic import write_synthetic_plate

    plate = workdir / "setup_bench.zarr"
    tracks = workdir / "setup_bench_tracks"
    if not plate.exists():
        write_synthetic_plate(
            plate,
            shape=SHAPE,
            channel_names=CHANNELS,
            version="0.5",
            seed=0,
            tracks_path=tracks,
            cells_per_fov=32,
        )
    experiments = workdir / "setup_bench_experiments.yml"
    entry = {
        "data_path": str(plate),
        "tracks_path": str(tracks),
        "channel_names": list(CHANNELS),
        "condition_wells": {"uninfected": ["A/1"], "infected": ["B/1"]},
    }
    experiments.write_text(
        yaml.safe_dump(
            {
                "training_channels": "shared",
                "experiments": [
                    {"name": "exp_a", "interval_minutes": 30.0, **entry},
                    {"name": "exp_b", "interval_minutes": 15.0, **entry},
                ],
            }
        )
    )
    return plate, tracks, experiments


def _build(kind: str, plate: str, tracks: str, experiments: str) -> Any:
    if kind == "hcs":
        from viscy_data.hcs import HCSDataModule

        return HCSDataModule(
            data_path=plate,
            source_channel="Phase3D",
            target_channel="GFP",
            z_window_size=5,
            batch_size=16,
            num_workers=2,
            yx_patch_size=(256, 256),
        )
    if kind == "triplet":
        from viscy_data.triplet import TripletDataModule

        return TripletDataModule(
            data_path=plate,
            tracks_path=tracks,
            source_channel=list(CHANNELS),
            z_range=(2, 6),
            initial_yx_patch_size=(192, 192),
            final_yx_patch_size=(160, 160),
            batch_size=32,
            num_workers=2,
        )
    from dynaclr.datamodule import MultiExperimentDataModule

    return MultiExperimentDataModule(
        experiments_yaml=experiments,
        z_range=(2, 6),
        yx_patch_size=(192, 192),
        final_yx_patch_size=(160, 160),
        batch_size=32,
        num_workers=2,
    )


def _time_setup(kind: str, plate: str, tracks: str, experiments: str, profile: bool) -> dict:
    """In a fresh process: import, build, then time ``setup("fit")`` (optionally profiled)."""
    import cProfile
    import pstats
    import time

    # imports are excluded: load everything setup touches before the clock starts
    import iohub.ngff  # noqa: F401
    import pandas  # noqa: F401
    import tensorstore  # noqa: F401
    import torch  # noqa: F401

    dm = _build(kind, plate, tracks, experiments)
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    dm.setup("fit")
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - start
    out: dict[str, Any] = {"seconds": seconds}
    if profiler:
        stats = pstats.Stats(profiler)
        rows = []
        for (file, line, name), (_, _, _, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
            where = file.split("site-packages/")[-1].split("/src/")[-1]
            rows.append((cum, f"{where}:{line}({name})"))
        rows.sort(reverse=True)
        ours = [r for r in rows if "viscy_data" in r[1] or "dynaclr" in r[1]]
        out["top_cumulative_s"] = {name: round(cum, 3) for cum, name in ours[:12]}
        out["top_external_s"] = {
            name: round(cum, 3)
            for cum, name in rows
            if "viscy_data" not in name
            and "dynaclr" not in name
            and "~" not in name
            and "/lib/python3" not in name  # the standard library (waits, threads)
        }
        out["top_external_s"] = dict(list(out["top_external_s"].items())[:8])
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=None, help="where the plate is kept")
    parser.add_argument("--repeats", type=int, default=2, help="fresh processes per kind")
    parser.add_argument("--kinds", nargs="+", default=["hcs", "triplet", "multi"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_setup_"))
    workdir.mkdir(parents=True, exist_ok=True)
    plate, tracks, experiments = (str(p) for p in _plate(workdir))
    context = multiprocessing.get_context("spawn")
    results: dict[str, Any] = {}
    with context.Pool(1, maxtasksperchild=1) as pool:
        for kind in args.kinds:
            times = [
                pool.apply(_time_setup, (kind, plate, tracks, experiments, False))["seconds"]
                for _ in range(args.repeats)
            ]
            profiled = pool.apply(_time_setup, (kind, plate, tracks, experiments, True))
            median = statistics.median(times)
            results[kind] = {
                "setup_s": round(median, 3),
                "all_s": [round(t, 3) for t in times],
                "profiled_s": round(profiled["seconds"], 3),
                "where": profiled["top_cumulative_s"],
                "external": profiled["top_external_s"],
                "target_s": TARGET_S,
                "pass": bool(median < TARGET_S),
            }
    return {
        "benchmark": "setup",
        "plate": {"shape_tczyx": list(SHAPE), "fovs": 4, "cells_per_fov": 32},
        "results": results,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "machine": machine(),
    }
