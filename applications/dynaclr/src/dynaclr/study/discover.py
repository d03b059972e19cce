"""``dynaclr discover``: which dataset has which model's predictions and labels.

Walks a folder tree and finds

* **datasets**: HCS OME-Zarr plates (``<name>.zarr`` with plate metadata); the dataset
  name is the plate's name without ``.zarr``. Its tracks root is a sibling folder
  ``<name>_tracks`` or, next to a single plate, ``tracks``.
* **checkpoints**: ``*.ckpt`` files. The model name is the run folder: the folder above
  ``checkpoints/`` (``runs/<model>/checkpoints/last.ckpt``; a run's ``last.ckpt`` is
  preferred over its other checkpoints), else the file name without ``.ckpt``.
* **predictions**: AnnData zarr stores (embeddings or class predictions). The model is the
  folder holding the store, the dataset the plate whose name the store's name starts with
  (``<predictions>/<model>/<dataset>.zarr``, the layout ``generate-predict-scripts``
  writes).
* **annotations**: CSVs with ``fov_name`` and ``t`` columns and at least one more column
  that is not a tracking column; the dataset is the plate whose name appears in the
  CSV's path relative to the root (longest match), or whose tracks root holds the CSV.

The registry is a long table, one row per found item: ``kind, dataset, model, path``
(``kind`` one of ``dataset, tracks, checkpoint, predictions, annotations``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

__all__ = ["REGISTRY_COLUMNS", "discover", "main", "read_registry", "registry_summary"]

REGISTRY_COLUMNS = ["kind", "dataset", "model", "path"]
_TRACK_COLUMNS = {"track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x"}
_KINDS = ("dataset", "tracks", "checkpoint", "predictions", "annotations")


def _zarr_attrs(path: Path) -> dict:
    """Group attributes of a zarr v2 (``.zattrs``) or v3 (``zarr.json``) store."""
    v2 = path / ".zattrs"
    if v2.is_file():
        return json.loads(v2.read_text() or "{}")
    v3 = path / "zarr.json"
    if v3.is_file():
        return json.loads(v3.read_text() or "{}").get("attributes", {})
    return {}


def _zarr_kind(path: Path) -> str | None:
    """``"plate"``, ``"anndata"`` or None for a folder ending in ``.zarr``."""
    try:
        attrs = _zarr_attrs(path)
    except (OSError, ValueError):
        return None
    if "plate" in attrs or "plate" in attrs.get("ome", {}):
        return "plate"
    if attrs.get("encoding-type") == "anndata" or (path / "obs").is_dir():
        return "anndata"
    return None


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """``(kind, path)`` of every plate, AnnData store, checkpoint and CSV under ``root``.

    Symbolic links to folders are followed (each real folder is visited once).
    """
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        here = Path(folder)
        real = os.path.realpath(here)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        keep = []
        for name in sorted(dirs):
            if name.startswith("."):
                continue
            if name.endswith(".zarr"):
                kind = _zarr_kind(here / name)
                if kind is not None:
                    yield kind, here / name
                continue  # never descend into a zarr store
            keep.append(name)
        dirs[:] = keep
        for name in sorted(files):
            if name.endswith(".ckpt"):
                yield "checkpoint", here / name
            elif name.endswith(".csv"):
                yield "csv", here / name


def _is_annotation_csv(path: Path) -> bool:
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (OSError, ValueError, pd.errors.ParserError):
        return False
    columns = set(header)
    return {"fov_name", "t"} <= columns and bool(columns - _TRACK_COLUMNS - {"fov_name"})


def _tracks_root(plate: Path, n_plates_here: int) -> Path | None:
    name = plate.name[: -len(".zarr")]
    candidates = [plate.with_name(f"{name}_tracks")]
    if n_plates_here == 1:
        candidates.append(plate.with_name("tracks"))
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*/*/*/*.csv")):
            return candidate
    return None


def _model_name(ckpt: Path) -> str:
    if ckpt.parent.name == "checkpoints":
        return ckpt.parent.parent.name
    return ckpt.stem


def _match_dataset(text: str, datasets: list[str]) -> str:
    """The longest dataset name found in ``text``; ``""`` when none is."""
    found = [d for d in datasets if d and d in text]
    return max(found, key=len) if found else ""


def discover(root: str | Path) -> pd.DataFrame:
    """Find datasets, tracks, checkpoints, predictions and annotations under ``root``.

    Parameters
    ----------
    root : str or Path
        Folder to search.

    Returns
    -------
    pd.DataFrame
        The registry: ``kind, dataset, model, path`` (absolute paths), sorted.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"Not a folder: {root}")
    found: dict[str, list[Path]] = {"plate": [], "anndata": [], "checkpoint": [], "csv": []}
    for kind, path in _walk(root):
        found[kind].append(path)
    rows: list[dict[str, str]] = []
    plates = found["plate"]
    datasets = [p.name[: -len(".zarr")] for p in plates]
    duplicates = sorted({d for d in datasets if datasets.count(d) > 1})
    if duplicates:
        raise ValueError(
            f"Several plates under {root} are named {duplicates}; dataset names must be unique"
        )
    per_folder: dict[Path, int] = {}
    for plate in plates:
        per_folder[plate.parent] = per_folder.get(plate.parent, 0) + 1
    tracks_of: dict[str, Path] = {}
    for plate, name in zip(plates, datasets, strict=True):
        rows.append({"kind": "dataset", "dataset": name, "model": "", "path": str(plate)})
        tracks = _tracks_root(plate, per_folder[plate.parent])
        if tracks is not None:
            tracks_of[name] = tracks
            rows.append({"kind": "tracks", "dataset": name, "model": "", "path": str(tracks)})
    runs: dict[Path, list[Path]] = {}
    for ckpt in found["checkpoint"]:
        runs.setdefault(ckpt.parent, []).append(ckpt)
    for folder, ckpts in runs.items():
        last = [c for c in ckpts if c.name == "last.ckpt" and folder.name == "checkpoints"]
        for ckpt in last or sorted(ckpts):
            model = _model_name(ckpt)
            rows.append({"kind": "checkpoint", "dataset": "", "model": model, "path": str(ckpt)})
    for store in found["anndata"]:
        stem = store.name[: -len(".zarr")]
        dataset = max((d for d in datasets if stem.startswith(d)), key=len, default="")
        rows.append(
            {
                "kind": "predictions",
                "dataset": dataset,
                "model": store.parent.name,
                "path": str(store),
            }
        )
    for csv in found["csv"]:
        if not _is_annotation_csv(csv):
            continue
        dataset = next(
            (name for name, tracks in tracks_of.items() if tracks in csv.parents), ""
        ) or _match_dataset(str(csv.relative_to(root)), datasets)
        rows.append({"kind": "annotations", "dataset": dataset, "model": "", "path": str(csv)})
    table = pd.DataFrame(rows, columns=REGISTRY_COLUMNS)
    order = {k: i for i, k in enumerate(_KINDS)}
    table["_order"] = table["kind"].map(order)
    table = table.sort_values(["_order", "dataset", "model", "path"]).drop(columns="_order")
    return table.reset_index(drop=True)


