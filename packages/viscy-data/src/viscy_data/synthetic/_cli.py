"""``python -m viscy_data.synthetic``: the command-line interface of the generator."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from viscy_data.synthetic._write import write_synthetic_plate


def _parse_ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m viscy_data.synthetic",
        description="Write a synthetic HCS OME-Zarr plate of tracked, dividing, infected cells.",
    )
    parser.add_argument("path", type=Path, help="plate to create (.zarr); must not exist")
    parser.add_argument(
        "--shape",
        type=_parse_ints,
        default=(8, 2, 8, 256, 256),
        help="T,C,Z,Y,X per FOV (default: 8,2,8,256,256)",
    )
    parser.add_argument(
        "--channels",
        default="Phase3D,GFP",
        help="comma-separated channel names (default: Phase3D,GFP)",
    )
    parser.add_argument(
        "--wells", default="A/1,B/1", help="comma-separated wells as ROW/COL (default: A/1,B/1)"
    )
    parser.add_argument("--fovs-per-well", type=int, default=2)
    parser.add_argument("--dtype", default="uint16")
    parser.add_argument(
        "--chunks",
        type=_parse_ints,
        default=None,
        help="T,C,Z,Y,X chunk shape (default: iohub's, one ZYX stack)",
    )
    parser.add_argument(
        "--version",
        choices=("0.4", "0.5"),
        default="0.5",
        help="NGFF version: 0.4 = zarr v2, 0.5 = zarr v3 (default)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tracks", type=Path, default=None, help="also write tracks CSVs under this directory"
    )
    parser.add_argument("--cells-per-fov", type=int, default=8)
    parser.add_argument("--foreground-mask", action="store_true")
    parser.add_argument("--no-normalization", action="store_true")
    parser.add_argument(
        "--phenotype",
        choices=["reporter", "relocalization", "translocation", "relocalization_defocus"],
        default="reporter",
        help="infection phenotype: a bright reporter (default), reporter relocalization "
        "to the nucleus at matched total intensity, translocation of a reporter focus onto "
        "the nucleus seen in the label-free channel, or relocalization under per-frame "
        "defocus (label-free contrast inverted in half of the frames) and debris",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints a JSON summary of what was written."""
    args = _build_parser().parse_args(argv)
    wells = []
    for well in args.wells.split(","):
        row, sep, col = well.strip().partition("/")
        if not sep:
            print(f"error: well {well!r} is not ROW/COL", file=sys.stderr)
            return 2
        wells.append((row, col))
    start = time.perf_counter()
    plate = write_synthetic_plate(
        args.path,
        shape=args.shape,
        channel_names=[c.strip() for c in args.channels.split(",")],
        wells=wells,
        fovs_per_well=args.fovs_per_well,
        dtype=args.dtype,
        chunks=args.chunks,
        version=args.version,
        seed=args.seed,
        normalization=not args.no_normalization,
        foreground_mask=args.foreground_mask,
        tracks_path=args.tracks,
        cells_per_fov=args.cells_per_fov,
        progress=True,
        phenotype=args.phenotype,
    )
    summary = {
        "path": str(plate.path),
        "tracks_path": str(plate.tracks_path) if plate.tracks_path else None,
        "fovs": plate.fov_names,
        "shape": list(plate.shape),
        "cells": int(plate.cells.groupby(["fov_name", "track_id"]).ngroups),
        "seconds": round(time.perf_counter() - start, 2),
    }
    print(json.dumps(summary, indent=2))
    return 0
