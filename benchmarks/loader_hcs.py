"""HCSDataModule training loader against one raw tensorstore read of the same boxes.

Plate: ``viscy_data.synthetic``, 4 FOVs x 8 T x 2 C x 8 Z x 1024 x 1024 uint16, NGFF 0.5,
iohub's default chunking (one ZYX stack per chunk). Loader: batch 16, z-window 5, 256 x 256
patches, one source and one target channel, 2 workers. Every box the loader reads is
recorded, then read again in one batched raw tensorstore call. Cold: the first epoch of
fresh workers vs a raw read with a fresh chunk cache; warm: the epochs after one more
untimed epoch vs the same raw read repeated. Both "cold" sides start with an empty
decoded-chunk cache but a warm OS page cache. Three trials (fresh workers each); medians.
Target: loader / raw >= 0.5 in samples per second.
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

from _loader_bench import machine, ratio_summary, raw_tensorstore_read, timed

from viscy_data.hcs import HCSDataModule
from viscy_data.sliding_window import SlidingWindowDataset

SHAPE = (8, 2, 8, 1024, 1024)
CHANNELS = ("Phase3D", "GFP")


class _RecordingDataset(SlidingWindowDataset):
    """Adds the box each sample was read from under ``"box"`` (collated into a list)."""

    def _read(self, boxes, positions, out=None):
        self._last_boxes = list(boxes)
        return super()._read(boxes, positions, out=out)

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        samples = super().__getitems__(indices)
        for sample, box in zip(samples, self._last_boxes, strict=True):
            sample["box"] = (box.position, box.t, box.channels, box.z, box.y, box.x)
        return samples


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the plate")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache-mib", type=int, default=1024, help="chunk cache per process")
    parser.add_argument(
        "--warm-epochs", type=int, default=3, help="timed warm epochs (after one untimed)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="trials (fresh workers each)")


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


def run(args: argparse.Namespace) -> dict:
    from viscy_data._reader import PatchBox
    from viscy_data.synthetic import write_synthetic_plate

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_hcs_"))
    plate_path = workdir / "bench_hcs.zarr"
    generate_s = 0.0
    if not plate_path.exists():
        generate_s, _ = timed(
            lambda: write_synthetic_plate(
                plate_path,
                shape=SHAPE,
                channel_names=CHANNELS,
                wells=(("A", "1"), ("B", "1")),
                fovs_per_well=2,
                version="0.5",
                seed=0,
                cells_per_fov=64,
            )
        )
    cache_bytes = args.cache_mib * 1024**2

    def to_boxes(records) -> list[PatchBox]:
        return [
            PatchBox(p, int(t), tuple(c), tuple(z), tuple(y), tuple(x))
            for p, t, c, z, y, x in records
        ]

    loader_runs = []
    for trial in range(args.repeats):
        dm = HCSDataModule(
            data_path=str(plate_path),
            source_channel=CHANNELS[0],
            target_channel=CHANNELS[1],
            z_window_size=5,
            batch_size=args.batch_size,
            num_workers=args.workers,
            yx_patch_size=(256, 256),
            pin_memory=False,
            persistent_workers=True,
            cache_bytes=cache_bytes,
            seed=trial,
        )
        dm.setup("fit")
        dm.train_dataset.__class__ = _RecordingDataset
        loader = dm.train_dataloader()
        # the main process must not have used tensorstore: workers are forked from it
        cold_s, cold_records = _epoch(loader)
        _epoch(loader)  # fills the rest of the workers' caches
        warm_s, warm_records = 0.0, []
        for _ in range(args.warm_epochs):
            seconds, records = _epoch(loader)
            warm_s += seconds
            warm_records += records
        del loader
        gc.collect()
        loader_runs.append((dm.train_fov_names, cold_s, cold_records, warm_s, warm_records))

    # raw reads last: a process that ran tensorstore must not fork DataLoader workers
    time.sleep(1.0)
    trials = []
    for train_fovs, cold_s, cold_records, warm_s, warm_records in loader_runs:
        raw_cold = raw_tensorstore_read(plate_path, to_boxes(cold_records), cache_bytes)
        raw_warm = raw_tensorstore_read(plate_path, to_boxes(warm_records), cache_bytes)
        trials.append(
            {
                "train_fovs": train_fovs,
                "samples_per_epoch": len(cold_records),
                "cold": {
                    "loader_s": round(cold_s, 3),
                    "raw_s": round(raw_cold["cold_s"], 3),
                    **ratio_summary(cold_s, raw_cold["cold_s"], len(cold_records)),
                },
                "warm": {
                    "loader_s": round(warm_s, 3),
                    "raw_s": round(raw_warm["warm_s"], 3),
                    **ratio_summary(warm_s, raw_warm["warm_s"], len(warm_records)),
                },
            }
        )

    def median_of(state: str) -> dict:
        ratios = sorted(t[state]["loader_over_raw"] for t in trials)
        median = float(statistics.median(ratios))
        return {
            "loader_over_raw_median": round(median, 3),
            "trials": ratios,
            "target": 0.5,
            "pass": bool(median >= 0.5),
        }

    return {
        "benchmark": "loaders hcs",
        "plate": {
            "shape_tczyx": list(SHAPE),
            "fovs": 4,
            "dtype": "uint16",
            "chunks": "iohub default (1, 1, 8, 1024, 1024)",
            "format": "NGFF 0.5 / zarr v3",
            "generate_s": round(generate_s, 2),
        },
        "loader": {
            "batch_size": args.batch_size,
            "z_window": 5,
            "patch_yx": [256, 256],
            "channels": {"source": CHANNELS[0], "target": CHANNELS[1]},
            "num_workers": args.workers,
            "cache_mib_per_process": args.cache_mib,
            "output_dtype": "uint16 (float32 on the device, on_after_batch_transfer)",
        },
        "cold": median_of("cold"),
        "warm": median_of("warm"),
        "trials": trials,
        "machine": machine(),
    }
