"""HCSDataModule training throughput: this workspace against the published 0.1.0 release.

Both sides build the same DataModule from the same arguments (the 0.1.0 signature): source
Phase3D, target GFP, z-window 5, batch 16, ``--workers`` worker processes, and the 0.1.0 way
of asking for 256 x 256 training patches, a ``RandSpatialCropd`` augmentation of
(5, 256, 256). Each side runs in a fresh process of its own Python (``sys.executable`` here;
``--release-python``, a venv with ``viscy-data==0.1.0`` from PyPI, for the release), reads
two untimed batches, then times ``--batches`` batches. Plates: the loader benchmarks' 1 GiB
plate (4 FOVs x 8 T x 2 C x 8 Z x 1024^2, iohub's default chunks) and its ``viscy rechunk``
copy; every (layout, side) pair is measured ``--rounds`` times, alternating, median kept.
Target: ours / 0.1.0 >= 10 in samples per second, same plate, same workers.

Run: ``uv run python -m benchmarks.loaders hcs_release [--release-python PATH]``; the
release venv is recreated with ``tools/compat/make_oracle_venv.sh`` (skipped when it is missing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import machine

SHAPE = (8, 2, 8, 1024, 1024)
CHANNELS = ("Phase3D", "GFP")
DEFAULT_RELEASE_PYTHON = "/work/oracle-venv/bin/python"

# Runs in a fresh process of either Python: only the 0.1.0 public API is used.
_PROBE = r"""
import json, sys, time
args = json.loads(sys.argv[1])
from monai.transforms import RandSpatialCropd
from viscy_data import HCSDataModule
dm = HCSDataModule(
    data_path=args["plate"], source_channel="Phase3D", target_channel="GFP", z_window_size=5,
    batch_size=args["batch"], num_workers=args["workers"], yx_patch_size=(256, 256),
    augmentations=[RandSpatialCropd(keys=["Phase3D", "GFP"], roi_size=(5, 256, 256))],
    pin_memory=False,
)
dm.setup("fit")
def batches():
    while True:
        yield from dm.train_dataloader()
it = batches()
for _ in range(2):
    first = next(it)
start = time.perf_counter()
n = 0
for _ in range(args["batches"]):
    n += next(it)["source"].shape[0]
seconds = time.perf_counter() - start
shape = list(first["source"].shape)
print("RESULT " + json.dumps({"samples": n, "seconds": seconds, "source_shape": shape}))
"""


def _plates(workdir: Path) -> dict[str, Path]:
    from viscy_data.synthetic import write_synthetic_plate
    from viscy_utils.rechunk import DEFAULT_PATCH, rechunk_store

    original = workdir / "hcs_release_original.zarr"
    # named by the default inner chunk: a copy made with other defaults is not reused
    rechunked = workdir / f"hcs_release_rechunked_{'x'.join(map(str, DEFAULT_PATCH))}.zarr"
    if not original.exists():
        write_synthetic_plate(original, shape=SHAPE, channel_names=CHANNELS, version="0.5")
    if not rechunked.exists():
        rechunk_store(original, rechunked, progress=False)
    return {"original": original, "rechunked": rechunked}


def _measure(python: str, plate: Path, args: argparse.Namespace) -> dict[str, Any]:
    options = {"plate": str(plate), "batch": 16, "workers": args.workers, "batches": args.batches}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [python, "-c", _PROBE, json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=args.timeout,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            out = json.loads(line[len("RESULT ") :])
            out["samples_per_s"] = out["samples"] / out["seconds"]
            return out
    return {"error": f"exit {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=None, help="where the plates are kept")
    parser.add_argument("--release-python", default=DEFAULT_RELEASE_PYTHON)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per measurement")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--layouts", nargs="+", default=["original", "rechunked"])
    parser.add_argument("--timeout", type=int, default=900)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not Path(args.release_python).exists():
        return {"benchmark": "hcs_release", "skipped": f"no release venv at {args.release_python}"}
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_hcs_release_"))
    workdir.mkdir(parents=True, exist_ok=True)
    plates = _plates(workdir)
    sides = {"ours": sys.executable, "release_0.1.0": args.release_python}
    raw: dict[str, dict[str, list]] = {}
    for _ in range(args.rounds):
        for layout in args.layouts:
            for side, python in sides.items():
                raw.setdefault(layout, {}).setdefault(side, []).append(
                    _measure(python, plates[layout], args)
                )
    results: dict[str, Any] = {}
    for layout, by_side in raw.items():
        entry: dict[str, Any] = {}
        for side, runs in by_side.items():
            rates = [r["samples_per_s"] for r in runs if "samples_per_s" in r]
            entry[side] = {
                "samples_per_s": round(statistics.median(rates), 2) if rates else None,
                "all": [round(r, 2) for r in rates],
                "source_shape": runs[0].get("source_shape"),
                **({"error": runs[0]["error"]} if "error" in runs[0] else {}),
            }
        ours, release = entry["ours"]["samples_per_s"], entry["release_0.1.0"]["samples_per_s"]
        if ours and release:
            entry["ours_over_release"] = round(ours / release, 2)
        results[layout] = entry
    best = results.get("original", {}).get("ours_over_release")
    return {
        "benchmark": "hcs_release",
        "plate": {"shape_tczyx": list(SHAPE), "fovs": 4},
        "config": {
            "batch_size": 16,
            "z_window_size": 5,
            "patch": [5, 256, 256],
            "workers": args.workers,
            "timed_batches": args.batches,
        },
        "results": results,
        "target": 10.0,
        "pass_original_layout": bool(best and best >= 10.0),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "machine": machine(),
    }
