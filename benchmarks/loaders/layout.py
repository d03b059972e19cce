"""Cold-cache random-patch throughput: the ``viscy rechunk`` layout against the original.

Plate: ``viscy_data.synthetic``, 4 FOVs x 8 T x 2 C x 8 Z x 1024 x 1024 uint16 (1 GiB
decoded), NGFF 0.5 with iohub's default chunks (one 16 MiB ZYX stack per chunk), and its copy
written by :func:`viscy_utils.rechunk.rechunk_store` with the defaults (inner chunks
1 x 1 x 1 x 128 x 128, one shard per (t, c) stack). The decoded-chunk cache is 256 MiB, a
quarter of the plate, so most reads miss it, as they do on real (terabyte) plates.

Boxes, drawn at random (fixed seed) over FOV, t, z and yx, the same for both layouts:

* ``triplet``: 2 channels x 4 Z x 192 x 192, batches of 32 (TripletDataModule's read),
* ``hcs``: 2 channels x 5 Z x 256 x 256, batches of 16 (HCSDataModule's read).

Each (layout, boxes) pair is read batch by batch through :class:`viscy_data.PatchReader`
(what every DataModule uses) in a fresh spawned process, so its chunk cache starts empty;
the OS page cache is warm for both. The original layout is read twice: as the reader reads
it (partial blosc decoding: only the blosc blocks a box needs) and as tensorstore does (whole
chunks, ``original_full_decode``). Rounds alternate the layouts; medians are reported.
Target: rechunked / original (whole-chunk decoding) >= 5 in samples per second, for both box
kinds; the ratio to the partially decoded original is reported beside it.

Run: ``uv run python -m benchmarks.loaders layout [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import machine, parse_ints, timed

SHAPE = (8, 2, 8, 1024, 1024)
CHANNELS = ("Phase3D", "GFP")
BOXES = {
    # name: (channels, z depth, yx size, batch size)
    "triplet": (2, 4, 192, 32),
    "hcs": (2, 5, 256, 16),
}


def _plates(workdir: Path, shape: tuple[int, ...]) -> tuple[Path, Path, dict[str, float]]:
    from viscy_data.synthetic import write_synthetic_plate
    from viscy_utils.rechunk import DEFAULT_PATCH, rechunk_store

    tag = "" if tuple(shape) == SHAPE else "_" + "x".join(map(str, shape))
    original = workdir / f"layout_original{tag}.zarr"
    # named by the default inner chunk: a copy made with other defaults is not reused
    rechunked = workdir / f"layout_rechunked{tag}_{'x'.join(map(str, DEFAULT_PATCH))}.zarr"
    times: dict[str, float] = {}
    if not original.exists():
        times["generate_s"], _ = timed(
            lambda: write_synthetic_plate(
                original, shape=shape, channel_names=CHANNELS, version="0.5", seed=0
            )
        )
    if not rechunked.exists():
        seconds, _ = timed(lambda: rechunk_store(original, rechunked, progress=False))
        times["rechunk_s"] = round(seconds, 2)
    return original, rechunked, times


def _inner_chunks(store: Path) -> list[int]:
    """Inner chunk shape of the first FOV's image array (read from its zarr.json)."""
    import json

    meta = json.loads((store / "A" / "1" / "0" / "0" / "zarr.json").read_text())
    for codec in meta.get("codecs", []):
        if codec.get("name") == "sharding_indexed":
            return list(codec["configuration"]["chunk_shape"])
    return list(meta["chunk_grid"]["configuration"]["chunk_shape"])


def _random_boxes(
    kind: str, n_batches: int, seed: int, shape: tuple[int, ...]
) -> list[list[tuple]]:
    import numpy as np

    n_c, depth, size, batch = BOXES[kind]
    n_t, _, n_z, n_y, n_x = shape
    depth, size = min(depth, n_z), min(size, n_y, n_x)
    fovs = ["A/1/0", "A/1/1", "B/1/0", "B/1/1"]
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n_batches):
        rows = []
        for _ in range(batch):
            z0 = int(rng.integers(0, n_z - depth + 1))
            y0 = int(rng.integers(0, n_y - size + 1))
            x0 = int(rng.integers(0, n_x - size + 1))
            rows.append(
                (
                    fovs[int(rng.integers(len(fovs)))],
                    int(rng.integers(n_t)),
                    tuple(range(n_c)),
                    (z0, z0 + depth),
                    (y0, y0 + size),
                    (x0, x0 + size),
                )
            )
        batches.append(rows)
    return batches


