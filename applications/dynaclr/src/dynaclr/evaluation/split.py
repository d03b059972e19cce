"""``dynaclr split``: one embedding zarr per experiment, well or FOV."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dynaclr.evaluation._io import clean_fov, read_embeddings, require_columns, write_embeddings

__all__ = ["main", "split_embeddings"]


def _part_names(obs, by: str) -> np.ndarray:
    if by == "experiment":
        require_columns(obs, ("experiment",), "obs (for --by experiment)")
        return obs["experiment"].astype(str).to_numpy()
    require_columns(obs, ("fov_name",), f"obs (for --by {by})")
    fov = clean_fov(obs["fov_name"])
    if by == "well":
        return fov.str.rsplit("/", n=1).str[0].to_numpy()
    if by == "fov":
        return fov.to_numpy()
    raise ValueError(f"--by must be experiment, well or fov, got {by!r}")


def split_embeddings(
    embeddings_path: str | Path,
    output_dir: str | Path,
    by: str = "auto",
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write one store per group of cells to ``output_dir/<group>.zarr``.

    Parameters
    ----------
    embeddings_path : path
        AnnData zarr store (not modified).
    output_dir : path
        Folder of the parts; a part named ``A/1`` is written as ``A_1.zarr``.
    by : {"auto", "experiment", "well", "fov"}
        ``"auto"``: by experiment when ``obs`` has an ``experiment`` column, else by well.
    overwrite : bool
        Replace existing parts.

    Returns
    -------
    dict
        Group name -> written store.
    """
    adata = read_embeddings(embeddings_path)
    if by == "auto":
        by = "experiment" if "experiment" in adata.obs.columns else "well"
    names = _part_names(adata.obs, by)
    output_dir = Path(output_dir)
    targets = {
        name: output_dir / (name.replace("/", "_").replace("\\", "_") + ".zarr")
        for name in sorted(set(names))
    }
    if not overwrite:
        existing = [str(p) for p in targets.values() if p.exists()]
        if existing:
            raise FileExistsError(f"{existing[0]} exists; pass --overwrite to replace it")
    for name, path in targets.items():
        part = adata[names == name].copy()
        part.uns["split_from"] = {"path": str(embeddings_path), "by": by, "value": name}
        write_embeddings(part, path, overwrite=overwrite)
    return targets


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dynaclr split``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr split",
        description="Split an embedding zarr into one zarr per experiment, well or FOV.",
    )
    parser.add_argument("embeddings", help="AnnData zarr store")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--by",
        default="auto",
        choices=["auto", "experiment", "well", "fov"],
        help="auto: experiment if obs has that column, else well",
    )
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    parts = split_embeddings(args.embeddings, args.out, args.by, args.overwrite)
    for name, path in parts.items():
        print(f"{name}: {path}")
    return 0
