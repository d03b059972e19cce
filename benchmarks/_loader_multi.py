"""Benchmark of the multi-experiment triplet loader against raw tensorstore reads.

Writes (once) two synthetic experiments with different channel sets and frame intervals
(4 FOV x 8 T x 2 or 3 C x 4 Z x 512 x 512 each, iohub's default chunking) and a third for
validation, then, in one run:

1. times ``MultiExperimentDataModule.setup("fit")`` (imports done beforehand),
2. iterates the training loader (every sampling axis on: experiment-aware + leaky,
   condition-balanced, temporal enrichment, variable tau) for two epochs of exactly
   ``--batches`` batches (cold, then warm chunk cache; the loader is given only those
   batches, so nothing prefetched goes uncounted), recording every box the readers read,
3. reads exactly those boxes again with plain tensorstore (all issued at once, then awaited)
   in a fresh context with the same cache size, cold then warm,

and returns times, triplets/s and ``loader / raw`` throughput ratios (target >= 0.5 warm).

Run alone: ``uv run python benchmarks/_loader_multi.py [--workdir DIR]``; as a subcommand of
``benchmarks/loaders.py`` through :func:`add_arguments` / :func:`run`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

EXPERIMENTS = (
    ("exp_a", ("Phase3D", "GFP"), 30.0),
    ("exp_b", ("Phase3D", "GFP", "mCherry"), 15.0),
    ("exp_c", ("Phase3D", "GFP"), 20.0),
)
SHAPE_TZYX = (8, 4, 512, 512)


def _experiments(workdir: Path, cells_per_fov: int) -> Path:
    import yaml

    from viscy_data.synthetic import write_synthetic_plate

    entries = []
    for i, (name, channels, interval) in enumerate(EXPERIMENTS):
        plate = workdir / f"{name}_{cells_per_fov}.zarr"
        tracks = workdir / f"{name}_{cells_per_fov}_tracks"
        if not plate.exists():
            t, z, y, x = SHAPE_TZYX
            write_synthetic_plate(
                plate,
                shape=(t, len(channels), z, y, x),
                channel_names=channels,
                fovs_per_well=2,
                seed=i,
                tracks_path=tracks,
                cells_per_fov=cells_per_fov,
            )
        entries.append(
            {
                "name": name,
                "data_path": str(plate),
                "tracks_path": str(tracks),
                "channel_names": list(channels),
                "condition_wells": {"uninfected": ["A/1"], "infected": ["B/1"]},
                "interval_minutes": interval,
            }
        )
    path = workdir / f"experiments_{cells_per_fov}.yml"
    path.write_text(yaml.safe_dump({"training_channels": "shared", "experiments": entries}))
    return path


def _raw_read(cold: list, warm: list, cache_bytes: int) -> tuple[float, float]:
    """Read ``(store_path, box)`` pairs with bare tensorstore: ``cold`` then ``warm``."""
    import numpy as np
    import tensorstore as ts

    context = ts.Context({"cache_pool": {"total_bytes_limit": int(cache_bytes)}})
    arrays: dict[tuple[str, str], Any] = {}
    for store, box in cold + warm:
        key = (store, box.position)
        if key not in arrays:
            path = Path(store) / box.position / "0"
            driver = "zarr3" if (path / "zarr.json").exists() else "zarr"
            spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(path)}}
            arrays[key] = ts.open(spec, read=True, context=context).result()

    def read_all(selection: list) -> float:
        start = time.perf_counter()
        futures = [
            arrays[(store, b.position)]
            .oindex[b.t, list(b.channels), slice(*b.z), slice(*b.y), slice(*b.x)]
            .read()
            for store, b in selection
        ]
        out = [np.asarray(f.result()) for f in futures]
        assert len(out) == len(selection)
        return time.perf_counter() - start

    return read_all(cold), read_all(warm)


def multi(
    workdir: str | Path | None = None,
    batch_size: int = 32,
    num_workers: int = 2,
    batches: int = 16,
    cells_per_fov: int = 32,
    cache_bytes: int = 2 * 1024**3,
) -> dict[str, Any]:
    """Run the multi-experiment loader benchmark; return the measurements as a dict."""
    # imports are excluded from the setup time
    import iohub.ngff  # noqa: F401
    import tensorstore  # noqa: F401
    import torch  # noqa: F401
    from monai.data import ThreadDataLoader  # noqa: F401

    from dynaclr.datamodule import MultiExperimentDataModule
    from viscy_data._reader import PatchReader

    workdir = Path(workdir or tempfile.mkdtemp(prefix="multi_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    experiments_yaml = _experiments(workdir, cells_per_fov)
    write_s = time.perf_counter() - t0

    dm = MultiExperimentDataModule(
        experiments_yaml=str(experiments_yaml),
        val_experiments=["exp_c"],
        z_range=(0, 4),
        yx_patch_size=(192, 192),
        final_yx_patch_size=(160, 160),
        tau_range=(0.5, 1.5),
        batch_size=batch_size,
        num_workers=num_workers,
        experiment_aware=True,
        leaky=0.1,
        condition_balanced=True,
        temporal_enrichment=True,
        temporal_window_hours=1.0,
        cache_pool_bytes=cache_bytes,
    )
    t0 = time.perf_counter()
    dm.setup("fit")
    setup_s = time.perf_counter() - t0

    # record every box the loader reads (per epoch), without changing what is read
    recorded: list[list[tuple[str, Any]]] = [[], []]
    original = PatchReader.read_patches

    def recording(self: PatchReader, boxes: Any, out: Any = None) -> Any:
        recorded[-1].extend((str(self.store_path), b) for b in boxes)
        return original(self, boxes, out=out)

    PatchReader.read_patches = recording  # type: ignore[method-assign]
    epochs = []
    try:
        sampler = dm.train_sampler()
        for epoch in range(2):
            recorded[epoch:] = [[]]
            sampler.set_epoch(epoch)
            # exactly `batches` batches: no prefetched batch is read without being counted,
            # so the raw baseline reads the very boxes of the timed batches, no more
            chosen = list(itertools.islice(iter(sampler), batches))
            loader = dm._loader(dm.train_dataset, batch_sampler=chosen)
            start = time.perf_counter()
            n = sum(batch["anchor"].shape[0] for batch in loader)
            epochs.append({"seconds": time.perf_counter() - start, "triplets": n})
    finally:
        PatchReader.read_patches = original  # type: ignore[method-assign]
    raw_cold, raw_warm = _raw_read(recorded[0], recorded[1], cache_bytes)
    loader_cold = epochs[0]["triplets"] / epochs[0]["seconds"]
    loader_warm = epochs[1]["triplets"] / epochs[1]["seconds"]
    raw_cold_tps = epochs[0]["triplets"] / raw_cold
    raw_warm_tps = epochs[1]["triplets"] / raw_warm
    return {
        "benchmark": "loader_multi",
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "experiments": [e[0] for e in EXPERIMENTS],
        "plate_write_s": round(write_s, 2),
        "setup_s": round(setup_s, 3),
        "train_anchors": len(dm.train_dataset),
        "batch_size": batch_size,
        "num_workers": num_workers,
        "batches_per_epoch": batches,
        "boxes_read": {"cold": len(recorded[0]), "warm": len(recorded[1])},
        "loader_triplets_per_s": {"cold": round(loader_cold, 1), "warm": round(loader_warm, 1)},
        "raw_triplets_per_s": {"cold": round(raw_cold_tps, 1), "warm": round(raw_warm_tps, 1)},
        "loader_over_raw": {
            "cold": round(loader_cold / raw_cold_tps, 3),
            "warm": round(loader_warm / raw_warm_tps, 3),
        },
        "target_warm_ratio": 0.5,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``multi`` subcommand."""
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--cells-per-fov", type=int, default=32)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Entry point for ``benchmarks/loaders.py multi``."""
    return multi(
        workdir=args.workdir,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        batches=args.batches,
        cells_per_fov=args.cells_per_fov,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    print(json.dumps(run(parser.parse_args()), indent=2))
