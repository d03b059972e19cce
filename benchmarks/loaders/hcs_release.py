"""HCSDataModule training throughput: this workspace against the published 0.1.0 release.

Both sides build the same DataModule from the same arguments (the 0.1.0 signature): source
Phase3D, target GFP, z-window 5, batch 16, ``--workers`` worker processes (default 2), 256 x
256 training patches asked for the 0.1.0 way, by a CPU crop. Every measurement runs with the
workers not persistent (``persistent_workers=False``, the 0.1.0 default: each epoch starts new
workers) and persistent (``True``, what our example configs use: the workers, and the blocks
they decoded, live from one epoch to the next), the same setting on both sides
(``--persistence``). Configurations (``--configs``):

* ``crop``: ``RandSpatialCropd(roi_size=(5, 256, 256))``, one patch per window. 0.1.0 reads
  16 whole 2 x 5 x 1024^2 windows per batch and crops each; ours reads 16 boxes of 256^2.
* ``samples4``: ``RandSpatialCropSamplesd(roi_size=(5, 256, 256), num_samples=4)``. Both load
  4 windows per batch and give 4 random crops of each; 0.1.0 reads the 4 whole windows,
  ours reads 4 boxes of 256^2 from each (one read per batch).
* ``patches4`` (ours only; 0.1.0 has no such option): no CPU crop, ``patches_per_stack=4``:
  the same draws as ``samples4`` (4 windows per batch, 4 uniformly placed 256^2 boxes of
  each) without CPU transforms (patches stay uint16 until the device). Compared with the
  release's ``samples4``.

Each side runs in a fresh process of its own Python (``sys.executable`` here;
``--release-python``, a venv with ``viscy-data==0.1.0`` from PyPI, for the release), reads
two untimed batches, then times ``--batches`` batches (default 48: two training epochs of
``samples4``, eight of ``crop``; epochs restart as needed, as in training). Plates: the
loader benchmarks' 1 GiB plate (4 FOVs x 8 T x 2 C x 8 Z x 1024^2, iohub's default chunks,
one 16 MiB ZYX stack per chunk) and its ``viscy rechunk`` copy (default inner chunks), which
both sides read. Every (layout, config, side) is measured ``--rounds`` times, median kept.
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
# config: (sides that run it, the release config it is compared with)
CONFIGS = {
    "crop": (("ours", "release_0.1.0"), "crop"),
    "samples4": (("ours", "release_0.1.0"), "samples4"),
    "patches4": (("ours",), "samples4"),
}

# Runs in a fresh process of either Python: only the 0.1.0 public API is used.
_PROBE = r"""
import json, sys, time
args = json.loads(sys.argv[1])
from monai.transforms import RandSpatialCropd, RandSpatialCropSamplesd
from viscy_data import HCSDataModule
keys, roi, extra = ["Phase3D", "GFP"], (5, 256, 256), {}
if args["config"] == "crop":
    augmentations = [RandSpatialCropd(keys=keys, roi_size=roi)]
elif args["config"] == "samples4":
    augmentations = [RandSpatialCropSamplesd(keys=keys, roi_size=roi, num_samples=4)]
else:  # patches4: ours only
    augmentations, extra = [], {"patches_per_stack": 4}
dm = HCSDataModule(
    data_path=args["plate"], source_channel="Phase3D", target_channel="GFP", z_window_size=5,
    batch_size=args["batch"], num_workers=args["workers"], yx_patch_size=(256, 256),
    augmentations=augmentations, pin_memory=False, persistent_workers=args["persistent"],
    **extra,
)
dm.setup("fit")
loader = dm.train_dataloader()  # once, as Lightning does: persistent workers outlive epochs
def batches():
    while True:
        yield from loader
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


PERSISTENCE = {"non_persistent": False, "persistent": True}


def _measure(
    python: str, plate: Path, config: str, persistence: str, args: argparse.Namespace
) -> dict[str, Any]:
    options = {
        "plate": str(plate),
        "config": config,
        "persistent": PERSISTENCE[persistence],
        "batch": 16,
        "workers": args.workers,
        "batches": args.batches,
    }
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
    parser.add_argument("--batches", type=int, default=48, help="timed batches per measurement")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--layouts", nargs="+", default=["original", "rechunked"])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--persistence", nargs="+", default=list(PERSISTENCE), choices=list(PERSISTENCE)
    )
    parser.add_argument("--timeout", type=int, default=900)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not Path(args.release_python).exists():
        return {"benchmark": "hcs_release", "skipped": f"no release venv at {args.release_python}"}
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_hcs_release_"))
    workdir.mkdir(parents=True, exist_ok=True)
    plates = _plates(workdir)
    pythons = {"ours": sys.executable, "release_0.1.0": args.release_python}
    configs = list(args.configs)
    if "patches4" in configs and "samples4" not in configs:
        configs.append("samples4")  # the release side patches4 is compared with
    raw: dict[tuple[str, str, str, str], list] = {}
    for _ in range(args.rounds):
        for layout in args.layouts:
            for persistence in args.persistence:
                for config in configs:
                    for side in CONFIGS[config][0]:
                        raw.setdefault((layout, persistence, config, side), []).append(
                            _measure(pythons[side], plates[layout], config, persistence, args)
                        )

    def summary(runs: list) -> dict[str, Any]:
        rates = [r["samples_per_s"] for r in runs if "samples_per_s" in r]
        return {
            "samples_per_s": round(statistics.median(rates), 2) if rates else None,
            "all": [round(r, 2) for r in rates],
            "source_shape": runs[0].get("source_shape"),
            **({"error": runs[0]["error"]} if "error" in runs[0] else {}),
        }

    results: dict[str, Any] = {}
    for layout in args.layouts:
        for persistence in args.persistence:
            for config in configs:
                key = (layout, persistence)
                entry = {side: summary(raw[(*key, config, side)]) for side in CONFIGS[config][0]}
                release = summary(raw[(*key, CONFIGS[config][1], "release_0.1.0")])
                if "release_0.1.0" not in entry:
                    entry[f"release_0.1.0 ({CONFIGS[config][1]})"] = release
                ours, theirs = entry["ours"]["samples_per_s"], release["samples_per_s"]
                if ours and theirs:
                    entry["ours_over_release"] = round(ours / theirs, 2)
                    entry["pass"] = bool(ours / theirs >= 10.0)
                results.setdefault(layout, {}).setdefault(persistence, {})[config] = entry
    return {
        "benchmark": "hcs_release",
        "plate": {"shape_tczyx": list(SHAPE), "fovs": 4},
        "config": {
            "batch_size": 16,
            "z_window_size": 5,
            "patch": [5, 256, 256],
            "workers": args.workers,
            "persistent_workers": {k: PERSISTENCE[k] for k in args.persistence},
            "configs": configs,
            "timed_batches": args.batches,
        },
        "results": results,
        "target": 10.0,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "machine": machine(),
    }