def _measure(
    store: str, batches: list[list[tuple]], cache_bytes: int, partial: bool = True
) -> dict[str, float]:
    """Runs in a fresh process: read every batch through PatchReader, cold chunk cache
    (``partial=False``: without partial blosc decoding, whole chunks as tensorstore decodes
    them)."""
    from viscy_data import PatchBox, PatchReader

    reader = PatchReader(store, cache_bytes=cache_bytes, backend="tensorstore")
    if not partial:
        reader._partial_decode = "never"
    boxes = [[PatchBox(*row) for row in rows] for rows in batches]
    for name in reader.position_names:
        reader.shape(name)
        reader._array(name)  # open every array (metadata only) before timing

    def read_all() -> int:
        n = 0
        for rows in boxes:
            n += len(reader.read_patches(rows))
        return n

    seconds, samples = timed(read_all)
    return {"seconds": seconds, "samples": samples}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=None, help="where the plates are kept")
    parser.add_argument("--batches", type=int, default=12, help="batches per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--cache-mib", type=int, default=256, help="decoded-chunk cache")
    parser.add_argument("--shape", type=parse_ints, default=SHAPE, help="plate T,C,Z,Y,X")
    parser.add_argument("--kinds", nargs="+", choices=list(BOXES), default=list(BOXES))


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_layout_"))
    workdir.mkdir(parents=True, exist_ok=True)
    shape = tuple(args.shape)
    original, rechunked, times = _plates(workdir, shape)
    cache_bytes = args.cache_mib * 1024**2
    plate_bytes = 4 * math.prod(shape) * 2
    context = multiprocessing.get_context("spawn")
    results: dict[str, Any] = {}
    with context.Pool(1, maxtasksperchild=1) as pool:
        for kind in args.kinds:
            batches = _random_boxes(kind, args.batches, seed=0, shape=shape)
            runs = (
                ("original", original, True),
                ("original_full_decode", original, False),
                ("rechunked", rechunked, True),
            )
            rates: dict[str, list[float]] = {name: [] for name, _, _ in runs}
            for _ in range(args.rounds):
                for name, path, partial in runs:
                    out = pool.apply(_measure, (str(path), batches, cache_bytes, partial))
                    rates[name].append(out["samples"] / out["seconds"])
            orig = statistics.median(rates["original"])
            full = statistics.median(rates["original_full_decode"])
            rech = statistics.median(rates["rechunked"])
            n_c, depth, size, batch = BOXES[kind]
            results[kind] = {
                "box_czyx": [n_c, depth, size, size],
                "batch_size": batch,
                "samples": args.batches * batch,
                "original_samples_per_s": round(orig, 1),
                "original_full_decode_samples_per_s": round(full, 1),
                "rechunked_samples_per_s": round(rech, 1),
                "rechunked_over_original": round(rech / orig, 2),
                "rechunked_over_original_full_decode": round(rech / full, 2),
                "partial_over_full_decode": round(orig / full, 2),
                "all_rates": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
                "target": 5.0,
                # the layout's own gain: both layouts read the way tensorstore reads them
                "pass": bool(rech / full >= 5.0),
                "pass_vs_partial_decoding": bool(rech / orig >= 5.0),
            }
    return {
        "benchmark": "layout",
        "plate": {
            "shape_tczyx": list(shape),
            "fovs": 4,
            "decoded_bytes": plate_bytes,
            "original_chunks": [1, 1, *shape[2:]],
            "rechunked_inner_chunks": _inner_chunks(rechunked),
            "rechunked_shards": "one per (t, c) stack (viscy rechunk defaults)",
        },
        "cache_bytes": cache_bytes,
        "plate_over_cache": round(plate_bytes / cache_bytes, 2),
        **times,
        "results": results,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "machine": machine(),
    }
