"""TripletDataModule training loader against raw tensorstore reads of the same boxes.

Writes (once) a synthetic plate (default 4 FOV x 8 T x 2 C x 8 Z x 1024 x 1024, iohub's
default chunking) and its tracks, then, in one run:

1. times ``TripletDataModule.setup("fit")`` (imports done beforehand),
2. iterates the train loader for two epochs (cold: empty chunk cache; warm: second epoch),
   recording every box the loader reads,
3. reads exactly those boxes again with :class:`benchmarks.common.RawTensorstore` in a
   fresh context with the same cache size: cold (epoch-1 boxes), then warm (epoch-2 boxes),

and returns times, triplets/s and ``loader / raw`` throughput ratios (target >= 0.5 warm).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    machine,
    on_store,
    parse_ints,
    preload_imports,
    raw_seconds,
    synthetic_plate,
)

PLATE_SHAPE = (8, 2, 8, 1024, 1024)
CHANNELS = ("Phase3D", "GFP")


def _plate(workdir: Path, shape: tuple[int, ...], cells_per_fov: int) -> tuple[Path, Path]:
    suffix = "" if tuple(shape) == PLATE_SHAPE else "_" + "x".join(map(str, shape))
    plate_path = workdir / f"triplet_bench_{cells_per_fov}{suffix}.zarr"
    tracks_path = workdir / f"triplet_bench_{cells_per_fov}{suffix}_tracks"
    synthetic_plate(plate_path, shape, CHANNELS, cells_per_fov, tracks_path=tracks_path)
    return plate_path, tracks_path


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def triplet(
    workdir: str | Path | None = None,
    batch_size: int = 32,
    num_workers: int = 2,
    cells_per_fov: int = 32,
    cache_bytes: int = 2 * 1024**3,
    shape: tuple[int, int, int, int, int] = PLATE_SHAPE,
    z_range: tuple[int, int] = (2, 6),
    initial_yx_patch_size: tuple[int, int] = (192, 192),
    final_yx_patch_size: tuple[int, int] = (160, 160),
) -> dict[str, Any]:
    """Run the triplet loader benchmark; return the measurements as a dict."""
    preload_imports()  # imports are excluded from the setup time
    from viscy_data import TripletDataModule, read_norm_meta  # noqa: F401

    workdir = Path(workdir or tempfile.mkdtemp(prefix="triplet_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plate_path, tracks_path = _plate(workdir, shape, cells_per_fov)
    write_s = time.perf_counter() - t0

    dm = TripletDataModule(
        data_path=str(plate_path),
        tracks_path=str(tracks_path),
        source_channel=list(CHANNELS),
        z_range=tuple(z_range),
        initial_yx_patch_size=tuple(initial_yx_patch_size),
        final_yx_patch_size=tuple(final_yx_patch_size),
        batch_size=batch_size,
        num_workers=num_workers,
        time_interval=1,
        cache_pool_bytes=cache_bytes,
    )
    t0 = time.perf_counter()
    dm.setup("fit")
    setup_s = time.perf_counter() - t0

    dataset = dm.train_dataset
    recorded: list = []
    read = dataset.reader.read_patches

    def recording(boxes, *args, **kwargs):
        recorded.extend(boxes)
        return read(boxes, *args, **kwargs)

    dataset.reader.read_patches = recording
    epochs = []
    try:
        for _ in range(2):
            loader = dm.train_dataloader()
            start = time.perf_counter()
            n_triplets = 0
            n_boxes_before = len(recorded)
            for batch in loader:
                n_triplets += batch["anchor"].shape[0]
            epochs.append(
                {
                    "seconds": time.perf_counter() - start,
                    "triplets": n_triplets,
                    "boxes": len(recorded) - n_boxes_before,
                }
            )
    finally:
        del dataset.reader.read_patches  # the class's method again
    store = dataset.reader.store_path
    cold_boxes = on_store(store, recorded[: epochs[0]["boxes"]])
    warm_boxes = on_store(store, recorded[epochs[0]["boxes"] :])
    raw_cold_s, raw_warm_s = raw_seconds([cold_boxes, warm_boxes], cache_bytes)

    loader_cold = _rate(epochs[0]["boxes"], epochs[0]["seconds"])
    loader_warm = _rate(epochs[1]["boxes"], epochs[1]["seconds"])
    raw_cold = _rate(len(cold_boxes), raw_cold_s)
    raw_warm = _rate(len(warm_boxes), raw_warm_s)
    return {
        "benchmark": "loaders triplet",
        "plate": {"shape_tczyx": list(shape), "fovs": 4, "chunks": "iohub default"},
        "config": {
            "batch_size": batch_size,
            "num_workers": num_workers,
            "channels": list(CHANNELS),
            "z_range": list(z_range),
            "initial_yx_patch_size": list(initial_yx_patch_size),
            "final_yx_patch_size": list(final_yx_patch_size),
            "time_interval": 1,
            "cache_pool_bytes": cache_bytes,
            "train_fovs": len(dataset.fov_names),
            "train_anchors": len(dataset),
        },
        "plate_write_s": round(write_s, 2),
        "setup_s": round(setup_s, 3),
        "loader_cold": {
            "boxes": epochs[0]["boxes"],
            "seconds": round(epochs[0]["seconds"], 3),
            "triplets_per_s": round(_rate(epochs[0]["triplets"], epochs[0]["seconds"]), 1),
            "boxes_per_s": round(loader_cold, 1),
        },
        "loader_warm": {
            "seconds": round(epochs[1]["seconds"], 3),
            "triplets_per_s": round(_rate(epochs[1]["triplets"], epochs[1]["seconds"]), 1),
            "boxes_per_s": round(loader_warm, 1),
        },
        "raw_tensorstore_cold": {
            "boxes": len(cold_boxes),
            "seconds": round(raw_cold_s, 3),
            "boxes_per_s": round(raw_cold, 1),
        },
        "raw_tensorstore_warm": {
            "seconds": round(raw_warm_s, 3),
            "boxes_per_s": round(raw_warm, 1),
        },
        "ratio_loader_over_raw_cold": round(loader_cold / raw_cold, 3),
        "ratio_loader_over_raw_warm": round(loader_warm / raw_warm, 3),
        "targets": {"ratio_warm_min": 0.5, "setup_s_max": 5.0},
        "machine": machine(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``triplet`` subcommand."""
    parser.add_argument("--workdir", type=Path, default=None, help="where the plate is kept")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--cells-per-fov", type=int, default=32)
    parser.add_argument("--cache-bytes", type=int, default=2 * 1024**3)
    parser.add_argument("--shape", type=parse_ints, default=PLATE_SHAPE, help="plate T,C,Z,Y,X")
    parser.add_argument("--z-range", type=parse_ints, default=(2, 6))
    parser.add_argument("--initial-patch-yx", type=parse_ints, default=(192, 192))
    parser.add_argument("--final-patch-yx", type=parse_ints, default=(160, 160))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`triplet` with parsed options."""
    return triplet(
        workdir=args.workdir,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        cells_per_fov=args.cells_per_fov,
        cache_bytes=args.cache_bytes,
        shape=args.shape,
        z_range=args.z_range,
        initial_yx_patch_size=args.initial_patch_yx,
        final_yx_patch_size=args.final_patch_yx,
    )
