"""Attach per-cell annotations (CSV) to an embedding AnnData."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import anndata as ad


def _normalize_fov(values: pd.Series) -> pd.Series:
    return values.astype(str).str.strip("/")


def _spatial_pick(obs: pd.DataFrame, table: pd.DataFrame, keys: list[str], name: str, tol):
    """Per obs row, the annotation among those with its keys whose ``(y, x)`` is within
    ``tol`` pixels (Chebyshev distance; the nearest if several), else NaN."""
    values = np.full(len(obs), np.nan, dtype=object)
    groups = table.groupby(keys, sort=False).indices
    for key, rows in obs.groupby(keys, sort=False).indices.items():
        candidates = groups.get(key)
        if candidates is None:
            continue
        ann = table.iloc[candidates]
        d = np.maximum(
            np.abs(obs["y"].to_numpy()[rows, None] - ann["y"].to_numpy()[None]),
            np.abs(obs["x"].to_numpy()[rows, None] - ann["x"].to_numpy()[None]),
        )
        nearest = d.argmin(axis=1)
        ok = d[np.arange(len(rows)), nearest] <= tol
        values[rows[ok]] = ann[name].to_numpy()[nearest[ok]]
    return values


def load_annotation_anndata(
    adata: ad.AnnData,
    path: str,
    name: str,
    categories: dict | None = None,
    spatial_tolerance: float = 4.0,
):
    """Add annotation column ``name`` from a CSV to ``adata.obs`` and return ``adata``.

    Cells are matched on ``(fov_name, id)`` when both tables have ``id``, else on
    ``(fov_name, t, track_id)`` (leading ``/`` of FOV names ignored). Where the annotation
    repeats a ``(fov_name, t, track_id)`` key (daughters sharing the parent's track at a
    division frame), every cell takes the annotation of its key whose ``(y, x)`` is within
    ``spatial_tolerance`` pixels (Chebyshev distance). Without ``id`` or ``track_id`` in
    the CSV but with ``t, y, x`` in both (an extension of ours), cells are matched by
    position the same way within their FOV and frame. Unmatched cells get NaN.

    Parameters
    ----------
    adata : anndata.AnnData
        Embeddings with ``obs`` columns ``fov_name`` and ``id`` or ``t, track_id``.
    path : str
        CSV with ``fov_name``, the column ``name`` and the matching columns.
    name : str
        Annotation column to copy.
    categories : dict, optional
        Renames of values (e.g. ``{0: "uninfected", 1: "infected"}``); the column becomes
        categorical, values not in the map are kept.
    spatial_tolerance : float
        Largest centroid distance (pixels) for the spatial match.

    Returns
    -------
    anndata.AnnData
        ``adata``, with ``adata.obs[name]`` set.

    Raises
    ------
    KeyError
        If the CSV lacks ``name`` or ``fov_name``, or no matching columns are shared.
    ValueError
        If repeated keys cannot be told apart (no ``y``, ``x`` in both tables), or
        ``(fov_name, id)`` repeats.
    """
    table = pd.read_csv(path)
    if name not in table.columns:
        raise KeyError(name)
    if "fov_name" not in table.columns or "fov_name" not in adata.obs:
        raise KeyError(f"Annotation file {path} and adata.obs both need a 'fov_name' column")
    table = table.assign(fov_name=_normalize_fov(table["fov_name"]))
    obs = adata.obs.reset_index(drop=True)
    obs = obs.assign(fov_name=_normalize_fov(obs["fov_name"]).to_numpy())

    def shared(columns):
        return set(columns) <= set(table.columns) and set(columns) <= set(obs.columns)

    has_position = shared(["y", "x"])
    if shared(["id"]):
        keys = ["fov_name", "id"]
        if table.duplicated(keys).any():
            raise ValueError(f"Annotation file {path} has duplicate rows for keys {keys}")
        values = obs[keys].merge(table[[*keys, name]], on=keys, how="left")[name].to_numpy()
    elif shared(["t", "track_id"]):
        keys = ["fov_name", "t", "track_id"]
        if not table.duplicated(keys).any():
            merged = obs[keys].merge(table[[*keys, name]], on=keys, how="left")
            values = merged[name].to_numpy()
        elif has_position:
            values = _spatial_pick(obs, table, keys, name, spatial_tolerance)
        else:
            raise ValueError(
                f"Annotation file {path} repeats keys {keys} (a division frame?) and the "
                "repeats cannot be told apart: both tables need 'y' and 'x' columns"
            )
    elif shared(["t"]) and has_position:
        values = _spatial_pick(obs, table, ["fov_name", "t"], name, spatial_tolerance)
    else:
        raise KeyError(
            f"Cannot join annotations {path}: embeddings and annotations share neither "
            "(fov_name, id) nor (fov_name, t, track_id) columns"
        )
    series = pd.Series(values, index=adata.obs.index, name=name)
    if categories is not None:
        series = series.map(lambda v: categories.get(v, v)).astype("category")
    adata.obs[name] = series
    return adata
