"""Reading and atomically rewriting the AnnData embedding zarr stores of the eval commands."""

from __future__ import annotations

import shutil
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

#: Columns that identify one cell at one timepoint in ``obs``.
CELL_KEYS = ("fov_name", "track_id", "t")


def read_embeddings(path: str | Path):
    """Read an AnnData zarr store, naming the path when it is missing or not AnnData."""
    try:
        import anndata
    except ImportError as err:  # pragma: no cover - anndata is a dynaclr dependency
        raise ImportError(
            "Reading embeddings needs anndata: pip install 'viscy-utils[anndata]'"
        ) from err
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Embeddings not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Transforming to str index.*")
            return anndata.read_zarr(path)
    except Exception as err:
        raise ValueError(f"{path} is not an AnnData zarr store: {err}") from err


def write_embeddings(adata, path: str | Path, overwrite: bool = True) -> Path:
    """Write ``adata`` to ``path`` through a temporary sibling, then swap it in.

    The old store (if any) is renamed aside and deleted only once the new one is in place,
    so an interrupted write leaves the previous store intact.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another output or pass --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = path.parent / f".{path.name}.tmp-{tag}"
    old = path.parent / f".{path.name}.old-{tag}"
    _stringify_obs(adata)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*zarr v2 data will no longer.*")
            warnings.filterwarnings("ignore", message=".*autosharding.*")
            adata.write_zarr(tmp)
        if path.exists():
            path.rename(old)
        tmp.rename(path)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    return path


def _stringify_obs(adata) -> None:
    """AnnData cannot write object columns of mixed types: store them as strings."""
    for column in adata.obs.columns:
        if adata.obs[column].dtype == object:
            values = adata.obs[column]
            adata.obs[column] = values.where(values.isna(), values.astype(str))


def clean_fov(values: pd.Series | Sequence[str]) -> pd.Series:
    """FOV names without leading/trailing slashes (``"/A/1/0"`` -> ``"A/1/0"``)."""
    return pd.Series(values).astype(str).str.strip("/")


def require_columns(obs: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    """Raise a KeyError naming the missing columns and the ones there are."""
    missing = [c for c in columns if c not in obs.columns]
    if missing:
        raise KeyError(f"{where} lacks column(s) {missing} (columns: {list(obs.columns)})")


def track_keys(obs: pd.DataFrame) -> np.ndarray:
    """One string per row naming its track across the plate: ``"<fov>/<track_id>"``."""
    require_columns(obs, ("fov_name", "track_id"), "obs")
    prefix = ""
    if "experiment" in obs.columns:
        prefix = obs["experiment"].astype(str).to_numpy().astype(object) + ":"
    key = clean_fov(obs["fov_name"]).to_numpy().astype(object) + "/"
    return (prefix + key + obs["track_id"].astype(str).to_numpy().astype(object)).astype(str)


def group_labels(obs: pd.DataFrame, group_by: str) -> np.ndarray:
    """The group of each row for grouped splits: ``fov``, ``well``, ``experiment`` or a column.

    A track never straddles two groups; a grouping that would put cells of one track on
    both sides of a split is rejected.
    """
    if group_by in ("fov", "fov_name"):
        groups = clean_fov(obs["fov_name"]).to_numpy()
    elif group_by == "well":
        groups = clean_fov(obs["fov_name"]).str.rsplit("/", n=1).str[0].to_numpy()
    elif group_by == "experiment":
        require_columns(obs, ("experiment",), "obs (for --group-by experiment)")
        groups = obs["experiment"].astype(str).to_numpy()
    else:
        require_columns(obs, (group_by,), f"obs (for --group-by {group_by})")
        groups = obs[group_by].astype(str).to_numpy()
    if "experiment" in obs.columns and group_by in ("fov", "fov_name", "well"):
        groups = (obs["experiment"].astype(str).to_numpy().astype(object) + ":" + groups).astype(
            str
        )
    if {"fov_name", "track_id"} <= set(obs.columns):
        per_track = pd.DataFrame({"track": track_keys(obs), "group": groups})
        n_groups = per_track.groupby("track")["group"].nunique()
        split = n_groups[n_groups > 1]
        if len(split):
            raise ValueError(
                f"--group-by {group_by} puts cells of one track in several groups "
                f"(e.g. track {split.index[0]}); group by fov, well or experiment"
            )
    return np.asarray(groups, dtype=str)


def model_name(path: str | Path) -> str:
    """A short name for a store in tables: its file name without ``.zarr``."""
    name = Path(path).name
    return name[: -len(".zarr")] if name.endswith(".zarr") else name
