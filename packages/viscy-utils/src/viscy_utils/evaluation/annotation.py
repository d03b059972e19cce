"""Attach per-cell annotations (CSV) to an embedding AnnData."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import anndata as ad


def _normalize_fov(values: pd.Series) -> pd.Series:
    return values.astype(str).str.strip("/")


def load_annotation_anndata(
    adata: ad.AnnData,
    path: str,
    name: str,
    categories: dict | None = None,
    spatial_tolerance: float = 4.0,
):
    """Add annotation column ``name`` from a CSV to ``adata.obs`` (in place) and return it.

    Cells are matched on ``fov_name`` and ``id`` (and ``t`` when both tables
    have it). When the CSV has no ``id`` but ``t``, ``y`` and ``x``, each cell
    takes the annotation of the nearest annotated centroid in its FOV at the
    same ``t``, if within ``spatial_tolerance`` pixels. Unmatched cells get NaN.

    Parameters
    ----------
    adata : anndata.AnnData
        Embeddings with ``obs`` columns ``fov_name`` and ``id`` (or ``t, y, x``).
    path : str
        CSV with ``fov_name``, the column ``name`` and the matching columns.
    name : str
        Annotation column to copy.
    categories : dict, optional
        Map of raw values to names (e.g. ``{0: "uninfected", 1: "infected"}``);
        values not in it become NaN.
    spatial_tolerance : float
        Largest centroid distance (pixels) for the spatial match.

    Returns
    -------
    pd.Series
        The new ``adata.obs[name]``.
    """
    table = pd.read_csv(path)
    missing = [c for c in ("fov_name", name) if c not in table.columns]
    if missing:
        raise KeyError(f"Annotation file {path} lacks column(s) {missing}")
    if "fov_name" not in adata.obs:
        raise KeyError("adata.obs lacks column 'fov_name'")
    table = table.assign(fov_name=_normalize_fov(table["fov_name"]))
    obs = adata.obs.reset_index(drop=True)
    obs = obs.assign(fov_name=_normalize_fov(obs["fov_name"]).to_numpy())
    if "id" in table.columns and "id" in obs.columns:
        keys = ["fov_name", "id"] + (["t"] if "t" in table.columns and "t" in obs.columns else [])
        dup = table.duplicated(keys)
        if dup.any():
            raise ValueError(f"Annotation file {path} has duplicate rows for keys {keys}")
        merged = obs[keys].merge(table[[*keys, name]], on=keys, how="left")
        values = merged[name].to_numpy()
    elif {"t", "y", "x"} <= set(table.columns) and {"t", "y", "x"} <= set(obs.columns):
        values = np.full(len(obs), np.nan, dtype=object)
        groups = table.groupby(["fov_name", "t"])
        for (fov, t), rows in obs.groupby(["fov_name", "t"]):
            if (fov, t) not in groups.groups:
                continue
            ann = groups.get_group((fov, t))
            d = np.hypot(
                rows["y"].to_numpy()[:, None] - ann["y"].to_numpy()[None],
                rows["x"].to_numpy()[:, None] - ann["x"].to_numpy()[None],
            )
            nearest = d.argmin(axis=1)
            ok = d[np.arange(len(rows)), nearest] <= spatial_tolerance
            values[rows.index.to_numpy()[ok]] = ann[name].to_numpy()[nearest[ok]]
    else:
        raise KeyError(
            f"Cannot match {path} to the embeddings: need 'id' in both, or 't', 'y', 'x' in both"
        )
    series = pd.Series(values, index=adata.obs.index, name=name)
    if categories is not None:
        series = series.map(categories)
    adata.obs[name] = series
    return adata.obs[name]
