"""MultiExperimentDataModule (dynaclr) training loader against raw tensorstore reads.

Writes (once) two synthetic experiments with different channel sets and frame intervals
(default 4 FOV x 8 T x 2 or 3 C x 4 Z x 512 x 512 each, iohub's default chunking) and a third for
validation, then, in one run:

1. times ``MultiExperimentDataModule.setup("fit")`` (imports done beforehand),
2. iterates the training loader (every sampling axis on: experiment-aware + leaky,
   condition-balanced, temporal enrichment, variable tau) for one cold epoch and
   ``--warm-epochs`` warm ones of exactly ``--batches`` batches each (the loader is given
   only those batches, so nothing prefetched goes uncounted), recording every box the
   readers read,
3. right after each epoch, reads exactly those boxes again with
   :class:`benchmarks.common.RawTensorstore` in one separate context with the same cache
   size and the same history of reads, and once more after all epochs, back to back in a
   fresh process (``loader_over_raw_after``; the target applies to both),

and returns triplets/s and ``loader / raw`` throughput ratios: cold, and the median of the
warm epochs' ratios (target >= 0.5 warm).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    RawTensorstore,
    StoreBox,
    machine,
    parse_ints,
    preload_imports,
    raw_seconds_in_fresh_process,
    synthetic_plate,
)

EXPERIMENTS = (
    ("exp_a", ("Phase3D", "GFP"), 30.0),
    ("exp_b", ("Phase3D", "GFP", "mCherry"), 15.0),
    ("exp_c", ("Phase3D", "GFP"), 20.0),
)
SHAPE_TZYX = (8, 4, 512, 512)


def _experiments(workdir: Path, cells_per_fov: int, shape_tzyx: tuple[int, ...]) -> Path:
    import yaml

    entries = []
    suffix = "" if tuple(shape_tzyx) == SHAPE_TZYX else "_" + "x".join(map(str, shape_tzyx))
    for i, (name, channels, interval) in enumerate(EXPERIMENTS):
        plate = workdir / f"{name}_{cells_per_fov}{suffix}.zarr"
        tracks = workdir / f"{name}_{cells_per_fov}{suffix}_tracks"
        t, z, y, x = shape_tzyx
        shape = (t, len(channels), z, y, x)
        synthetic_plate(plate, shape, channels, cells_per_fov, tracks_path=tracks, seed=i)
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
    path = workdir / f"experiments_{cells_per_fov}{suffix}.yml"
    path.write_text(yaml.safe_dump({"training_channels": "shared", "experiments": entries}))
    return path


def _wait_for_threads(count: int, timeout_s: float = 10.0) -> int:
    """Collect garbage and wait (bounded) until no more than ``count`` threads run."""
    gc.collect()
    deadline = time.perf_counter() + timeout_s
    while threading.active_count() > count and time.perf_counter() < deadline:
        time.sleep(0.01)
    return threading.active_count()


def multi(
    workdir: str | Path | None = None,
    batch_size: int = 32,
    num_workers: int = 2,
    batches: int = 16,
    cells_per_fov: int = 32,
    cache_bytes: int = 2 * 1024**3,
    warm_epochs: int = 3,
    shape_tzyx: tuple[int, int, int, int] = SHAPE_TZYX,
    z_range: tuple[int, int] = (0, 4),
    yx_patch_size: tuple[int, int] = (192, 192),
    final_yx_patch_size: tuple[int, int] = (160, 160),
) -> dict[str, Any]:
    """Run the multi-experiment loader benchmark; return the measurements as a dict."""
    preload_imports()  # imports are excluded from the setup time
    from dynaclr.datamodule import MultiExperimentDataModule
    from viscy_data import PatchReader

    workdir = Path(workdir or tempfile.mkdtemp(prefix="multi_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    experiments_yaml = _experiments(workdir, cells_per_fov, shape_tzyx)
    write_s = time.perf_counter() - t0

    dm = MultiExperimentDataModule(
        experiments_yaml=str(experiments_yaml),
        val_experiments=["exp_c"],
        z_range=tuple(z_range),
        yx_patch_size=tuple(yx_patch_size),
        final_yx_patch_size=tuple(final_yx_patch_size),
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
    recorded: list[StoreBox] = []
    original = PatchReader.read_patches

    def recording(self: PatchReader, boxes: Any, out: Any = None) -> Any:
        recorded.extend((str(self.store_path), b) for b in boxes)
        return original(self, boxes, out=out)

    raw = RawTensorstore(cache_bytes)
    epochs = []
    selections = []
    PatchReader.read_patches = recording  # type: ignore[method-assign]
    try:
        sampler = dm.train_sampler()
        for epoch in range(1 + warm_epochs):
            recorded.clear()
            sampler.set_epoch(epoch)
            # exactly `batches` batches: no prefetched batch is read without being counted,
            # so the raw baseline reads the very boxes of the timed batches, no more
            chosen = list(itertools.islice(iter(sampler), batches))
            threads_before = threading.active_count()
            loader = dm._loader(dm.train_dataset, batch_sampler=chosen)
            start = time.perf_counter()
            n = sum(batch["anchor"].shape[0] for batch in loader)
            loader_s = time.perf_counter() - start
            del loader
            _wait_for_threads(threads_before)  # no loader thread competes with the raw reads
            # the same boxes, right after (same machine load), with the same cache history
            selections.append(list(recorded))
            raw_s = raw.seconds(selections[-1])
            epochs.append(
                {"triplets": n, "boxes": len(recorded), "loader_s": loader_s, "raw_s": raw_s}
            )
    finally:
        PatchReader.read_patches = original  # type: ignore[method-assign]
    # the same selections again, back to back in a fresh process (its own allocator state:
    # nothing the loader did, such as freeing or keeping big arrays, helps or hurts them)
    raw_after_s = raw_seconds_in_fresh_process(selections, cache_bytes)
    ratios = [e["raw_s"] / e["loader_s"] for e in epochs]
    ratios_after = [r / e["loader_s"] for r, e in zip(raw_after_s, epochs, strict=True)]
    loader_tps = [e["triplets"] / e["loader_s"] for e in epochs]
    raw_tps = [e["triplets"] / e["raw_s"] for e in epochs]
    return {
        "benchmark": "loaders multi",
        "machine": machine(),
        "shape_tzyx": list(shape_tzyx),
        "patch_yx": {"initial": list(yx_patch_size), "final": list(final_yx_patch_size)},
        "experiments": [e[0] for e in EXPERIMENTS],
        "plate_write_s": round(write_s, 2),
        "setup_s": round(setup_s, 3),
        "train_anchors": len(dm.train_dataset),
        "batch_size": batch_size,
        "num_workers": num_workers,
        "batches_per_epoch": batches,
        "warm_epochs": warm_epochs,
        "boxes_read": {"cold": epochs[0]["boxes"], "warm": [e["boxes"] for e in epochs[1:]]},
        "loader_triplets_per_s": {
            "cold": round(loader_tps[0], 1),
            "warm": round(statistics.median(loader_tps[1:]), 1),
        },
        "raw_triplets_per_s": {
            "cold": round(raw_tps[0], 1),
            "warm": round(statistics.median(raw_tps[1:]), 1),
        },
        # warm: median over the warm epochs of each epoch's loader / raw ratio
        "loader_over_raw": {
            "cold": round(ratios[0], 3),
            "warm": round(statistics.median(ratios[1:]), 3),
            "warm_epochs": [round(r, 3) for r in ratios[1:]],
        },
        # against the raw reads repeated after all loader epochs in a fresh process
        "loader_over_raw_after": {
            "cold": round(ratios_after[0], 3),
            "warm": round(statistics.median(ratios_after[1:]), 3),
            "warm_epochs": [round(r, 3) for r in ratios_after[1:]],
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
    parser.add_argument("--warm-epochs", type=int, default=3)
    parser.add_argument("--cache-bytes", type=int, default=2 * 1024**3)
    parser.add_argument("--shape-tzyx", type=parse_ints, default=SHAPE_TZYX)
    parser.add_argument("--z-range", type=parse_ints, default=(0, 4))
    parser.add_argument("--initial-patch-yx", type=parse_ints, default=(192, 192))
    parser.add_argument("--final-patch-yx", type=parse_ints, default=(160, 160))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`multi` with parsed options."""
    return multi(
        workdir=args.workdir,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        batches=args.batches,
        cells_per_fov=args.cells_per_fov,
        warm_epochs=args.warm_epochs,
        cache_bytes=args.cache_bytes,
        shape_tzyx=args.shape_tzyx,
        z_range=args.z_range,
        yx_patch_size=args.initial_patch_yx,
        final_yx_patch_size=args.final_patch_yx,
    )
