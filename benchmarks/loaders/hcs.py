"""HCSDataModule training loader against raw tensorstore reads of the same boxes.

Plate (default): ``viscy_data.synthetic``, 4 FOVs x 8 T x 2 C x 8 Z x 1024 x 1024 uint16,
NGFF 0.5, iohub's default chunking (one ZYX stack per chunk). Loader: batch 16, z-window 5,
256 x 256 patches, one source and one target channel, 2 worker processes. Every box the
loader reads is recorded, then read again by :class:`benchmarks.common.RawTensorstore`.
Cold: the first epoch of fresh workers vs a raw read with a fresh chunk cache; warm: the
epochs after one more untimed epoch vs the same raw read repeated. Both "cold" sides start
with an empty decoded-chunk cache but a warm OS page cache. ``--repeats`` trials (fresh
workers each); medians. Target: loader / raw >= 0.5 in samples per second.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import (
    boxes_from_records,
    machine,
    on_store,
    parse_ints,
    ratio_summary,
    raw_seconds,
    synthetic_plate,
    timed,
)

SHAPE = (8, 2, 8, 1024, 1024)
CHANNELS = ("Phase3D", "GFP")
TARGET = 0.5


def _recording(dataset_class: type) -> type:
    """A subclass of the dataset that adds each sample's box under ``"box"``.

    The box travels with the sample because worker processes read the patches.
    """

    class Recording(dataset_class):
        def _read(self, boxes, positions, out=None):
            self._last_boxes = list(boxes)
            return super()._read(boxes, positions, out=out)

        def __getitems__(self, indices: Sequence[int]) -> list[Any]:
            samples = super().__getitems__(indices)
            for sample, box in zip(samples, self._last_boxes, strict=True):
                sample["box"] = (box.position, box.t, box.channels, box.z, box.y, box.x)
            return samples

    return Recording


def _epoch(loader) -> tuple[float, list]:
    boxes: list = []

    def consume() -> int:
        n = 0
        for batch in loader:
            n += len(batch["box"])
            boxes.extend(batch["box"])
        return n

    seconds, _ = timed(consume)
    return seconds, boxes


def hcs(
    workdir: str | Path | None = None,
    batch_size: int = 16,
    workers: int = 2,
    cache_mib: int = 1024,
    warm_epochs: int = 3,
    repeats: int = 3,
    shape: tuple[int, int, int, int, int] = SHAPE,
    z_window: int = 5,
    patch_yx: tuple[int, int] = (256, 256),
    cells_per_fov: int = 64,
) -> dict[str, Any]:
    """Run the HCS loader benchmark; return the measurements as a dict."""
    from viscy_data import HCSDataModule

    workdir = Path(workdir or tempfile.mkdtemp(prefix="bench_hcs_"))
    workdir.mkdir(parents=True, exist_ok=True)
    suffix = "" if tuple(shape) == SHAPE else "_" + "x".join(map(str, shape))
    plate_path = workdir / f"bench_hcs{suffix}.zarr"
    generate_s = synthetic_plate(plate_path, shape, CHANNELS, cells_per_fov)
    cache_bytes = cache_mib * 1024**2

    loader_runs = []
    for trial in range(repeats):
        dm = HCSDataModule(
            data_path=str(plate_path),
            source_channel=CHANNELS[0],
            target_channel=CHANNELS[1],
            z_window_size=z_window,
            batch_size=batch_size,
            num_workers=workers,
            yx_patch_size=tuple(patch_yx),
            pin_memory=False,
            persistent_workers=workers > 0,
            cache_bytes=cache_bytes,
            seed=trial,
        )
        dm.setup("fit")
        dm.train_dataset.__class__ = _recording(type(dm.train_dataset))
        loader = dm.train_dataloader()
        # the main process must not have used tensorstore: workers are forked from it
        cold_s, cold_records = _epoch(loader)
        _epoch(loader)  # fills the rest of the workers' caches
        warm_s, warm_records = 0.0, []
        for _ in range(warm_epochs):
            seconds, records = _epoch(loader)
            warm_s += seconds
            warm_records += records
        del loader
        gc.collect()
        loader_runs.append((dm.train_fov_names, cold_s, cold_records, warm_s, warm_records))

    # raw reads last: a process that ran tensorstore must not fork DataLoader workers
    time.sleep(1.0 if workers > 0 else 0.0)
    trials = []
    for train_fovs, cold_s, cold_records, warm_s, warm_records in loader_runs:
        cold = on_store(plate_path, boxes_from_records(cold_records))
        warm = on_store(plate_path, boxes_from_records(warm_records))
        raw_cold_s = raw_seconds([cold], cache_bytes)[0]  # fresh chunk cache
        raw_warm_s = raw_seconds([warm, warm], cache_bytes)[1]  # the same boxes again
        trials.append(
            {
                "train_fovs": train_fovs,
                "samples_per_epoch": len(cold_records),
                "cold": {
                    "loader_s": round(cold_s, 3),
                    "raw_s": round(raw_cold_s, 3),
                    **ratio_summary(cold_s, raw_cold_s, len(cold_records), TARGET),
                },
                "warm": {
                    "loader_s": round(warm_s, 3),
                    "raw_s": round(raw_warm_s, 3),
                    **ratio_summary(warm_s, raw_warm_s, len(warm_records), TARGET),
                },
            }
        )

    def median_of(state: str) -> dict:
        ratios = sorted(t[state]["loader_over_raw"] for t in trials)
        median = float(statistics.median(ratios))
        return {
            "loader_over_raw_median": round(median, 3),
            "trials": ratios,
            "target": TARGET,
            "pass": bool(median >= TARGET),
        }

    return {
        "benchmark": "loaders hcs",
        "plate": {
            "shape_tczyx": list(shape),
            "fovs": 4,
            "dtype": "uint16",
            "chunks": "iohub default (one ZYX stack)",
            "format": "NGFF 0.5 / zarr v3",
            "generate_s": round(generate_s, 2),
        },
        "loader": {
            "batch_size": batch_size,
            "z_window": z_window,
            "patch_yx": list(patch_yx),
            "channels": {"source": CHANNELS[0], "target": CHANNELS[1]},
            "num_workers": workers,
            "cache_mib_per_process": cache_mib,
            "output_dtype": "uint16 (float32 on the device, on_after_batch_transfer)",
        },
        "cold": median_of("cold"),
        "warm": median_of("warm"),
        "trials": trials,
        "machine": machine(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``hcs`` subcommand."""
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the plate")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache-mib", type=int, default=1024, help="chunk cache per process")
    parser.add_argument(
        "--warm-epochs", type=int, default=3, help="timed warm epochs (after one untimed)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="trials (fresh workers each)")
    parser.add_argument("--shape", type=parse_ints, default=SHAPE, help="plate T,C,Z,Y,X")
    parser.add_argument("--z-window", type=int, default=5)
    parser.add_argument("--patch-yx", type=parse_ints, default=(256, 256))
    parser.add_argument("--cells-per-fov", type=int, default=64)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`hcs` with parsed options."""
    return hcs(
        workdir=args.workdir,
        batch_size=args.batch_size,
        workers=args.workers,
        cache_mib=args.cache_mib,
        warm_epochs=args.warm_epochs,
        repeats=args.repeats,
        shape=args.shape,
        z_window=args.z_window,
        patch_yx=args.patch_yx,
        cells_per_fov=args.cells_per_fov,
    )
