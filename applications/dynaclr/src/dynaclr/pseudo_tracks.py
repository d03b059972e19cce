"""``dynaclr pseudo-tracks``: tracks CSVs for data without tracking (classical sampling).

Every segmented object at every timepoint becomes its own one-frame pseudo-track
(``parent_track_id`` -1), written as ``<out>/<row>/<col>/<fov>/tracks.csv`` with the
columns ``track_id, t, id, parent_track_id, parent_id, z, y, x`` that
``TripletDataModule`` reads. Train on them with ``time_interval: any``: the positive is
then the anchor crop itself under a second augmentation (SimCLR-style sampling).

Objects come from one of

* a label image stored in each FOV (``--labels NAME``: the OME-Zarr labels group
  ``labels/NAME`` or an image array ``NAME`` of the position, e.g. the synthetic plate's
  ``fg_mask``),
* a channel of the FOV's image that holds masks or labels (``--mask-channel NAME``),
* a centroid table (``--centroids table.csv`` with ``fov_name, t, y, x`` and optionally
  ``z``).

A binary mask is split into connected components (in 3-D); an integer label image is
used as it is (0 is background).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from viscy_data.synthetic import TRACKS_COLUMNS

__all__ = ["TRACKS_COLUMNS", "main", "objects_from_labels", "write_pseudo_tracks"]

_logger = logging.getLogger(__name__)


def objects_from_labels(labels: np.ndarray, min_size: int = 1) -> pd.DataFrame:
    """Centroids of the objects of one (Z, Y, X) label image or binary mask.

    Parameters
    ----------
    labels : np.ndarray
        (Z, Y, X) or (Y, X). Values 0 and 1 only: a mask, split into connected
        components; other integers: instance labels, 0 is background.
    min_size : int
        Objects with fewer voxels are dropped.

    Returns
    -------
    pd.DataFrame
        One row per object: ``z, y, x`` (centroid, pixels) and ``size`` (voxels), in
        label order.
    """
    from scipy import ndimage

    array = np.asarray(labels)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"labels must be (Z, Y, X) or (Y, X), got shape {array.shape}")
    if array.dtype.kind == "f" and not (
        np.all(np.isfinite(array)) and np.all(array == np.round(array))
    ):
        raise ValueError("labels must hold integers (a float image with fractions given)")
    if array.dtype.kind == "b" or array.max(initial=0) <= 1:
        instances, n = ndimage.label(array > 0)
    else:
        if array.min(initial=0) < 0:
            raise ValueError(f"labels must not be negative, found {array.min()}")
        instances = array.astype(np.int64)
        n = int(instances.max())
    empty = pd.DataFrame({"z": [], "y": [], "x": [], "size": []})
    if n == 0:
        return empty
    ids = np.unique(instances)
    ids = ids[ids > 0]
    sizes = ndimage.sum_labels(np.ones(instances.shape), instances, ids)
    keep = sizes >= min_size
    ids, sizes = ids[keep], sizes[keep]
    if len(ids) == 0:
        return empty
    centers = np.array(ndimage.center_of_mass(np.ones(instances.shape), instances, ids))
    return pd.DataFrame(
        {"z": centers[:, 0], "y": centers[:, 1], "x": centers[:, 2], "size": sizes.astype(int)}
    )


def _pseudo_track_table(objects: pd.DataFrame) -> pd.DataFrame:
    """``objects`` (``t, z, y, x`` rows of one FOV) as one-frame tracks numbered from 1."""
    objects = objects.sort_values(["t", "y", "x"], kind="stable").reset_index(drop=True)
    ids = np.arange(1, len(objects) + 1, dtype=np.int64)
    return pd.DataFrame(
        {
            "track_id": ids,
            "t": objects["t"].to_numpy(dtype=np.int64),
            "id": ids,
            "parent_track_id": -1,
            "parent_id": -1,
            "z": np.rint(objects["z"].to_numpy(dtype=float)).astype(np.int64),
            "y": objects["y"].to_numpy(dtype=float),
            "x": objects["x"].to_numpy(dtype=float),
        },
        columns=TRACKS_COLUMNS,
    )


def _label_array(position, name: str, fov: str):
    """The label array ``name`` of a position: ``labels/<name>/0`` or the image ``name``."""
    zgroup = position.zgroup
    for key in (f"labels/{name}/0", f"labels/{name}", name):
        try:
            node = zgroup[key]
        except KeyError:
            continue
        if hasattr(node, "shape") and hasattr(node, "dtype"):
            return node
    images = sorted(k for k, _ in position.images())
    raise ValueError(
        f"FOV '{fov}' has no label array '{name}' (looked for labels/{name}/0 and an image "
        f"'{name}'; its images are {images})"
    )


def _objects_from_plate(
    plate,
    fov_names: Sequence[str],
    labels: str | None,
    mask_channel: str | None,
    min_size: int,
    progress: bool,
) -> dict[str, pd.DataFrame]:
    from tqdm.auto import tqdm

    channel = None
    if mask_channel is not None:
        if mask_channel not in plate.channel_names:
            raise ValueError(
                f"mask channel '{mask_channel}' is not in the plate; channels are "
                f"{list(plate.channel_names)}"
            )
        channel = list(plate.channel_names).index(mask_channel)
    out: dict[str, pd.DataFrame] = {}
    bar = tqdm(total=len(fov_names), desc="segmented FOVs", unit="fov", disable=not progress)
    with bar:
        for fov in fov_names:
            position = plate[fov]
            image_shape = tuple(position["0"].shape)
            if labels is not None:
                array = _label_array(position, labels, fov)
                shape = tuple(array.shape)
                if len(shape) == 5:
                    pick = (slice(None), 0)
                elif len(shape) == 4:
                    pick = (slice(None),)
                else:
                    raise ValueError(
                        f"label array '{labels}' of FOV '{fov}' has shape {shape}; expected "
                        "(T, C, Z, Y, X) or (T, Z, Y, X)"
                    )
                expected = (image_shape[0], *image_shape[2:])
                got = (shape[0], *shape[-3:])
                if got[0] != expected[0] or got[-2:] != expected[-2:]:
                    raise ValueError(
                        f"label array '{labels}' of FOV '{fov}' has (T, Z, Y, X) = {got} but "
                        f"the image has {expected}"
                    )
            else:
                array, pick = position["0"], (slice(None), channel)
            rows = []
            for t in range(image_shape[0]):
                frame = np.asarray(array[(t, *pick[1:])])
                found = objects_from_labels(frame, min_size=min_size)
                rows.append(found.assign(t=t))
            out[fov] = pd.concat(rows, ignore_index=True)
            bar.update()
    return out


def _objects_from_table(
    table: pd.DataFrame, source: str, plate, fov_names: Sequence[str]
) -> dict[str, pd.DataFrame]:
    missing = [c for c in ("fov_name", "t", "y", "x") if c not in table.columns]
    if missing:
        raise ValueError(f"{source} lacks column(s) {missing}; found {list(table.columns)}")
    table = table.copy()
    table["fov_name"] = table["fov_name"].astype(str).str.strip("/")
    unknown = sorted(set(table["fov_name"]) - set(fov_names))
    if unknown:
        raise ValueError(f"{source}: FOV(s) {unknown[:5]} are not in the plate")
    if "z" not in table.columns:
        table["z"] = 0
    for column in ("t", "z", "y", "x"):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            lines = ", ".join(str(i + 2) for i in np.flatnonzero(bad)[:5])
            raise ValueError(f"{source}: column '{column}' is not numeric on line(s) {lines}")
        table[column] = values
    out = {}
    for fov in fov_names:
        rows = table[table["fov_name"] == fov]
        n_t, _, n_z, n_y, n_x = plate[fov]["0"].shape
        for column, extent in (("t", n_t), ("z", n_z), ("y", n_y), ("x", n_x)):
            outside = (rows[column] < 0) | (rows[column] >= extent)
            if outside.any():
                line = int(rows.index[outside.to_numpy()][0]) + 2
                raise ValueError(
                    f"{source}: '{column}' = {rows[column][outside].iloc[0]} on line {line} is "
                    f"outside FOV '{fov}' (size {extent})"
                )
        out[fov] = rows[["t", "z", "y", "x"]].reset_index(drop=True)
    return out


def write_pseudo_tracks(
    data_path: str | Path,
    out: str | Path,
    labels: str | None = None,
    mask_channel: str | None = None,
    centroids: str | Path | pd.DataFrame | None = None,
    fov_names: Sequence[str] | None = None,
    min_size: int = 10,
    overwrite: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Write one pseudo-track per object per timepoint for every FOV of a plate.

    Parameters
    ----------
    data_path : str or Path
        HCS OME-Zarr plate.
    out : str or Path
        Tracks root to create (``<out>/<row>/<col>/<fov>/tracks.csv``); written to a
        temporary sibling and renamed.
    labels, mask_channel, centroids
        Exactly one source of objects (see the module docstring).
    fov_names : sequence of str, optional
        FOVs to process; all when None.
    min_size : int
        Smallest object kept, in voxels (label sources only).
    overwrite : bool
        Replace an existing ``out``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pd.DataFrame
        Every pseudo-track row, with ``fov_name``.
    """
    from iohub.ngff import open_ome_zarr

    sources = [s for s in (labels, mask_channel, centroids) if s is not None]
    if len(sources) != 1:
        raise ValueError("Give exactly one of labels, mask_channel and centroids")
    data_path, out = Path(data_path), Path(out)
    if not data_path.exists():
        raise FileNotFoundError(f"OME-Zarr plate not found: {data_path}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    if min_size < 1:
        raise ValueError(f"min_size must be at least 1, got {min_size}")
    with open_ome_zarr(data_path, mode="r", layout="hcs") as plate:
        all_fovs = [name for name, _ in plate.positions()]
        names = all_fovs if fov_names is None else [f.strip("/") for f in fov_names]
        unknown = sorted(set(names) - set(all_fovs))
        if unknown:
            raise ValueError(f"FOV(s) {unknown[:5]} are not in {data_path}")
        if centroids is not None:
            source = "centroid table"
            if not isinstance(centroids, pd.DataFrame):
                path = Path(centroids)
                if not path.is_file():
                    raise FileNotFoundError(f"Centroid table not found: {path}")
                source = f"centroid table {path}"
                centroids = pd.read_csv(path)
            objects = _objects_from_table(centroids, source, plate, names)
        else:
            objects = _objects_from_plate(plate, names, labels, mask_channel, min_size, progress)
    total = sum(len(v) for v in objects.values())
    if total == 0:
        what = labels or mask_channel or "the centroid table"
        raise ValueError(f"No objects found in {what} of {data_path} (FOVs {names[:5]})")
    empty = [fov for fov, rows in objects.items() if len(rows) == 0]
    if empty:
        _logger.warning("No objects in FOV(s) %s: their tracks CSVs are empty", empty[:5])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tables = []
    try:
        for fov, rows in objects.items():
            table = _pseudo_track_table(rows)
            target = tmp / fov / "tracks.csv"
            target.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(target, index=False, float_format="%.3f")
            tables.append(table.assign(fov_name=fov))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return pd.concat(tables, ignore_index=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynaclr pseudo-tracks",
        description=(
            "Turn segmentation labels, a mask channel or a centroid table into a tracks CSV "
            "tree (one pseudo-track per object per timepoint) for TripletDataModule; train "
            "on it with time_interval: any (augmentation-only positives)."
        ),
    )
    parser.add_argument("--data-path", required=True, help="HCS OME-Zarr plate")
    parser.add_argument("--out", required=True, help="tracks root to create")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--labels", help="label array of each FOV (labels/NAME or image NAME)")
    source.add_argument("--mask-channel", help="image channel holding masks or labels")
    source.add_argument("--centroids", help="CSV with fov_name, t, y, x (and optionally z)")
    parser.add_argument("--fovs", nargs="+", help="FOVs to process (default: all)")
    parser.add_argument("--min-size", type=int, default=10, help="smallest object, voxels")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``dynaclr pseudo-tracks``."""
    args = _parser().parse_args(argv)
    try:
        table = write_pseudo_tracks(
            args.data_path,
            args.out,
            labels=args.labels,
            mask_channel=args.mask_channel,
            centroids=args.centroids,
            fov_names=args.fovs,
            min_size=args.min_size,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"dynaclr pseudo-tracks: error: {err}", file=sys.stderr)
        return 1
    n_fov = table["fov_name"].nunique()
    print(f"Wrote {len(table)} pseudo-tracks in {n_fov} FOVs to {args.out}")
    return 0