def read_registry(path: str | Path) -> pd.DataFrame:
    """Read a registry CSV written by ``dynaclr discover --out`` (columns checked)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Registry not found: {path}")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in REGISTRY_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"Registry {path} lacks column(s) {missing}; found {list(table.columns)}")
    unknown = sorted(set(table["kind"]) - set(_KINDS))
    if unknown:
        raise ValueError(f"Registry {path} has unknown kind(s) {unknown}; expected {_KINDS}")
    return table


def registry_summary(registry: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset: has tracks, number of annotation CSVs, and per model ``yes``/``-``
    whether its predictions exist."""
    models = sorted(set(registry.loc[registry["kind"] == "checkpoint", "model"]))
    models += sorted(set(registry.loc[registry["kind"] == "predictions", "model"]) - set(models))
    rows = []
    for dataset in registry.loc[registry["kind"] == "dataset", "dataset"]:
        mine = registry[registry["dataset"] == dataset]
        row = {
            "dataset": dataset,
            "tracks": "yes" if (mine["kind"] == "tracks").any() else "-",
            "annotations": int((mine["kind"] == "annotations").sum()),
        }
        predicted = set(mine.loc[mine["kind"] == "predictions", "model"])
        for model in models:
            row[model] = "yes" if model in predicted else "-"
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    """``dynaclr discover ROOT [--out registry.csv]``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr discover",
        description=(
            "Find OME-Zarr plates, their tracks, checkpoints, prediction stores (AnnData "
            "zarr) and annotation CSVs under a folder; print which dataset has which "
            "model's predictions and labels, and write the registry table."
        ),
    )
    parser.add_argument("root", help="folder to search")
    parser.add_argument("--out", help="write the registry CSV here (kind, dataset, model, path)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    from viscy_utils.cli_utils import format_markdown_table

    try:
        if args.out and Path(args.out).exists() and not args.overwrite:
            raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
        registry = discover(args.root)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"dynaclr discover: error: {err}", file=sys.stderr)
        return 1
    counts = registry["kind"].value_counts()
    print(", ".join(f"{counts.get(k, 0)} {k}" for k in _KINDS))
    summary = registry_summary(registry)
    if len(summary):
        print(format_markdown_table(summary.to_dict("records")))
    orphans = registry[
        (registry["kind"].isin(["predictions", "annotations"])) & (registry["dataset"] == "")
    ]
    for _, row in orphans.iterrows():
        print(f"not matched to a dataset: {row['kind']} {row['path']}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        registry.to_csv(tmp, index=False)
        os.replace(tmp, out)
        print(f"Wrote {len(registry)} rows to {out}")
    return 0
