"""Input files of the data section, written by *our* synthetic generator.

    python _data_files.py DIR        # run with this checkout's python

Both sides of the data section read the same files: the oracle side finds (or builds, by
running this script with our interpreter) the folder, our side reuses it. Everything is
seeded, so a rebuilt folder holds the same bytes. Bump ``VERSION`` when the content changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VERSION = "1"
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

PLATE_SHAPE = (3, 2, 8, 64, 64)  # T, C, Z, Y, X
CHANNELS = ("Phase3D", "GFP")
NPY_SHAPE = (5, 2, 40, 40)  # T, C, Y, X of each cell-division series
LIVECELL_YX = (32, 40)


def data_dir() -> Path:
    """The folder of the section's files, built on first use."""
    root = Path(
        os.environ.get("COMPAT_DATA_DIR")
        or Path(tempfile.gettempdir()) / f"viscy-compat-data-{os.getuid()}-v{VERSION}"
    )
    if (root / "DONE").exists():
        return root
    python = os.environ.get("COMPAT_OURS_PYTHON") or str(REPO / ".venv" / "bin" / "python")
    if not Path(python).exists():
        python = sys.executable
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [python, str(Path(__file__)), str(root)], env=env, capture_output=True, text=True
    )
    if proc.returncode or not (root / "DONE").exists():
        raise RuntimeError(f"building the data section's files failed:\n{proc.stderr[-3000:]}")
    return root


def _square(x0: int, y0: int, size: int) -> list[float]:
    x1, y1 = x0 + size, y0 + size
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def build(root: Path) -> None:
    """Write every input file under ``root`` (to a temporary sibling, then renamed)."""
    import numpy as np
    import pandas as pd
    import tifffile
    from iohub.ngff import open_ome_zarr

    from viscy_data.synthetic import write_synthetic_plate

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".tmp-", dir=root.parent))
    common = {"wells": (("A", "1"), ("B", "1")), "fovs_per_well": 2, "cells_per_fov": 4}
    plate = write_synthetic_plate(
        tmp / "plate.zarr",
        shape=PLATE_SHAPE,
        channel_names=CHANNELS,
        version="0.4",
        seed=0,
        tracks_path=tmp / "tracks",
        foreground_mask=True,
        **common,
    )
    write_synthetic_plate(
        tmp / "plate_v05.zarr",
        shape=PLATE_SHAPE,
        channel_names=CHANNELS,
        version="0.5",
        seed=3,
        **common,
    )
    # CTMC-v1: one DIC channel, single Z; train and validation plates
    for name, seed in (("ctmc_train.zarr", 4), ("ctmc_val.zarr", 5)):
        write_synthetic_plate(
            tmp / name, shape=(4, 1, 1, 48, 48), channel_names=("DIC",), version="0.4",
            seed=seed, **common,
        )  # fmt: skip
    # segmentation: prediction and target plates with the same FOVs
    for name, channel, seed in (("seg_pred.zarr", "pred", 6), ("seg_target.zarr", "target", 7)):
        write_synthetic_plate(
            tmp / name, shape=(2, 1, 3, 32, 32), channel_names=(channel,), version="0.4",
            seed=seed, normalization=False, **common,
        )  # fmt: skip
    # classification annotations: every tracked cell, labelled by its well's condition
    rows = []
    for fov in plate.fov_names:
        tracks = pd.read_csv(tmp / "tracks" / fov / "tracks.csv")
        state = 1 if plate.well_conditions["/".join(fov.split("/")[:2])] == "infected" else 0
        for r in tracks.itertuples():
            rows.append(
                {"fov_name": "/" + fov, "track_id": r.track_id, "t": r.t, "id": r.id,
                 "parent_track_id": r.parent_track_id, "parent_id": r.parent_id, "z": r.z,
                 "y": r.y, "x": r.x, "infection_state": state}
            )  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp / "annotations.csv", index=False)
    # cell division: one (T, C, Y, X) float32 series per file, cut from the plate
    npy = tmp / "division"
    npy.mkdir()
    with open_ome_zarr(tmp / "plate.zarr", mode="r") as store:
        for k, fov in enumerate(plate.fov_names):
            image = np.asarray(store[fov]["0"][:, :, 4], dtype=np.float32)
            series = np.concatenate([image, image[:2] + 1.0])[: NPY_SHAPE[0]]
            np.save(npy / f"cell_{k}.npy", series[..., : NPY_SHAPE[2], : NPY_SHAPE[3]])
        # LIVECell: 2-D uint16 TIFFs and COCO JSONs for train (5), val (3), test (2)
        images_dir = tmp / "livecell"
        images_dir.mkdir()
        planes = [
            np.asarray(store[fov]["0"][t, 0, z, : LIVECELL_YX[0], : LIVECELL_YX[1]])
            for fov in plate.fov_names
            for t in range(PLATE_SHAPE[0])
            for z in (2, 5)
        ]
    start = 0
    for split, n in (("train", 5), ("val", 3), ("test", 2)):
        images, annotations = [], []
        for i in range(n):
            file_name = f"{split}_{i}.tif"
            tifffile.imwrite(images_dir / file_name, planes[start + i])
            images.append({"id": i + 1, "file_name": file_name, "height": LIVECELL_YX[0],
                           "width": LIVECELL_YX[1]})  # fmt: skip
            for j, (x0, y0) in enumerate(((2, 2), (14, 10))):
                annotations.append(
                    {"id": 100 * (i + 1) + j, "image_id": i + 1, "category_id": 1,
                     "segmentation": [_square(x0, y0, 6)], "bbox": [x0, y0, 6, 6],
                     "area": 36.0, "iscrowd": 0}
                )  # fmt: skip
        start += n
        coco = {"images": images, "annotations": annotations,
                "categories": [{"id": 1, "name": "cell"}]}  # fmt: skip
        (tmp / f"livecell_{split}.json").write_text(json.dumps(coco))
    (tmp / "DONE").write_text(VERSION)
    try:
        os.rename(tmp, root)
    except OSError:  # built meanwhile by another run: keep that one
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    build(Path(sys.argv[1]))
