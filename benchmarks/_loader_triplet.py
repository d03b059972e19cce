"""Benchmark of the triplet loader against a raw tensorstore read of the same boxes.

Writes (once) a synthetic plate of 4 FOV x 8 T x 2 C x 8 Z x 1024 x 1024 with iohub's default
chunking and its tracks, then, in one run:

1. times ``TripletDataModule.setup("fit")`` (imports done beforehand),
2. iterates the train loader for two epochs (cold: empty chunk cache; warm: second epoch),
   recording every box the loader reads,
3. reads exactly those boxes again with plain tensorstore (all issued at once, then
   awaited), in a fresh context with the same cache size: cold (epoch-1 boxes) and warm
   (epoch-2 boxes, right after), each copied into one preallocated array as the
   shared loader benchmarks do (``benchmarks/_loader_bench.py``),

and prints JSON with times, triplets/s and ``loader / raw`` throughput ratios (target >= 0.5
warm). Run: ``uv run python benchmarks/_loader_triplet.py [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

PLATE_SHAPE = (8, 2, 8, 1024, 1024)
CHANNELS = ("Phase3D", "GFP")


def _plate(workdir: Path, cells_per_fov: int) -> tuple[Path, Path]:
    from viscy_data.synthetic import write_synthetic_plate

    plate_path = workdir / f"triplet_bench_{cells_per_fov}.zarr"
    tracks_path = workdir / f"triplet_bench_{cells_per_fov}_tracks"
    if not plate_path.exists():
        write_synthetic_plate(
            plate_path,
            shape=PLATE_SHAPE,
            channel_names=CHANNELS,
            wells=(("A", "1"), ("B", "1")),
            fovs_per_well=2,
            version="0.5",
            seed=0,
            tracks_path=tracks_path,
            cells_per_fov=cells_per_fov,
        )
    return plate_path, tracks_path


def _raw_read(reader: Any, boxes: list, cache_bytes: int) -> tuple[float, float]:
    """Read ``boxes`` twice with bare tensorstore (fresh context): cold and warm seconds."""
    import numpy as np
    import tensorstore as ts

    context = ts.Context({"cache_pool": {"total_bytes_limit": int(cache_bytes)}})
    arrays: dict[str, Any] = {}
    for name in {b.position for b in boxes}:
        path = reader.store_path / name / "0"
        driver = "zarr3" if (path / "zarr.json").exists() else "zarr"
        spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(path)}}
        arrays[name] = ts.open(spec, read=True, context=context).result()

    def read_all(selection: list) -> float:
        # all reads issued, then awaited into one preallocated array (what a loader must do)
        c, z, y, x = selection[0].size
        dtype = arrays[selection[0].position].dtype.numpy_dtype
        start = time.perf_counter()
        out = np.empty((len(selection), c, z, y, x), dtype=dtype)
        futures = [
            arrays[b.position]
            .oindex[b.t, list(b.channels), slice(*b.z), slice(*b.y), slice(*b.x)]
            .read()
            for b in selection
        ]
        for i, future in enumerate(futures):
            out[i] = future.result()
        return time.perf_counter() - start

    half = len(boxes) // 2
    return read_all(boxes[:half]), read_all(boxes[half:])


def triplet(
    workdir: str | Path | None = None,
    batch_size: int = 32,
    num_workers: int = 2,
    cells_per_fov: int = 32,
    cache_bytes: int = 2 * 1024**3,
) -> dict[str, Any]:
    """Run the triplet loader benchmark; return the measurements as a dict."""
    # imports are excluded from the setup time
    import iohub.ngff  # noqa: F401
    import tensorstore  # noqa: F401
    import torch  # noqa: F401
    from monai.data import ThreadDataLoader  # noqa: F401

    import viscy_data._utils  # noqa: F401
    from viscy_data.triplet import TripletDataModule

    workdir = Path(workdir or tempfile.mkdtemp(prefix="triplet_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plate_path, tracks_path = _plate(workdir, cells_per_fov)
    write_s = time.perf_counter() - t0

    dm = TripletDataModule(
        data_path=str(plate_path),
        tracks_path=str(tracks_path),
        source_channel=list(CHANNELS),
        z_range=(2, 6),
        initial_yx_patch_size=(192, 192),
        final_yx_patch_size=(160, 160),
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

    def recording(boxes):
        recorded.extend(boxes)
        return read(boxes)

    dataset.reader.read_patches = recording
    epochs = []
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
    dataset.reader.read_patches = read
    cold_boxes = recorded[: epochs[0]["boxes"]]
    warm_boxes = recorded[epochs[0]["boxes"] :]
    raw_cold_s, raw_warm_s = _raw_read(dataset.reader, cold_boxes + warm_boxes, cache_bytes)

    def rate(n: int, seconds: float) -> float:
        return n / seconds if seconds > 0 else float("inf")

    loader_cold = rate(epochs[0]["boxes"], epochs[0]["seconds"])
    loader_warm = rate(epochs[1]["boxes"], epochs[1]["seconds"])
    raw_cold = rate(len(cold_boxes), raw_cold_s)
    raw_warm = rate(len(warm_boxes), raw_warm_s)
    return {
        "benchmark": "triplet",
        "plate": {"shape_tczyx": list(PLATE_SHAPE), "fovs": 4, "chunks": "iohub default"},
        "config": {
            "batch_size": batch_size,
            "num_workers": num_workers,
            "channels": list(CHANNELS),
            "z_range": [2, 6],
            "initial_yx_patch_size": [192, 192],
            "final_yx_patch_size": [160, 160],
            "time_interval": 1,
            "cache_pool_bytes": cache_bytes,
            "train_fovs": len(dataset.fov_names),
            "train_anchors": len(dataset),
        },
        "plate_write_s": round(write_s, 2),
        "setup_s": round(setup_s, 3),
        "loader_cold": {
            "seconds": round(epochs[0]["seconds"], 3),
            "triplets_per_s": round(rate(epochs[0]["triplets"], epochs[0]["seconds"]), 1),
            "boxes_per_s": round(loader_cold, 1),
        },
        "loader_warm": {
            "seconds": round(epochs[1]["seconds"], 3),
            "triplets_per_s": round(rate(epochs[1]["triplets"], epochs[1]["seconds"]), 1),
            "boxes_per_s": round(loader_warm, 1),
        },
        "raw_tensorstore_cold": {
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
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``triplet`` subcommand (``benchmarks/loaders.py`` protocol)."""
    parser.add_argument("--workdir", default=None, help="where the plate is written (kept)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--cells-per-fov", type=int, default=32)
    parser.add_argument("--cache-bytes", type=int, default=2 * 1024**3)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`triplet` with parsed options (``benchmarks/loaders.py`` protocol)."""
    return triplet(
        args.workdir, args.batch_size, args.num_workers, args.cells_per_fov, args.cache_bytes
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    print(json.dumps(run(parser.parse_args(argv)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
